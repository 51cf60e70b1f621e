#include "service/mailbox_service.h"

#include <deque>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "mailbox/imap_backend.h"
#include "mailbox/imap_support.h"
#include "mailbox/pop3_backend.h"
#include "mailbox/search.h"
#include "service/call.h"
#include "service/errors.h"
#include "service/message_service.h"
#include "service/session_service.h"
#include "service/validation.h"
#include "wire/sasl.h"

namespace mailpool::service {
namespace {

constexpr size_t kMaxIdBytes = 1024;
constexpr size_t kMaxIds = 10'000;
constexpr uint32_t kMaxChunk = 1 << 20;
// Streaming flow control: the backend pauses above kHighWater queued bytes and resumes
// below kLowWater.
constexpr size_t kHighWater = 1 << 20;
constexpr size_t kLowWater = 256 << 10;

absl::Status ValidateText(absl::string_view field, absl::string_view value, size_t max,
                          bool required) {
  if (required && value.empty()) return Invalid(field, "required");
  if (value.size() > max) return Invalid(field, absl::StrCat("at most ", max, " bytes"));
  if (!wire::IsCommandSafe(value)) return Invalid(field, "must not contain CR, LF or NUL");
  return absl::OkStatus();
}

absl::Status ValidateView(v1::MessageView view) {
  if (!v1::MessageView_IsValid(view)) return Invalid("view", "unknown value");
  return absl::OkStatus();
}

absl::Status ValidateChunk(uint32_t chunk_size) {
  if (chunk_size > kMaxChunk) return Invalid("chunk_size", "at most 1 MiB");
  return absl::OkStatus();
}

absl::Status ValidateIds(const google::protobuf::RepeatedPtrField<std::string>& ids,
                         bool required) {
  if (required && ids.empty()) return Invalid("ids", "required");
  if (static_cast<size_t>(ids.size()) > kMaxIds) return Invalid("ids", "at most 10,000");
  for (const std::string& id : ids) {
    MP_RETURN_IF_ERROR(ValidateText("ids", id, kMaxIdBytes, true));
  }
  return absl::OkStatus();
}

// A folder name: UTF-8 without CR, LF, NUL, at most 1024 bytes.
absl::Status ValidateFolder(absl::string_view field, absl::string_view value, bool required) {
  MP_RETURN_IF_ERROR(ValidateText(field, value, 1024, required));
  return mailbox::ValidateFolderName(field, value);
}

// Folders that IMAP reserves: INBOX cannot be created, deleted or be a rename target.
absl::Status NotInbox(absl::string_view field, absl::string_view value) {
  if (absl::EqualsIgnoreCase(value, "INBOX")) {
    return Invalid(field, "INBOX cannot be created, deleted or renamed onto");
  }
  return absl::OkStatus();
}

// A server-streaming call fed by a backend on the loop. The reactor deletes itself in
// OnDone; the sink half outlives it as long as the backend holds it and then does
// nothing. Thread-safe: the loop writes, gRPC threads complete writes.
template <typename Response>
class StreamCall final : public grpc::ServerWriteReactor<Response>, public mailbox::ChunkSink {
 public:
  StreamCall(net::EventLoop& loop, grpc::CallbackServerContext* context)
      : loop_(loop),
        context_(context),
        token_(std::make_shared<CallToken>(CallDeadline(*context))) {}

  // The call's deadline and cancellation, for the commands run for it.
  const std::shared_ptr<CallToken>& token() const { return token_; }

  // The reactor's lifetime is tied to gRPC, the sink's to the backend: both hold `self_`
  // until they are done with it.
  static std::shared_ptr<StreamCall> Create(net::EventLoop& loop,
                                            grpc::CallbackServerContext* context) {
    auto call = std::shared_ptr<StreamCall>(new StreamCall(loop, context));
    call->self_ = call;
    return call;
  }

