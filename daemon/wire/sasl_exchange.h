// One SASL exchange (RFC 4422) from the client's side, for the IMAP, POP3 and SMTP clients.
// No I/O: the protocol client frames what this returns (IMAP "+"/tagged lines, POP3 "+ ",
// SMTP 334) and passes in what the server sends, base64 as received.
//
//   absl::StatusOr<Mechanism> m = ChooseMechanism(login, offered);
//   SaslExchange sasl(*m, login);
//   std::optional<std::string> ir = sasl.Initial();        // on the AUTH line if it fits
//   ... server continuation ...  absl::StatusOr<std::string> r = sasl.Step(challenge);
//   ... server success ...       absl::Status verified = sasl.Finish();
//
// Mechanisms: PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER, SCRAM-SHA-1, SCRAM-SHA-256
// (wire::ScramClient: RFC 5802 / RFC 7677 without channel binding, gs2 header "n" as the
// client does not support it, so a -PLUS mechanism is never chosen).
//
// The OAuth error rule lives here: a continuation after an XOAUTH2 / OAUTHBEARER initial
// response is the server's base64 JSON error (RFC 7628 section 3.2.2); Step() keeps it,
// sanitized, in oauth_error() and answers the dummy response (XOAUTH2: empty; OAUTHBEARER:
// "AQ==", a single %x01, RFC 7628 section 3.2.3). The server's refusal follows.
//
// Errors from Step() / Finish():
//  - a malformed or unexpected challenge: kInvalidArgument with a message naming the
//    mechanism; protocol clients report it as their PROTOCOL_VIOLATION with the line.
//  - SCRAM's own verdicts (wire::ScramClient), passed through: kUnauthenticated
//    SERVER_SIGNATURE_MISMATCH or AUTH_FAILED ("e="), kUnavailable PROTOCOL_VIOLATION;
//    Finish() after a success without the server's signature: kUnauthenticated
//    SERVER_SIGNATURE_MISSING. Messages never contain a secret.
// Responses (base64) contain secrets: send them, wipe them, never log them.
//
// Threading: thread-compatible.
#ifndef MAILPOOL_WIRE_SASL_EXCHANGE_H_
#define MAILPOOL_WIRE_SASL_EXCHANGE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secret.h"
#include "wire/protocol.h"

namespace mailpool::wire {

class ScramClient;

class SaslExchange {
 public:
  // `mechanism` is a SASL mechanism (not kAuto, kCommand, kApop or kNone). `client_nonce`
  // replaces SCRAM's random nonce (tests only: RFC example exchanges; see also
  // wire::SetScramNonceForTesting).
  SaslExchange(Mechanism mechanism, const LoginOptions& login, std::string client_nonce = "");
  ~SaslExchange();
  SaslExchange(const SaslExchange&) = delete;
  SaslExchange& operator=(const SaslExchange&) = delete;

  Mechanism mechanism() const { return mechanism_; }
  // "PLAIN", "SCRAM-SHA-256", ...
  absl::string_view name() const;

  // The initial response (base64, never empty) for client-first mechanisms, if it is at
  // most `max_size` bytes; std::nullopt for server-first mechanisms (LOGIN, CRAM-MD5) or
  // when it does not fit. When it is not sent here, the server's first (empty) challenge
  // gets it from Step().
  std::optional<std::string> Initial(size_t max_size = std::string::npos);

  // The response (base64; may be empty) to a server challenge (base64 as received, without
  // the protocol's prefix). See the error list above.
  absl::StatusOr<std::string> Step(absl::string_view challenge);

  // Whether the client has said all it has to say: a further challenge is unexpected
  // (IMAP cancels it with "*").
  bool done() const;

  // The server reported success. `server_final` is additional data with the success
  // (base64), if the protocol carries any. SCRAM: the server's signature must have been
  // verified by now (or be in `server_final`), else kUnauthenticated.
  absl::Status Finish(absl::string_view server_final = "");

  // Whether a Step() error is a malformed or unexpected challenge (the protocol client
  // reports it as its PROTOCOL_VIOLATION, with the line) rather than a verdict to pass on.
  static bool IsMalformedChallenge(const absl::Status& status) {
    return status.code() == absl::StatusCode::kInvalidArgument;
  }

  // The OAuth error challenge (decoded, sanitized), empty if none.
  const std::string& oauth_error() const { return oauth_error_; }

 private:
  absl::StatusOr<std::string> InitialResponse();
  absl::Status Malformed(absl::string_view what) const;

  Mechanism mechanism_;
  std::string user_;
  Secret password_;
  Secret token_;
  std::string host_;
  uint16_t port_ = 0;
  bool initial_sent_ = false;
  int rounds_ = 0;  // challenges answered
  bool done_ = false;
  std::string oauth_error_;
  std::unique_ptr<ScramClient> scram_;
};

}  // namespace mailpool::wire

#endif  // MAILPOOL_WIRE_SASL_EXCHANGE_H_
