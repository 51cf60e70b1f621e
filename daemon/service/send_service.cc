#include "service/send_service.h"

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/session_id.h"
#include "common/status.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "service/call.h"
#include "service/errors.h"
#include "service/session_service.h"
#include "wire/sasl.h"

namespace mailpool::service {

namespace {

constexpr size_t kMaxAddressBytes = 1024;
constexpr int kMaxPageSize = 1000;
constexpr size_t kMaxIdempotencyKeyBytes = 128;

template <typename Response>
class FinishedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FinishedWriter(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// The caller of an outbox call and its optional session: the body's, else the routing
// header's (empty ref: none).
absl::StatusOr<Target> OptionalTargetOf(const grpc::CallbackServerContext& context,
                                        const callers::Callers& callers,
                                        const std::string& body_value) {
  if (body_value.empty() && context.client_metadata().count(kSessionHeader) == 0) {
    MP_ASSIGN_OR_RETURN(callers::Caller caller, CallerOf(context, callers));
    return Target{std::move(caller), ""};
  }
  return TargetOf(context, callers, body_value);
}

absl::Status ValidateSendId(const std::string& send_id) {
  if (send_id.empty()) return Invalid("send_id", "required");
  if (send_id.size() > 64 || !wire::IsCommandSafe(send_id)) return Invalid("send_id", "malformed");
  return absl::OkStatus();
}

// Tells a retried request from a different one under the same idempotency key: a hash of
// the request (without the session reference, which may be a name or an ID) in
// deterministic serialization. Not a security boundary: the key is the caller's own.
std::string RequestHash(const v1::SendMessageRequest& request) {
  v1::SendMessageRequest copy = request;
  copy.clear_session();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    copy.SerializeToCodedStream(&coded);
  }
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return absl::StrCat(absl::Hex(h, absl::kZeroPad16), ":", bytes.size());
}

absl::StatusOr<std::string> NewSendId(absl::string_view instance_tag) {
  // The same form as session IDs with "sd" for "ms": the instance tag routes it too.
  absl::StatusOr<std::string> id = NewSessionId(instance_tag);
  if (!id.ok()) return id.status();
  return absl::StrCat("sd", id->substr(2));
}

}  // namespace

SendServiceImpl::SendServiceImpl(net::EventLoop& loop, pool::Pool& pool, outbox::Outbox& outbox,
                                 const callers::Callers& callers,
                                 sender::SenderOptions sender_options, std::string instance_tag)
    : loop_(loop),
      pool_(pool),
      outbox_(outbox),
      callers_(callers),
      instance_tag_(std::move(instance_tag)),
      sender_(std::make_unique<sender::OutboxSender>(loop, pool, outbox, sender_options)) {}

SendServiceImpl::~SendServiceImpl() = default;

void SendServiceImpl::StartSender() { sender_->Start(); }

void SendServiceImpl::Drain(absl::AnyInvocable<void()> done) { sender_->Drain(std::move(done)); }

grpc::ServerUnaryReactor* SendServiceImpl::SendMessage(grpc::CallbackServerContext* context,
                                                       const v1::SendMessageRequest* request,
                                                       v1::SendMessageResponse* response) {
  CallReactor* reactor = NewCallReactor(context, loop_);
  absl::StatusOr<Target> ref = TargetOf(*context, callers_, request->session());
  if (!ref.ok()) {
    Finish(context, reactor, ref.status());
    return reactor;
  }
  const std::string& key = request->idempotency_key();
  if (key.size() > kMaxIdempotencyKeyBytes ||
      !std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    Finish(context, reactor, Invalid("idempotency_key", "at most 128 printable ASCII bytes"));
    return reactor;
  }
  absl::StatusOr<std::shared_ptr<const void>> hold = ReserveMessage(callers_, *request);
  if (!hold.ok()) {
    Finish(context, reactor, hold.status());
    return reactor;
  }
  reactor->Hold(*std::move(hold));
  absl::StatusOr<sender::Outgoing> outgoing = sender::Prepare(*request);
  if (!outgoing.ok()) {
    Finish(context, reactor, outgoing.status());
    return reactor;
  }
  auto out = std::make_shared<sender::Outgoing>(std::move(*outgoing));
  // Asynchronous or not is the session's choice: look at it on the loop.
  absl::Status found;
  session::SessionSnapshot target;
  loop_.RunSync([&] {
    absl::StatusOr<session::Session*> session = pool_.Use(ref->owner(), ref->ref);
    if (!session.ok()) {
      found = session.status();
    } else {
      target = (*session)->Snapshot();
    }
  });
  if (found.ok() && target.asynchronous) {
    QueueInOutbox(*request, target, std::move(*out), response,
                  [context, reactor](absl::Status status) { Finish(context, reactor, status); });
    return reactor;
  }
  if (!key.empty()) {
    Finish(
        context, reactor,
        ReasonError(absl::StatusCode::kUnimplemented, "NOT_IMPLEMENTED",
                    "idempotency_key is not implemented yet on synchronous sessions (asynchronous "
                    "sessions take one)"));
    return reactor;
  }
  loop_.Post([this, context, reactor, response, out, ref = std::move(*ref),
              call = reactor->token()] {
    absl::StatusOr<session::Link*> link = sender::SmtpLinkOf(pool_, ref.owner(), ref.ref);
    if (!link.ok()) return Finish(context, reactor, link.status());
    sender::Transact(
        **link, out, nullptr, std::move(call),
        [context, reactor, response, out](absl::Status status, smtp::SendResult result) mutable {
          if (status.ok()) {
            response->set_state(v1::SEND_STATE_SENT);
            for (const smtp::RecipientReply& r : result.recipients) {
              *response->add_recipients() = sender::ToRecipientResult(r);
            }
            response->set_server_reply(result.data_reply);
            response->set_message_id(out->message_id);
            response->set_size(result.size);
          }
          Finish(context, reactor, status);
        });
  });
  return reactor;
}

void SendServiceImpl::QueueInOutbox(const v1::SendMessageRequest& request,
                                    const session::SessionSnapshot& session, sender::Outgoing out,
                                    v1::SendMessageResponse* response,
                                    absl::AnyInvocable<void(absl::Status)> done) {
  std::string match_key = sender::MatchKey(session);
  if (match_key.empty()) {
    return done(
        ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                    "the session has no SMTP connection (start it with smtp or pop3_smtp)"));
  }
  absl::StatusOr<std::string> send_id = NewSendId(instance_tag_);
  if (!send_id.ok()) return done(send_id.status());
  outbox::Outbox::NewSend send;
  send.send_id = *std::move(send_id);
  send.owner = session.owner;
  send.match_key = match_key;
  send.session_id = session.id;
  send.idempotency_key = request.idempotency_key();
  if (!send.idempotency_key.empty()) send.request_hash = RequestHash(request);
  send.envelope.set_mail_from(out.envelope.mail_from);
  for (const std::string& r : out.envelope.rcpt_to) send.envelope.add_rcpt_to(r);
  send.envelope.set_request_dsn(out.envelope.request_dsn);
  send.require_all_recipients = out.require_all;
  send.message_id = out.message_id;
  send.subject = out.subject;
  send.source = std::move(out.source);
  // Committed (fsynced, in a batch with whatever else is waiting) before QUEUED is answered;
  // no gRPC thread waits for the disk meanwhile.
  outbox_.AddAsync(std::move(send),
                   [this, response, match_key = std::move(match_key),
                    done = std::move(done)](absl::StatusOr<outbox::Outbox::Added> added) mutable {
                     if (!added.ok()) return done(added.status());
                     response->set_state(v1::SEND_STATE_QUEUED);
                     response->set_send_id(added->status.send_id());
                     response->set_message_id(added->status.message_id());
                     response->set_size(added->status.size());
                     if (!added->existing) {
                       loop_.Post([this, match_key] { sender_->Kick(match_key); });
                     }
                     done(absl::OkStatus());
                   });
}

