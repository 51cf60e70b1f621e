#include "service/call.h"

#include "absl/time/clock.h"
#include "common/status.h"

namespace mailpool::service {

absl::Time CallDeadline(const grpc::CallbackServerContext& context) {
  auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

CallReactor::CallReactor(grpc::CallbackServerContext* context, net::EventLoop& loop)
    : loop_(loop), token_(std::make_shared<CallToken>(CallDeadline(*context))) {}

void PostCancel(net::EventLoop& loop, const std::shared_ptr<CallToken>& token) {
  // gRPC cancels a call whose deadline passed too; tell the two apart for the message.
  bool expired = absl::Now() >= token->deadline() - absl::Milliseconds(5);
  absl::Status why =
      expired ? ReasonError(absl::StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED",
                            "the call's deadline passed; its work was stopped")
              : ReasonError(absl::StatusCode::kCancelled, "CANCELLED",
                            "the call was cancelled by the caller; its work was stopped");
  loop.Post([token, why = std::move(why)]() mutable { token->Cancel(std::move(why)); });
}

void CallReactor::OnCancel() { PostCancel(loop_, token_); }

}  // namespace mailpool::service
