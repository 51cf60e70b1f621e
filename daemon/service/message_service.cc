#include "service/message_service.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "mime/mime.h"
#include "service/call.h"
#include "service/errors.h"

namespace mailpool::service {

// A fixed set of threads taking jobs from a bounded FIFO queue. Thread-safe.
class MessageServiceImpl::WorkerPool {
 public:
  WorkerPool(int threads, size_t max_queued) : max_queued_(max_queued) {
    for (int i = 0; i < std::max(1, threads); ++i) {
      threads_.emplace_back([this] { Run(); });
    }
  }

  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  // False when every worker is busy and the queue holds max_queued jobs.
  bool TryPost(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.size() >= max_queued_ + idle_) return false;
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      ++idle_;
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      --idle_;
      // Drain the queue before stopping: every queued call must be finished.
      if (queue_.empty()) return;
      std::function<void()> job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  size_t idle_ = 0;                          // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

namespace {

absl::Status InvalidField(absl::string_view field, absl::string_view problem) {
  return ReasonError(absl::StatusCode::kInvalidArgument, "INVALID_FIELD",
                     absl::StrCat(field, ": ", problem));
}

void Finish(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
            const absl::Status& status) {
  reactor->Finish(ToGrpcStatus(status, context));
}

std::string Millis(std::chrono::steady_clock::time_point start) {
  return absl::StrCat(std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count());
}

}  // namespace

MessageServiceImpl::MessageServiceImpl(const callers::Callers& callers,
                                       MessageServiceOptions options)
    : callers_(callers),
      options_(options),
      workers_(std::make_unique<WorkerPool>(options.workers, options.max_queued)) {}

MessageServiceImpl::~MessageServiceImpl() = default;

absl::Status MessageServiceImpl::Submit(std::function<void()> job) {
  if (workers_->TryPost(std::move(job))) return absl::OkStatus();
  return ReasonError(absl::StatusCode::kResourceExhausted, "SERVER_BUSY",
                     "too many BuildSource/ParseSource calls in progress; retry later");
}

grpc::ServerUnaryReactor* MessageServiceImpl::BuildSource(grpc::CallbackServerContext* context,
                                                          const v1::BuildSourceRequest* request,
                                                          v1::BuildSourceResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::StatusOr<callers::Caller> caller = CallerOf(*context, callers_); !caller.ok()) {
    Finish(context, reactor, caller.status());
    return reactor;
  }
  if (!request->has_message()) {
    Finish(context, reactor, InvalidField("message", "is required"));
    return reactor;
  }
  // The request itself is bounded by the server's receive limit; the work happens on a
  // worker (base64 of tens of MiB of attachments).
  absl::StatusOr<std::shared_ptr<const void>> hold = ReserveMessage(callers_, *request);
  if (!hold.ok()) {
    Finish(context, reactor, hold.status());
    return reactor;
  }
  absl::Status queued = Submit([context, reactor, request, response, hold = *std::move(hold)] {
    if (context->IsCancelled()) {
      reactor->Finish(grpc::Status::CANCELLED);
      return;
    }
    auto start = std::chrono::steady_clock::now();
    std::string message_id;
    absl::StatusOr<std::string> source =
        mime::Build(request->message(), request->options(), &message_id);
    if (!source.ok()) return Finish(context, reactor, source.status());
    Log(LogLevel::kDebug, "message built",
        {{"bytes", absl::StrCat(source->size())}, {"ms", Millis(start)}});
    response->set_source(std::move(*source));
    response->set_message_id(message_id);
    Finish(context, reactor, absl::OkStatus());
  });
  if (!queued.ok()) Finish(context, reactor, queued);
  return reactor;
}

grpc::ServerUnaryReactor* MessageServiceImpl::ParseSource(grpc::CallbackServerContext* context,
                                                          const v1::ParseSourceRequest* request,
                                                          v1::ParseSourceResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::StatusOr<callers::Caller> caller = CallerOf(*context, callers_); !caller.ok()) {
    Finish(context, reactor, caller.status());
    return reactor;
  }
  if (request->source().empty()) {
    Finish(context, reactor, InvalidField("source", "is required (the input is empty)"));
    return reactor;
  }
  if (request->source().size() > options_.max_message_bytes) {
    Finish(context, reactor,
           ReasonError(absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                       absl::StrCat("source: ", request->source().size(),
                                    " bytes is over the daemon's message size limit of ",
                                    options_.max_message_bytes, " bytes")));
    return reactor;
  }
  absl::StatusOr<std::shared_ptr<const void>> hold = ReserveMessage(callers_, *request);
  if (!hold.ok()) {
    Finish(context, reactor, hold.status());
    return reactor;
  }
  absl::Status queued = Submit([context, reactor, request, response, hold = *std::move(hold)] {
    if (context->IsCancelled()) {
      reactor->Finish(grpc::Status::CANCELLED);
      return;
    }
    auto start = std::chrono::steady_clock::now();
    mime::ParseOptions options;
    options.include_source = request->options().include_source();
    options.omit_attachment_content = request->options().omit_attachment_content();
    std::vector<std::string> warnings;
    *response->mutable_message() = mime::Parse(request->source(), options, &warnings);
    for (std::string& w : warnings) response->add_warnings(std::move(w));
    Log(LogLevel::kDebug, "message parsed",
        {{"bytes", absl::StrCat(request->source().size())},
         {"warnings", absl::StrCat(response->warnings_size())},
         {"ms", Millis(start)}});
    Finish(context, reactor, absl::OkStatus());
  });
  if (!queued.ok()) Finish(context, reactor, queued);
  return reactor;
}

}  // namespace mailpool::service
