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

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "callers/callers.h"
#include "common/call.h"
#include "net/event_loop.h"

namespace mailpool::service {

class CallReactor final : public grpc::ServerUnaryReactor {
 public:
  CallReactor(grpc::CallbackServerContext* context, net::EventLoop& loop);
  const std::shared_ptr<CallToken>& token() const { return token_; }
  // Keeps `hold` (e.g. a message-bytes reservation) until gRPC is done with the call.
  void Hold(std::shared_ptr<const void> hold) { hold_ = std::move(hold); }

  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  net::EventLoop& loop_;
  std::shared_ptr<CallToken> token_;
  std::shared_ptr<const void> hold_;
};

inline CallReactor* NewCallReactor(grpc::CallbackServerContext* context, net::EventLoop& loop) {
  return new CallReactor(context, loop);
}

// The call's deadline (InfiniteFuture when the caller set none).
absl::Time CallDeadline(const grpc::CallbackServerContext& context);

// Cancels `token` on the loop, as CANCELLED or, past its deadline, DEADLINE_EXCEEDED. For
// reactors' OnCancel (gRPC threads).
void PostCancel(net::EventLoop& loop, const std::shared_ptr<CallToken>& token);

// A session-bound call's caller (its owner) and session reference.
struct Target {
  callers::Caller caller;
  std::string ref;
  const std::string& owner() const { return caller.name; }
};

// What the call carries that identifies its caller: the authorization header, the peer,
// the verified client certificate's CN / URI SAN. Views into `context`.
callers::CallFacts FactsOf(const grpc::ServerContextBase& context);

// The caller of the call, admitted past its calls-in-flight limit: UNAUTHENTICATED or
// RESOURCE_EXHAUSTED otherwise. Every handler starts with it; its name owns what the call
// creates and is the only owner whose sessions, sends and watches the call can reach.
absl::StatusOr<callers::Caller> CallerOf(const grpc::ServerContextBase& context,
                                         const callers::Callers& callers);

// Reserves twice `request`'s size of the daemon-wide message budget for a call that holds
// a whole message (callers::Callers::ReserveMessageBytes).
absl::StatusOr<std::shared_ptr<const void>> ReserveMessage(const callers::Callers& callers,
                                                           const google::protobuf::Message& request);

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_CALL_H_