grpc::ServerUnaryReactor* SendServiceImpl::CheckAddress(grpc::CallbackServerContext* context,
                                                        const v1::CheckAddressRequest* request,
                                                        v1::CheckAddressResponse* response) {
  CallReactor* reactor = NewCallReactor(context, loop_);
  absl::StatusOr<callers::Caller> caller = CallerOf(*context, callers_);
  if (!caller.ok()) {
    Finish(context, reactor, caller.status());
    return reactor;
  }
  if (request->address().empty()) {
    Finish(context, reactor, Invalid("address", "required"));
    return reactor;
  }
  if (request->address().size() > kMaxAddressBytes) {
    Finish(context, reactor, Invalid("address", "at most 1024 bytes"));
    return reactor;
  }
  if (!v1::CheckMode_IsValid(request->mode())) {
    Finish(context, reactor, Invalid("mode", "unknown value"));
    return reactor;
  }
  bool server = request->mode() == v1::CHECK_MODE_SERVER;
  bool strict = request->mode() == v1::CHECK_MODE_STRICT || server;
  *response = sender::CheckAddressSyntax(request->address(), strict);
  if (!server || response->result() != v1::CHECK_RESULT_VALID) {
    Finish(context, reactor, absl::OkStatus());
    return reactor;
  }
  absl::StatusOr<Target> ref = TargetOf(*context, callers_, request->session());
  if (!ref.ok()) {
    Finish(context, reactor, ref.status());
    return reactor;
  }
  std::string address = response->parsed().address();
  bool vrfy = request->allow_vrfy();
  loop_.Post([this, context, reactor, response, address, vrfy, ref = std::move(*ref),
              call = reactor->token()] {
    absl::StatusOr<session::Link*> link = sender::SmtpLinkOf(pool_, ref.owner(), ref.ref);
    if (!link.ok()) return Finish(context, reactor, link.status());
    sender::ProbeAddress(**link, address, vrfy, call,
                         [context, reactor, response](absl::StatusOr<smtp::Reply> reply) mutable {
                           if (!reply.ok()) return Finish(context, reactor, reply.status());
                           sender::SetProbeVerdict(*reply, response);
                           Finish(context, reactor, absl::OkStatus());
                         });
  });
  return reactor;
}