  void Begin(uint64_t total_size, const v1::Attachment* attachment) override {
    std::lock_guard<std::mutex> lock(mu_);
    total_size_ = total_size;
    if constexpr (std::is_same_v<Response, v1::GetAttachmentResponse>) {
      Response first;
      if (attachment != nullptr) *first.mutable_attachment() = *attachment;
      EnqueueLocked(std::move(first), 0);
    }
    StartNextLocked();
  }

  void Write(std::string data, uint64_t offset) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_ || finished_) return;
    Response r;
    size_t n = data.size();
    *r.mutable_data() = std::move(data);
    r.set_offset(offset);
    if constexpr (std::is_same_v<Response, v1::StreamMessageResponse>) {
      r.set_total_size(total_size_);
    }
    EnqueueLocked(std::move(r), n);
    StartNextLocked();
  }

  bool Full() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return !cancelled_ && queued_bytes_ >= kHighWater;
  }

  void OnDrained(absl::AnyInvocable<void()> resume) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (cancelled_ || queued_bytes_ <= kLowWater) {
      lock.unlock();
      loop_.Post(std::move(resume));
      return;
    }
    resume_ = std::move(resume);
  }

  bool Cancelled() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }

  // From the loop: ends the call once the queue is written.
  void End(absl::Status status) {
    std::unique_lock<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    status_ = cancelled_ && status.ok()
                  ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the caller")
                  : ToGrpcStatus(status, context_);
    if (!writing_) {
      lock.unlock();
      this->Finish(status_);
    }
  }

  void OnWriteDone(bool ok) override {
    absl::AnyInvocable<void()> resume;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      queued_bytes_ -= in_flight_bytes_;
      in_flight_bytes_ = 0;
      if (!ok) {
        cancelled_ = true;
        queue_.clear();
        queued_bytes_ = 0;
      }
      // Only when resuming: a waiting producer must not be forgotten while above the mark.
      if ((cancelled_ || queued_bytes_ <= kLowWater) && resume_) {
        resume = std::move(resume_);
        resume_ = nullptr;
      }
      StartNextLocked();
      finish = finished_ && !writing_;
    }
    if (resume) loop_.Post(std::move(resume));
    if (finish) this->Finish(status_);
  }

  void OnCancel() override {
    absl::AnyInvocable<void()> resume;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      resume = std::move(resume_);
      resume_ = nullptr;
    }
    if (resume) loop_.Post(std::move(resume));
    PostCancel(loop_, token_);
  }

  void OnDone() override {
    std::shared_ptr<StreamCall> self;
    std::lock_guard<std::mutex> lock(mu_);
    self = std::move(self_);  // may be the last reference; released after the lock
    done_ = true;
  }

 private:
  void EnqueueLocked(Response r, size_t bytes) {
    queue_.push_back({std::move(r), bytes});
    queued_bytes_ += bytes;
  }

  // One Write in flight: starts the next queued response when none is.
  void StartNextLocked() {
    if (writing_ || queue_.empty() || done_) return;
    if (cancelled_) {
      queue_.clear();
      queued_bytes_ = 0;
      return;
    }
    current_ = std::move(queue_.front().first);
    in_flight_bytes_ = queue_.front().second;
    queue_.pop_front();
    writing_ = true;
    this->StartWrite(&current_);
  }

  net::EventLoop& loop_;
  grpc::CallbackServerContext* context_;
  const std::shared_ptr<CallToken> token_;
  mutable std::mutex mu_;
  std::shared_ptr<StreamCall> self_;
  std::deque<std::pair<Response, size_t>> queue_;
  Response current_;
  size_t queued_bytes_ = 0;  // queued and in flight
  size_t in_flight_bytes_ = 0;
  uint64_t total_size_ = 0;
  bool writing_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  bool done_ = false;
  grpc::Status status_;
  absl::AnyInvocable<void()> resume_;
};

template <typename Response>
class FinishedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriter(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// A streaming call that ends without data, with a status decided on the loop.
template <typename Response>
class LoopFinishedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit LoopFinishedWriter(grpc::CallbackServerContext* context) : context_(context) {}
  void End(const absl::Status& status) { this->Finish(ToGrpcStatus(status, context_)); }
  void OnDone() override { delete this; }

 private:
  grpc::CallbackServerContext* context_;
};

}  // namespace

