#include "pool/pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/session_id.h"
#include "common/status.h"

namespace mailpool::pool {
namespace {

std::string NameKey(const std::string& owner, const std::string& name) {
  return absl::StrCat(owner, "\n", name);
}

}  // namespace

Pool::Pool(net::EventLoop& loop, PoolOptions options) : loop_(loop), options_(std::move(options)) {}

Pool::~Pool() { Shutdown(); }

void Pool::Shutdown() {
  shut_down_ = true;
  // Every caller still waiting gets an answer, so no gRPC call is left unfinished.
  auto sessions = std::move(sessions_);
  sessions_.clear();
  names_.clear();
  per_owner_.clear();
  for (auto& [id, session] : sessions) {
    session->FailPending(ReasonError(absl::StatusCode::kUnavailable, "SHUTTING_DOWN",
                                     "the daemon is shutting down"));
  }
}

void Pool::Start(const std::string& owner, session::SessionSpec spec, StartDone done) {
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
  absl::StatusOr<std::string> id = NewSessionId(options_.instance_tag);
  if (!id.ok()) {
    done(id.status());
    return;
  }
  std::string name = spec.name;
  auto session = std::make_unique<session::Session>(loop_, *id, owner, std::move(spec),
                                                    [this] { return options_.default_timeout; });
  session::Session* raw = session.get();
  sessions_[*id] = std::move(session);
  if (!name.empty()) names_[NameKey(owner, name)] = *id;
  ++per_owner_[owner];
  raw->Start([this, raw, id = *id, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) {
      Forget(id);
      done(status);
      return;
    }
    done(raw->Snapshot());
  });
}

void Pool::Close(const std::string& owner, const std::string& key, CloseDone done) {
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
  session->Close([this, id, done = std::move(done)](std::string reply) mutable {
    Forget(id);
    done(std::move(reply));
  });
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
  if (session->state() == session::State::kClosed || session->closing()) {
    return ReasonError(absl::StatusCode::kNotFound, "SESSION_NOT_FOUND", "the session is closing");
  }
  session->Touch();
  return session;
}

std::vector<session::SessionSnapshot> Pool::List(const std::string& owner) const {
  std::vector<session::SessionSnapshot> out;
  for (const auto& [id, session] : sessions_) {
    if (session->owner() == owner) out.push_back(session->Snapshot());
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
    sessions_[id]->Close([this, id, remaining, shared_done](std::string) {
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
  // The session may be running the callback that got us here: destroy it later.
  loop_.Post([session = std::shared_ptr<session::Session>(std::move(session))] {});
}

}  // namespace mailpool::pool
