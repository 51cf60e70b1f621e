// The per-session queue of SMTP jobs: sends, probes and outbox attempts on one session's
// SMTP link run one after another, in arrival order; a call cancelled while its job waits
// leaves the queue at once.
//
//   SessionQueue queue(loop, pool);
//   queue.Enqueue(owner, ref, [](absl::StatusOr<session::Link*> link,
//                                absl::AnyInvocable<void()> finished) { ...; finished(); },
//                 call);
//
// Loop-confined. (To be replaced by the link's own queue, session::Link's turn API.)
#ifndef MAILPOOL_SEND_QUEUE_H_
#define MAILPOOL_SEND_QUEUE_H_

#include <deque>
#include <map>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "common/call.h"
#include "net/event_loop.h"
#include "pool/pool.h"
#include "session/link.h"

namespace mailpool::sender {

class SessionQueue {
 public:
  // One command for a session's SMTP link; it gets the ready link (or the error that keeps
  // it from running) and calls `finished` when the link is free again.
  using Job = absl::AnyInvocable<void(absl::StatusOr<session::Link*> link,
                                      absl::AnyInvocable<void()> finished)>;

  SessionQueue(net::EventLoop& loop, pool::Pool& pool) : loop_(loop), pool_(pool) {}

  // Runs `job` on the SMTP link of `owner`'s session `ref` (a name or an ID) after the jobs
  // queued before it. Without such a session or SMTP link the job runs at once with the
  // error (FAILED_PRECONDITION WRONG_PROTOCOL for a session without SMTP). `call`
  // cancelled while the job waits: the job leaves the queue and runs at once with the
  // call's status (and no link).
  void Enqueue(const std::string& owner, const std::string& ref, Job job,
               std::shared_ptr<CallToken> call = nullptr);

 private:
  void Pump(const std::string& owner, const std::string& session_id);

  struct Waiting {
    Job job;
    CallToken::Watch watch;
  };
  struct Queue {
    bool running = false;
    std::deque<std::unique_ptr<Waiting>> jobs;
  };

  net::EventLoop& loop_;
  pool::Pool& pool_;
  // Per session ID, the jobs waiting and whether one is running.
  std::map<std::string, Queue> queues_;
};

}  // namespace mailpool::sender

#endif  // MAILPOOL_SEND_QUEUE_H_
