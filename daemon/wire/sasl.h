// SASL and login helpers shared by the IMAP, POP3 and SMTP clients. No I/O.
//
//   std::string ir = PlainInitialResponse("alice", password);   // base64, for AUTH PLAIN
//   absl::StatusOr<Mechanism> m = ChooseMechanism(options, offered);
#ifndef MAILPOOL_WIRE_SASL_H_
#define MAILPOOL_WIRE_SASL_H_

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

// Picks the mechanism to use. `offered` lists what the server offers (including
// kCommand when the protocol's own login command is available, kApop when the greeting
// has a timestamp). Rules:
//  - an explicit options.mechanism must be offered and fit the credential, else
//    FAILED_PRECONDITION (MECHANISM_NOT_OFFERED / MECHANISM_MISMATCH);
//  - kAuto with a token: OAUTHBEARER, then XOAUTH2;
//  - kAuto with a password: CRAM-MD5, PLAIN, LOGIN, then kCommand (APOP only on request);
//  - no secret: kNone.
absl::StatusOr<Mechanism> ChooseMechanism(const LoginOptions& options,
                                          const std::vector<Mechanism>& offered);

// Maps a SASL mechanism name ("PLAIN", "XOAUTH2", ...) to a Mechanism; kAuto if unknown.
Mechanism MechanismFromSaslName(absl::string_view name);

// Whether `text` is safe to put inside a protocol command: no CR, LF or NUL.
bool IsCommandSafe(absl::string_view text);

}  // namespace mailpool::wire

#endif  // MAILPOOL_WIRE_SASL_H_
