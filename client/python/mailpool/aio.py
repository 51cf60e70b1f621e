"""The mailpool client for asyncio (grpc.aio): the same surface as mailpool.Client and
mailpool.Session, with coroutines for calls and async iterators for pages and streams.

    import asyncio, mailpool.aio

    async def main():
        async with mailpool.aio.Client("127.0.0.1:50551") as client:
            async with await client.start_imap("imap.example.org", user="alice",
                                               password="...", security="tls") as imap:
                async for m in imap.messages(limit=10):
                    print(m.subject)

    asyncio.run(main())

Errors are the same MailpoolError subclasses; arguments, defaults and the retry policy are
mailpool.Client's. A Client belongs to the event loop it was created on.
"""
from __future__ import annotations

import datetime
from typing import (Any, AsyncIterator, Awaitable, Callable, List, Optional, Sequence,
                    Tuple, TypeVar, Union)

import grpc
import grpc.aio

from mailpool.client import (DEFAULT_ADDRESS, SESSION_HEADER, TOKEN_HEADER, DeleteMode, MailToken,
                             Filter, FlagOperation, Mechanism, Order, Protocol, RetrySetting,
                             Seconds, Security, View, _channel_credentials, _channel_options,
                             _credentials, _criteria, _duration, _endpoint, _id_or_empty, _ids,
                             _seconds, _timestamp, resolve_token)
from mailpool.errors import NotFound, from_rpc_error
from mailpool.v1 import (mailbox_pb2, mailbox_pb2_grpc, message_pb2, message_pb2_grpc,
                         send_pb2, send_pb2_grpc, session_pb2, session_pb2_grpc)

T = TypeVar("T")

__all__ = ["AttachmentStream", "Client", "Session"]


