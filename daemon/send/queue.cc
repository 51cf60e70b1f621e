#include "send/queue.h"

#include <algorithm>
#include <utility>

#include "common/status.h"

namespace mailpool::sender {

void SessionQueue::Enqueue(const std::string& owner, const std::string& ref, Job job,
                           std::shared_ptr<CallToken> call) {
  if (call && call->cancelled()) return job(call->status(), [] {});
  absl::StatusOr<session::Session*> session = pool_.Use(owner, ref);
  if (!session.ok()) return job(session.status(), [] {});
  if ((*session)->link(session::Protocol::kSmtp) == nullptr) {
    return job(ReasonError(absl::StatusCode::kFailedPrecondition, "WRONG_PROTOCOL",
                           "the session has no SMTP connection (start it with smtp or "
                           "pop3_smtp)"),
               [] {});
  }
  std::string id = (*session)->id();
  auto waiting = std::make_unique<Waiting>();
  waiting->job = std::move(job);
  if (call) {
    waiting->watch =
        call->OnCancel([this, owner, id, raw = waiting.get()](const absl::Status& why) {
          auto it = queues_.find(id);
          if (it == queues_.end()) return;
          auto& jobs = it->second.jobs;
          auto found =
              std::find_if(jobs.begin(), jobs.end(), [&](const auto& w) { return w.get() == raw; });
          if (found == jobs.end()) return;  // running: the link stops it
          Job cancelled = std::move((*found)->job);
          jobs.erase(found);
          cancelled(why, [] {});
          Pump(owner, id);  // forgets a queue left empty
        });
  }
  queues_[id].jobs.push_back(std::move(waiting));
  Pump(owner, id);
}

void SessionQueue::Pump(const std::string& owner, const std::string& session_id) {
  auto it = queues_.find(session_id);
  if (it == queues_.end() || it->second.running) return;
  if (it->second.jobs.empty()) {
    queues_.erase(it);
    return;
  }
  Job job = std::move(it->second.jobs.front()->job);
  it->second.jobs.pop_front();
  it->second.running = true;
  absl::AnyInvocable<void()> finished = [this, owner, session_id] {
    auto it = queues_.find(session_id);
    if (it == queues_.end()) return;
    it->second.running = false;
    // Later jobs run from a fresh loop callback, not inside the link's.
    loop_.Post([this, owner, session_id] { Pump(owner, session_id); });
  };
  absl::StatusOr<session::Session*> session = pool_.Use(owner, session_id);
  session::Link* link = session.ok() ? (*session)->link(session::Protocol::kSmtp) : nullptr;
  if (!session.ok()) return job(session.status(), std::move(finished));
  if (link == nullptr) {
    return job(absl::FailedPreconditionError("no SMTP link"), std::move(finished));
  }
  job(link, std::move(finished));
}

}  // namespace mailpool::sender