absl::StatusOr<std::string> SendServiceImpl::ResolveSessionFilter(const Target& target) {
  if (target.ref.empty()) return target.ref;
  absl::StatusOr<session::SessionSnapshot> found;
  loop_.RunSync([&] { found = pool_.Get(target.owner(), target.ref); });
  if (found.ok()) return found->id;
  // The outbox outlives sessions: a closed session is still known by its ID (the outbox
  // queries below are the caller's own, so another caller's ID finds nothing).
  if (absl::IsNotFound(found.status()) && LooksLikeSessionId(target.ref)) return target.ref;
  return found.status();
}

grpc::ServerUnaryReactor* SendServiceImpl::GetSendStatus(grpc::CallbackServerContext* context,
                                                         const v1::GetSendStatusRequest* request,
                                                         v1::GetSendStatusResponse* response) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, [&]() -> absl::Status {
    MP_ASSIGN_OR_RETURN(Target ref, OptionalTargetOf(*context, callers_, request->session()));
    MP_RETURN_IF_ERROR(ValidateSendId(request->send_id()));
    MP_ASSIGN_OR_RETURN(std::string session_id, ResolveSessionFilter(ref));
    MP_ASSIGN_OR_RETURN(outbox::Outbox::Send send, outbox_.Get(ref.owner(), request->send_id()));
    if (!session_id.empty() && send.status.session_id() != session_id) {
      return ReasonError(absl::StatusCode::kNotFound, "SEND_NOT_FOUND",
                         absl::StrCat("no send ", request->send_id(), " in that session"));
    }
    *response->mutable_send() = std::move(send.status);
    return absl::OkStatus();
  }());
  return reactor;
}

grpc::ServerUnaryReactor* SendServiceImpl::ListOutbox(grpc::CallbackServerContext* context,
                                                      const v1::ListOutboxRequest* request,
                                                      v1::ListOutboxResponse* response) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, [&]() -> absl::Status {
    MP_ASSIGN_OR_RETURN(Target ref, OptionalTargetOf(*context, callers_, request->session()));
    if (request->page_size() < 0) return Invalid("page_size", "must not be negative");
    outbox::Outbox::ListQuery query;
    query.owner = ref.owner();
    // AIP-158: above the maximum is lowered to it, not refused.
    query.limit = request->page_size() == 0 ? 100 : std::min(request->page_size(), kMaxPageSize);
    for (int state : request->states()) {
      if (!v1::SendState_IsValid(state) || state == v1::SEND_STATE_UNSPECIFIED) {
        return Invalid("states", "unknown value");
      }
      query.states.push_back(static_cast<v1::SendState>(state));
    }
    // The page token is the queue position of the last send shown ("p" + decimal).
    if (const std::string& token = request->page_token(); !token.empty()) {
      if (token[0] != 'p' || !absl::SimpleAtoi(token.substr(1), &query.after_seq) ||
          query.after_seq < 0) {
        return Invalid("page_token", "not a token from ListOutbox");
      }
    }
    MP_ASSIGN_OR_RETURN(query.session_id, ResolveSessionFilter(ref));
    bool more = false;
    MP_ASSIGN_OR_RETURN(std::vector<outbox::Outbox::Send> sends, outbox_.List(query, &more));
    for (outbox::Outbox::Send& send : sends) *response->add_sends() = std::move(send.status);
    if (more) response->set_next_page_token(absl::StrCat("p", sends.back().seq));
    return absl::OkStatus();
  }());
  return reactor;
}