MailboxServiceImpl::MailboxServiceImpl(net::EventLoop& loop, pool::Pool& pool,
                                       const callers::Callers& callers)
    : loop_(loop),
      pool_(pool),
      callers_(callers),
      pop3_(std::make_unique<mailbox::Pop3Backend>(pool)),
      imap_(std::make_unique<mailbox::ImapBackend>(loop, pool)) {}

MailboxServiceImpl::~MailboxServiceImpl() = default;

absl::StatusOr<std::pair<mailbox::Backend*, mailbox::CallTarget>> MailboxServiceImpl::Route(
    const Target& ref) {
  MP_ASSIGN_OR_RETURN(session::Session * session, pool_.Use(ref.owner(), ref.ref));
  mailbox::CallTarget target{ref.owner(), session->id(), nullptr};
  switch (session->kind()) {
    case session::Kind::kPop3:
    case session::Kind::kPop3Smtp:
      return std::make_pair(pop3_.get(), std::move(target));
    case session::Kind::kImap:
      return std::make_pair(imap_.get(), std::move(target));
    case session::Kind::kSmtp:
      return ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                         "an SMTP session has no mailbox");
  }
  return absl::InternalError("unknown session kind");
}

template <typename Request, typename Response, typename Method>
grpc::ServerUnaryReactor* MailboxServiceImpl::Unary(grpc::CallbackServerContext* context,
                                                    const Request* request, Response* response,
                                                    absl::Status valid, Method method,
                                                    bool holds_message) {
  CallReactor* reactor = NewCallReactor(context, loop_);
  absl::StatusOr<Target> ref = TargetOf(*context, callers_, request->session());
  if (!ref.ok()) valid = ref.status();
  if (valid.ok() && holds_message) {
    absl::StatusOr<std::shared_ptr<const void>> hold = ReserveMessage(callers_, *request);
    if (hold.ok()) reactor->Hold(*std::move(hold));
    if (!hold.ok()) valid = hold.status();
  }
  if (!valid.ok()) {
    Finish(context, reactor, valid);
    return reactor;
  }
  loop_.Post([this, context, reactor, request, response, method, ref = std::move(*ref),
              call = reactor->token()]() mutable {
    RunUnary(context, reactor, request, response, method, ref, std::move(call), 0);
  });
  return reactor;
}

template <typename Request, typename Response, typename Method>
void MailboxServiceImpl::RunUnary(grpc::CallbackServerContext* context,
                                  grpc::ServerUnaryReactor* reactor, const Request* request,
                                  Response* response, Method method, const Target& ref,
                                  std::shared_ptr<CallToken> call, int attempt) {
  auto route = Route(ref);
  if (!route.ok()) return Finish(context, reactor, route.status());
  route->second.call = call;
  (route->first->*method)(
      route->second, *request,
      [this, context, reactor, request, response, method, ref, call,
       attempt](absl::StatusOr<Response> result) mutable {
        // The session's connection was re-established under the call: what it had looked
        // up (POP3 message numbers) is stale, the backend has read it again, and the call
        // runs once more on the new connection, invisibly to the caller.
        if (!result.ok() && attempt == 0 &&
            GetPayloadText(result.status(), kReasonPayload) == "LINK_RECONNECTED") {
          return loop_.Post([=, this, call = std::move(call)]() mutable {
            RunUnary(context, reactor, request, response, method, ref, std::move(call), 1);
          });
        }
        if (result.ok()) *response = std::move(*result);
        Finish(context, reactor, result.status());
      });
}

