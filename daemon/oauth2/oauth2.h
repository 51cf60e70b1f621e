// OAuth2 access tokens from refresh tokens (RFC 6749 section 6, the refresh_token grant).
//
// A Client names a token endpoint and the OAuth2 client the daemon acts as; a Refresher
// POSTs the grant over HTTPS (verified TLS, libcurl) on a worker thread of its own and
// hands back the parsed answer. The daemon's providers (--oauth2_providers_file) are parsed
// here too. No curl or JSON header leaks out of this file.
//
//   oauth2::Refresher refresher({.ca_file = ""});
//   oauth2::Client client{"https://oauth2.example.com/token", "my-client", Secret("s3"), ""};
//   refresher.Refresh(client, Secret(refresh_token), [&](absl::StatusOr<oauth2::Token> t) {
//     // on the Refresher's worker thread: post to the loop
//   });
//
// Errors from the token endpoint carry reason OAUTH2_REFRESH_FAILED, the endpoint's
// `error` (and `error_description`) as the server reply, and code
//  - UNAUTHENTICATED when the endpoint refused the grant (invalid_grant, invalid_client,
//    unauthorized_client, invalid_scope, ...): new credentials are needed;
//  - UNAVAILABLE when it could not be asked or did not answer sensibly (connect or TLS
//    failure, timeout, HTTP 5xx/429, a body that is not a token response).
// Refresh tokens and client secrets are Secrets: never in a message, log line or payload
// (an endpoint that echoes them is redacted).
#ifndef MAILPOOL_OAUTH2_OAUTH2_H_
#define MAILPOOL_OAUTH2_OAUTH2_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/secret.h"

namespace mailpool::oauth2 {

inline constexpr absl::string_view kRefreshFailedReason = "OAUTH2_REFRESH_FAILED";

// How the client authenticates to the token endpoint (RFC 6749 section 2.3.1).
enum class ClientAuth {
  kPost,   // client_id and client_secret in the form body (Google, Microsoft)
  kBasic,  // HTTP Basic with the form-encoded id and secret
};

// The token endpoint and the OAuth2 client the daemon acts as.
struct Client {
  std::string token_endpoint;  // see ValidateTokenEndpoint
  std::string client_id;       // required
  Secret client_secret;        // empty: a public client (no secret sent)
  std::string scopes;          // space-separated; empty: the grant's own scope
  ClientAuth auth = ClientAuth::kPost;
};

// A token endpoint URL: https://host[:port]/path, or http:// to a loopback literal
// (127.0.0.1 or [::1]) only (local tests, a sidecar); no user info, no fragment, no spaces
// or control bytes, at most 2048 bytes. INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateTokenEndpoint(absl::string_view field, absl::string_view url);
// A client ID: 1..512 printable ASCII bytes (no spaces). Scopes: at most 1024 bytes of
// printable ASCII, space-separated (RFC 6749 section 3.3 scope-token characters).
absl::Status ValidateClientId(absl::string_view field, absl::string_view id);
absl::Status ValidateScopes(absl::string_view field, absl::string_view scopes);
// A refresh token or client secret: 1..8192 printable ASCII bytes (RFC 6749 appendix A:
// VSCHAR). The message never holds the value.
absl::Status ValidateSecretText(absl::string_view field, absl::string_view value);

// A provider of --oauth2_providers_file.
struct Provider {
  std::string name;
  Client client;
};

// Parses the providers file. Format (one section per provider, '#' comments):
//
//   [google]
//   token_endpoint = https://oauth2.googleapis.com/token
//   client_id = 1234.apps.googleusercontent.com
//   client_secret_file = /etc/mailpool/google-client-secret
//   scopes = https://mail.google.com/
//   client_auth = post          # or basic; default post
//
// Names are 1..64 of [A-Za-z0-9._-], unique. token_endpoint and client_id are required.
// `read_file` reads a client_secret_file (its content, one trailing newline dropped, is
// the secret). Any error names the line: "oauth2 providers file line 7: ...".
absl::StatusOr<std::vector<Provider>> ParseProvidersFile(
    absl::string_view text,
    absl::AnyInvocable<absl::StatusOr<std::string>(const std::string& path)> read_file);
// The same, reading `path` and its secret files from disk.
absl::StatusOr<std::vector<Provider>> LoadProvidersFile(const std::string& path);

// A successful token response (RFC 6749 section 5.1).
struct Token {
  Secret access_token;
  // Lifetime from expires_in; zero when the endpoint did not say.
  absl::Duration expires_in = absl::ZeroDuration();
  // A rotated refresh token, if the endpoint issued one.
  Secret refresh_token;
  std::string scope;
};

// Parses the endpoint's answer: HTTP `http_status` with `body`. 200 with a JSON object
// holding a string access_token (token_type, if present, must be Bearer; expires_in a
// non-negative number or a string of digits) is a Token; an RFC 6749 section 5.2 error
// object (HTTP 400/401) is UNAUTHENTICATED; anything else UNAVAILABLE (see above).
// `endpoint` is used in messages. Hostile input: never crashes, bounded work.
absl::StatusOr<Token> ParseTokenResponse(long http_status, absl::string_view body,
                                         absl::string_view endpoint);

// The application/x-www-form-urlencoded body of the refresh_token grant (the client
// credentials included for ClientAuth::kPost). Holds secrets: wipe it after use.
std::string RefreshRequestBody(const Client& client, const Secret& refresh_token);
// application/x-www-form-urlencoded encoding of one value.
std::string FormEncode(absl::string_view value);

// Runs refresh_token grants one at a time on its own worker thread. Thread-safe.
class Refresher {
 public:
  struct Options {
    // CA bundle (PEM) trusted for token endpoints instead of the system store; empty: the
    // system store.
    std::string ca_file;
    // Whole-request timeout (connect, TLS, answer).
    absl::Duration timeout = absl::Seconds(30);
    // Requests waiting for the worker; more are UNAVAILABLE at once.
    size_t max_queue = 4096;
  };
  // Called on the worker thread (or, for a request refused at once, on the caller's).
  using Done = absl::AnyInvocable<void(absl::StatusOr<Token>)>;

  explicit Refresher(Options options);
  // Answers every waiting request with CANCELLED and joins the worker.
  ~Refresher();
  Refresher(const Refresher&) = delete;
  Refresher& operator=(const Refresher&) = delete;

  void Refresh(Client client, Secret refresh_token, Done done);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailpool::oauth2

#endif  // MAILPOOL_OAUTH2_OAUTH2_H_
