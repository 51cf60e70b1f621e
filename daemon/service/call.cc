#include "service/call.h"

#include <grpc/grpc_security_constants.h>

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

callers::CallFacts FactsOf(const grpc::ServerContextBase& context) {
  callers::CallFacts facts;
  auto it = context.client_metadata().find("authorization");
  if (it != context.client_metadata().end()) {
    facts.has_authorization = true;
    facts.authorization = absl::string_view(it->second.data(), it->second.size());
  }
  facts.peer = context.peer();
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const grpc::string_ref& cn : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
      facts.cert_common_name.assign(cn.data(), cn.size());
      break;
    }
    for (const grpc::string_ref& uri : auth->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
      facts.cert_uri.assign(uri.data(), uri.size());
      break;
    }
  }
  return facts;
}

absl::StatusOr<callers::Caller> CallerOf(const grpc::ServerContextBase& context,
                                         const callers::Callers& callers) {
  MP_ASSIGN_OR_RETURN(callers::Caller caller, callers.Identify(FactsOf(context)));
  MP_RETURN_IF_ERROR(callers.Admit(caller));
  return caller;
}

}  // namespace mailpool::service

namespace mailpool::service {

absl::StatusOr<std::shared_ptr<const void>> ReserveMessage(const callers::Callers& callers,
                                                           const google::protobuf::Message& request) {
  return callers.ReserveMessageBytes(2 * request.ByteSizeLong());
}

}  // namespace mailpool::service