grpc::ServerUnaryReactor* MailboxServiceImpl::GetMailboxStatus(
    grpc::CallbackServerContext* context, const v1::GetMailboxStatusRequest* request,
    v1::GetMailboxStatusResponse* response) {
  return Unary(context, request, response, ValidateText("folder", request->folder(), 1024, false),
               &mailbox::Backend::GetMailboxStatus);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::ListMessages(grpc::CallbackServerContext* context,
                                                           const v1::ListMessagesRequest* request,
                                                           v1::ListMessagesResponse* response) {
  absl::Status valid = ValidateText("folder", request->folder(), 1024, false);
  if (valid.ok()) valid = ValidateText("page_token", request->page_token(), 1024, false);
  if (valid.ok()) valid = ValidateView(request->view());
  if (valid.ok() && !v1::MessageOrder_IsValid(request->order())) {
    valid = Invalid("order", "unknown value");
  }
  if (valid.ok() && !v1::MessageFilter_IsValid(request->filter())) {
    valid = Invalid("filter", "unknown value");
  }
  return Unary(context, request, response, valid, &mailbox::Backend::ListMessages);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::GetMessage(grpc::CallbackServerContext* context,
                                                         const v1::GetMessageRequest* request,
                                                         v1::GetMessageResponse* response) {
  absl::Status valid = ValidateText("id", request->id(), kMaxIdBytes, true);
  if (valid.ok()) valid = ValidateView(request->view());
  return Unary(context, request, response, valid, &mailbox::Backend::GetMessage);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::SearchMessages(
    grpc::CallbackServerContext* context, const v1::SearchMessagesRequest* request,
    v1::SearchMessagesResponse* response) {
  absl::Status valid = ValidateText("folder", request->folder(), 1024, false);
  if (valid.ok()) valid = ValidateText("page_token", request->page_token(), 1024, false);
  if (valid.ok()) valid = ValidateView(request->view());
  if (valid.ok() && !v1::MessageOrder_IsValid(request->order())) {
    valid = Invalid("order", "unknown value");
  }
  if (valid.ok()) {
    // Shape only here; what the protocol can answer is the backend's call.
    absl::Status shape = mailbox::ValidateCriteria(request->criteria(), /*pop3=*/false);
    if (shape.code() == absl::StatusCode::kInvalidArgument) valid = shape;
  }
  return Unary(context, request, response, valid, &mailbox::Backend::SearchMessages);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::DeleteMessages(
    grpc::CallbackServerContext* context, const v1::DeleteMessagesRequest* request,
    v1::DeleteMessagesResponse* response) {
  absl::Status valid = ValidateIds(request->ids(), true);
  if (valid.ok() && !v1::DeleteMode_IsValid(request->mode()))
    valid = Invalid("mode", "unknown value");
  return Unary(context, request, response, valid, &mailbox::Backend::DeleteMessages);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::Refresh(grpc::CallbackServerContext* context,
                                                      const v1::RefreshRequest* request,
                                                      v1::RefreshResponse* response) {
  return Unary(context, request, response, absl::OkStatus(), &mailbox::Backend::Refresh);
}

grpc::ServerWriteReactor<v1::StreamMessageResponse>* MailboxServiceImpl::StreamMessage(
    grpc::CallbackServerContext* context, const v1::StreamMessageRequest* request) {
  absl::StatusOr<Target> ref = TargetOf(*context, callers_, request->session());
  absl::Status valid =
      ref.ok() ? ValidateText("id", request->id(), kMaxIdBytes, true) : ref.status();
  if (valid.ok()) valid = ValidateChunk(request->chunk_size());
  if (!valid.ok()) {
    return new FinishedWriter<v1::StreamMessageResponse>(ToGrpcStatus(valid, context));
  }
  auto call = StreamCall<v1::StreamMessageResponse>::Create(loop_, context);
  loop_.Post([this, call, request, ref = std::move(*ref)] {
    auto route = Route(ref);
    if (!route.ok()) return call->End(route.status());
    route->second.call = call->token();
    route->first->StreamMessage(route->second, *request, call,
                                [call](absl::Status s) { call->End(std::move(s)); });
  });
  return call.get();
}

grpc::ServerWriteReactor<v1::GetAttachmentResponse>* MailboxServiceImpl::GetAttachment(
    grpc::CallbackServerContext* context, const v1::GetAttachmentRequest* request) {
  absl::StatusOr<Target> ref = TargetOf(*context, callers_, request->session());
  absl::Status valid =
      ref.ok() ? ValidateText("id", request->id(), kMaxIdBytes, true) : ref.status();
  if (valid.ok()) valid = ValidateChunk(request->chunk_size());
  if (valid.ok()) {
    switch (request->part_case()) {
      case v1::GetAttachmentRequest::kPartId:
        valid = ValidateText("part_id", request->part_id(), 256, true);
        break;
      case v1::GetAttachmentRequest::kContentId:
        valid = ValidateText("content_id", request->content_id(), 998, true);
        break;
      default:
        valid = Invalid("part", "part_id or content_id is required");
    }
  }
  if (!valid.ok()) {
    return new FinishedWriter<v1::GetAttachmentResponse>(ToGrpcStatus(valid, context));
  }
  auto call = StreamCall<v1::GetAttachmentResponse>::Create(loop_, context);
  loop_.Post([this, call, request, ref = std::move(*ref)] {
    auto route = Route(ref);
    if (!route.ok()) return call->End(route.status());
    route->second.call = call->token();
    route->first->GetAttachment(route->second, *request, call,
                                [call](absl::Status s) { call->End(std::move(s)); });
  });
  return call.get();
}

// --- IMAP-only calls (POP3 backends answer FAILED_PRECONDITION) ---

grpc::ServerUnaryReactor* MailboxServiceImpl::ListFolders(grpc::CallbackServerContext* context,
                                                          const v1::ListFoldersRequest* request,
                                                          v1::ListFoldersResponse* response) {
  absl::Status valid = ValidateFolder("pattern", request->pattern(), false);
  return Unary(context, request, response, valid, &mailbox::Backend::ListFolders);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::SelectFolder(grpc::CallbackServerContext* context,
                                                           const v1::SelectFolderRequest* request,
                                                           v1::SelectFolderResponse* response) {
  return Unary(context, request, response, ValidateFolder("folder", request->folder(), true),
               &mailbox::Backend::SelectFolder);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::CreateFolder(grpc::CallbackServerContext* context,
                                                           const v1::CreateFolderRequest* request,
                                                           v1::CreateFolderResponse* response) {
  absl::Status valid = ValidateFolder("folder", request->folder(), true);
  if (valid.ok()) valid = NotInbox("folder", request->folder());
  if (valid.ok() && !v1::FolderRole_IsValid(request->role())) {
    valid = Invalid("role", "unknown value");
  }
  if (valid.ok() && request->role() == v1::FOLDER_ROLE_INBOX) {
    valid = Invalid("role", "INBOX is not a role a folder can be given");
  }
  return Unary(context, request, response, valid, &mailbox::Backend::CreateFolder);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::DeleteFolder(grpc::CallbackServerContext* context,
                                                           const v1::DeleteFolderRequest* request,
                                                           v1::DeleteFolderResponse* response) {
  absl::Status valid = ValidateFolder("folder", request->folder(), true);
  if (valid.ok()) valid = NotInbox("folder", request->folder());
  return Unary(context, request, response, valid, &mailbox::Backend::DeleteFolder);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::RenameFolder(grpc::CallbackServerContext* context,
                                                           const v1::RenameFolderRequest* request,
                                                           v1::RenameFolderResponse* response) {
  absl::Status valid = ValidateFolder("folder", request->folder(), true);
  if (valid.ok()) valid = ValidateFolder("new_name", request->new_name(), true);
  if (valid.ok()) valid = NotInbox("new_name", request->new_name());
  return Unary(context, request, response, valid, &mailbox::Backend::RenameFolder);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::CopyMessages(grpc::CallbackServerContext* context,
                                                           const v1::CopyMessagesRequest* request,
                                                           v1::CopyMessagesResponse* response) {
  absl::Status valid = ValidateIds(request->ids(), true);
  if (valid.ok()) {
    valid = ValidateFolder("destination_folder", request->destination_folder(), true);
  }
  return Unary(context, request, response, valid, &mailbox::Backend::CopyMessages);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::MoveMessages(grpc::CallbackServerContext* context,
                                                           const v1::MoveMessagesRequest* request,
                                                           v1::MoveMessagesResponse* response) {
  absl::Status valid = ValidateIds(request->ids(), true);
  if (valid.ok()) {
    valid = ValidateFolder("destination_folder", request->destination_folder(), true);
  }
  return Unary(context, request, response, valid, &mailbox::Backend::MoveMessages);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::UpdateFlags(grpc::CallbackServerContext* context,
                                                          const v1::UpdateFlagsRequest* request,
                                                          v1::UpdateFlagsResponse* response) {
  absl::Status valid = ValidateIds(request->ids(), true);
  if (valid.ok() && (!v1::FlagOperation_IsValid(request->operation()) ||
                     request->operation() == v1::FLAG_OPERATION_UNSPECIFIED)) {
    valid = Invalid("operation", "required: ADD, REMOVE or REPLACE");
  }
  if (valid.ok()) valid = mailbox::ValidateFlags("flags", request->flags());
  return Unary(context, request, response, valid, &mailbox::Backend::UpdateFlags);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::AppendMessage(grpc::CallbackServerContext* context,
                                                            const v1::AppendMessageRequest* request,
                                                            v1::AppendMessageResponse* response) {
  absl::Status valid = ValidateFolder("folder", request->folder(), true);
  if (valid.ok()) valid = mailbox::ValidateFlags("flags", request->flags());
  if (valid.ok() && request->has_receive_time() &&
      (request->receive_time().seconds() < 0 || request->receive_time().seconds() > 253402300799 ||
       request->receive_time().nanos() < 0 || request->receive_time().nanos() > 999999999)) {
    valid = Invalid("receive_time", "out of range");
  }
  if (valid.ok()) {
    switch (request->content_case()) {
      case v1::AppendMessageRequest::kSource:
        if (request->source().empty()) valid = Invalid("source", "empty");
        if (request->source().size() > kMaxMessageBytes) {
          valid = ReasonError(absl::StatusCode::kResourceExhausted, "MESSAGE_TOO_LARGE",
                              "source: larger than the daemon's message size limit");
        }
        if (request->source().find('\0') != std::string::npos) {
          valid = Invalid("source", "must not contain NUL bytes");
        }
        break;
      case v1::AppendMessageRequest::kMessage:
        break;  // checked by the MIME builder
      default:
        valid = Invalid("content", "source or message is required");
    }
  }
  return Unary(context, request, response, valid, &mailbox::Backend::AppendMessage,
               /*holds_message=*/true);
}

grpc::ServerUnaryReactor* MailboxServiceImpl::Expunge(grpc::CallbackServerContext* context,
                                                      const v1::ExpungeRequest* request,
                                                      v1::ExpungeResponse* response) {
  absl::Status valid = ValidateFolder("folder", request->folder(), false);
  if (valid.ok()) valid = ValidateIds(request->ids(), false);
  return Unary(context, request, response, valid, &mailbox::Backend::Expunge);
}

namespace {

// WatchMailbox's stream: events queue behind one Write in flight. A caller that stops
// reading while kMaxQueuedEvents pile up loses the stream (RESOURCE_EXHAUSTED) rather than
// the daemon's memory. Thread-safe: the loop sends, gRPC threads complete writes.
class WatchCall final : public grpc::ServerWriteReactor<v1::WatchMailboxResponse>,
                        public mailbox::EventSink {
 public:
  static constexpr size_t kMaxQueuedEvents = 10'000;

  static std::shared_ptr<WatchCall> Create(net::EventLoop& loop,
                                           grpc::CallbackServerContext* context) {
    auto call = std::shared_ptr<WatchCall>(new WatchCall(loop, context));
    call->self_ = call;
    return call;
  }

  void Send(v1::WatchMailboxResponse event) override {
    absl::AnyInvocable<void()> cancelled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cancelled_ || finished_) return;
      if (queue_.size() >= kMaxQueuedEvents) {
        overflowed_ = true;
        cancelled_ = true;
        queue_.clear();
        cancelled = std::move(on_cancel_);
        on_cancel_ = nullptr;
      } else {
        queue_.push_back(std::move(event));
        StartNextLocked();
      }
    }
    if (cancelled) loop_.Post(std::move(cancelled));
  }

  bool Cancelled() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }

  void OnCancel(absl::AnyInvocable<void()> cancelled) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (cancelled_) {
      lock.unlock();
      loop_.Post(std::move(cancelled));
      return;
    }
    on_cancel_ = std::move(cancelled);
  }

  // From the loop: ends the call once the queue is written.
  void End(absl::Status status) {
    std::unique_lock<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    if (overflowed_) {
      status = ReasonError(absl::StatusCode::kResourceExhausted, "WATCH_OVERFLOW",
                           "the caller did not read the events fast enough");
    }
    status_ = ToGrpcStatus(status, context_);
    if (!writing_) {
      lock.unlock();
      Finish(status_);
    }
  }

  void OnWriteDone(bool ok) override {
    absl::AnyInvocable<void()> cancelled;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) {
        cancelled_ = true;
        queue_.clear();
        cancelled = std::move(on_cancel_);
        on_cancel_ = nullptr;
      }
      StartNextLocked();
      finish = finished_ && !writing_;
    }
    if (cancelled) loop_.Post(std::move(cancelled));
    if (finish) Finish(status_);
  }

  void OnCancel() override {
    absl::AnyInvocable<void()> cancelled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      cancelled = std::move(on_cancel_);
      on_cancel_ = nullptr;
    }
    if (cancelled) loop_.Post(std::move(cancelled));
  }

  void OnDone() override {
    std::shared_ptr<WatchCall> self;
    std::lock_guard<std::mutex> lock(mu_);
    self = std::move(self_);
    done_ = true;
  }

 private:
  WatchCall(net::EventLoop& loop, grpc::CallbackServerContext* context)
      : loop_(loop), context_(context) {}

  void StartNextLocked() {
    if (writing_ || queue_.empty() || done_) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }

  net::EventLoop& loop_;
  grpc::CallbackServerContext* context_;
  mutable std::mutex mu_;
  std::shared_ptr<WatchCall> self_;
  std::deque<v1::WatchMailboxResponse> queue_;
  v1::WatchMailboxResponse current_;
  bool writing_ = false;
  bool cancelled_ = false;
  bool overflowed_ = false;
  bool finished_ = false;
  bool done_ = false;
  grpc::Status status_;
  absl::AnyInvocable<void()> on_cancel_;
};

}  // namespace

grpc::ServerWriteReactor<v1::WatchMailboxResponse>* MailboxServiceImpl::WatchMailbox(
    grpc::CallbackServerContext* context, const v1::WatchMailboxRequest* request) {
  absl::StatusOr<Target> ref = TargetOf(*context, callers_, request->session());
  absl::Status valid = ref.ok() ? ValidateFolder("folder", request->folder(), false) : ref.status();
  if (valid.ok()) valid = ValidateView(request->view());
  if (valid.ok() && request->has_poll_interval()) {
    absl::StatusOr<absl::Duration> d = DurationFromProto("poll_interval", request->poll_interval(),
                                                         absl::ZeroDuration(), absl::Hours(24));
    if (!d.ok()) {
      valid = d.status();
    } else if (*d != absl::ZeroDuration() && *d < absl::Seconds(10)) {
      valid = Invalid("poll_interval", "at least 10 seconds");
    }
  }
  if (!valid.ok()) {
    return new FinishedWriter<v1::WatchMailboxResponse>(ToGrpcStatus(valid, context));
  }
  auto call = WatchCall::Create(loop_, context);
  loop_.Post([this, call, request, ref = std::move(*ref)] {
    auto route = Route(ref);
    if (!route.ok()) return call->End(route.status());
    route->first->WatchMailbox(route->second, *request, call,
                               [call](absl::Status s) { call->End(std::move(s)); });
  });
  return call.get();
}

}  // namespace mailpool::service
