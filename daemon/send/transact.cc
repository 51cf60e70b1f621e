// The SMTP steps of the send module on a session's link: probe/verify and one mail
// transaction (send.h). Loop-confined.
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "common/status.h"
#include "send/send.h"

namespace mailpool::sender {
namespace {

using ProbeDone = absl::AnyInvocable<void(absl::StatusOr<smtp::Reply>)>;
using ProbeStep = void (smtp::Client::*)(std::string, smtp::Client::ProbeDone);

// Runs one probe step (StartProbe or StartVerify) and hands its reply on.
void RunProbeStep(session::Link& link, ProbeStep step, std::string address,
                  std::shared_ptr<CallToken> call,
                  absl::AnyInvocable<void(absl::Status, smtp::Reply)> done) {
  auto reply = std::make_shared<smtp::Reply>();
  // VRFY and the RCPT probe (RSET after it) deliver nothing: safe to repeat.
  session::RunOptions options;
  options.call = std::move(call);
  link.Run(
      [step, address = std::move(address), reply](wire::ClientProtocol& client) {
        (static_cast<smtp::Client&>(client).*step)(
            address, [reply](smtp::Reply r) { *reply = std::move(r); });
      },
      [reply, done = std::move(done)](absl::Status status) mutable {
        done(std::move(status), std::move(*reply));
      },
      std::move(options));
}

void Probe(session::Link& link, std::string address, std::shared_ptr<CallToken> call,
           ProbeDone done) {
  RunProbeStep(link, &smtp::Client::StartProbe, std::move(address), std::move(call),
               [done = std::move(done)](absl::Status status, smtp::Reply reply) mutable {
                 if (!status.ok()) return done(std::move(status));
                 done(std::move(reply));
               });
}

}  // namespace

void ProbeAddress(session::Link& link, std::string address, bool vrfy,
                  std::shared_ptr<CallToken> call, ProbeDone done) {
  if (!vrfy) return Probe(link, std::move(address), std::move(call), std::move(done));
  RunProbeStep(link, &smtp::Client::StartVerify, address, call,
               [&link, address, call, done = std::move(done)](absl::Status status,
                                                              smtp::Reply reply) mutable {
                 if (!status.ok()) return done(std::move(status));
                 // A server that does not implement VRFY gets the RCPT probe instead.
                 if (reply.code == 500 || reply.code == 502 || reply.code == 504) {
                   return Probe(link, std::move(address), std::move(call), std::move(done));
                 }
                 done(std::move(reply));
               });
}

void SetProbeVerdict(const smtp::Reply& reply, v1::CheckAddressResponse* response) {
  response->set_reply_code(reply.code);
  response->set_server_reply(SanitizeServerText(reply.Raw()));
  if (reply.code == 250 || reply.code == 251) {
    response->set_result(v1::CHECK_RESULT_VALID);
  } else if (reply.IsPermanentFailure()) {
    response->set_result(v1::CHECK_RESULT_INVALID);
    response->set_reason(response->server_reply());
  } else {
    response->set_result(v1::CHECK_RESULT_UNKNOWN);
    response->set_reason(response->server_reply());
  }
}

void Transact(session::Link& link, std::shared_ptr<const Outgoing> out,
              absl::AnyInvocable<void()> before_data, std::shared_ptr<CallToken> call,
              absl::AnyInvocable<void(absl::Status, smtp::SendResult)> done) {
  auto result = std::make_shared<smtp::SendResult>();
  // DATA is not safe to repeat: a drop under it may leave the message sent. A connection
  // found dropped before the command starts is reopened (and logged in) by the link.
  session::RunOptions options(session::Repeat::kUnsafe);
  options.call = std::move(call);
  link.Run(
      [out, result, before_data = std::move(before_data)](wire::ClientProtocol& client) mutable {
        smtp::SendOptions send_options;
        send_options.require_all_recipients = out->require_all;
        send_options.before_data = std::move(before_data);
        static_cast<smtp::Client&>(client).StartSend(
            out->envelope, out->source, std::move(send_options),
            [result](smtp::SendResult r) { *result = std::move(r); });
      },
      [result, done = std::move(done)](absl::Status status) mutable {
        done(std::move(status), std::move(*result));
      },
      std::move(options));
}

v1::RecipientResult ToRecipientResult(const smtp::RecipientReply& r) {
  v1::RecipientResult out;
  out.set_address(r.address);
  out.set_accepted(r.accepted);
  out.set_reply_code(r.code);
  out.set_server_reply(r.reply);
  // RFC 3463: the enhanced status code follows the reply code.
  absl::string_view text =
      r.reply.size() > 4 ? absl::string_view(r.reply).substr(4) : absl::string_view();
  absl::string_view first = text.substr(0, text.find_first_of(" \n"));
  if (first.size() >= 5 && first.size() <= 11 && absl::ascii_isdigit(first[0]) && first[1] == '.' &&
      first[0] == r.reply[0]) {
    out.set_enhanced_status(std::string(first));
  }
  return out;
}

}  // namespace mailpool::sender
