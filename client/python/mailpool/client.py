"""The mailpool client: Client (the daemon connection) and Session (one pooled session)."""
from __future__ import annotations

import datetime
import enum
import os
import re
from typing import (Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple,
                    TypeVar, Union)

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from mailpool.errors import NotFound, from_rpc_error
from mailpool.v1 import (mailbox_pb2, mailbox_pb2_grpc, message_pb2, message_pb2_grpc,
                         send_pb2, send_pb2_grpc, session_pb2, session_pb2_grpc)

DEFAULT_ADDRESS = "127.0.0.1:50551"
SESSION_HEADER = "x-mailpool-session"

Seconds = Union[float, int, datetime.timedelta]
AddressLike = Union[str, Tuple[str, str], message_pb2.Address]
T = TypeVar("T")


class Security(enum.IntEnum):
    """Connection security (session.proto Security)."""
    PLAIN = session_pb2.SECURITY_PLAIN
    STARTTLS = session_pb2.SECURITY_STARTTLS
    IMPLICIT_TLS = session_pb2.SECURITY_IMPLICIT_TLS


class Mechanism(enum.IntEnum):
    """Authentication mechanism (session.proto AuthMechanism). AUTO: the strongest offered."""
    AUTO = session_pb2.AUTH_MECHANISM_UNSPECIFIED
    COMMAND = session_pb2.AUTH_MECHANISM_COMMAND
    PLAIN = session_pb2.AUTH_MECHANISM_PLAIN
    LOGIN = session_pb2.AUTH_MECHANISM_LOGIN
    CRAM_MD5 = session_pb2.AUTH_MECHANISM_CRAM_MD5
    APOP = session_pb2.AUTH_MECHANISM_APOP
    XOAUTH2 = session_pb2.AUTH_MECHANISM_XOAUTH2
    OAUTHBEARER = session_pb2.AUTH_MECHANISM_OAUTHBEARER
    NONE = session_pb2.AUTH_MECHANISM_NONE
    SCRAM_SHA_1 = session_pb2.AUTH_MECHANISM_SCRAM_SHA_1
    SCRAM_SHA_256 = session_pb2.AUTH_MECHANISM_SCRAM_SHA_256


class Protocol(enum.IntEnum):
    """Protocol of a session (session.proto Protocol)."""
    IMAP = session_pb2.PROTOCOL_IMAP
    POP3 = session_pb2.PROTOCOL_POP3
    SMTP = session_pb2.PROTOCOL_SMTP
    POP3_SMTP = session_pb2.PROTOCOL_POP3_SMTP


class View(enum.IntEnum):
    """How much of a message to return (mailbox.proto MessageView)."""
    DEFAULT = mailbox_pb2.MESSAGE_VIEW_UNSPECIFIED
    BASIC = mailbox_pb2.MESSAGE_VIEW_BASIC
    HEADERS = mailbox_pb2.MESSAGE_VIEW_HEADERS
    FULL = mailbox_pb2.MESSAGE_VIEW_FULL
    RAW = mailbox_pb2.MESSAGE_VIEW_RAW


class Order(enum.IntEnum):
    """Listing order (mailbox.proto MessageOrder)."""
    NEWEST_FIRST = mailbox_pb2.MESSAGE_ORDER_NEWEST_FIRST
    OLDEST_FIRST = mailbox_pb2.MESSAGE_ORDER_OLDEST_FIRST


class Filter(enum.IntEnum):
    """Which messages to list (mailbox.proto MessageFilter)."""
    ALL = mailbox_pb2.MESSAGE_FILTER_ALL
    UNREAD = mailbox_pb2.MESSAGE_FILTER_UNREAD


class DeleteMode(enum.IntEnum):
    """What DeleteMessages does on IMAP (mailbox.proto DeleteMode)."""
    DEFAULT = mailbox_pb2.DELETE_MODE_UNSPECIFIED
    EXPUNGE = mailbox_pb2.DELETE_MODE_EXPUNGE
    FLAG_ONLY = mailbox_pb2.DELETE_MODE_FLAG_ONLY
    MOVE_TO_TRASH = mailbox_pb2.DELETE_MODE_MOVE_TO_TRASH


class FlagOperation(enum.IntEnum):
    """How UpdateFlags applies flags (mailbox.proto FlagOperation)."""
    ADD = mailbox_pb2.FLAG_OPERATION_ADD
    REMOVE = mailbox_pb2.FLAG_OPERATION_REMOVE
    REPLACE = mailbox_pb2.FLAG_OPERATION_REPLACE


_SECURITY_NAMES = {"plain": Security.PLAIN, "none": Security.PLAIN,
                   "starttls": Security.STARTTLS, "tls": Security.IMPLICIT_TLS,
                   "ssl": Security.IMPLICIT_TLS, "implicit_tls": Security.IMPLICIT_TLS}


def _security(value: Union[Security, int, str, None]) -> int:
    if value is None:
        return session_pb2.SECURITY_UNSPECIFIED
    if isinstance(value, str):
        try:
            return int(_SECURITY_NAMES[value.lower().replace("-", "_")])
        except KeyError:
            raise ValueError(f"unknown security {value!r}: plain, starttls or tls") from None
    return int(value)


def _duration(value: Optional[Seconds]) -> Optional[duration_pb2.Duration]:
    if value is None:
        return None
    d = duration_pb2.Duration()
    if isinstance(value, datetime.timedelta):
        d.FromTimedelta(value)
    else:
        d.FromNanoseconds(int(round(float(value) * 1e9)))
    return d


def _seconds(value: Optional[Seconds]) -> Optional[float]:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return None if value is None else float(value)


def to_datetime(ts: Optional[timestamp_pb2.Timestamp]) -> Optional[datetime.datetime]:
    """A protobuf Timestamp as a timezone-aware datetime in UTC; None when unset."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=datetime.timezone.utc)


def _timestamp(value: Union[datetime.datetime, timestamp_pb2.Timestamp]) -> timestamp_pb2.Timestamp:
    """A Timestamp from an aware datetime (a naive one is taken as UTC)."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    ts = timestamp_pb2.Timestamp()
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    ts.FromDatetime(value)
    return ts


def _criteria(fields: dict) -> mailbox_pb2.SearchCriteria:
    """SearchCriteria from keyword fields: `from_` for the `from` field, datetimes for the
    time fields (since, before, sent_since, sent_before)."""
    fields = dict(fields)
    if "from_" in fields:
        fields["from"] = fields.pop("from_")
    for name, value in list(fields.items()):
        if isinstance(value, datetime.datetime):
            fields[name] = _timestamp(value)
    return mailbox_pb2.SearchCriteria(**fields)


