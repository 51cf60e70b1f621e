// SendService over SMTP sessions (send.proto): SendMessage, the outbox calls and
// CheckAddress. The gRPC side only: request validation, reactors, the outbox calls; what
// a send does (preparation, address checks, probes, the transaction, the per-session
// queue, the outbox sender) is daemon/send/.
//
// SendMessage validates the request and builds the message on the gRPC thread (a bad
// request costs the mail server nothing), then posts to the event loop, where the
// session's SMTP link runs one mail transaction (smtp::Client::StartSend) and the
// reactor is finished. Sends on one session run one after another, in arrival order.
// CheckAddress SYNTAX and STRICT answer on the gRPC thread; SERVER probes the session's
// SMTP server (MAIL FROM:<>, RCPT TO, RSET) on the loop.
//
// Asynchronous sessions: SendMessage validates and builds on the gRPC thread, looks the
// session up on the loop, hands the send to the durable outbox's writer thread
// (outbox/outbox.h, group commit) and answers QUEUED with a send ID from that thread once
// the send's batch is committed; the OutboxSender delivers it in the
// background through the same per-session queue as synchronous sends. GetSendStatus,
// ListOutbox and CancelSend read and change the outbox; WatchSendStatus streams its
// changes. An idempotency key makes a retried SendMessage return the first send.
//
// Not done yet, answering UNIMPLEMENTED: idempotency keys on synchronous sessions.
//
//   auto send = std::make_unique<SendServiceImpl>(loop, pool, outbox, sender_options, "0");
//   builder.RegisterService(send.get());
//   loop.Post([&] { send->StartSender(); });
//   ... shutdown: send->StopWatches(); loop: send->Drain(done);
//
// Thread-safe: gRPC threads validate, post and use the (thread-safe) outbox; everything
// else is loop-confined.
#ifndef MAILPOOL_SERVICE_SEND_SERVICE_H_
#define MAILPOOL_SERVICE_SEND_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/functional/any_invocable.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "net/event_loop.h"
#include "outbox/outbox.h"
#include "pool/pool.h"
#include "send/outbox_sender.h"
#include "send/send.h"
#include "service/call.h"
#include "session/link.h"

namespace mailpool::service {

class SendServiceImpl final : public v1::SendService::CallbackService {
 public:
  SendServiceImpl(net::EventLoop& loop, pool::Pool& pool, outbox::Outbox& outbox,
                  const callers::Callers& callers, sender::SenderOptions sender_options,
                  std::string instance_tag);
  ~SendServiceImpl() override;

  // Loop: starts delivering what the outbox holds (after a restart, too).
  void StartSender();
  // Loop: starts no new delivery attempt; `done` runs once none is in flight.
  void Drain(absl::AnyInvocable<void()> done);
  // Any thread: ends every WatchSendStatus stream with UNAVAILABLE (for shutdown).
  void StopWatches();

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
  // Hands an asynchronous session's send to the outbox's writer; once its batch has
  // committed, fills the QUEUED response and calls `done` (on the outbox's writer thread;
  // at once on a bad request).
  void QueueInOutbox(const v1::SendMessageRequest& request, const session::SessionSnapshot& session,
                     sender::Outgoing out, v1::SendMessageResponse* response,
                     absl::AnyInvocable<void(absl::Status)> done);
  // The session ID a request's optional session filter names ("" for none); a closed
  // session is still known by its ID. Runs a lookup on the loop.
  absl::StatusOr<std::string> ResolveSessionFilter(const Target& target);

  class Watcher;
  friend class Watcher;

  net::EventLoop& loop_;
  pool::Pool& pool_;
  outbox::Outbox& outbox_;
  const callers::Callers& callers_;
  std::string instance_tag_;
  std::unique_ptr<sender::OutboxSender> sender_;
  std::mutex watchers_mu_;
  std::set<Watcher*> watchers_;
  bool watches_stopped_ = false;
};

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_SEND_SERVICE_H_
