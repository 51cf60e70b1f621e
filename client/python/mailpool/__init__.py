"""Python client for mailpoold, the POP3/SMTP/IMAP session pool.

    import mailpool

    with mailpool.Client("127.0.0.1:50551") as client:
        with client.start_imap(host="imap.example.org", user="alice@example.org",
                               password="...", security=mailpool.Security.IMPLICIT_TLS) as s:
            print(s.info().state)
            for m in s.messages(limit=10):
                print(m.subject)

Data comes back as the protobuf messages of mailpool.v1 (re-exported in mailpool.types);
failures raise MailpoolError subclasses that carry the gRPC code, the message and the
standard error details (error_info, retry_delay, field_violations; server_reply).

asyncio: mailpool.aio.Client / Session, the same surface with coroutines and async
iterators (`import mailpool.aio`).

A daemon that authenticates its callers:

    mailpool.Client("mail.internal:50551", token_file="/run/secrets/mailpool-token",
                    ca="ca.pem", cert="me.pem", key="me.key")
    mailpool.Client("unix:/run/mailpool/mailpoold.sock")   # token: $MAILPOOL_TOKEN

OAuth2 with a refresh token (the daemon gets and renews the access tokens):

    client.start_imap(host="imap.gmail.com", user="alice@gmail.com",
                      token=mailpool.OAuth2Refresh(refresh_token=rt, provider="google"))
"""
# The generated stubs (mailpool.v1) may live in another directory on sys.path (a build
# tree) than this wrapper; let both halves form one package.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)  # type: ignore[name-defined]

from mailpool.errors import (  # noqa: E402
    Aborted, AlreadyExists, Cancelled, DeadlineExceeded, FailedPrecondition, FieldViolation, Internal,
    InvalidArgument, MailpoolError, NotFound, OutOfRange, PermissionDenied,
    ResourceExhausted, Unauthenticated, Unavailable, Unimplemented)
from mailpool.client import (  # noqa: E402
    DEFAULT_ADDRESS, AttachmentStream, Client, DeleteMode, Filter, FlagOperation, Mechanism, Order, Protocol,
    Security, Session, View, address, message, resolve_token, service_config, to_datetime)

from mailpool.v1.session_pb2 import OAuth2Refresh  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "OAuth2Refresh",
    "Aborted", "AlreadyExists", "AttachmentStream", "Cancelled", "Client", "DEFAULT_ADDRESS", "DeadlineExceeded",
    "DeleteMode", "FailedPrecondition", "FieldViolation", "Filter", "FlagOperation", "Internal",
    "InvalidArgument", "MailpoolError", "Mechanism", "NotFound", "Order", "OutOfRange",
    "PermissionDenied", "Protocol", "ResourceExhausted", "Security", "Session",
    "Unauthenticated", "Unavailable", "Unimplemented", "View", "address", "message", "resolve_token", "service_config", "to_datetime",
]