def _add_from_property() -> None:
    """`m.from_` for the `from` field (a Python keyword) of EmailMessage and SearchCriteria."""
    def get(self: Any) -> Any:
        return getattr(self, "from")

    def set_address(self: Any, value: "AddressLike") -> None:
        getattr(self, "from").CopyFrom(address(value))

    def set_text(self: Any, value: str) -> None:
        setattr(self, "from", value)

    message_pb2.EmailMessage.from_ = property(get, set_address, doc="The From address.")
    mailbox_pb2.SearchCriteria.from_ = property(get, set_text, doc="The From criterion.")


_NAME_ADDR = re.compile(r"^\s*(?:\"?([^\"<]*?)\"?\s*)?<([^<>]+)>\s*$")


def address(value: AddressLike) -> message_pb2.Address:
    """An Address from "alice@example.org", "Alice <alice@example.org>" or (name, addr)."""
    if isinstance(value, message_pb2.Address):
        return value
    if isinstance(value, tuple):
        return message_pb2.Address(name=value[0], address=value[1])
    m = _NAME_ADDR.match(value)
    if m:
        return message_pb2.Address(name=(m.group(1) or "").strip(), address=m.group(2).strip())
    return message_pb2.Address(address=value.strip())


def _addresses(values: Union[AddressLike, Sequence[AddressLike], None]
               ) -> List[message_pb2.Address]:
    if values is None:
        return []
    if isinstance(values, (str, tuple, message_pb2.Address)):
        values = [values]
    return [address(v) for v in values]


def message(*, from_: AddressLike, to: Union[AddressLike, Sequence[AddressLike], None] = None,
            subject: str = "", text: str = "", html: str = "",
            cc: Union[AddressLike, Sequence[AddressLike], None] = None,
            bcc: Union[AddressLike, Sequence[AddressLike], None] = None,
            reply_to: Union[AddressLike, Sequence[AddressLike], None] = None,
            attachments: Iterable[message_pb2.Attachment] = (),
            headers: Iterable[Tuple[str, str]] = (), **fields: Any) -> message_pb2.EmailMessage:
    """Builds an EmailMessage (the seed's Email type) from plain Python values.

    Any other EmailMessage field can be passed by name (message_id=..., priority=...).
    """
    m = message_pb2.EmailMessage(subject=subject, text_body=text, html_body=html, **fields)
    m.to.extend(_addresses(to))
    m.cc.extend(_addresses(cc))
    m.bcc.extend(_addresses(bcc))
    m.reply_to.extend(_addresses(reply_to))
    m.attachments.extend(attachments)
    m.headers.extend(message_pb2.Header(name=n, value=v) for n, v in headers)
    getattr(m, "from").CopyFrom(address(from_))
    return m


def _endpoint(host: str, port: int, security: Union[Security, int, str, None],
              ca_pem: Optional[str], ca_file: Optional[str], server_name: str,
              dangerously_skip_verification: bool,
              connect_timeout: Optional[Seconds]) -> session_pb2.ServerEndpoint:
    if ca_file:
        with open(ca_file, encoding="ascii") as f:
            ca_pem = f.read()
    ep = session_pb2.ServerEndpoint(
        host=host, port=port, security=_security(security),
        tls=session_pb2.TlsOptions(ca_pem=ca_pem or "", server_name=server_name,
                                   dangerously_skip_verification=dangerously_skip_verification))
    if connect_timeout is not None:
        ep.connect_timeout.CopyFrom(_duration(connect_timeout))
    return ep


# A mail server credential that is not a password: an OAuth2 access token, or a
# mailpool.OAuth2Refresh (refresh token + provider or endpoint) whose access tokens the
# daemon gets and renews itself.
MailToken = Union[str, session_pb2.OAuth2Refresh, None]


def _credentials(user: str, password: Optional[str], token: MailToken,
                 mechanism: Union[Mechanism, int, None],
                 allow_insecure_auth: bool) -> session_pb2.Credentials:
    if password is not None and token is not None:
        raise ValueError("give a password or a token, not both")
    c = session_pb2.Credentials(user=user, mechanism=int(mechanism or 0),
                                allow_insecure_auth=allow_insecure_auth)
    if password is not None:
        c.password = password
    if isinstance(token, session_pb2.OAuth2Refresh):
        c.oauth2_refresh.CopyFrom(token)
    elif token is not None:
        c.oauth2_token = token
    return c


TOKEN_HEADER = "authorization"

# Calls that only read (or compute) and so are safe to send again: retried on UNAVAILABLE by
# the default retry policy. Starting, closing, sending, deleting, moving... are not (a
# broken link may hide that the first attempt took effect); retry="all" adds them too.
_READ_ONLY_METHODS = {
    "mailpool.v1.SessionService": ["GetSession", "ListSessions", "GetDefaultTimeout"],
    "mailpool.v1.MailboxService": ["GetMailboxStatus", "ListMessages", "GetMessage",
                                   "StreamMessage", "GetAttachment", "SearchMessages",
                                   "ListFolders"],
    "mailpool.v1.SendService": ["GetSendStatus", "ListOutbox", "CheckAddress"],
    "mailpool.v1.MessageService": ["BuildSource", "ParseSource"],
}
RetrySetting = Union[bool, str]


def service_config(retry: RetrySetting = True, *, max_attempts: int = 4) -> Optional[str]:
    """The gRPC service config (JSON) of the retry policy: UNAVAILABLE (the daemon restarting,
    a proxy without a backend, a mail server briefly unreachable) is retried up to
    max_attempts times with exponential backoff (0.2 s, 0.4 s, 0.8 s... capped at 2 s).
    retry=True: the read-only calls; "all": every call; False: none (None is returned)."""
    import json
    if retry is False or retry is None:
        return None
    if retry is True:
        names = [{"service": svc, "method": m}
                 for svc, methods in _READ_ONLY_METHODS.items() for m in methods]
    elif retry == "all":
        names = [{"service": svc} for svc in _READ_ONLY_METHODS]
    else:
        raise ValueError(f"retry: True, False or 'all', not {retry!r}")
    return json.dumps({"methodConfig": [{
        "name": names,
        "retryPolicy": {"maxAttempts": max_attempts, "initialBackoff": "0.2s",
                        "maxBackoff": "2s", "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"]}}]})


