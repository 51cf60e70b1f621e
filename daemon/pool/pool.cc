#include "pool/pool.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/session_id.h"
#include "common/status.h"

namespace mailpool::pool {
namespace {

std::string NameKey(const std::string& owner, const std::string& name) {
  return absl::StrCat(owner, "\n", name);
}

constexpr size_t kEvictedMemory = 1024;

}  // namespace

Pool::Pool(net::EventLoop& loop, PoolOptions options)
    : loop_(loop), options_(std::move(options)), gate_(options_.max_handshakes_in_flight) {
  if (options_.link.clock == nullptr) options_.link.clock = &Clock::Real();
  options_.link.gate = &gate_;
  if (options_.tick_interval > absl::ZeroDuration()) {
    loop_.Post([this, alive = alive_] {
      if (*alive) ScheduleTick();
    });
  }
}

Pool::~Pool() {
  *alive_ = false;
  Shutdown();
}

std::string Pool::ServerKey(const session::LinkSpec& spec) {
  return absl::StrCat(absl::AsciiStrToLower(spec.endpoint.host), ":", spec.endpoint.port);
}

absl::Duration Pool::KeepaliveInterval(session::Protocol protocol) const {
  switch (protocol) {
    case session::Protocol::kImap:
      return options_.keepalive_imap;
    case session::Protocol::kPop3:
      return options_.keepalive_pop3;
    case session::Protocol::kSmtp:
      return options_.keepalive_smtp;
  }
  return absl::ZeroDuration();
}

void Pool::ScheduleTick() {
  if (shut_down_) return;
  if (!tick_timer_) tick_timer_ = std::make_unique<net::Timer>(loop_);
  tick_timer_->Start(options_.tick_interval, [this] {
    Tick();
    ScheduleTick();
  });
}

void Pool::Tick() {
  if (shut_down_) return;
  absl::Time now = options_.link.clock->Now();
  std::vector<session::Session*> due_idle, due_lifetime;
  for (const auto& [id, session] : sessions_) {
    if (!session->usable()) continue;
    if (options_.idle_timeout > absl::ZeroDuration() &&
        now - session->last_use() >= options_.idle_timeout) {
      due_idle.push_back(session.get());
      continue;
    }
    if (options_.max_lifetime > absl::ZeroDuration() &&
        now - session->create_time() >= options_.max_lifetime) {
      due_lifetime.push_back(session.get());
      continue;
    }
    for (const auto& link : session->links()) {
      absl::Duration every = KeepaliveInterval(link->spec().protocol);
      // A link running a command (IDLE included) or down is skipped: the first needs no
      // keepalive, the second reconnects when a call needs it.
      if (every > absl::ZeroDuration() && now - link->last_activity() >= every &&
          link->Keepalive()) {
        ++stats_.keepalives;
      }
    }
  }
  for (session::Session* s : due_idle) {
    ++stats_.evicted_idle;
    Evict(*s, absl::StrCat("it was not used for ", absl::FormatDuration(options_.idle_timeout),
                           " (--session_idle_timeout)"));
  }
  for (session::Session* s : due_lifetime) {
    ++stats_.evicted_lifetime;
    Evict(*s,
          absl::StrCat("it reached its maximum lifetime of ",
                       absl::FormatDuration(options_.max_lifetime), " (--session_max_lifetime)"));
  }
}

void Pool::Evict(session::Session& session, absl::string_view why) {
  std::string id = session.id();
  Log(LogLevel::kInfo, "session evicted", {{"session", id}, {"reason", std::string(why)}});
  if (evicted_order_.size() >= kEvictedMemory) {
    evicted_.erase(evicted_order_.front());
    evicted_order_.erase(evicted_order_.begin());
  }
  evicted_[id] = {session.owner(), absl::StrCat("the session was closed because ", why)};
  evicted_order_.push_back(id);
  session.Close([this, id](absl::Status, std::string) { Forget(id); });
}

PoolStats Pool::stats() const {
  PoolStats s = stats_;
  for (const auto& [id, session] : sessions_) {
    for (const auto& link : session->links()) {
      s.reconnects += link->reconnect_count();
      s.failed_reconnects += link->failed_attempts();
    }
  }
  s.reconnects += forgotten_reconnects_;
  s.failed_reconnects += forgotten_failed_;
  s.handshakes_in_flight = gate_.in_flight();
  s.peak_handshakes_in_flight = gate_.peak();
  s.handshakes_waiting = gate_.waiting();
  return s;
}

void Pool::Shutdown() {
  shut_down_ = true;
  if (tick_timer_) tick_timer_->Cancel();
  // Every caller still waiting gets an answer, so no gRPC call is left unfinished.
  auto sessions = std::move(sessions_);
  sessions_.clear();
  names_.clear();
  per_owner_.clear();
  per_server_.clear();
  for (auto& [id, session] : sessions) {
    session->FailPending(ReasonError(absl::StatusCode::kUnavailable, "SHUTTING_DOWN",
                                     "the daemon is shutting down"));
  }
}

void Pool::Start(const std::string& owner, session::SessionSpec spec, StartDone done,
                 std::shared_ptr<CallToken> call) {
  if (shut_down_) {
    done(ReasonError(absl::StatusCode::kUnavailable, "SHUTTING_DOWN",
                     "the daemon is shutting down"));
    return;
  }
  if (options_.max_sessions_per_owner > 0 && per_owner_[owner] >= options_.max_sessions_per_owner) {
    done(ReasonError(absl::StatusCode::kResourceExhausted, "TOO_MANY_SESSIONS",
                     absl::StrCat("at most ", options_.max_sessions_per_owner,
                                  " sessions per caller; close some first")));
    return;
  }
  if (!spec.name.empty() && names_.contains(NameKey(owner, spec.name))) {
    done(ReasonError(absl::StatusCode::kAlreadyExists, "NAME_TAKEN",
                     absl::StrCat("a session named \"", spec.name, "\" already exists")));
    return;
  }
  if (options_.max_connections_per_server > 0) {
    for (const session::LinkSpec& link : spec.links) {
      auto it = per_server_.find(ServerKey(link));
      if (it != per_server_.end() && it->second >= options_.max_connections_per_server) {
        done(ReasonError(absl::StatusCode::kResourceExhausted, "TOO_MANY_CONNECTIONS",
                         absl::StrCat("at most ", options_.max_connections_per_server,
                                      " connections to the mail server ", ServerKey(link),
                                      " (--max_connections_per_server); close some sessions "
                                      "first")));
        return;
      }
    }
  }
  absl::StatusOr<std::string> id = NewSessionId(options_.instance_tag);
  if (!id.ok()) {
    done(id.status());
    return;
  }
  std::string name = spec.name;
  for (const session::LinkSpec& link : spec.links) ++per_server_[ServerKey(link)];
  auto session = std::make_unique<session::Session>(
      loop_, *id, owner, std::move(spec), [this] { return options_.default_timeout; },
      &options_.link);
  session::Session* raw = session.get();
  sessions_[*id] = std::move(session);
  if (!name.empty()) names_[NameKey(owner, name)] = *id;
  ++per_owner_[owner];
  raw->Start(
      [this, raw, id = *id, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) {
          Forget(id);
          done(status);
          return;
        }
        done(raw->Snapshot());
      },
      std::move(call));
}

