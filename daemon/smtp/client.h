// SMTP client (RFC 5321, RFC 3207 STARTTLS, RFC 4954 AUTH), sans I/O: greeting, EHLO,
// STARTTLS, AUTH PLAIN / LOGIN / CRAM-MD5 / XOAUTH2 / OAUTHBEARER or no AUTH when no
// secret is given, NOOP and QUIT.
//
//   std::unique_ptr<wire::ClientProtocol> client = smtp::NewClient(std::move(login));
//   ... drive it as wire/protocol.h shows; once kReady:
//   smtp::Extensions ext = smtp::Extensions::FromCapabilities(client->info().capabilities);
//
// Login: 220 greeting; EHLO <ehlo_name> (HELO when EHLO gets a 5xx, and then no
// extensions); with Security::kStartTls, STARTTLS, the TLS handshake (kNeedTls) and EHLO
// again, forgetting the first EHLO's extensions; then AUTH with the mechanism that
// wire::ChooseMechanism picks from the EHLO "AUTH" keyword, or straight to kReady without
// a secret. info().capabilities holds the last EHLO's keywords as "KEYWORD params"
// ("SIZE 10240000", "AUTH PLAIN LOGIN").
//
// Errors follow wire/protocol.h, plus:
//  - checked when the client is created, so that nothing is ever written: an ehlo_name
//    that is neither a Domain nor an address literal, or a user name with CR, LF or NUL
//    (or ^A with an OAuth2 token): kInvalidArgument INVALID_FIELD; any secret over
//    Security::kPlain without allow_insecure_auth: kFailedPrecondition
//    INSECURE_AUTH_REFUSED. This includes CRAM-MD5: it hides the password but not from an
//    offline dictionary attack, and one rule is simpler to reason about.
//  - mechanism choice errors from wire::ChooseMechanism are passed through.
//  - AUTH refused with 5xx: kUnauthenticated AUTH_FAILED; with 4xx: kUnavailable
//    AUTH_TEMPORARY_FAILURE; both carry "AUTH <MECHANISM> ***" and the server's reply.
//  - a 4xx/5xx greeting (the client answers QUIT, as RFC 5321 section 3.1 asks), or a
//    refused EHLO/HELO: kUnavailable SERVER_REFUSED.
//  - bytes received between the 220 to STARTTLS and the TLS handshake (a response
//    injection): kUnavailable PROTOCOL_VIOLATION.
//  - a 421 ("closing channel") while idle or in reply to NOOP: kUnavailable
//    SERVER_REFUSED. Other refusals of NOOP leave the client kReady with error() set
//    (kUnavailable COMMAND_REFUSED). Any reply to QUIT ends in kClosed.
// StartNoop() / StartLogout() outside kReady do nothing. After kFailed or kClosed,
// OnBytes() ignores its input.
//
// Thread-compatible; loop-confined in the daemon.
#ifndef MAILPOOL_SMTP_CLIENT_H_
#define MAILPOOL_SMTP_CLIENT_H_

#include <memory>

#include "smtp/reply.h"
#include "wire/protocol.h"

namespace mailpool::smtp {

std::unique_ptr<wire::ClientProtocol> NewClient(wire::LoginOptions options);

}  // namespace mailpool::smtp

#endif  // MAILPOOL_SMTP_CLIENT_H_
