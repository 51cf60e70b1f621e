// The send module: what happens to a message between a validated SendMessage request and
// the SMTP server, without gRPC. Namespace `sender` (a namespace `send` would hide POSIX
// send() from code in namespace mailpool).
//
// DESIGN
// Owns: message preparation (Prepare: build or take the source, derive the envelope,
// strip Bcc), the CheckAddress verdicts (CheckAddressSyntax with the grammar of
// common/address.h; ProbeAddress with the session's SMTP server), one mail transaction on
// a link (Transact) and the outbox sender (outbox_sender.h). Every command waits in the
// SMTP link's own queue (session::Link: its bound, SESSION_QUEUE_FULL, and
// cancel-while-queued hold for sends and probes as for mailbox calls). service/send_service.*
// adapts these to gRPC (reactors, the error table, field validation of the request shape) and
// nothing more. Threading: Prepare and CheckAddressSyntax are pure and run on any thread (the gRPC
// thread, so a bad request costs the loop nothing); everything taking a Link, the queue
// and the outbox sender are confined to the event loop.
// May include: pool, session, smtp, mime, outbox, common, the proto messages. Never
// grpcpp, never service/.
//
//   absl::StatusOr<sender::Outgoing> out = sender::Prepare(request);      // any thread
//   sender::Transact(*link, out, nullptr, call, [](absl::Status s, smtp::SendResult r) {});
#ifndef MAILPOOL_SEND_SEND_H_
#define MAILPOOL_SEND_SEND_H_

#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/call.h"
#include "mailpool/v1/send.pb.h"
#include "pool/pool.h"
#include "session/link.h"
#include "smtp/client.h"

namespace mailpool::sender {

// What goes to the SMTP server: the envelope and the bytes, plus what the answer shows.
struct Outgoing {
  smtp::Envelope envelope;
  std::string source;
  std::string message_id;
  std::string subject;
  bool require_all = false;
};

// Builds the message (or takes the caller's source, at most 64 MiB) and derives the
// envelope: MAIL FROM from envelope.mail_from, else Sender, else From; RCPT TO from
// envelope.rcpt_to, else To + Cc + Bcc without duplicates (case-insensitive). A source's
// Bcc fields are removed when the recipients come from them. Every path is checked with
// smtp::ValidatePath. Errors: INVALID_ARGUMENT INVALID_FIELD naming the field,
// RESOURCE_EXHAUSTED MESSAGE_TOO_LARGE. Pure.
absl::StatusOr<Outgoing> Prepare(const v1::SendMessageRequest& request);

// RFC 5322 section 3.2.2: a header field body continues on lines starting with WSP.
// `source` without its Bcc fields (header block only). Pure; exposed for tests.
std::string WithoutBcc(absl::string_view source);

// The verdict of CheckAddress in SYNTAX (`strict` false: RFC 5322 name-addr or addr-spec,
// quoted local parts and address literals allowed) or STRICT mode (a bare dot-atom
// local-part "@" a strict RFC 5321 domain). Pure.
v1::CheckAddressResponse CheckAddressSyntax(absl::string_view address, bool strict);

// The SMTP link of `owner`'s session `ref` (a name or an ID), loop only: NOT_FOUND without
// such a session, FAILED_PRECONDITION WRONG_PROTOCOL for a session without SMTP.
absl::StatusOr<session::Link*> SmtpLinkOf(pool::Pool& pool, const std::string& owner,
                                          const std::string& ref);

// Asks the session's SMTP server about `address` on `link` (loop only), in one turn of
// the link (nothing else runs between its commands): VRFY first when
// `vrfy` (a server without VRFY, 500/502/504, gets the probe instead), else the probe
// MAIL FROM:<>, RCPT TO, RSET. `done` gets the server's last reply or why none came;
// `call`'s cancellation stops it. Nothing is delivered, so the link may repeat it.
void ProbeAddress(session::Link& link, std::string address, bool vrfy,
                  std::shared_ptr<CallToken> call,
                  absl::AnyInvocable<void(absl::StatusOr<smtp::Reply>)> done);

// The CheckAddress answer for a server's reply to the probe: 2xx VALID, 5xx INVALID,
// anything else (VRFY's 252 "cannot verify", 4xx) UNKNOWN; the reply goes in sanitized.
void SetProbeVerdict(const smtp::Reply& reply, v1::CheckAddressResponse* response);

// One mail transaction for `out` on `link` (loop only). `before_data` (may be null) runs
// once the server said 354. Not repeated by the link after a drop (the server may have
// the message); `call` (may be null) ends it when cancelled. `done` gets the outcome.
void Transact(session::Link& link, std::shared_ptr<const Outgoing> out,
              absl::AnyInvocable<void()> before_data, std::shared_ptr<CallToken> call,
              absl::AnyInvocable<void(absl::Status, smtp::SendResult)> done);

// One recipient's outcome as the API shows it, with the RFC 3463 enhanced status code.
v1::RecipientResult ToRecipientResult(const smtp::RecipientReply& reply);

}  // namespace mailpool::sender

#endif  // MAILPOOL_SEND_SEND_H_