void Pool::Close(const std::string& owner, const std::string& key, CloseDone done,
                 std::shared_ptr<CallToken> call) {
  absl::StatusOr<session::Session*> found = Find(owner, key);
  if (!found.ok()) {
    done(found.status());
    return;
  }
  session::Session* session = *found;
  if (session->state() == session::State::kConnecting) {
    done(absl::FailedPreconditionError("the session is still starting"));
    return;
  }
  if (session->state() == session::State::kClosed || session->closing()) {
    done(ReasonError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND",
                     "the session is already closing"));
    return;
  }
  std::string id = session->id();
  session->Close(
      [this, id, done = std::move(done)](absl::Status status, std::string reply) mutable {
        Forget(id);
        if (!status.ok()) return done(status);
        done(std::move(reply));
      },
      std::move(call));
}

absl::StatusOr<session::SessionSnapshot> Pool::Get(const std::string& owner,
                                                   const std::string& key) {
  MP_ASSIGN_OR_RETURN(session::Session * session, Find(owner, key));
  return session->Snapshot();
}

absl::StatusOr<session::Session*> Pool::Use(const std::string& owner, const std::string& key) {
  MP_ASSIGN_OR_RETURN(session::Session * session, Find(owner, key));
  if (session->state() == session::State::kConnecting) {
    return absl::FailedPreconditionError("the session is still starting");
  }
  if (!session->usable()) {
    return ReasonError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND", "the session is closing");
  }
  session->Touch();
  return session;
}

