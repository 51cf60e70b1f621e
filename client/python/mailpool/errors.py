"""Exceptions raised by the mailpool client: one class per gRPC code, all MailpoolError."""
from __future__ import annotations

from typing import Dict, Optional, Type

import grpc

from mailpool.v1 import errors_pb2

ERROR_DETAIL_TRAILER = "mailpool-error-bin"


class MailpoolError(Exception):
    """A call to mailpoold failed.

    code:    the grpc.StatusCode (e.g. grpc.StatusCode.UNAUTHENTICATED)
    message: the status message (contains the mail server's reply line, if any)
    detail:  the mailpool.v1.ErrorDetail from the `mailpool-error-bin` trailer, or None
    """

    def __init__(self, code: grpc.StatusCode, message: str,
                 detail: Optional[errors_pb2.ErrorDetail] = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.detail = detail

    @property
    def reason(self) -> str:
        """Stable machine-readable reason ("AUTH_FAILED", ...), empty if none."""
        return self.detail.reason if self.detail else ""

    @property
    def server_reply(self) -> str:
        """The mail server's reply line(s) (credentials redacted), empty if none."""
        return self.detail.server_reply if self.detail else ""

    @property
    def command(self) -> str:
        """The failed command in its redacted form ("LOGIN alice ***"), empty if none."""
        return self.detail.command if self.detail else ""


class Cancelled(MailpoolError): pass                 # noqa: E701
class InvalidArgument(MailpoolError): pass           # noqa: E701
class DeadlineExceeded(MailpoolError): pass          # noqa: E701
class NotFound(MailpoolError): pass                  # noqa: E701
class AlreadyExists(MailpoolError): pass             # noqa: E701
class PermissionDenied(MailpoolError): pass          # noqa: E701
class ResourceExhausted(MailpoolError): pass         # noqa: E701
class FailedPrecondition(MailpoolError): pass        # noqa: E701
class Aborted(MailpoolError): pass                   # noqa: E701
class OutOfRange(MailpoolError): pass                # noqa: E701
class Unimplemented(MailpoolError): pass             # noqa: E701
class Internal(MailpoolError): pass                  # noqa: E701
class Unavailable(MailpoolError): pass               # noqa: E701
class Unauthenticated(MailpoolError): pass           # noqa: E701


_BY_CODE: Dict[grpc.StatusCode, Type[MailpoolError]] = {
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def from_rpc_error(err: grpc.RpcError) -> MailpoolError:
    """Converts a grpc.RpcError (which is also a grpc.Call) into a MailpoolError."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else str(err)) or ""
    detail = None
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == ERROR_DETAIL_TRAILER:
            detail = errors_pb2.ErrorDetail()
            try:
                detail.ParseFromString(value if isinstance(value, bytes) else value.encode())
            except Exception:  # a damaged trailer must not hide the error itself
                detail = None
            break
    return _BY_CODE.get(code, MailpoolError)(code, message, detail)
