// SASL and login helpers shared by the IMAP, POP3 and SMTP clients. No I/O.
//
//   std::string ir = PlainInitialResponse("alice", password);   // base64, for AUTH PLAIN
//   absl::StatusOr<Mechanism> m = ChooseMechanism(options, offered);
#ifndef MAILPOOL_WIRE_SASL_H_
#define MAILPOOL_WIRE_SASL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secret.h"
#include "wire/protocol.h"

namespace mailpool::wire {

std::string Base64Encode(absl::string_view data);
// Fails on malformed base64 (whitespace is not accepted).
absl::StatusOr<std::string> Base64Decode(absl::string_view data);

// RFC 4616: base64("" NUL user NUL password).
std::string PlainInitialResponse(absl::string_view user, const Secret& password);
// XOAUTH2: base64("user=" user ^A "auth=Bearer " token ^A ^A).
std::string Xoauth2InitialResponse(absl::string_view user, const Secret& token);
// RFC 7628 section 3.1: base64("n,a=" saslname "," ^A "host=" host ^A "port=" port ^A
// "auth=Bearer " token ^A ^A). `host` empty / `port` 0 leave those pairs out.
std::string OauthbearerInitialResponse(absl::string_view user, absl::string_view host,
                                       uint16_t port, const Secret& token);
// RFC 2195: base64(user " " hex(HMAC-MD5(password, decoded challenge))).
absl::StatusOr<std::string> CramMd5Response(absl::string_view user, const Secret& password,
                                            absl::string_view challenge_base64);
// RFC 1939 section 7: lowercase hex MD5(timestamp password).
std::string ApopDigest(absl::string_view timestamp, const Secret& password);

// The client side of SCRAM (RFC 5802; SCRAM-SHA-256 RFC 7677), without channel binding
// (gs2 header "n,,"). Every message in and out is base64, as the protocols carry them:
//
//   ScramClient scram(Mechanism::kScramSha256, user, password);
//   send(scram.InitialResponse());                      // client-first-message
//   absl::StatusOr<std::string> r = scram.Respond(c1);  // server-first -> client-final
//   r = scram.Respond(c2);                              // server-final -> "" (verified)
//   scram.verified()                                    // the server proved it knows us
//
// A failure is UNAUTHENTICATED (the server refused: "e=", or its signature does not match)
// or a PROTOCOL_VIOLATION (malformed messages, a nonce that does not extend ours, an
// iteration count above kMaxIterations). The password is never copied into an error.
class ScramClient {
 public:
  // Iteration counts above this are refused (PBKDF2 runs on the event loop; ~4096 is usual).
  static constexpr uint32_t kMaxIterations = 200000;
  // `mechanism` is kScramSha1 or kScramSha256; `nonce` empty: 24 random bytes (tests give
  // their own to replay the RFC examples).
  ScramClient(Mechanism mechanism, absl::string_view user, const Secret& password,
              std::string nonce = "");
  ~ScramClient();
  ScramClient(const ScramClient&) = delete;
  ScramClient& operator=(const ScramClient&) = delete;

  std::string InitialResponse() const;
  absl::StatusOr<std::string> Respond(absl::string_view challenge_base64);
  bool verified() const { return verified_; }

 private:
  Mechanism mechanism_;
  Secret password_;
  std::string client_first_bare_;
  std::string nonce_;
  std::string expected_server_signature_;
  int step_ = 0;
  bool verified_ = false;
};

// Whether SCRAM can use the password: RFC 4013 SASLprep is done for ASCII only (printable
// ASCII maps to itself; control characters are prohibited output). Anything else:
// INVALID_ARGUMENT, reason SASLPREP_UNSUPPORTED / SASLPREP_PROHIBITED, never the password.
absl::Status CheckScramPassword(const Secret& password);

// Tests only: the nonce of every ScramClient made without one from now on (empty: random
// again), so that protocol transcripts can replay the RFC 7677 example.
void SetScramNonceForTesting(std::string nonce);

// Picks the mechanism to use. `offered` lists what the server offers (including
// kCommand when the protocol's own login command is available, kApop when the greeting
// has a timestamp). Rules:
//  - an explicit options.mechanism must be offered and fit the credential, else
//    FAILED_PRECONDITION (MECHANISM_NOT_OFFERED / MECHANISM_MISMATCH);
//  - kAuto with a token: OAUTHBEARER, then XOAUTH2;
//  - SCRAM, explicit, with a password CheckScramPassword refuses: that error; kAuto skips
//    SCRAM for such a password;
//  - kAuto with a password: SCRAM-SHA-256, SCRAM-SHA-1, then over TLS PLAIN, LOGIN,
//    CRAM-MD5, kCommand, and without TLS CRAM-MD5 first (it keeps the password off the
//    wire); APOP only on request;
//  - no secret: kNone.
absl::StatusOr<Mechanism> ChooseMechanism(const LoginOptions& options,
                                          const std::vector<Mechanism>& offered);

// Maps a SASL mechanism name ("PLAIN", "XOAUTH2", ...) to a Mechanism; kAuto if unknown.
Mechanism MechanismFromSaslName(absl::string_view name);

// Whether `text` is safe to put inside a protocol command: no CR, LF or NUL.
bool IsCommandSafe(absl::string_view text);

}  // namespace mailpool::wire

#endif  // MAILPOOL_WIRE_SASL_H_