def _channel_options(options: Sequence[Tuple[str, Any]], retry: RetrySetting,
                     tls_server_name: Optional[str]) -> List[Tuple[str, Any]]:
    opts = list(options) or [("grpc.max_receive_message_length", 64 << 20)]
    config = service_config(retry)
    if config and not any(k == "grpc.service_config" for k, _ in opts):
        opts += [("grpc.service_config", config), ("grpc.enable_retries", 1)]
    if tls_server_name:
        opts.append(("grpc.ssl_target_name_override", tls_server_name))
    return opts


def _channel_credentials(tls: bool, ca: Optional[str], cert: Optional[str], key: Optional[str],
                         credentials: Optional[grpc.ChannelCredentials]
                         ) -> Optional[grpc.ChannelCredentials]:
    if (cert is None) != (key is None):
        raise ValueError("a client certificate needs both cert and key")
    if credentials is None and (tls or ca or cert):
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(ca, "CA file") if ca else None,
            private_key=_read(key, "key file") if key else None,
            certificate_chain=_read(cert, "certificate file") if cert else None)
    return credentials


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{what} {path}: cannot read ({e.strerror})") from None


def resolve_token(token: Optional[str] = None, token_file: Optional[str] = None, *,
                  from_environment: bool = True) -> Optional[str]:
    """The caller token: `token`, else the contents of `token_file` (whitespace stripped),
    else $MAILPOOL_TOKEN, else the file named by $MAILPOOL_TOKEN_FILE; None when none is
    given. ValueError for an unreadable file or a token that is not visible ASCII (the token
    itself never appears in the message)."""
    source = "token"
    if token is None and token_file is None and from_environment:
        if os.environ.get("MAILPOOL_TOKEN"):
            token, source = os.environ["MAILPOOL_TOKEN"], "$MAILPOOL_TOKEN"
        elif os.environ.get("MAILPOOL_TOKEN_FILE"):
            token_file = os.environ["MAILPOOL_TOKEN_FILE"]
    if token is None and token_file is not None:
        raw = _read(token_file, "token file")
        source = f"token file {token_file}"
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise ValueError(f"{source}: not a bearer token (visible ASCII only)") from None
        if not token:
            raise ValueError(f"{source}: empty")
    if token is None:
        return None
    if not token or len(token) > 4096 or any(not 0x21 <= ord(c) <= 0x7E for c in token):
        raise ValueError(f"{source}: not a bearer token (visible ASCII only, 1-4096 bytes)")
    return token


