// CallReactor: the unary reactor every session-bound handler uses, so that gRPC's
// cancellation of a call — the caller cancelling, or its deadline passing — reaches the
// work done for it on the loop (common/call.h). One mechanism for every handler:
//
//   auto* reactor = NewCallReactor(context, loop_);
//   loop_.Post([reactor, token = reactor->token()] {
//     link->Run(start, done, RunOptions{.call = token});   // stops when the call does
//   });
//   Finish(context, reactor, status);                      // as with DefaultReactor()
//
// The reactor deletes itself when gRPC is done with it; the token lives on in whatever
// holds it. Thread-safe.
#ifndef MAILPOOL_SERVICE_CALL_H_
#define MAILPOOL_SERVICE_CALL_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "common/call.h"
#include "net/event_loop.h"

namespace mailpool::service {

class CallReactor final : public grpc::ServerUnaryReactor {
 public:
  CallReactor(grpc::CallbackServerContext* context, net::EventLoop& loop);
  const std::shared_ptr<CallToken>& token() const { return token_; }

  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  net::EventLoop& loop_;
  std::shared_ptr<CallToken> token_;
};

inline CallReactor* NewCallReactor(grpc::CallbackServerContext* context, net::EventLoop& loop) {
  return new CallReactor(context, loop);
}

// The call's deadline (InfiniteFuture when the caller set none).
absl::Time CallDeadline(const grpc::CallbackServerContext& context);

// Cancels `token` on the loop, as CANCELLED or, past its deadline, DEADLINE_EXCEEDED. For
// reactors' OnCancel (gRPC threads).
void PostCancel(net::EventLoop& loop, const std::shared_ptr<CallToken>& token);

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_CALL_H_
