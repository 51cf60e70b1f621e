// The seam between a sans-I/O protocol client (imap/, pop3/, smtp/) and the session that
// drives it over a transport (session/).
//
// A ClientProtocol consumes every byte the server sends (OnBytes), produces the bytes to
// write (TakeOutput), and moves through phases. It never touches a socket, a timer or a
// thread. A session drives it like this:
//
//   auto client = imap::NewClient(options);
//   for (;;) {
//     transport.Write(client->TakeOutput());
//     switch (client->phase()) {
//       case Phase::kNeedTls:  transport.StartTls(); client->OnTlsEstablished(); break;
//       case Phase::kReady:    /* logged in */ ...
//       case Phase::kFailed:   /* client->error() says why; drop the connection */ ...
//       default:               client->OnBytes(transport.Read());
//     }
//   }
//
// Error conventions (error() in kFailed; service/ maps codes to gRPC):
//  - credentials refused: kUnauthenticated, reason AUTH_FAILED, with the server's reply
//    and the redacted command ("LOGIN alice ***"); XOAUTH2/OAUTHBEARER failures answer the
//    error continuation first (XOAUTH2: an empty line; OAUTHBEARER: "AQ==", a single ^A,
//    per RFC 7628 section 3.2.3 — servers that accept either get either), then report the
//    final refusal. A temporary refusal (SMTP 4xx, POP3 [SYS/TEMP], IMAP [UNAVAILABLE])
//    is kUnavailable AUTH_TEMPORARY_FAILURE / AUTH_UNAVAILABLE. Every SASL step is in
//    wire/sasl_exchange.h (SCRAM verdicts: SERVER_SIGNATURE_MISMATCH / _MISSING).
//  - bytes that arrive after STARTTLS was accepted and before the handshake are a
//    PROTOCOL_VIOLATION (plaintext injection).
//  - Start*() outside kReady does nothing.
//  - STARTTLS required but not offered: kFailedPrecondition STARTTLS_NOT_OFFERED; refused
//    by the server: kUnavailable STARTTLS_FAILED.
//  - credentials on an unencrypted link without allow_insecure_auth: kFailedPrecondition
//    INSECURE_AUTH_REFUSED, before any credential is written.
//  - a caller field with CR, LF or NUL: kInvalidArgument INVALID_FIELD, nothing written.
//  - greeting refusal (BYE, -ERR, 4xx/5xx): kUnavailable SERVER_REFUSED.
//  - malformed or over-long server data: kUnavailable PROTOCOL_VIOLATION. Server bytes
//    are hostile: no crash, no assert on them, no unbounded allocation.
// Secrets appear only in TakeOutput(), never in error(), last_reply() or info().
// Note: Debian's abseil has absl::string_view distinct from std::string_view; the project
// uses absl::string_view throughout.
//
// Threading: implementations are thread-compatible and, in the daemon, loop-confined.
#ifndef MAILPOOL_WIRE_PROTOCOL_H_
#define MAILPOOL_WIRE_PROTOCOL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secret.h"