class Client:
    """A connection to mailpoold.

    address: "host:port" of the daemon, or "unix:/path/to.sock" for its Unix socket
             (default $MAILPOOL_ADDR, else 127.0.0.1:50551).
    timeout: default deadline of each call in seconds (None: no deadline). Streaming
             calls (watch_*) have no deadline unless given one.
    token / token_file: the caller token, sent as `authorization: Bearer <token>` on every
             call (default: $MAILPOOL_TOKEN, else the file $MAILPOOL_TOKEN_FILE). Never
             logged, never part of an error.
    ca:      PEM file of the CA(s) that sign the daemon's certificate: TLS to the daemon.
    cert, key: PEM files of a client certificate and its key (mutual TLS).
    tls:     TLS with the system's CAs (implied by ca, cert or key).
    tls_server_name: the name to verify in the daemon's certificate (default: its host).
    channel: use this grpc.Channel instead of opening one (address, TLS options and
             credentials are then ignored; the token is still sent); credentials:
             grpc.ChannelCredentials of your own for a TLS channel.
    retry:   the retry policy for UNAVAILABLE (gRPC's own retries, from a service config;
             see mailpool.service_config): True (default) retries the read-only calls up
             to 4 attempts, "all" every call (a send may then go twice), False none.
    """

    def __init__(self, address: Optional[str] = None, *, timeout: Optional[float] = 30.0,
                 start_timeout: Optional[float] = 120.0,
                 token: Optional[str] = None, token_file: Optional[str] = None,
                 ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, tls: bool = False,
                 tls_server_name: Optional[str] = None,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 channel: Optional[grpc.Channel] = None,
                 options: Sequence[Tuple[str, Any]] = (),
                 retry: RetrySetting = True) -> None:
        self.address = address or os.environ.get("MAILPOOL_ADDR") or DEFAULT_ADDRESS
        self.timeout = timeout
        self.start_timeout = start_timeout
        tok = resolve_token(token, token_file)
        self._auth: Tuple[Tuple[str, str], ...] = (
            ((TOKEN_HEADER, "Bearer " + tok),) if tok else ())
        self._own_channel = channel is None
        if channel is None:
            opts = _channel_options(options, retry, tls_server_name)
            credentials = _channel_credentials(tls, ca, cert, key, credentials)
            channel = (grpc.secure_channel(self.address, credentials, opts) if credentials
                       else grpc.insecure_channel(self.address, opts))
        self.channel = channel
        self.sessions_stub = session_pb2_grpc.SessionServiceStub(channel)
        self.mailbox_stub = mailbox_pb2_grpc.MailboxServiceStub(channel)
        self.send_stub = send_pb2_grpc.SendServiceStub(channel)
        self.message_stub = message_pb2_grpc.MessageServiceStub(channel)

    def __repr__(self) -> str:  # never shows the token
        return f"mailpool.Client({self.address!r}, token={'yes' if self._auth else 'no'})"

    def _metadata(self, session_id: str) -> Optional[Tuple[Tuple[str, str], ...]]:
        md = self._auth + (((SESSION_HEADER, session_id),) if session_id else ())
        return md or None

    # -- plumbing ---------------------------------------------------------------------
    def _deadline(self, timeout: Optional[Seconds], default: Optional[float]) -> Optional[float]:
        return default if timeout is None else _seconds(timeout)

    def _unary(self, method: Callable[..., T], request: Any, *, timeout: Optional[Seconds] = None,
               session_id: str = "", default_timeout: Optional[float] = -1.0) -> T:
        t = self._deadline(timeout, self.timeout if default_timeout == -1.0 else default_timeout)
        md = self._metadata(session_id)
        try:
            return method(request, timeout=t, metadata=md)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _stream(self, method: Callable[..., Iterable[T]], request: Any, *,
                timeout: Optional[Seconds] = None, session_id: str = "") -> Iterator[T]:
        md = self._metadata(session_id)
        call = method(request, timeout=_seconds(timeout), metadata=md)
        try:
            for item in call:
                yield item
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    @staticmethod
    def _pages(fetch: Callable[[str], Any], items: str, limit: Optional[int]) -> Iterator[Any]:
        token, count = "", 0
        while True:
            page = fetch(token)
            for item in getattr(page, items):
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item
            token = page.next_page_token
            if not token:
                return

    def close(self) -> None:
        """Closes the gRPC channel (not the sessions: they live in the daemon)."""
        if self._own_channel:
            self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- SessionService ---------------------------------------------------------------
    def start_session(self, request: session_pb2.StartSessionRequest, *,
                      timeout: Optional[Seconds] = None) -> "Session":
        """StartSession with a request you built yourself; returns the Session handle."""
        resp = self._unary(self.sessions_stub.StartSession, request, timeout=timeout,
                           default_timeout=self.start_timeout)
        return Session(self, resp.session)

    def _start(self, name: str, session_timeout: Optional[Seconds], timeout: Optional[Seconds],
               **oneof: Any) -> "Session":
        req = session_pb2.StartSessionRequest(name=name, **oneof)
        if session_timeout is not None:
            req.timeout.CopyFrom(_duration(session_timeout))
        return self.start_session(req, timeout=timeout)

    def start_imap(self, host: str, *, user: str, password: Optional[str] = None,
                   token: MailToken = None, port: int = 0,
                   security: Union[Security, int, str, None] = None,
                   ca_pem: Optional[str] = None, ca_file: Optional[str] = None,
                   server_name: str = "", dangerously_skip_verification: bool = False,
                   mechanism: Union[Mechanism, int, None] = None,
                   allow_insecure_auth: bool = False, folder: str = "", name: str = "",
                   session_timeout: Optional[Seconds] = None,
                   connect_timeout: Optional[Seconds] = None,
                   timeout: Optional[Seconds] = None) -> "Session":
        """Opens an IMAP session (EmailStartIMAPSession). security: Security.PLAIN,
        STARTTLS (default) or IMPLICIT_TLS, or "plain"/"starttls"/"tls". Use the returned
        Session in a `with` block to close it at the end."""
        return self._start(name, session_timeout, timeout, imap=session_pb2.ImapOptions(
            server=_endpoint(host, port, security, ca_pem, ca_file, server_name,
                             dangerously_skip_verification, connect_timeout),
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth),
            initial_folder=folder))

    def start_pop3(self, host: str, *, user: str, password: Optional[str] = None,
                   token: MailToken = None, port: int = 0,
                   security: Union[Security, int, str, None] = None,
                   ca_pem: Optional[str] = None, ca_file: Optional[str] = None,
                   server_name: str = "", dangerously_skip_verification: bool = False,
                   mechanism: Union[Mechanism, int, None] = None,
                   allow_insecure_auth: bool = False, name: str = "",
                   session_timeout: Optional[Seconds] = None,
                   connect_timeout: Optional[Seconds] = None,
                   timeout: Optional[Seconds] = None) -> "Session":
        """Opens a POP3 session (EmailStartPOP3Session)."""
        return self._start(name, session_timeout, timeout, pop3=session_pb2.Pop3Options(
            server=_endpoint(host, port, security, ca_pem, ca_file, server_name,
                             dangerously_skip_verification, connect_timeout),
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth)))

    def start_smtp(self, host: str, *, user: str = "", password: Optional[str] = None,
                   token: MailToken = None, port: int = 0,
                   security: Union[Security, int, str, None] = None,
                   ca_pem: Optional[str] = None, ca_file: Optional[str] = None,
                   server_name: str = "", dangerously_skip_verification: bool = False,
                   mechanism: Union[Mechanism, int, None] = None,
                   allow_insecure_auth: bool = False, asynchronous: bool = False,
                   ehlo_name: str = "", name: str = "",
                   session_timeout: Optional[Seconds] = None,
                   connect_timeout: Optional[Seconds] = None,
                   timeout: Optional[Seconds] = None) -> "Session":
        """Opens an SMTP session (EmailStartSMTPSession); without a secret it does not
        authenticate. asynchronous=True queues sends in the daemon's outbox."""
        return self._start(name, session_timeout, timeout, smtp=session_pb2.SmtpOptions(
            server=_endpoint(host, port, security, ca_pem, ca_file, server_name,
                             dangerously_skip_verification, connect_timeout),
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth),
            asynchronous=asynchronous, ehlo_name=ehlo_name))

    def start_pop3_smtp(self, host: str, *, user: str, password: Optional[str] = None,
                        token: MailToken = None, port: int = 0,
                        security: Union[Security, int, str, None] = None,
                        smtp_host: str = "", smtp_port: int = 0,
                        smtp_security: Union[Security, int, str, None] = None,
                        ca_pem: Optional[str] = None, ca_file: Optional[str] = None,
                        server_name: str = "", dangerously_skip_verification: bool = False,
                        mechanism: Union[Mechanism, int, None] = None,
                        allow_insecure_auth: bool = False, asynchronous: bool = False,
                        ehlo_name: str = "", name: str = "",
                        session_timeout: Optional[Seconds] = None,
                        connect_timeout: Optional[Seconds] = None,
                        timeout: Optional[Seconds] = None) -> "Session":
        """Opens the legacy combined session (EmailStartSession): reads over POP3 at
        host:port and sends over SMTP at smtp_host (default: host):smtp_port (default 25,
        465 with implicit TLS). smtp_security defaults to `security`."""
        if smtp_security is None:
            smtp_security = security
        return self._start(name, session_timeout, timeout, pop3_smtp=session_pb2.Pop3SmtpOptions(
            pop3=_endpoint(host, port, security, ca_pem, ca_file, server_name,
                           dangerously_skip_verification, connect_timeout),
            smtp=_endpoint(smtp_host, smtp_port, smtp_security, ca_pem, ca_file, server_name,
                           dangerously_skip_verification, connect_timeout),
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth),
            asynchronous=asynchronous, ehlo_name=ehlo_name))

    def session(self, session: str, *, timeout: Optional[Seconds] = None) -> "Session":
        """A handle on an existing session, by ID or name (GetSession). NotFound if none."""
        return Session(self, self.get_session(session, timeout=timeout))

    def get_session(self, session: str, *,
                    timeout: Optional[Seconds] = None) -> session_pb2.Session:
        """GetSession: the session's description (never its secret)."""
        return self._unary(self.sessions_stub.GetSession,
                           session_pb2.GetSessionRequest(session=session), timeout=timeout,
                           session_id=_id_or_empty(session)).session

    def close_session(self, session: str, *, timeout: Optional[Seconds] = None) -> str:
        """CloseSession by ID or name; returns the server's reply to LOGOUT/QUIT."""
        return self._unary(self.sessions_stub.CloseSession,
                           session_pb2.CloseSessionRequest(session=session), timeout=timeout,
                           session_id=_id_or_empty(session)).server_reply

    def sessions(self, *, page_size: int = 0, limit: Optional[int] = None,
                 all_callers: bool = False,
                 timeout: Optional[Seconds] = None) -> Iterator[session_pb2.Session]:
        """The caller's sessions, oldest first (ListSessions, every page). all_callers:
        every caller's (an admin caller only; others get PermissionDenied). Each session's
        `owner` names the caller identity that holds it."""
        def page(token: str) -> Any:
            req = session_pb2.ListSessionsRequest(page_size=page_size, page_token=token)
            if all_callers:
                req.all_callers = True
            return self._unary(self.sessions_stub.ListSessions, req, timeout=timeout)
        return self._pages(page, "sessions", limit)

    def get_default_timeout(self, *, timeout: Optional[Seconds] = None) -> datetime.timedelta:
        """The daemon-wide server-silence timeout (EmailGetTimeOut)."""
        return self._unary(self.sessions_stub.GetDefaultTimeout,
                           session_pb2.GetDefaultTimeoutRequest(),
                           timeout=timeout).timeout.ToTimedelta()

    def set_default_timeout(self, value: Seconds, *,
                            timeout: Optional[Seconds] = None) -> datetime.timedelta:
        """Sets the daemon-wide server-silence timeout (EmailSetTimeOut); returns it."""
        return self._unary(self.sessions_stub.SetDefaultTimeout,
                           session_pb2.SetDefaultTimeoutRequest(timeout=_duration(value)),
                           timeout=timeout).timeout.ToTimedelta()

    # -- MessageService (no session) ----------------------------------------------------
    def build_source(self, message: message_pb2.EmailMessage, *,
                     options: Optional[message_pb2.BuildOptions] = None,
                     timeout: Optional[Seconds] = None) -> message_pb2.BuildSourceResponse:
        """BuildSource (EmailBuildSource): RFC 5322 bytes in .source, and .message_id."""
        return self._unary(self.message_stub.BuildSource,
                           message_pb2.BuildSourceRequest(message=message, options=options),
                           timeout=timeout)

    def parse_source(self, source: bytes, *, include_source: bool = False,
                     omit_attachment_content: bool = False,
                     timeout: Optional[Seconds] = None) -> message_pb2.ParseSourceResponse:
        """ParseSource (EmailImportSource): .message and .warnings."""
        return self._unary(self.message_stub.ParseSource, message_pb2.ParseSourceRequest(
            source=source, options=message_pb2.ParseOptions(
                include_source=include_source, omit_attachment_content=omit_attachment_content)),
            timeout=timeout)

    # -- SendService calls that need no session ---------------------------------------
    def check_address(self, address: str, *, strict: bool = False,
                      timeout: Optional[Seconds] = None) -> send_pb2.CheckAddressResponse:
        """CheckAddress by syntax (strict: RCPT-TO-ready addr-spec). For a check against
        the server use Session.check_address."""
        mode = send_pb2.CHECK_MODE_STRICT if strict else send_pb2.CHECK_MODE_SYNTAX
        return self._unary(self.send_stub.CheckAddress,
                           send_pb2.CheckAddressRequest(address=address, mode=mode),
                           timeout=timeout)

    def send_status(self, send_id: str, *, timeout: Optional[Seconds] = None
                    ) -> send_pb2.SendStatus:
        """GetSendStatus (EmailStatus) of an asynchronous send, whatever its session."""
        return self._unary(self.send_stub.GetSendStatus,
                           send_pb2.GetSendStatusRequest(send_id=send_id), timeout=timeout).send

    def cancel_send(self, send_id: str, *, timeout: Optional[Seconds] = None
                    ) -> send_pb2.SendStatus:
        """CancelSend of an asynchronous send that has not gone out."""
        return self._unary(self.send_stub.CancelSend,
                           send_pb2.CancelSendRequest(send_id=send_id), timeout=timeout).send

    def outbox(self, *, session: str = "", states: Sequence[int] = (), page_size: int = 0,
               limit: Optional[int] = None, timeout: Optional[Seconds] = None
               ) -> Iterator[send_pb2.SendStatus]:
        """ListOutbox: the caller's asynchronous sends, oldest first, every page."""
        return self._pages(lambda token: self._unary(
            self.send_stub.ListOutbox,
            send_pb2.ListOutboxRequest(session=session, states=states, page_size=page_size,
                                       page_token=token),
            timeout=timeout, session_id=_id_or_empty(session)), "sends", limit)

    def watch_sends(self, *, session: str = "", send_ids: Sequence[str] = (),
                    include_current: bool = False, timeout: Optional[Seconds] = None
                    ) -> Iterator[send_pb2.SendStatus]:
        """WatchSendStatus: yields each send whenever its state changes."""
        for event in self._stream(self.send_stub.WatchSendStatus, send_pb2.WatchSendStatusRequest(
                session=session, send_ids=send_ids, include_current=include_current),
                timeout=timeout, session_id=_id_or_empty(session)):
            yield event.send


