// Validation of caller input and conversion of requests to the daemon's own types.
//
// Every field that can reach a protocol command is checked here (CR, LF, NUL, length,
// enum range) before any connection is made, so a bad request costs the mail server
// nothing. Errors are INVALID_ARGUMENT naming the field. Thread-safe (pure functions).
#ifndef MAILPOOL_SERVICE_VALIDATION_H_
#define MAILPOOL_SERVICE_VALIDATION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "google/protobuf/duration.pb.h"
#include "mailpool/v1/session.pb.h"
#include "oauth2/oauth2.h"
#include "session/session.h"

namespace mailpool::service {

// What the OAuth2 refresh form of Credentials needs: the daemon's providers
// (--oauth2_providers_file) and how to make a session's token source (server/ gives one
// that refreshes through the daemon's oauth2::Refresher on the event loop).
struct OAuth2Setup {
  std::vector<oauth2::Provider> providers;
  // Called only once every field is valid. Unset: the form is FAILED_PRECONDITION.
  std::function<std::shared_ptr<wire::AccessTokenSource>(oauth2::Client client,
                                                         Secret refresh_token)>
      make_source;

  static const OAuth2Setup& None();
};

// The session spec for a StartSession request, or INVALID_ARGUMENT.
absl::StatusOr<session::SessionSpec> SpecFromRequest(
    const v1::StartSessionRequest& request, const OAuth2Setup& oauth2 = OAuth2Setup::None());

// The login of an existing session's link with the credentials of an UpdateSession
// request: `current.login` with user, secret, mechanism and allow_insecure_auth replaced,
// validated exactly as StartSession validates them for that link (the combined pop3_smtp
// session's SMTP link takes COMMAND/APOP as automatic choice). The user must be the
// session's user. INVALID_ARGUMENT otherwise (the message never holds the secret).
absl::StatusOr<wire::LoginOptions> LoginForUpdate(const v1::Credentials& credentials,
                                                  session::Kind kind,
                                                  const session::LinkSpec& current,
                                                  const OAuth2Setup& oauth2 = OAuth2Setup::None());

// A session reference (ID or name): non-empty, at most 128 bytes, printable ASCII.
absl::Status ValidateSessionRef(absl::string_view field, absl::string_view value);

// A duration between `min` and `max` inclusive.
absl::StatusOr<absl::Duration> DurationFromProto(absl::string_view field,
                                                 const google::protobuf::Duration& d,
                                                 absl::Duration min, absl::Duration max);

// Limits shared with the proto comments.
inline constexpr absl::Duration kMaxTimeout = absl::Hours(24);

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_VALIDATION_H_