namespace mailpool::wire {

// How the connection is protected. kImplicitTls: the session has completed the TLS
// handshake before the first byte reaches the client.
enum class Security { kPlain, kStartTls, kImplicitTls };

// Authentication mechanisms, across protocols.
enum class Mechanism {
  kAuto,         // choose the strongest the server offers that fits the credential
  kCommand,      // IMAP LOGIN, POP3 USER/PASS
  kPlain,        // SASL PLAIN
  kLogin,        // SASL LOGIN
  kCramMd5,      // SASL CRAM-MD5
  kApop,         // POP3 APOP
  kXoauth2,      // XOAUTH2
  kOauthbearer,  // OAUTHBEARER (RFC 7628)
  kNone,         // no authentication (SMTP without a secret)
  kScramSha1,    // SCRAM-SHA-1 (RFC 5802)
  kScramSha256,  // SCRAM-SHA-256 (RFC 7677)
};

// "PLAIN", "XOAUTH2", ... ("LOGIN-COMMAND" for kCommand).
absl::string_view MechanismName(Mechanism mechanism);

// OAuth2 access tokens that expire and are renewed (the daemon's refresh_token grant, see
// session/oauth2_source.h). The link asks for one before every login and puts it in
// LoginOptions::oauth2_token; the clients never see the source. Loop-confined.
class AccessTokenSource {
 public:
  virtual ~AccessTokenSource() = default;
  // The token to log in with: the current one while it has some life left, else a new one.
  // `fresh`: a new one whatever the current one's lifetime says (the server refused it).
  // `done` may run before Get returns; an error carries reason OAUTH2_REFRESH_FAILED.
  virtual void Get(bool fresh, absl::AnyInvocable<void(absl::StatusOr<Secret>)> done) = 0;
};

// Everything a client needs to log in. Fields are validated by the caller (service/);
// clients re-check that nothing they put in a command contains CR, LF or NUL and fail
// with INVALID_ARGUMENT before writing anything if it does.
struct LoginOptions {
  Security security = Security::kStartTls;
  std::string user;
  Secret password;  // at most one of password / oauth2_token is non-empty
  Secret oauth2_token;
  // Set for refreshable OAuth2 credentials: oauth2_token is filled from it before each
  // login (shared by the links of one session).
  std::shared_ptr<AccessTokenSource> token_source;
  Mechanism mechanism = Mechanism::kAuto;
  // Allow credentials over a connection that is not encrypted.
  bool allow_insecure_auth = false;
  // SMTP: the EHLO argument.
  std::string ehlo_name = "localhost";
  // For OAUTHBEARER's host/port fields.
  std::string host;
  uint16_t port = 0;
};

// What the client learned while logging in.
struct ServerInfo {
  std::string greeting;                    // first line, without CRLF
  std::vector<std::string> capabilities;   // after authentication (or last seen)
  Mechanism mechanism = Mechanism::kNone;  // what authenticated the session
};

class ClientProtocol {
 public:
  enum class Phase {
    kLoggingIn,  // greeting, capabilities, STARTTLS, authentication in progress
    kNeedTls,    // STARTTLS accepted: run the TLS handshake, then call OnTlsEstablished()
    kReady,      // authenticated and idle: a command may be started
    kBusy,       // a command started with Start*() is in flight
    kClosed,     // logout completed (or the server said goodbye politely)
    kFailed,     // unusable: login refused, protocol violation, ... error() says why
  };

  virtual ~ClientProtocol() = default;

  // Consumes all of `data`. Partial lines are buffered. Hostile input moves the client to
  // kFailed; it never crashes or allocates without bound.
  virtual void OnBytes(absl::string_view data) = 0;
  // Bytes to write to the server, in order; empties the internal buffer.
  virtual std::string TakeOutput() = 0;
  virtual Phase phase() const = 0;
  // Why the client is in kFailed, or the result of the last completed command.
  virtual const absl::Status& error() const = 0;
  // Called once the TLS handshake requested by kNeedTls has completed.
  virtual void OnTlsEstablished() = 0;
  // Starts a keepalive (IMAP/POP3/SMTP NOOP). Precondition: kReady. Back to kReady when
  // the reply arrives; error() holds a refusal.
  virtual void StartNoop() = 0;
  // Starts LOGOUT / QUIT. Precondition: kReady. kClosed when the reply arrives.
  virtual void StartLogout() = 0;
  // Greeting, capabilities and the mechanism used.
  virtual const ServerInfo& info() const = 0;
  // The last complete reply line(s) from the server (for CloseSession's answer), without
  // CRLF, sanitized.
  virtual const std::string& last_reply() const = 0;
};

}  // namespace mailpool::wire

#endif  // MAILPOOL_WIRE_PROTOCOL_H_