def _id_or_empty(session: str) -> str:
    """Session IDs go into the routing header; names cannot (the proxy cannot route them)."""
    return session if session.startswith("ms") else ""



class AttachmentStream:
    """The chunks of one attachment (Session.stream_attachment), iterable once. The call
    starts on first use; errors are raised as mailpool errors while iterating."""

    def __init__(self, responses: Iterator[mailbox_pb2.GetAttachmentResponse]) -> None:
        self._responses = responses
        self._first: Optional[mailbox_pb2.GetAttachmentResponse] = None
        self._started = False
        self._attachment = message_pb2.Attachment()

    @property
    def attachment(self) -> message_pb2.Attachment:
        """The part's metadata (file name, content type, size, part ID)."""
        if not self._started:
            self._first = next(self._responses, None)
            self._started = True
            if self._first is not None and self._first.HasField("attachment"):
                self._attachment = self._first.attachment
        return self._attachment

    def __iter__(self) -> Iterator[bytes]:
        self.attachment  # reads the first response (metadata, maybe data)
        if self._first is not None and self._first.data:
            yield self._first.data
        self._first = None
        for r in self._responses:
            if r.HasField("attachment"):
                self._attachment = r.attachment
            if r.data:
                yield r.data


class Session:
    """One pooled session in the daemon. Use it as a context manager to close it at the end
    (`with client.start_imap(...) as s:`), or call close(); release() forgets the handle
    without closing the session."""

    def __init__(self, client: Client, info: session_pb2.Session) -> None:
        self.client = client
        self._info = info
        self.id: str = info.id
        self.closed = False

    def __repr__(self) -> str:
        return (f"<mailpool.Session {self.id} {self.name or '-'} "
                f"{session_pb2.Protocol.Name(self._info.protocol)}>")

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def protocol(self) -> Protocol:
        return Protocol(self._info.protocol)

    @property
    def last_info(self) -> session_pb2.Session:
        """The description from the last start/info()/set_timeout(), without a call."""
        return self._info

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if self.closed:
            return
        try:
            self.close()
        except NotFound:
            pass  # already gone (closed elsewhere, or the daemon restarted)
        except Exception:
            if exc_type is None:
                raise  # do not hide the exception that ended the block

    def _u(self, method: Callable[..., T], request: Any, timeout: Optional[Seconds]) -> T:
        return self.client._unary(method, request, timeout=timeout, session_id=self.id)

    def _pages(self, method: Callable[..., Any], request: Any, items: str,
               limit: Optional[int], timeout: Optional[Seconds]) -> Iterator[Any]:
        def fetch(token: str) -> Any:
            request.page_token = token
            return self._u(method, request, timeout)
        return self.client._pages(fetch, items, limit)

    # -- SessionService ---------------------------------------------------------------
    def info(self, *, timeout: Optional[Seconds] = None) -> session_pb2.Session:
        """GetSession: the current state, connections, capabilities, timestamps."""
        self._info = self._u(self.client.sessions_stub.GetSession,
                             session_pb2.GetSessionRequest(session=self.id), timeout).session
        return self._info

    def close(self, *, timeout: Optional[Seconds] = None) -> str:
        """CloseSession (LOGOUT/QUIT); returns the server's reply. Safe to call twice."""
        if self.closed:
            return ""
        reply = self._u(self.client.sessions_stub.CloseSession,
                        session_pb2.CloseSessionRequest(session=self.id), timeout).server_reply
        self.closed = True
        return reply

    def release(self) -> str:
        """Forgets this handle without closing the session; returns its ID."""
        self.closed = True
        return self.id

    def set_timeout(self, value: Optional[Seconds], *,
                    timeout: Optional[Seconds] = None) -> session_pb2.Session:
        """UpdateSession: this session's server-silence timeout (None or 0: daemon default)."""
        req = session_pb2.UpdateSessionRequest(session=self.id)
        req.timeout.CopyFrom(_duration(value or 0))
        self._info = self._u(self.client.sessions_stub.UpdateSession, req, timeout).session
        return self._info

    def update_credentials(self, *, password: Optional[str] = None, token: MailToken = None,
                           user: Optional[str] = None,
                           mechanism: Union[Mechanism, int, None] = None,
                           allow_insecure_auth: bool = False,
                           timeout: Optional[Seconds] = None) -> session_pb2.Session:
        """UpdateSession: new credentials for every later login (a refreshed OAuth2 token, a
        changed password). `user` must be the session's (None: the session's). Logged-in
        connections stay; a session whose login was refused logs in again during the call
        (raising that login's error, e.g. Unauthenticated, or returning it READY)."""
        if user is None:
            user = self._info.user
        req = session_pb2.UpdateSessionRequest(
            session=self.id,
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth))
        self._info = self._u(self.client.sessions_stub.UpdateSession, req, timeout).session
        return self._info

    # -- MailboxService ---------------------------------------------------------------
    def status(self, folder: str = "", *, timeout: Optional[Seconds] = None
               ) -> mailbox_pb2.MailboxStatus:
        """GetMailboxStatus (EmailNbMessage): counts, size, UIDVALIDITY/UIDNEXT."""
        return self._u(self.client.mailbox_stub.GetMailboxStatus,
                       mailbox_pb2.GetMailboxStatusRequest(session=self.id, folder=folder),
                       timeout).status

    def list_messages(self, *, folder: str = "", view: int = View.DEFAULT,
                      order: int = Order.NEWEST_FIRST, unread_only: bool = False,
                      page_size: int = 0, page_token: str = "", max_attachment_bytes: int = 0,
                      mark_seen: bool = False, timeout: Optional[Seconds] = None
                      ) -> mailbox_pb2.ListMessagesResponse:
        """One page of ListMessages (.messages, .next_page_token, .total_count)."""
        return self._u(self.client.mailbox_stub.ListMessages, self._list_request(
            folder, view, order, unread_only, page_size, max_attachment_bytes, mark_seen,
            page_token), timeout)

    def _list_request(self, folder: str, view: int, order: int, unread_only: bool,
                      page_size: int, max_attachment_bytes: int, mark_seen: bool,
                      page_token: str = "") -> mailbox_pb2.ListMessagesRequest:
        return mailbox_pb2.ListMessagesRequest(
            session=self.id, folder=folder, view=int(view), order=int(order),
            filter=int(Filter.UNREAD if unread_only else Filter.ALL), page_size=page_size,
            page_token=page_token, max_attachment_bytes=max_attachment_bytes,
            mark_seen=mark_seen)

    def messages(self, *, folder: str = "", view: int = View.DEFAULT,
                 order: int = Order.NEWEST_FIRST, unread_only: bool = False,
                 page_size: int = 0, limit: Optional[int] = None,
                 max_attachment_bytes: int = 0, mark_seen: bool = False,
                 timeout: Optional[Seconds] = None) -> Iterator[message_pb2.EmailMessage]:
        """Iterates over a folder's messages, newest first by default, across pages
        (EmailGetAll / EmailReadFirst...Next). limit: stop after that many."""
        if limit is not None and page_size == 0:
            page_size = max(1, min(limit, 100))
        return self._pages(self.client.mailbox_stub.ListMessages, self._list_request(
            folder, view, order, unread_only, page_size, max_attachment_bytes, mark_seen),
            "messages", limit, timeout)

    def get_message(self, id: str, *, view: int = View.FULL, max_attachment_bytes: int = 0,
                    mark_seen: bool = False, timeout: Optional[Seconds] = None
                    ) -> message_pb2.EmailMessage:
        """GetMessage (EmailReadMessage; View.HEADERS for EmailReadMessageHeader)."""
        return self._u(self.client.mailbox_stub.GetMessage, mailbox_pb2.GetMessageRequest(
            session=self.id, id=id, view=int(view), max_attachment_bytes=max_attachment_bytes,
            mark_seen=mark_seen), timeout).message

    def stream_message(self, id: str, *, offset: int = 0, chunk_size: int = 0,
                       mark_seen: bool = False, timeout: Optional[Seconds] = None
                       ) -> Iterator[bytes]:
        """StreamMessage: the raw source in chunks (for large messages)."""
        for chunk in self.client._stream(
                self.client.mailbox_stub.StreamMessage, mailbox_pb2.StreamMessageRequest(
                    session=self.id, id=id, offset=offset, chunk_size=chunk_size,
                    mark_seen=mark_seen), timeout=timeout, session_id=self.id):
            yield chunk.data

    def stream_attachment(self, id: str, *, part_id: str = "", content_id: str = "",
                          chunk_size: int = 0, timeout: Optional[Seconds] = None
                          ) -> "AttachmentStream":
        """GetAttachment, streamed: iterate for the decoded content in chunks; the part's
        metadata is in `.attachment` (read from the first response on first access)::

            stream = session.stream_attachment(msg.id, part_id="2")
            with open(stream.attachment.file_name, "wb") as f:
                for chunk in stream:
                    f.write(chunk)
        """
        req = mailbox_pb2.GetAttachmentRequest(session=self.id, id=id, chunk_size=chunk_size)
        if content_id:
            req.content_id = content_id
        else:
            req.part_id = part_id
        return AttachmentStream(self.client._stream(
            self.client.mailbox_stub.GetAttachment, req, timeout=timeout, session_id=self.id))

    def get_attachment(self, id: str, *, part_id: str = "", content_id: str = "",
                       chunk_size: int = 0, timeout: Optional[Seconds] = None
                       ) -> Tuple[message_pb2.Attachment, bytes]:
        """GetAttachment joined: the part's metadata and its whole decoded content (for
        large parts prefer stream_attachment)."""
        stream = self.stream_attachment(id, part_id=part_id, content_id=content_id,
                                        chunk_size=chunk_size, timeout=timeout)
        data = b"".join(stream)
        return stream.attachment, data

    def search(self, criteria: Optional[mailbox_pb2.SearchCriteria] = None, *,
               folder: str = "", view: int = View.DEFAULT, order: int = Order.NEWEST_FIRST,
               page_size: int = 0, limit: Optional[int] = None, max_attachment_bytes: int = 0,
               timeout: Optional[Seconds] = None, **fields: Any
               ) -> Iterator[message_pb2.EmailMessage]:
        """SearchMessages (EmailSeekFirst), every page. Criteria as a SearchCriteria or as
        keyword fields: search(subject="invoice", unread=True)."""
        if criteria is None:
            criteria = _criteria(fields)
        elif fields:
            raise ValueError("give criteria or keyword fields, not both")
        if limit is not None and page_size == 0:
            page_size = max(1, min(limit, 100))
        return self._pages(self.client.mailbox_stub.SearchMessages,
                           mailbox_pb2.SearchMessagesRequest(
                               session=self.id, folder=folder, criteria=criteria,
                               view=int(view), order=int(order), page_size=page_size,
                               max_attachment_bytes=max_attachment_bytes),
                           "messages", limit, timeout)

    def delete(self, ids: Union[str, Sequence[str]], *, mode: int = DeleteMode.DEFAULT,
               timeout: Optional[Seconds] = None) -> mailbox_pb2.DeleteMessagesResponse:
        """DeleteMessages (EmailDeleteMessage). POP3: committed at close()/refresh()."""
        return self._u(self.client.mailbox_stub.DeleteMessages, mailbox_pb2.DeleteMessagesRequest(
            session=self.id, ids=_ids(ids), mode=int(mode)), timeout)

    def folders(self, pattern: str = "", *, subscribed_only: bool = False,
                include_status: bool = False, timeout: Optional[Seconds] = None
                ) -> List[mailbox_pb2.Folder]:
        """ListFolders (EmailListFolder). IMAP only."""
        return list(self._u(self.client.mailbox_stub.ListFolders, mailbox_pb2.ListFoldersRequest(
            session=self.id, pattern=pattern, subscribed_only=subscribed_only,
            include_status=include_status), timeout).folders)

    def select_folder(self, folder: str, *, read_only: bool = False,
                      timeout: Optional[Seconds] = None) -> mailbox_pb2.MailboxStatus:
        """SelectFolder (EmailChangeFolder). IMAP only."""
        return self._u(self.client.mailbox_stub.SelectFolder, mailbox_pb2.SelectFolderRequest(
            session=self.id, folder=folder, read_only=read_only), timeout).status

    def create_folder(self, folder: str, *, subscribe: bool = False, role: int = 0,
                      timeout: Optional[Seconds] = None) -> mailbox_pb2.Folder:
        """CreateFolder (EmailAddFolder). IMAP only."""
        return self._u(self.client.mailbox_stub.CreateFolder, mailbox_pb2.CreateFolderRequest(
            session=self.id, folder=folder, subscribe=subscribe, role=role), timeout).folder

    def delete_folder(self, folder: str, *, timeout: Optional[Seconds] = None) -> None:
        """DeleteFolder (EmailDeleteFolder). IMAP only."""
        self._u(self.client.mailbox_stub.DeleteFolder,
                mailbox_pb2.DeleteFolderRequest(session=self.id, folder=folder), timeout)

    def rename_folder(self, folder: str, new_name: str, *,
                      timeout: Optional[Seconds] = None) -> mailbox_pb2.Folder:
        """RenameFolder. IMAP only."""
        return self._u(self.client.mailbox_stub.RenameFolder, mailbox_pb2.RenameFolderRequest(
            session=self.id, folder=folder, new_name=new_name), timeout).folder

    def copy(self, ids: Union[str, Sequence[str]], destination: str, *,
             timeout: Optional[Seconds] = None) -> List[mailbox_pb2.MessageIdMapping]:
        """CopyMessages (EmailCopy); returns source -> new IDs. IMAP only."""
        return list(self._u(self.client.mailbox_stub.CopyMessages, mailbox_pb2.CopyMessagesRequest(
            session=self.id, ids=_ids(ids), destination_folder=destination), timeout).copies)

    def move(self, ids: Union[str, Sequence[str]], destination: str, *,
             timeout: Optional[Seconds] = None) -> List[mailbox_pb2.MessageIdMapping]:
        """MoveMessages; returns source -> new IDs. IMAP only."""
        return list(self._u(self.client.mailbox_stub.MoveMessages, mailbox_pb2.MoveMessagesRequest(
            session=self.id, ids=_ids(ids), destination_folder=destination), timeout).moves)

    def update_flags(self, ids: Union[str, Sequence[str]], operation: int,
                     flags: Optional[message_pb2.Flags] = None, *,
                     timeout: Optional[Seconds] = None, **flag_fields: Any
                     ) -> List[mailbox_pb2.MessageFlags]:
        """UpdateFlags (EmailChangeStatus): update_flags(ids, FlagOperation.ADD, seen=True)."""
        if flags is None:
            flags = message_pb2.Flags(**flag_fields)
        return list(self._u(self.client.mailbox_stub.UpdateFlags, mailbox_pb2.UpdateFlagsRequest(
            session=self.id, ids=_ids(ids), operation=int(operation), flags=flags),
            timeout).messages)

    def mark_read(self, ids: Union[str, Sequence[str]], read: bool = True, *,
                  timeout: Optional[Seconds] = None) -> List[mailbox_pb2.MessageFlags]:
        """Sets or clears \\Seen (EmailChangeStatus). IMAP only."""
        op = FlagOperation.ADD if read else FlagOperation.REMOVE
        return self.update_flags(ids, op, message_pb2.Flags(seen=True), timeout=timeout)

    def append(self, folder: str, content: Union[bytes, message_pb2.EmailMessage], *,
               flags: Optional[message_pb2.Flags] = None,
               receive_time: Optional[datetime.datetime] = None,
               build_options: Optional[message_pb2.BuildOptions] = None,
               timeout: Optional[Seconds] = None) -> mailbox_pb2.AppendMessageResponse:
        """AppendMessage: store raw bytes or a structured message into a folder. IMAP only."""
        req = mailbox_pb2.AppendMessageRequest(session=self.id, folder=folder, flags=flags,
                                               build_options=build_options)
        if isinstance(content, (bytes, bytearray)):
            req.source = bytes(content)
        else:
            req.message.CopyFrom(content)
        if receive_time is not None:
            req.receive_time.CopyFrom(_timestamp(receive_time))
        return self._u(self.client.mailbox_stub.AppendMessage, req, timeout)

    def expunge(self, folder: str = "", ids: Sequence[str] = (), *,
                timeout: Optional[Seconds] = None) -> List[str]:
        """Expunge: removes messages flagged \\Deleted; returns their IDs. IMAP only."""
        return list(self._u(self.client.mailbox_stub.Expunge, mailbox_pb2.ExpungeRequest(
            session=self.id, folder=folder, ids=ids), timeout).expunged_ids)

    def watch(self, *, folder: str = "", view: int = View.DEFAULT,
              poll_interval: Optional[Seconds] = None, timeout: Optional[Seconds] = None
              ) -> Iterator[mailbox_pb2.WatchMailboxResponse]:
        """WatchMailbox: yields READY, then NEW/EXPUNGED/FLAGS_CHANGED/RESET events."""
        return self.client._stream(self.client.mailbox_stub.WatchMailbox,
                                   mailbox_pb2.WatchMailboxRequest(
                                       session=self.id, folder=folder, view=int(view),
                                       poll_interval=_duration(poll_interval)),
                                   timeout=timeout, session_id=self.id)

    def refresh(self, *, timeout: Optional[Seconds] = None) -> mailbox_pb2.RefreshResponse:
        """Refresh: POP3 QUIT + login (commits deletions, shows new mail); IMAP NOOP."""
        return self._u(self.client.mailbox_stub.Refresh,
                       mailbox_pb2.RefreshRequest(session=self.id), timeout)

    # -- SendService --------------------------------------------------------------------
    def send(self, message: Optional[message_pb2.EmailMessage] = None, *,
             source: Optional[bytes] = None, mail_from: str = "",
             rcpt_to: Sequence[str] = (), request_dsn: bool = False,
             idempotency_key: str = "", require_all_recipients: bool = False,
             build_options: Optional[message_pb2.BuildOptions] = None,
             timeout: Optional[Seconds] = None) -> send_pb2.SendMessageResponse:
        """SendMessage (EmailSendMessage with a message, EmailSend with source bytes).
        Returns .state (SENT, or QUEUED with .send_id on an asynchronous session),
        .recipients, .server_reply, .message_id."""
        if (message is None) == (source is None):
            raise ValueError("give exactly one of message or source")
        req = send_pb2.SendMessageRequest(
            session=self.id, build_options=build_options, idempotency_key=idempotency_key,
            require_all_recipients=require_all_recipients)
        if message is not None:
            req.message.CopyFrom(message)
        else:
            req.source = bytes(source or b"")
        if mail_from or rcpt_to or request_dsn:
            req.envelope.CopyFrom(send_pb2.Envelope(mail_from=mail_from, rcpt_to=rcpt_to,
                                                    request_dsn=request_dsn))
        return self._u(self.client.send_stub.SendMessage, req, timeout)

    def send_status(self, send_id: str, *, timeout: Optional[Seconds] = None
                    ) -> send_pb2.SendStatus:
        """GetSendStatus (EmailStatus)."""
        return self._u(self.client.send_stub.GetSendStatus, send_pb2.GetSendStatusRequest(
            session=self.id, send_id=send_id), timeout).send

    def cancel_send(self, send_id: str, *, timeout: Optional[Seconds] = None
                    ) -> send_pb2.SendStatus:
        """CancelSend."""
        return self._u(self.client.send_stub.CancelSend, send_pb2.CancelSendRequest(
            session=self.id, send_id=send_id), timeout).send

    def outbox(self, *, states: Sequence[int] = (), page_size: int = 0,
               limit: Optional[int] = None, timeout: Optional[Seconds] = None
               ) -> Iterator[send_pb2.SendStatus]:
        """ListOutbox for this session, every page."""
        return self._pages(self.client.send_stub.ListOutbox, send_pb2.ListOutboxRequest(
            session=self.id, states=states, page_size=page_size), "sends", limit, timeout)

    def watch_sends(self, *, send_ids: Sequence[str] = (), include_current: bool = False,
                    timeout: Optional[Seconds] = None) -> Iterator[send_pb2.SendStatus]:
        """WatchSendStatus for this session's sends."""
        return self.client.watch_sends(session=self.id, send_ids=send_ids,
                                       include_current=include_current, timeout=timeout)

    def check_address(self, address: str, *, allow_vrfy: bool = False,
                      timeout: Optional[Seconds] = None) -> send_pb2.CheckAddressResponse:
        """CheckAddress asking this session's SMTP server (CHECK_MODE_SERVER)."""
        return self._u(self.client.send_stub.CheckAddress, send_pb2.CheckAddressRequest(
            session=self.id, address=address, mode=send_pb2.CHECK_MODE_SERVER,
            allow_vrfy=allow_vrfy), timeout)


def _ids(ids: Union[str, Sequence[str]]) -> List[str]:
    return [ids] if isinstance(ids, str) else list(ids)


_add_from_property()
