// SendService over SMTP sessions (send.proto): synchronous SendMessage and CheckAddress.
//
// SendMessage validates the request and builds the message on the gRPC thread (a bad
// request costs the mail server nothing), then posts to the event loop, where the
// session's SMTP link runs one mail transaction (smtp::Client::StartSend) and the
// reactor is finished. Sends on one session run one after another, in arrival order.
// CheckAddress SYNTAX and STRICT answer on the gRPC thread; SERVER probes the session's
// SMTP server (MAIL FROM:<>, RCPT TO, RSET) on the loop.
//
// Not done yet, answering UNIMPLEMENTED: asynchronous sessions (the durable outbox) and
// with them GetSendStatus, ListOutbox, CancelSend and WatchSendStatus; idempotency keys;
// VRFY.
//
//   auto send = std::make_unique<SendServiceImpl>(loop, pool);
//   builder.RegisterService(send.get());
//
// Thread-safe: gRPC threads only validate and post; everything else is loop-confined.
#ifndef MAILPOOL_SERVICE_SEND_SERVICE_H_
#define MAILPOOL_SERVICE_SEND_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <map>
#include <string>

#include "absl/functional/any_invocable.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "net/event_loop.h"
#include "pool/pool.h"
#include "session/link.h"

namespace mailpool::service {

// The verdict of CheckAddress in SYNTAX or STRICT mode, without the server. Pure.
v1::CheckAddressResponse CheckAddressSyntax(absl::string_view address, bool strict);

class SendServiceImpl final : public v1::SendService::CallbackService {
 public:
  SendServiceImpl(net::EventLoop& loop, pool::Pool& pool);
  ~SendServiceImpl() override;

  grpc::ServerUnaryReactor* SendMessage(grpc::CallbackServerContext* context,
                                        const v1::SendMessageRequest* request,
                                        v1::SendMessageResponse* response) override;
  grpc::ServerUnaryReactor* GetSendStatus(grpc::CallbackServerContext* context,
                                          const v1::GetSendStatusRequest* request,
                                          v1::GetSendStatusResponse* response) override;
  grpc::ServerUnaryReactor* ListOutbox(grpc::CallbackServerContext* context,
                                       const v1::ListOutboxRequest* request,
                                       v1::ListOutboxResponse* response) override;
  grpc::ServerUnaryReactor* CancelSend(grpc::CallbackServerContext* context,
                                       const v1::CancelSendRequest* request,
                                       v1::CancelSendResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchSendStatusResponse>* WatchSendStatus(
      grpc::CallbackServerContext* context, const v1::WatchSendStatusRequest* request) override;
  grpc::ServerUnaryReactor* CheckAddress(grpc::CallbackServerContext* context,
                                         const v1::CheckAddressRequest* request,
                                         v1::CheckAddressResponse* response) override;

 private:
  // One command for a session's SMTP link; `run` gets the ready link (or the error that
  // keeps the command from running) and calls `finished` when the link is free again.
  using Job = absl::AnyInvocable<void(absl::StatusOr<session::Link*> link,
                                      absl::AnyInvocable<void()> finished)>;
  // Loop only: runs `job` on the session's SMTP link after the jobs queued before it.
  void Enqueue(const std::string& ref, Job job);
  void Pump(const std::string& session_id);

  net::EventLoop& loop_;
  pool::Pool& pool_;
  // Loop-confined: per session ID, the jobs waiting and whether one is running.
  struct Queue {
    bool running = false;
    std::deque<Job> jobs;
  };
  std::map<std::string, Queue> queues_;
};

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_SEND_SERVICE_H_
