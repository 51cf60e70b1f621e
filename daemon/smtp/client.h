// SMTP client (RFC 5321, RFC 3207 STARTTLS, RFC 4954 AUTH), sans I/O: greeting, EHLO,
// STARTTLS, AUTH (the mechanisms of wire/sasl_exchange.h) or no AUTH when no secret is
// given, NOOP, QUIT, VRFY, and mail transactions (MAIL, RCPT, DATA or BDAT when
// the server offers CHUNKING, RSET).
//
//   std::unique_ptr<smtp::Client> client = smtp::NewClient(std::move(login));
//   ... drive it as wire/protocol.h shows; once kReady:
//   smtp::Extensions ext = smtp::Extensions::FromCapabilities(client->info().capabilities);
//   client->StartSend(envelope, source, {}, [&](smtp::SendResult r) { result = r; });
//   ... push server bytes with OnBytes(); back in kReady, error() tells how it went.
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

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/address.h"
#include "smtp/reply.h"
#include "wire/protocol.h"

namespace mailpool::smtp {

// RFC 5321 section 4.5.3.1: limits on what the client puts in MAIL and RCPT (the path
// limits are the address grammar's, common/address.h).
using ::mailpool::kMaxDomainBytes;
using ::mailpool::kMaxLocalPartBytes;
using ::mailpool::kMaxPathBytes;
inline constexpr size_t kMaxRecipients = 1000;

// Whether `address` may go between the angle brackets of MAIL FROM / RCPT TO: a
// local-part "@" domain within the lengths above, with no CR, LF, NUL, space, '<' or '>'.
// The empty string (the null reverse path) is valid only for MAIL FROM and is checked by
// the caller. Returns kInvalidArgument INVALID_FIELD naming `field` otherwise.
absl::Status ValidatePath(absl::string_view field, absl::string_view address);

// One mail transaction.
struct Envelope {
  std::string mail_from;             // without "<>"; empty: the null reverse path
  std::vector<std::string> rcpt_to;  // 1 to kMaxRecipients addresses, without "<>"
  bool request_dsn = false;          // RFC 3461 RET=HDRS, NOTIFY=SUCCESS,FAILURE if offered
};

struct SendOptions {
  // Abort (RSET) when any recipient is refused, instead of sending to the others.
  bool require_all_recipients = false;
  // Called once the server has accepted DATA (354), just before the message and its end
  // are written: from then on the server may deliver it. The outbox records this durably
  // so that a crash in between is known to be "possibly sent".
  absl::AnyInvocable<void()> before_data;
};

// The server's answer to one RCPT TO.
struct RecipientReply {
  std::string address;
  bool accepted = false;
  int code = 0;       // 0: never tried (the transaction ended before)
  std::string reply;  // sanitized, lines joined by '\n'
};

struct SendResult {
  std::vector<RecipientReply> recipients;  // in RCPT order
  std::string data_reply;                  // the reply to the end of data, sanitized
  uint64_t size = 0;                       // bytes of the message, before dot-stuffing
};

// The SMTP client with its commands. Thread-compatible.
class Client : public wire::ClientProtocol {
 public:
  using SendDone = absl::AnyInvocable<void(SendResult)>;
  using ProbeDone = absl::AnyInvocable<void(Reply)>;

  // Runs one mail transaction (RFC 5321 section 3.3): MAIL FROM with SIZE= (RFC 1870),
  // BODY=8BITMIME (RFC 6152) when the message has 8-bit bytes and SMTPUTF8 (RFC 6531)
  // when an address or a header field (RFC 6532) is not ASCII; RCPT TO for each recipient, all in
  // one write with MAIL when PIPELINING (RFC 2920) is offered; DATA with the message's line ends
  // normalized to CRLF and lines starting with '.' dot-stuffed (section 4.5.2), or, when CHUNKING
  // (RFC 3030) is offered, one "BDAT <size> LAST" chunk, not dot-stuffed. `source` is the
  // message as RFC 5322 bytes. RSET after any failure, so the client stays usable.
  // `done` gets the per-recipient results once the transaction ends, whatever the
  // outcome, just before the client is back in kReady.
  //
  // Outcomes (error() once back in kReady):
  //  - checked before anything is written (the client stays kReady, `done` is called
  //    with no result): an invalid path (ValidatePath) or no recipient: kInvalidArgument
  //    INVALID_FIELD; 8-bit content without 8BITMIME, or a non-ASCII address or header
  //    field without SMTPUTF8: kFailedPrecondition EXTENSION_NOT_OFFERED; a message over the
  //    server's SIZE: kResourceExhausted MESSAGE_TOO_LARGE.
  //  - the server refused MAIL, DATA or the end of data, or every recipient: 4xx
  //    kUnavailable, 501/553 kInvalidArgument, other 5xx kFailedPrecondition, all
  //    SERVER_REJECTED with the command and the server's reply. Refused recipients alone
  //    are results, not errors, unless none is accepted or require_all_recipients.
  //  - 421 at any point, a refused RSET or a malformed reply: kFailed.
  virtual void StartSend(Envelope envelope, absl::string_view source, SendOptions options,
                         SendDone done) = 0;

  // Asks whether the server would take `address` (CheckAddress SERVER): MAIL FROM:<>,
  // RCPT TO:<address>, RSET. `done` gets the reply to RCPT TO (code 0 when MAIL was
  // refused; error() then says why). Requires a valid path.
  virtual void StartProbe(std::string address, ProbeDone done) = 0;

  // VRFY <address> (RFC 5321 section 3.5): `done` gets the reply, whatever it is (250/251
  // the server knows the mailbox, 252 it cannot tell, 550 no such user, 502 VRFY is
  // disabled). Requires a valid path; send only when asked (many servers answer it
  // uselessly or log it as probing).
  virtual void StartVerify(std::string address, ProbeDone done) = 0;
};

std::unique_ptr<Client> NewClient(wire::LoginOptions options);

}  // namespace mailpool::smtp

#endif  // MAILPOOL_SMTP_CLIENT_H_
