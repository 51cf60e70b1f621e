// MessageService: BuildSource and ParseSource (EmailBuildSource / EmailImportSource) over
// mime::Build and mime::Parse. Neither call needs a session.
//
// Both may take long on big messages (a 64 MiB source parses in a few hundred ms), so the
// handlers only validate on the gRPC thread and hand the work to this service's own small
// worker pool: never the event loop (which owns every socket), and never a gRPC callback
// thread (the callback API expects handlers not to block). A worker finishes the
// reactor. When every worker is busy and the queue is full, calls fail at once with
// RESOURCE_EXHAUSTED instead of piling up memory.
//
//   auto service = std::make_unique<MessageServiceImpl>(callers);
//   builder.RegisterService(service.get());   // destroy after the grpc::Server
//
// Thread-safe.
#ifndef MAILPOOL_SERVICE_MESSAGE_SERVICE_H_
#define MAILPOOL_SERVICE_MESSAGE_SERVICE_H_

#include <cstddef>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "callers/callers.h"
#include "mailpool/v1/message.grpc.pb.h"

namespace mailpool::service {

// Largest source ParseSource accepts (the daemon's message size limit, message.proto).
inline constexpr size_t kMaxMessageBytes = size_t{64} << 20;
// gRPC's receive limit for the server: the largest message plus room for the other fields
// of a request, so that an oversized source gets this service's RESOURCE_EXHAUSTED naming
// the limit rather than the transport's.
inline constexpr int kMaxReceiveMessageBytes = static_cast<int>(kMaxMessageBytes + (1 << 20));

struct MessageServiceOptions {
  // Worker threads for Build/Parse; at least 1.
  int workers = 2;
  // Calls waiting for a worker; beyond this, RESOURCE_EXHAUSTED. 0: no queue (only as
  // many calls as workers).
  size_t max_queued = 64;
  // Largest ParseSource input, in bytes.
  size_t max_message_bytes = kMaxMessageBytes;
};

class MessageServiceImpl final : public v1::MessageService::CallbackService {
 public:
  // Calls are authenticated like every other (`callers` outlives the service).
  explicit MessageServiceImpl(const callers::Callers& callers, MessageServiceOptions options = {});
  // Runs the calls still queued (they see their cancellation and end quickly), then joins
  // the workers. Destroy after the grpc::Server has shut down.
  ~MessageServiceImpl() override;
  MessageServiceImpl(const MessageServiceImpl&) = delete;
  MessageServiceImpl& operator=(const MessageServiceImpl&) = delete;

  grpc::ServerUnaryReactor* BuildSource(grpc::CallbackServerContext* context,
                                        const v1::BuildSourceRequest* request,
                                        v1::BuildSourceResponse* response) override;
  grpc::ServerUnaryReactor* ParseSource(grpc::CallbackServerContext* context,
                                        const v1::ParseSourceRequest* request,
                                        v1::ParseSourceResponse* response) override;

 private:
  class WorkerPool;

  // Queues `job` for a worker, or RESOURCE_EXHAUSTED when the queue is full.
  absl::Status Submit(std::function<void()> job);

  const callers::Callers& callers_;
  const MessageServiceOptions options_;
  std::unique_ptr<WorkerPool> workers_;
};

}  // namespace mailpool::service

#endif  // MAILPOOL_SERVICE_MESSAGE_SERVICE_H_