class Client:
    """An asyncio connection to mailpoold; arguments as mailpool.Client's. Use it with
    `async with`, or call `await client.close()`."""

    def __init__(self, address: Optional[str] = None, *, timeout: Optional[float] = 30.0,
                 start_timeout: Optional[float] = 120.0,
                 token: Optional[str] = None, token_file: Optional[str] = None,
                 ca: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, tls: bool = False,
                 tls_server_name: Optional[str] = None,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 channel: Optional[grpc.aio.Channel] = None,
                 options: Sequence[Tuple[str, Any]] = (),
                 retry: RetrySetting = True) -> None:
        import os
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
            channel = (grpc.aio.secure_channel(self.address, credentials, opts) if credentials
                       else grpc.aio.insecure_channel(self.address, opts))
        self.channel = channel
        self.sessions_stub = session_pb2_grpc.SessionServiceStub(channel)
        self.mailbox_stub = mailbox_pb2_grpc.MailboxServiceStub(channel)
        self.send_stub = send_pb2_grpc.SendServiceStub(channel)
        self.message_stub = message_pb2_grpc.MessageServiceStub(channel)

    def __repr__(self) -> str:  # never shows the token
        return f"mailpool.aio.Client({self.address!r}, token={'yes' if self._auth else 'no'})"

    # -- plumbing ---------------------------------------------------------------------
    def _metadata(self, session_id: str) -> Optional[Tuple[Tuple[str, str], ...]]:
        md = self._auth + (((SESSION_HEADER, session_id),) if session_id else ())
        return md or None

    async def _unary(self, method: Callable[..., Awaitable[T]], request: Any, *,
                     timeout: Optional[Seconds] = None, session_id: str = "",
                     default_timeout: Optional[float] = -1.0) -> T:
        t = (self.timeout if default_timeout == -1.0 else default_timeout) if timeout is None \
            else _seconds(timeout)
        try:
            return await method(request, timeout=t, metadata=self._metadata(session_id))
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def _stream(self, method: Callable[..., Any], request: Any, *,
                      timeout: Optional[Seconds] = None, session_id: str = ""
                      ) -> AsyncIterator[Any]:
        call = method(request, timeout=_seconds(timeout), metadata=self._metadata(session_id))
        try:
            async for item in call:
                yield item
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    @staticmethod
    async def _pages(fetch: Callable[[str], Awaitable[Any]], items: str,
                     limit: Optional[int]) -> AsyncIterator[Any]:
        token, count = "", 0
        while True:
            page = await fetch(token)
            for item in getattr(page, items):
                if limit is not None and count >= limit:
                    return
                count += 1
                yield item
            token = page.next_page_token
            if not token:
                return

    async def close(self) -> None:
        """Closes the gRPC channel (not the sessions: they live in the daemon)."""
        if self._own_channel:
            await self.channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- SessionService ---------------------------------------------------------------
    async def start_session(self, request: session_pb2.StartSessionRequest, *,
                            timeout: Optional[Seconds] = None) -> "Session":
        resp = await self._unary(self.sessions_stub.StartSession, request, timeout=timeout,
                                 default_timeout=self.start_timeout)
        return Session(self, resp.session)

    async def _start(self, name: str, session_timeout: Optional[Seconds],
                     timeout: Optional[Seconds], **oneof: Any) -> "Session":
        req = session_pb2.StartSessionRequest(name=name, **oneof)
        if session_timeout is not None:
            req.timeout.CopyFrom(_duration(session_timeout))
        return await self.start_session(req, timeout=timeout)

    async def start_imap(self, host: str, *, user: str, password: Optional[str] = None,
                         token: MailToken = None, port: int = 0,
                         security: Union[Security, int, str, None] = None,
                         ca_pem: Optional[str] = None, ca_file: Optional[str] = None,
                         server_name: str = "", dangerously_skip_verification: bool = False,
                         mechanism: Union[Mechanism, int, None] = None,
                         allow_insecure_auth: bool = False, folder: str = "", name: str = "",
                         session_timeout: Optional[Seconds] = None,
                         connect_timeout: Optional[Seconds] = None,
                         timeout: Optional[Seconds] = None) -> "Session":
        """Opens an IMAP session (EmailStartIMAPSession)."""
        return await self._start(name, session_timeout, timeout, imap=session_pb2.ImapOptions(
            server=_endpoint(host, port, security, ca_pem, ca_file, server_name,
                             dangerously_skip_verification, connect_timeout),
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth),
            initial_folder=folder))

    async def start_pop3(self, host: str, *, user: str, password: Optional[str] = None,
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
        return await self._start(name, session_timeout, timeout, pop3=session_pb2.Pop3Options(
            server=_endpoint(host, port, security, ca_pem, ca_file, server_name,
                             dangerously_skip_verification, connect_timeout),
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth)))

    async def start_smtp(self, host: str, *, user: str = "", password: Optional[str] = None,
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
        """Opens an SMTP session (EmailStartSMTPSession)."""
        return await self._start(name, session_timeout, timeout, smtp=session_pb2.SmtpOptions(
            server=_endpoint(host, port, security, ca_pem, ca_file, server_name,
                             dangerously_skip_verification, connect_timeout),
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth),
            asynchronous=asynchronous, ehlo_name=ehlo_name))

    async def start_pop3_smtp(self, host: str, *, user: str, password: Optional[str] = None,
                              token: MailToken = None, port: int = 0,
                              security: Union[Security, int, str, None] = None,
                              smtp_host: str = "", smtp_port: int = 0,
                              smtp_security: Union[Security, int, str, None] = None,
                              ca_pem: Optional[str] = None, ca_file: Optional[str] = None,
                              server_name: str = "",
                              dangerously_skip_verification: bool = False,
                              mechanism: Union[Mechanism, int, None] = None,
                              allow_insecure_auth: bool = False, asynchronous: bool = False,
                              ehlo_name: str = "", name: str = "",
                              session_timeout: Optional[Seconds] = None,
                              connect_timeout: Optional[Seconds] = None,
                              timeout: Optional[Seconds] = None) -> "Session":
        """Opens the legacy combined POP3 + SMTP session (EmailStartSession)."""
        if smtp_security is None:
            smtp_security = security
        return await self._start(
            name, session_timeout, timeout, pop3_smtp=session_pb2.Pop3SmtpOptions(
                pop3=_endpoint(host, port, security, ca_pem, ca_file, server_name,
                               dangerously_skip_verification, connect_timeout),
                smtp=_endpoint(smtp_host, smtp_port, smtp_security, ca_pem, ca_file,
                               server_name, dangerously_skip_verification, connect_timeout),
                credentials=_credentials(user, password, token, mechanism, allow_insecure_auth),
                asynchronous=asynchronous, ehlo_name=ehlo_name))

    async def session(self, session: str, *, timeout: Optional[Seconds] = None) -> "Session":
        """A handle on an existing session, by ID or name (GetSession)."""
        return Session(self, await self.get_session(session, timeout=timeout))

    async def get_session(self, session: str, *,
                          timeout: Optional[Seconds] = None) -> session_pb2.Session:
        return (await self._unary(self.sessions_stub.GetSession,
                                  session_pb2.GetSessionRequest(session=session),
                                  timeout=timeout, session_id=_id_or_empty(session))).session

    async def close_session(self, session: str, *, timeout: Optional[Seconds] = None) -> str:
        return (await self._unary(self.sessions_stub.CloseSession,
                                  session_pb2.CloseSessionRequest(session=session),
                                  timeout=timeout,
                                  session_id=_id_or_empty(session))).server_reply

    def sessions(self, *, page_size: int = 0, limit: Optional[int] = None,
                 all_callers: bool = False,
                 timeout: Optional[Seconds] = None) -> AsyncIterator[session_pb2.Session]:
        """The caller's sessions (ListSessions, every page): `async for s in ...`."""
        def page(token: str) -> Awaitable[Any]:
            req = session_pb2.ListSessionsRequest(page_size=page_size, page_token=token)
            if all_callers:
                req.all_callers = True
            return self._unary(self.sessions_stub.ListSessions, req, timeout=timeout)
        return self._pages(page, "sessions", limit)

    async def get_default_timeout(self, *, timeout: Optional[Seconds] = None
                                  ) -> datetime.timedelta:
        return (await self._unary(self.sessions_stub.GetDefaultTimeout,
                                  session_pb2.GetDefaultTimeoutRequest(),
                                  timeout=timeout)).timeout.ToTimedelta()

    async def set_default_timeout(self, value: Seconds, *,
                                  timeout: Optional[Seconds] = None) -> datetime.timedelta:
        return (await self._unary(self.sessions_stub.SetDefaultTimeout,
                                  session_pb2.SetDefaultTimeoutRequest(timeout=_duration(value)),
                                  timeout=timeout)).timeout.ToTimedelta()

    # -- MessageService (no session) ----------------------------------------------------
    async def build_source(self, message: message_pb2.EmailMessage, *,
                           options: Optional[message_pb2.BuildOptions] = None,
                           timeout: Optional[Seconds] = None
                           ) -> message_pb2.BuildSourceResponse:
        return await self._unary(self.message_stub.BuildSource,
                                 message_pb2.BuildSourceRequest(message=message, options=options),
                                 timeout=timeout)

    async def parse_source(self, source: bytes, *, include_source: bool = False,
                           omit_attachment_content: bool = False,
                           timeout: Optional[Seconds] = None
                           ) -> message_pb2.ParseSourceResponse:
        return await self._unary(self.message_stub.ParseSource, message_pb2.ParseSourceRequest(
            source=source, options=message_pb2.ParseOptions(
                include_source=include_source, omit_attachment_content=omit_attachment_content)),
            timeout=timeout)

    # -- SendService calls that need no session ---------------------------------------
    async def check_address(self, address: str, *, strict: bool = False,
                            timeout: Optional[Seconds] = None) -> send_pb2.CheckAddressResponse:
        mode = send_pb2.CHECK_MODE_STRICT if strict else send_pb2.CHECK_MODE_SYNTAX
        return await self._unary(self.send_stub.CheckAddress,
                                 send_pb2.CheckAddressRequest(address=address, mode=mode),
                                 timeout=timeout)

    async def send_status(self, send_id: str, *, timeout: Optional[Seconds] = None
                          ) -> send_pb2.SendStatus:
        return (await self._unary(self.send_stub.GetSendStatus,
                                  send_pb2.GetSendStatusRequest(send_id=send_id),
                                  timeout=timeout)).send

    async def cancel_send(self, send_id: str, *, timeout: Optional[Seconds] = None
                          ) -> send_pb2.SendStatus:
        return (await self._unary(self.send_stub.CancelSend,
                                  send_pb2.CancelSendRequest(send_id=send_id),
                                  timeout=timeout)).send

    def outbox(self, *, session: str = "", states: Sequence[int] = (), page_size: int = 0,
               limit: Optional[int] = None, timeout: Optional[Seconds] = None
               ) -> AsyncIterator[send_pb2.SendStatus]:
        return self._pages(lambda token: self._unary(
            self.send_stub.ListOutbox,
            send_pb2.ListOutboxRequest(session=session, states=states, page_size=page_size,
                                       page_token=token),
            timeout=timeout, session_id=_id_or_empty(session)), "sends", limit)

    async def watch_sends(self, *, session: str = "", send_ids: Sequence[str] = (),
                          include_current: bool = False, timeout: Optional[Seconds] = None
                          ) -> AsyncIterator[send_pb2.SendStatus]:
        async for event in self._stream(
                self.send_stub.WatchSendStatus, send_pb2.WatchSendStatusRequest(
                    session=session, send_ids=send_ids, include_current=include_current),
                timeout=timeout, session_id=_id_or_empty(session)):
            yield event.send


