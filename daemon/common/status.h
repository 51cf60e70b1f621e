// Status helpers shared by every module below the gRPC edge.
//
// Errors are values: functions return absl::Status / absl::StatusOr<T>. When an error
// comes from something a mail server said, MailServerError() attaches the reason, the
// redacted command and the server's reply as payloads; the service layer turns them into
// a mailpool.v1.ErrorDetail. One table in service/ maps codes to gRPC codes.
//
//   absl::Status s = MailServerError(absl::StatusCode::kUnauthenticated, "AUTH_FAILED",
//                                    "LOGIN alice ***", "a1 NO [AUTHENTICATIONFAILED] ...");
#ifndef MAILPOOL_COMMON_STATUS_H_
#define MAILPOOL_COMMON_STATUS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mailpool {

// Payload keys (type URLs) carried by statuses built here.
inline constexpr absl::string_view kReasonPayload = "type.mailpool/reason";
inline constexpr absl::string_view kCommandPayload = "type.mailpool/command";
inline constexpr absl::string_view kServerReplyPayload = "type.mailpool/server_reply";
// Milliseconds after which a retry may succeed (decimal text), for RESOURCE_EXHAUSTED
// refusals of a limit that refills; the gRPC edge turns it into google.rpc.RetryInfo.
inline constexpr absl::string_view kRetryAfterPayload = "mailpool.dev/retry-after";
// The protocol of the connection involved ("imap", "pop3", "smtp"); set by session::Link
// on every failed answer it gives.
inline constexpr absl::string_view kProtocolPayload = "mailpool.dev/protocol";

// A status describing a failure reported by (or observed on) a mail server.
// `reason` is a stable UPPER_SNAKE identifier, `command` the redacted trace form of the
// command that failed (may be empty), `server_reply` what the server answered (may be
// empty). The message reads "<what>: server replied: <reply>".
absl::Status MailServerError(absl::StatusCode code, absl::string_view reason,
                             absl::string_view what, absl::string_view command = {},
                             absl::string_view server_reply = {});

// A status without a server reply but with a stable reason.
absl::Status ReasonError(absl::StatusCode code, absl::string_view reason, absl::string_view what);

// A caller's field that fails validation: kInvalidArgument, reason INVALID_FIELD, message
// "<field>: <what>". The one definition every module's request checks use.
absl::Status Invalid(absl::string_view field, absl::string_view what);

// `status` with `prefix` before its message, its code and payloads kept.
absl::Status PrefixMessage(const absl::Status& status, absl::string_view prefix);

// Reads one payload as text, if present.
std::optional<std::string> GetPayloadText(const absl::Status& status, absl::string_view key);

// `status` with every occurrence of `secret` (at least 4 bytes) in its message and
// payloads replaced by "***": a hostile or careless server may echo what it was sent.
absl::Status RedactSecret(const absl::Status& status, absl::string_view secret);

// Returns `text` with control bytes replaced by "?", cut to `max_bytes` at a character
// boundary ("..." appended), and made valid UTF-8 (invalid bytes become U+FFFD); used
// for server text that ends up in messages, logs and proto3 string fields.
std::string SanitizeServerText(absl::string_view text, size_t max_bytes = 512);

}  // namespace mailpool

#define MP_STATUS_CONCAT_INNER_(a, b) a##b
#define MP_STATUS_CONCAT_(a, b) MP_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` yields a non-OK absl::Status.
#define MP_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status mp_status_ = (expr);      \
    if (!mp_status_.ok()) return mp_status_; \
  } while (0)

// `lhs = value of expr`, or returns its error. `lhs` may be a declaration.
#define MP_ASSIGN_OR_RETURN(lhs, expr) \
  MP_ASSIGN_OR_RETURN_IMPL_(MP_STATUS_CONCAT_(mp_statusor_, __LINE__), lhs, expr)
#define MP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#endif  // MAILPOOL_COMMON_STATUS_H_
