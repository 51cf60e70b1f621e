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

}  // namespace

absl::StatusOr<session::Link*> SmtpLinkOf(pool::Pool& pool, const std::string& owner,
                                          const std::string& ref) {
  absl::StatusOr<session::Session*> session = pool.Use(owner, ref);
  if (!session.ok()) return session.status();
  session::Link* link = (*session)->link(session::Protocol::kSmtp);
  if (link == nullptr) {
    return ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                       "the session has no SMTP connection (start it with smtp or pop3_smtp)");
  }
  return link;
}

void ProbeAddress(session::Link& link, std::string address, bool vrfy,
                  std::shared_ptr<CallToken> call, ProbeDone done) {
  struct State {
    std::string address;
    bool vrfy;  // the next step is VRFY
    smtp::Reply reply;
  };
  auto state = std::make_shared<State>(State{std::move(address), vrfy, smtp::Reply()});
  session::Turn turn;
  turn.step = [state](wire::ClientProtocol& client) {
    auto& smtp = static_cast<smtp::Client&>(client);
    auto keep = [state](smtp::Reply r) { state->reply = std::move(r); };
    if (state->vrfy) {
      smtp.StartVerify(state->address, std::move(keep));
    } else {
      smtp.StartProbe(state->address, std::move(keep));
    }
  };
  turn.more = [state](const absl::Status& status) {
    // A server that does not implement VRFY gets the RCPT probe instead, in the same turn.
    int code = state->reply.code;
    if (!status.ok() || !state->vrfy || (code != 500 && code != 502 && code != 504)) return false;
    state->vrfy = false;
    return true;
  };
  turn.done = [state, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return done(std::move(status));
    done(std::move(state->reply));
  };
  // VRFY and the RCPT probe (RSET after it) deliver nothing: safe to repeat.
  session::RunOptions options;
  options.call = std::move(call);
  link.Run(std::move(turn), std::move(options));
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