grpc::ServerUnaryReactor* SendServiceImpl::CancelSend(grpc::CallbackServerContext* context,
                                                      const v1::CancelSendRequest* request,
                                                      v1::CancelSendResponse* response) {
  auto* reactor = context->DefaultReactor();
  Finish(context, reactor, [&]() -> absl::Status {
    MP_ASSIGN_OR_RETURN(Target ref, OptionalTargetOf(*context, callers_, request->session()));
    MP_RETURN_IF_ERROR(ValidateSendId(request->send_id()));
    MP_ASSIGN_OR_RETURN(std::string session_id, ResolveSessionFilter(ref));
    if (!session_id.empty()) {
      MP_ASSIGN_OR_RETURN(outbox::Outbox::Send send, outbox_.Get(ref.owner(), request->send_id()));
      if (send.status.session_id() != session_id) {
        return ReasonError(absl::StatusCode::kNotFound, "SEND_NOT_FOUND",
                           absl::StrCat("no send ", request->send_id(), " in that session"));
      }
    }
    // Only a QUEUED send is cancelled: one in flight (PENDING) may be past its end of data.
    MP_ASSIGN_OR_RETURN(outbox::Outbox::Send send, outbox_.Cancel(ref.owner(), request->send_id()));
    *response->mutable_send() = std::move(send.status);
    return absl::OkStatus();
  }());
  return reactor;
}

