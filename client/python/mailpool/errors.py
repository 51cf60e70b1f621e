"""Exceptions raised by the mailpool client: one class per gRPC code, all MailpoolError.

Each carries the standard error details the daemon sends in `grpc-status-details-bin`
(google.rpc.Status): `error_info` (reason, domain "mailpool.dev", metadata), `retry_delay`
and `field_violations`, and the older mailpool.v1.ErrorDetail (`detail`).
"""
from __future__ import annotations

import datetime
from typing import Any, Dict, List, NamedTuple, Optional, Type

import grpc

from mailpool.v1 import errors_pb2

try:  # googleapis-common-protos, when installed, owns the google.rpc names
    from google.rpc import error_details_pb2, status_pb2  # type: ignore
except ImportError:  # else the copy generated with the mailpool stubs
    from mailpool._rpc import error_details_pb2, status_pb2  # type: ignore

ERROR_DETAIL_TRAILER = "mailpool-error-bin"
STATUS_DETAILS_TRAILER = "grpc-status-details-bin"
ERROR_DOMAIN = "mailpool.dev"


class FieldViolation(NamedTuple):
    """A request field that failed validation (google.rpc.BadRequest.FieldViolation)."""
    field: str
    description: str


class MailpoolError(Exception):
    """A call to mailpoold failed.

    code:             the grpc.StatusCode (e.g. grpc.StatusCode.UNAUTHENTICATED)
    message:          the status message (contains the mail server's reply line, if any)
    error_info:       the google.rpc.ErrorInfo (reason, domain, metadata), or None
    retry_delay:      datetime.timedelta from google.rpc.RetryInfo: present when retrying
                      helps (UNAVAILABLE, limits), else None
    field_violations: [FieldViolation(field, description)] from google.rpc.BadRequest
    status:           the whole google.rpc.Status, or None
    detail:           the mailpool.v1.ErrorDetail from the `mailpool-error-bin` trailer, or None
    """

    def __init__(self, code: grpc.StatusCode, message: str,
                 detail: Optional[errors_pb2.ErrorDetail] = None,
                 status: Optional["status_pb2.Status"] = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        self.error_info: Optional[error_details_pb2.ErrorInfo] = None
        self.retry_delay: Optional[datetime.timedelta] = None
        self.field_violations: List[FieldViolation] = []
        for any_detail in status.details if status is not None else ():
            try:
                self._add_detail(any_detail)
            except Exception:  # a damaged detail must not hide the error itself
                continue

    def _add_detail(self, any_detail: Any) -> None:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            if self.error_info is None:
                info = error_details_pb2.ErrorInfo()
                any_detail.Unpack(info)
                self.error_info = info
        elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_detail.Unpack(retry)
            self.retry_delay = retry.retry_delay.ToTimedelta()
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            self.field_violations.extend(FieldViolation(v.field, v.description)
                                         for v in bad.field_violations)

    @property
    def reason(self) -> str:
        """Stable machine-readable reason ("AUTH_FAILED", ...), empty if none."""
        if self.detail and self.detail.reason:
            return self.detail.reason
        return self.error_info.reason if self.error_info else ""

    @property
    def domain(self) -> str:
        """The ErrorInfo domain ("mailpool.dev"), empty if none."""
        return self.error_info.domain if self.error_info else ""

    @property
    def metadata(self) -> Dict[str, str]:
        """The ErrorInfo metadata (server_reply, command, protocol), empty if none."""
        return dict(self.error_info.metadata) if self.error_info else {}

    @property
    def server_reply(self) -> str:
        """The mail server's reply line(s) (credentials redacted), empty if none."""
        if self.detail and self.detail.server_reply:
            return self.detail.server_reply
        return self.metadata.get("server_reply", "")

    @property
    def command(self) -> str:
        """The failed command in its redacted form ("LOGIN alice ***"), empty if none."""
        if self.detail and self.detail.command:
            return self.detail.command
        return self.metadata.get("command", "")


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


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def from_rpc_error(err: grpc.RpcError) -> MailpoolError:
    """Converts a grpc.RpcError (which is also a grpc.Call) into a MailpoolError."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else str(err)) or ""
    detail = None
    status = None
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailers or ():
        # A damaged trailer must not hide the error itself.
        if key == ERROR_DETAIL_TRAILER and detail is None:
            detail = errors_pb2.ErrorDetail()
            try:
                detail.ParseFromString(_as_bytes(value))
            except Exception:
                detail = None
        elif key == STATUS_DETAILS_TRAILER and status is None:
            status = status_pb2.Status()
            try:
                status.ParseFromString(_as_bytes(value))
            except Exception:
                status = None
    return _BY_CODE.get(code, MailpoolError)(code, message, detail, status)