class AttachmentStream:
    """The chunks of one attachment (Session.stream_attachment): `await
    stream.attachment_info()` for the metadata, `async for chunk in stream` for the data."""

    def __init__(self, responses: AsyncIterator[mailbox_pb2.GetAttachmentResponse]) -> None:
        self._responses = responses
        self._first: Optional[mailbox_pb2.GetAttachmentResponse] = None
        self._started = False
        self.attachment = message_pb2.Attachment()

    async def attachment_info(self) -> message_pb2.Attachment:
        """The part's metadata (read from the first response)."""
        if not self._started:
            self._started = True
            try:
                self._first = await self._responses.__anext__()
            except StopAsyncIteration:
                self._first = None
            if self._first is not None and self._first.HasField("attachment"):
                self.attachment = self._first.attachment
        return self.attachment

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await self.attachment_info()
        if self._first is not None and self._first.data:
            yield self._first.data
        self._first = None
        async for r in self._responses:
            if r.HasField("attachment"):
                self.attachment = r.attachment
            if r.data:
                yield r.data


class Session:
    """One pooled session in the daemon (asyncio). `async with` closes it at the end;
    release() forgets the handle without closing the session."""

    def __init__(self, client: Client, info: session_pb2.Session) -> None:
        self.client = client
        self._info = info
        self.id: str = info.id
        self.closed = False

    def __repr__(self) -> str:
        return (f"<mailpool.aio.Session {self.id} {self.name or '-'} "
                f"{session_pb2.Protocol.Name(self._info.protocol)}>")

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def protocol(self) -> Protocol:
        return Protocol(self._info.protocol)

    @property
    def last_info(self) -> session_pb2.Session:
        return self._info

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, exc_type: Any, *rest: Any) -> None:
        if self.closed:
            return
        try:
            await self.close()
        except NotFound:
            pass
        except Exception:
            if exc_type is None:
                raise

    def _u(self, method: Callable[..., Awaitable[T]], request: Any,
           timeout: Optional[Seconds]) -> Awaitable[T]:
        return self.client._unary(method, request, timeout=timeout, session_id=self.id)

    def _pages(self, method: Callable[..., Any], request: Any, items: str,
               limit: Optional[int], timeout: Optional[Seconds]) -> AsyncIterator[Any]:
        def fetch(token: str) -> Awaitable[Any]:
            request.page_token = token
            return self._u(method, request, timeout)
        return self.client._pages(fetch, items, limit)

    def _s(self, method: Callable[..., Any], request: Any,
           timeout: Optional[Seconds]) -> AsyncIterator[Any]:
        return self.client._stream(method, request, timeout=timeout, session_id=self.id)

    # -- SessionService ---------------------------------------------------------------
    async def info(self, *, timeout: Optional[Seconds] = None) -> session_pb2.Session:
        self._info = (await self._u(self.client.sessions_stub.GetSession,
                                    session_pb2.GetSessionRequest(session=self.id),
                                    timeout)).session
        return self._info

    async def close(self, *, timeout: Optional[Seconds] = None) -> str:
        """CloseSession (LOGOUT/QUIT); returns the server's reply. Safe to call twice."""
        if self.closed:
            return ""
        reply = (await self._u(self.client.sessions_stub.CloseSession,
                               session_pb2.CloseSessionRequest(session=self.id),
                               timeout)).server_reply
        self.closed = True
        return reply

    def release(self) -> str:
        self.closed = True
        return self.id

    async def set_timeout(self, value: Optional[Seconds], *,
                          timeout: Optional[Seconds] = None) -> session_pb2.Session:
        req = session_pb2.UpdateSessionRequest(session=self.id)
        req.timeout.CopyFrom(_duration(value or 0))
        self._info = (await self._u(self.client.sessions_stub.UpdateSession, req,
                                    timeout)).session
        return self._info

    async def update_credentials(self, *, password: Optional[str] = None,
                                 token: MailToken = None, user: Optional[str] = None,
                                 mechanism: Union[Mechanism, int, None] = None,
                                 allow_insecure_auth: bool = False,
                                 timeout: Optional[Seconds] = None) -> session_pb2.Session:
        if user is None:
            user = self._info.user
        req = session_pb2.UpdateSessionRequest(
            session=self.id,
            credentials=_credentials(user, password, token, mechanism, allow_insecure_auth))
        self._info = (await self._u(self.client.sessions_stub.UpdateSession, req,
                                    timeout)).session
        return self._info

    # -- MailboxService ---------------------------------------------------------------
    async def status(self, folder: str = "", *, timeout: Optional[Seconds] = None
                     ) -> mailbox_pb2.MailboxStatus:
        return (await self._u(self.client.mailbox_stub.GetMailboxStatus,
                              mailbox_pb2.GetMailboxStatusRequest(session=self.id,
                                                                  folder=folder),
                              timeout)).status

    def _list_request(self, folder: str, view: int, order: int, unread_only: bool,
                      page_size: int, max_attachment_bytes: int, mark_seen: bool,
                      page_token: str = "") -> mailbox_pb2.ListMessagesRequest:
        return mailbox_pb2.ListMessagesRequest(
            session=self.id, folder=folder, view=int(view), order=int(order),
            filter=int(Filter.UNREAD if unread_only else Filter.ALL), page_size=page_size,
            page_token=page_token, max_attachment_bytes=max_attachment_bytes,
            mark_seen=mark_seen)

    async def list_messages(self, *, folder: str = "", view: int = View.DEFAULT,
                            order: int = Order.NEWEST_FIRST, unread_only: bool = False,
                            page_size: int = 0, page_token: str = "",
                            max_attachment_bytes: int = 0, mark_seen: bool = False,
                            timeout: Optional[Seconds] = None
                            ) -> mailbox_pb2.ListMessagesResponse:
        return await self._u(self.client.mailbox_stub.ListMessages, self._list_request(
            folder, view, order, unread_only, page_size, max_attachment_bytes, mark_seen,
            page_token), timeout)

    def messages(self, *, folder: str = "", view: int = View.DEFAULT,
                 order: int = Order.NEWEST_FIRST, unread_only: bool = False,
                 page_size: int = 0, limit: Optional[int] = None,
                 max_attachment_bytes: int = 0, mark_seen: bool = False,
                 timeout: Optional[Seconds] = None) -> AsyncIterator[message_pb2.EmailMessage]:
        """A folder's messages across pages: `async for m in session.messages(limit=10)`."""
        if limit is not None and page_size == 0:
            page_size = max(1, min(limit, 100))
        return self._pages(self.client.mailbox_stub.ListMessages, self._list_request(
            folder, view, order, unread_only, page_size, max_attachment_bytes, mark_seen),
            "messages", limit, timeout)

    async def get_message(self, id: str, *, view: int = View.FULL,
                          max_attachment_bytes: int = 0, mark_seen: bool = False,
                          timeout: Optional[Seconds] = None) -> message_pb2.EmailMessage:
        return (await self._u(self.client.mailbox_stub.GetMessage, mailbox_pb2.GetMessageRequest(
            session=self.id, id=id, view=int(view), max_attachment_bytes=max_attachment_bytes,
            mark_seen=mark_seen), timeout)).message

    async def stream_message(self, id: str, *, offset: int = 0, chunk_size: int = 0,
                             mark_seen: bool = False, timeout: Optional[Seconds] = None
                             ) -> AsyncIterator[bytes]:
        async for chunk in self._s(self.client.mailbox_stub.StreamMessage,
                                   mailbox_pb2.StreamMessageRequest(
                                       session=self.id, id=id, offset=offset,
                                       chunk_size=chunk_size, mark_seen=mark_seen), timeout):
            yield chunk.data

    def stream_attachment(self, id: str, *, part_id: str = "", content_id: str = "",
                          chunk_size: int = 0, timeout: Optional[Seconds] = None
                          ) -> AttachmentStream:
        req = mailbox_pb2.GetAttachmentRequest(session=self.id, id=id, chunk_size=chunk_size)
        if content_id:
            req.content_id = content_id
        else:
            req.part_id = part_id
        return AttachmentStream(self._s(self.client.mailbox_stub.GetAttachment, req, timeout))

    async def get_attachment(self, id: str, *, part_id: str = "", content_id: str = "",
                             chunk_size: int = 0, timeout: Optional[Seconds] = None
                             ) -> Tuple[message_pb2.Attachment, bytes]:
        stream = self.stream_attachment(id, part_id=part_id, content_id=content_id,
                                        chunk_size=chunk_size, timeout=timeout)
        data = b"".join([chunk async for chunk in stream])
        return stream.attachment, data

    def search(self, criteria: Optional[mailbox_pb2.SearchCriteria] = None, *,
               folder: str = "", view: int = View.DEFAULT, order: int = Order.NEWEST_FIRST,
               page_size: int = 0, limit: Optional[int] = None, max_attachment_bytes: int = 0,
               timeout: Optional[Seconds] = None, **fields: Any
               ) -> AsyncIterator[message_pb2.EmailMessage]:
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

    async def delete(self, ids: Union[str, Sequence[str]], *, mode: int = DeleteMode.DEFAULT,
                     timeout: Optional[Seconds] = None) -> mailbox_pb2.DeleteMessagesResponse:
        return await self._u(self.client.mailbox_stub.DeleteMessages,
                             mailbox_pb2.DeleteMessagesRequest(session=self.id, ids=_ids(ids),
                                                               mode=int(mode)), timeout)

    async def folders(self, pattern: str = "", *, subscribed_only: bool = False,
                      include_status: bool = False, timeout: Optional[Seconds] = None
                      ) -> List[mailbox_pb2.Folder]:
        return list((await self._u(self.client.mailbox_stub.ListFolders,
                                   mailbox_pb2.ListFoldersRequest(
                                       session=self.id, pattern=pattern,
                                       subscribed_only=subscribed_only,
                                       include_status=include_status), timeout)).folders)

    async def select_folder(self, folder: str, *, read_only: bool = False,
                            timeout: Optional[Seconds] = None) -> mailbox_pb2.MailboxStatus:
        return (await self._u(self.client.mailbox_stub.SelectFolder,
                              mailbox_pb2.SelectFolderRequest(session=self.id, folder=folder,
                                                              read_only=read_only),
                              timeout)).status

    async def create_folder(self, folder: str, *, subscribe: bool = False, role: int = 0,
                            timeout: Optional[Seconds] = None) -> mailbox_pb2.Folder:
        return (await self._u(self.client.mailbox_stub.CreateFolder,
                              mailbox_pb2.CreateFolderRequest(session=self.id, folder=folder,
                                                              subscribe=subscribe, role=role),
                              timeout)).folder

    async def delete_folder(self, folder: str, *, timeout: Optional[Seconds] = None) -> None:
        await self._u(self.client.mailbox_stub.DeleteFolder,
                      mailbox_pb2.DeleteFolderRequest(session=self.id, folder=folder), timeout)

    async def rename_folder(self, folder: str, new_name: str, *,
                            timeout: Optional[Seconds] = None) -> mailbox_pb2.Folder:
        return (await self._u(self.client.mailbox_stub.RenameFolder,
                              mailbox_pb2.RenameFolderRequest(session=self.id, folder=folder,
                                                              new_name=new_name),
                              timeout)).folder

    async def copy(self, ids: Union[str, Sequence[str]], destination: str, *,
                   timeout: Optional[Seconds] = None) -> List[mailbox_pb2.MessageIdMapping]:
        return list((await self._u(self.client.mailbox_stub.CopyMessages,
                                   mailbox_pb2.CopyMessagesRequest(
                                       session=self.id, ids=_ids(ids),
                                       destination_folder=destination), timeout)).copies)

    async def move(self, ids: Union[str, Sequence[str]], destination: str, *,
                   timeout: Optional[Seconds] = None) -> List[mailbox_pb2.MessageIdMapping]:
        return list((await self._u(self.client.mailbox_stub.MoveMessages,
                                   mailbox_pb2.MoveMessagesRequest(
                                       session=self.id, ids=_ids(ids),
                                       destination_folder=destination), timeout)).moves)

    async def update_flags(self, ids: Union[str, Sequence[str]], operation: int,
                           flags: Optional[message_pb2.Flags] = None, *,
                           timeout: Optional[Seconds] = None, **flag_fields: Any
                           ) -> List[mailbox_pb2.MessageFlags]:
        if flags is None:
            flags = message_pb2.Flags(**flag_fields)
        return list((await self._u(self.client.mailbox_stub.UpdateFlags,
                                   mailbox_pb2.UpdateFlagsRequest(
                                       session=self.id, ids=_ids(ids), operation=int(operation),
                                       flags=flags), timeout)).messages)

    async def mark_read(self, ids: Union[str, Sequence[str]], read: bool = True, *,
                        timeout: Optional[Seconds] = None) -> List[mailbox_pb2.MessageFlags]:
        op = FlagOperation.ADD if read else FlagOperation.REMOVE
        return await self.update_flags(ids, op, message_pb2.Flags(seen=True), timeout=timeout)

    async def append(self, folder: str, content: Union[bytes, message_pb2.EmailMessage], *,
                     flags: Optional[message_pb2.Flags] = None,
                     receive_time: Optional[datetime.datetime] = None,
                     build_options: Optional[message_pb2.BuildOptions] = None,
                     timeout: Optional[Seconds] = None) -> mailbox_pb2.AppendMessageResponse:
        req = mailbox_pb2.AppendMessageRequest(session=self.id, folder=folder, flags=flags,
                                               build_options=build_options)
        if isinstance(content, (bytes, bytearray)):
            req.source = bytes(content)
        else:
            req.message.CopyFrom(content)
        if receive_time is not None:
            req.receive_time.CopyFrom(_timestamp(receive_time))
        return await self._u(self.client.mailbox_stub.AppendMessage, req, timeout)

    async def expunge(self, folder: str = "", ids: Sequence[str] = (), *,
                      timeout: Optional[Seconds] = None) -> List[str]:
        return list((await self._u(self.client.mailbox_stub.Expunge, mailbox_pb2.ExpungeRequest(
            session=self.id, folder=folder, ids=ids), timeout)).expunged_ids)

    def watch(self, *, folder: str = "", view: int = View.DEFAULT,
              poll_interval: Optional[Seconds] = None, timeout: Optional[Seconds] = None
              ) -> AsyncIterator[mailbox_pb2.WatchMailboxResponse]:
        return self._s(self.client.mailbox_stub.WatchMailbox, mailbox_pb2.WatchMailboxRequest(
            session=self.id, folder=folder, view=int(view),
            poll_interval=_duration(poll_interval)), timeout)

    async def refresh(self, *, timeout: Optional[Seconds] = None) -> mailbox_pb2.RefreshResponse:
        return await self._u(self.client.mailbox_stub.Refresh,
                             mailbox_pb2.RefreshRequest(session=self.id), timeout)

    # -- SendService --------------------------------------------------------------------
    async def send(self, message: Optional[message_pb2.EmailMessage] = None, *,
                   source: Optional[bytes] = None, mail_from: str = "",
                   rcpt_to: Sequence[str] = (), request_dsn: bool = False,
                   idempotency_key: str = "", require_all_recipients: bool = False,
                   build_options: Optional[message_pb2.BuildOptions] = None,
                   timeout: Optional[Seconds] = None) -> send_pb2.SendMessageResponse:
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
        return await self._u(self.client.send_stub.SendMessage, req, timeout)

    async def send_status(self, send_id: str, *, timeout: Optional[Seconds] = None
                          ) -> send_pb2.SendStatus:
        return (await self._u(self.client.send_stub.GetSendStatus,
                              send_pb2.GetSendStatusRequest(session=self.id, send_id=send_id),
                              timeout)).send

    async def cancel_send(self, send_id: str, *, timeout: Optional[Seconds] = None
                          ) -> send_pb2.SendStatus:
        return (await self._u(self.client.send_stub.CancelSend,
                              send_pb2.CancelSendRequest(session=self.id, send_id=send_id),
                              timeout)).send

    def outbox(self, *, states: Sequence[int] = (), page_size: int = 0,
               limit: Optional[int] = None, timeout: Optional[Seconds] = None
               ) -> AsyncIterator[send_pb2.SendStatus]:
        return self._pages(self.client.send_stub.ListOutbox, send_pb2.ListOutboxRequest(
            session=self.id, states=states, page_size=page_size), "sends", limit, timeout)

    def watch_sends(self, *, send_ids: Sequence[str] = (), include_current: bool = False,
                    timeout: Optional[Seconds] = None) -> AsyncIterator[send_pb2.SendStatus]:
        return self.client.watch_sends(session=self.id, send_ids=send_ids,
                                       include_current=include_current, timeout=timeout)

    async def check_address(self, address: str, *, allow_vrfy: bool = False,
                            timeout: Optional[Seconds] = None) -> send_pb2.CheckAddressResponse:
        return await self._u(self.client.send_stub.CheckAddress, send_pb2.CheckAddressRequest(
            session=self.id, address=address, mode=send_pb2.CHECK_MODE_SERVER,
            allow_vrfy=allow_vrfy), timeout)