// One WatchSendStatus stream. The outbox calls OnChange from whichever thread committed a
// change; everything here is under `shared_->mu`, which also tells a late outbox callback
// that the reactor is gone.
class SendServiceImpl::Watcher final
    : public grpc::ServerWriteReactor<v1::WatchSendStatusResponse> {
 public:
  struct Shared {
    std::mutex mu;
    Watcher* watcher = nullptr;
  };

  Watcher(SendServiceImpl* service, std::string owner, std::string session_id,
          std::set<std::string> ids)
      : service_(service),
        owner_(std::move(owner)),
        session_id_(std::move(session_id)),
        ids_(std::move(ids)),
        shared_(std::make_shared<Shared>()) {
    shared_->watcher = this;
  }

  // Registers with the outbox, then queues the current statuses asked for.
  void Begin(bool include_current) {
    std::shared_ptr<Shared> shared = shared_;
    listener_ = service_->outbox_.AddListener([shared](const outbox::Outbox::Send& send) {
      std::lock_guard<std::mutex> lock(shared->mu);
      if (shared->watcher != nullptr) shared->watcher->OnChangeLocked(send.owner, send.status);
    });
    absl::Status status;
    std::vector<v1::SendStatus> current;
    if (!ids_.empty()) {
      for (const std::string& id : ids_) {
        absl::StatusOr<outbox::Outbox::Send> send = service_->outbox_.Get(owner_, id);
        if (!send.ok()) {
          status = send.status();
          break;
        }
        current.push_back(std::move(send->status));
      }
    } else if (include_current) {
      outbox::Outbox::ListQuery query;
      query.owner = owner_;
      query.session_id = session_id_;
      query.states = {v1::SEND_STATE_QUEUED, v1::SEND_STATE_PENDING};
      query.limit = kMaxPageSize;
      bool more = true;
      while (status.ok() && more) {
        absl::StatusOr<std::vector<outbox::Outbox::Send>> page =
            service_->outbox_.List(query, &more);
        if (!page.ok()) {
          status = page.status();
          break;
        }
        for (auto& send : *page) current.push_back(std::move(send.status));
        if (!page->empty()) query.after_seq = page->back().seq;
      }
    }
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (!status.ok()) return FinishLocked(ToGrpcStatus(status, nullptr));
    for (v1::SendStatus& s : current) {
      if (!ids_.empty() && IsFinal(s.state())) final_.insert(s.send_id());
      if (include_current) Push(std::move(s));
    }
    WriteOrEndLocked();
  }

  void OnChangeLocked(const std::string& owner, const v1::SendStatus& status) {
    if (finished_ || owner != owner_) return;
    if (!session_id_.empty() && status.session_id() != session_id_) return;
    if (!ids_.empty()) {
      if (ids_.count(status.send_id()) == 0) return;
      if (IsFinal(status.state())) final_.insert(status.send_id());
    }
    Push(status);
    WriteOrEndLocked();
  }

  void Stop(grpc::Status status) {
    std::lock_guard<std::mutex> lock(shared_->mu);
    FinishLocked(std::move(status));
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
    pending_.pop_front();
    WriteOrEndLocked();
  }
  void OnCancel() override {
    std::lock_guard<std::mutex> lock(shared_->mu);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }
  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->watcher = nullptr;
    }
    service_->outbox_.RemoveListener(listener_);
    {
      std::lock_guard<std::mutex> lock(service_->watchers_mu_);
      service_->watchers_.erase(this);
    }
    delete this;
  }

 private:
  static bool IsFinal(v1::SendState state) {
    return state == v1::SEND_STATE_SENT || state == v1::SEND_STATE_ERROR ||
           state == v1::SEND_STATE_CANCELLED;
  }
  void Push(v1::SendStatus status) {
    // A slow reader must not make the daemon buffer without bound.
    if (pending_.size() >= 10000) {
      return FinishLocked(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "the watcher reads too slowly"));
    }
    v1::WatchSendStatusResponse response;
    *response.mutable_send() = std::move(status);
    pending_.push_back(std::move(response));
  }
  void WriteOrEndLocked() {
    if (finished_ || writing_) return;
    if (!pending_.empty()) {
      writing_ = true;
      StartWrite(&pending_.front());
      return;
    }
    // With IDs, the stream ends once every one is final.
    if (!ids_.empty() && final_.size() == ids_.size()) FinishLocked(grpc::Status::OK);
  }
  void FinishLocked(grpc::Status status) {
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }

  SendServiceImpl* service_;
  std::string owner_;  // only this caller's sends are watched
  std::string session_id_;
  std::set<std::string> ids_;
  std::set<std::string> final_;
  std::shared_ptr<Shared> shared_;
  int listener_ = 0;
  std::deque<v1::WatchSendStatusResponse> pending_;
  bool writing_ = false;
  bool finished_ = false;
};

grpc::ServerWriteReactor<v1::WatchSendStatusResponse>* SendServiceImpl::WatchSendStatus(
    grpc::CallbackServerContext* context, const v1::WatchSendStatusRequest* request) {
  std::string owner;
  absl::StatusOr<std::string> session_id = [&]() -> absl::StatusOr<std::string> {
    MP_ASSIGN_OR_RETURN(Target ref, OptionalTargetOf(*context, callers_, request->session()));
    owner = ref.owner();
    if (request->send_ids_size() > kMaxPageSize) return Invalid("send_ids", "at most 1000");
    for (const std::string& id : request->send_ids()) MP_RETURN_IF_ERROR(ValidateSendId(id));
    return ResolveSessionFilter(ref);
  }();
  if (!session_id.ok()) {
    return new FinishedWriter<v1::WatchSendStatusResponse>(
        ToGrpcStatus(session_id.status(), context));
  }
  auto* watcher =
      new Watcher(this, std::move(owner), std::move(*session_id),
                  std::set<std::string>(request->send_ids().begin(), request->send_ids().end()));
  {
    std::lock_guard<std::mutex> lock(watchers_mu_);
    if (watches_stopped_) {
      watcher->Stop(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down"));
      return watcher;
    }
    watchers_.insert(watcher);
  }
  watcher->Begin(request->include_current());
  return watcher;
}

void SendServiceImpl::StopWatches() {
  std::lock_guard<std::mutex> lock(watchers_mu_);
  watches_stopped_ = true;
  for (Watcher* w : watchers_) {
    w->Stop(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the daemon is shutting down"));
  }
}

}  // namespace mailpool::service
