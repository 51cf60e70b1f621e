#include "session/session.h"

#include "common/status.h"

namespace mailpool::session {

Session::Session(net::EventLoop& loop, std::string id, std::string owner, SessionSpec spec,
                 std::function<absl::Duration()> default_timeout, const LinkPolicy* policy)
    : loop_(loop),
      id_(std::move(id)),
      owner_(std::move(owner)),
      spec_(std::move(spec)),
      default_timeout_(std::move(default_timeout)),
      clock_(policy != nullptr ? policy->clock : &Clock::Real()) {
  // The links own their specs (credentials, CA): one copy per session, not two.
  for (LinkSpec& link : spec_.links) {
    links_.push_back(std::make_unique<Link>(
        loop_, std::move(link), [this] { return EffectiveTimeout(); }, policy));
  }
  spec_.links.clear();
}

Session::~Session() { *alive_ = false; }

absl::Duration Session::EffectiveTimeout() const {
  return spec_.timeout.has_value() ? *spec_.timeout : default_timeout_();
}

void Session::Start(Done done, std::shared_ptr<CallToken> call) {
  start_done_ = std::move(done);
  StartLink(0, std::move(call));
}

void Session::StartLink(size_t index, std::shared_ptr<CallToken> call) {
  if (index == links_.size()) {
    started_ = true;
    auto cb = std::move(start_done_);
    cb(absl::OkStatus());
    return;
  }
  links_[index]->Open(
      [this, index, call](absl::Status status) mutable {
        if (!status.ok()) {
          last_error_ = std::string(status.message());
          for (auto& link : links_) link->Abort();
          closed_ = true;
          auto cb = std::move(start_done_);
          cb(status);
          return;
        }
        StartLink(index + 1, std::move(call));
      },
      call);
}

void Session::Close(CloseDone done, std::shared_ptr<CallToken> call) {
  closing_ = true;
  close_done_ = std::move(done);
  if (extension_) extension_->OnClose();
  if (call) {
    if (call->cancelled()) return AbandonClose(call->status());
    close_watch_ = call->OnCancel([this, alive = alive_](const absl::Status& why) {
      if (*alive && close_done_) AbandonClose(why);
    });
  }
  CloseLink(0);
}

void Session::AbandonClose(const absl::Status& why) {
  close_watch_.Reset();
  closed_ = true;
  CloseDone cb = std::move(close_done_);
  close_done_ = nullptr;
  auto alive = alive_;
  // A logout answered here continues CloseLink(), which stops: the session is closed.
  for (auto& link : links_) {
    link->FailPending(why);
    if (!*alive) return;
  }
  if (cb) cb(why, std::string());
}

void Session::UpdateCredentials(std::vector<wire::LoginOptions> per_link, Done done,
                                std::shared_ptr<CallToken> call) {
  std::vector<Link*> relogin;
  for (size_t i = 0; i < links_.size() && i < per_link.size(); ++i) {
    if (links_[i]->UpdateCredentials(per_link[i])) relogin.push_back(links_[i].get());
  }
  if (relogin.empty()) return done(absl::OkStatus());
  // Every cleared link logs in again at once (a NOOP reconnects through the normal path);
  // the answer waits for all of them and carries the first error.
  struct Pending {
    size_t remaining = 0;
    absl::Status first_error;
    Done done;
  };
  auto pending = std::make_shared<Pending>();
  pending->remaining = relogin.size();
  pending->done = std::move(done);
  for (Link* link : relogin) {
    RunOptions options;
    options.call = call;
    link->Noop(
        [pending](absl::Status status) {
          if (!status.ok() && pending->first_error.ok()) pending->first_error = status;
          if (--pending->remaining == 0) {
            auto cb = std::move(pending->done);
            cb(pending->first_error);
          }
        },
        std::move(options));
  }
}

void Session::FailPending(absl::Status status) {
  for (auto& link : links_) link->FailPending(status);
  closed_ = true;
  if (auto cb = std::move(start_done_)) {
    start_done_ = nullptr;
    cb(status);
  }
  close_watch_.Reset();
  if (auto cb = std::move(close_done_)) {
    close_done_ = nullptr;
    cb(status, std::string());
  }
}

void Session::CloseLink(size_t index) {
  if (!close_done_) return;  // abandoned (AbandonClose, FailPending)
  if (index == links_.size()) {
    closed_ = true;
    close_watch_.Reset();
    auto cb = std::move(close_done_);
    close_done_ = nullptr;
    cb(absl::OkStatus(), std::move(close_reply_));
    return;
  }
  links_[index]->Logout([this, index](absl::Status status, std::string reply) {
    if (index == 0) close_reply_ = std::move(reply);
    CloseLink(index + 1);
  });
}

Link* Session::link(Protocol protocol) {
  for (auto& link : links_) {
    if (link->spec().protocol == protocol) return link.get();
  }
  return nullptr;
}

State Session::state() const {
  if (closed_) return State::kClosed;
  if (!started_) return State::kConnecting;
  // A link that is down but will reconnect on the next call is BROKEN until then (its
  // last_error says why); one whose credentials were refused stays BROKEN.
  for (const auto& link : links_) {
    if (!link->broken().ok() && !link->reconnecting()) return State::kBroken;
  }
  for (const auto& link : links_) {
    if (!link->ready()) return State::kBusy;
  }
  return State::kReady;
}

SessionSnapshot Session::Snapshot() const {
  SessionSnapshot s;
  s.id = id_;
  s.name = spec_.name;
  s.owner = owner_;
  s.kind = spec_.kind;
  s.state = state();
  s.user = links_.empty() ? "" : links_.front()->spec().login.user;
  for (const auto& link : links_) {
    LinkSnapshot l;
    l.protocol = link->spec().protocol;
    l.host = link->spec().endpoint.host;
    l.port = link->spec().endpoint.port;
    l.security = link->spec().login.security;
    l.tls = link->tls_info();
    if (const wire::ServerInfo* info = link->server_info()) l.server = *info;
    s.links.push_back(std::move(l));
    s.reconnect_count += link->reconnect_count();
    if (!link->broken().ok()) {
      s.last_error = std::string(link->broken().message());
    } else if (s.last_error.empty()) {
      s.last_error = link->last_error();
    }
  }
  if (s.last_error.empty()) s.last_error = last_error_;
  s.timeout = EffectiveTimeout();
  s.timeout_overridden = spec_.timeout.has_value();
  s.create_time = created_;
  s.last_use_time = last_use_;
  if (spec_.kind == Kind::kImap) {
    const std::string& folder = links_.front()->spec().initial_folder;
    s.current_folder = folder.empty() ? "INBOX" : folder;
  }
  s.asynchronous = spec_.asynchronous;
  return s;
}

}  // namespace mailpool::session