std::vector<session::SessionSnapshot> Pool::List(const std::string& owner) const {
  return ListWhere(&owner);
}

std::vector<session::SessionSnapshot> Pool::ListAll() const { return ListWhere(nullptr); }

absl::optional<std::string> Pool::OwnerOf(const std::string& id) const {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return absl::nullopt;
  return it->second->owner();
}

std::vector<session::SessionSnapshot> Pool::ListWhere(const std::string* owner) const {
  std::vector<session::SessionSnapshot> out;
  for (const auto& [id, session] : sessions_) {
    if (owner == nullptr || session->owner() == *owner) out.push_back(session->Snapshot());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.create_time != b.create_time ? a.create_time < b.create_time : a.id < b.id;
  });
  return out;
}

absl::StatusOr<session::SessionSnapshot> Pool::UpdateTimeout(
    const std::string& owner, const std::string& key, absl::optional<absl::Duration> timeout) {
  MP_ASSIGN_OR_RETURN(session::Session * session, Find(owner, key));
  session->SetTimeout(timeout);
  return session->Snapshot();
}

void Pool::CloseAll(absl::AnyInvocable<void()> done) {
  auto remaining = std::make_shared<size_t>(0);
  auto shared_done = std::make_shared<absl::AnyInvocable<void()>>(std::move(done));
  std::vector<std::string> ids;
  for (const auto& [id, session] : sessions_) {
    if (session->state() != session::State::kConnecting &&
        session->state() != session::State::kClosed && !session->closing()) {
      ids.push_back(id);
    }
  }
  *remaining = ids.size();
  if (ids.empty()) {
    (*shared_done)();
    return;
  }
  for (const std::string& id : ids) {
    sessions_[id]->Close([this, id, remaining, shared_done](absl::Status, std::string) {
      Forget(id);
      if (--*remaining == 0) (*shared_done)();
    });
  }
}

absl::StatusOr<session::Session*> Pool::Find(const std::string& owner,
                                             const std::string& key) const {
  std::string id = key;
  if (!LooksLikeSessionId(key)) {
    auto it = names_.find(NameKey(owner, key));
    if (it == names_.end()) {
      return ReasonError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND",
                         absl::StrCat("no session named \"", key, "\""));
    }
    id = it->second;
  }
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->owner() != owner) {
    // Only its owner hears why a session went away; to anyone else it never existed.
    auto gone = evicted_.find(id);
    if (gone != evicted_.end() && it == sessions_.end() && gone->second.first == owner) {
      return ReasonError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND", gone->second.second);
    }
    return ReasonError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND",
                       absl::StrCat("no session with ID ", key));
  }
  return it->second.get();
}

void Pool::Forget(const std::string& id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  std::unique_ptr<session::Session> session = std::move(it->second);
  sessions_.erase(it);
  if (!session->name().empty()) names_.erase(NameKey(session->owner(), session->name()));
  if (--per_owner_[session->owner()] <= 0) per_owner_.erase(session->owner());
  for (const auto& link : session->links()) {
    std::string key = ServerKey(link->spec());
    if (--per_server_[key] <= 0) per_server_.erase(key);
    forgotten_reconnects_ += link->reconnect_count();
    forgotten_failed_ += link->failed_attempts();
  }
  // The session may be running the callback that got us here: destroy it later.
  loop_.Post([session = std::shared_ptr<session::Session>(std::move(session))] {});
}

}  // namespace mailpool::pool
