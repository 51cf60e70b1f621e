// OutboxSender: delivers the durable outbox's sends over asynchronous SMTP sessions.
//
// Sends are grouped in lanes by match key (owner, SMTP server, user): a lane delivers its
// sends one after another, oldest first, over a live asynchronous session with the same
// key (the one that queued the send if it still exists). Credentials are never stored, so
// a lane without such a session waits until the caller starts one again; the sender looks
// for one every `session_poll` while any lane waits.
//
// Each attempt: Outbox::MarkSending (committed before MAIL FROM), the mail transaction on
// the session's SMTP link with Outbox::MarkDataInFlight committed when the server says
// 354 (before the data and its end go out), then Outbox::Finish with the outcome:
//  - accepted: SENT with the per-recipient results and the reply to the end of data;
//  - 4xx, a lost or silent connection: QUEUED again after a capped exponential backoff
//    with jitter, until `max_attempts`, then ERROR (the link reconnects by itself);
//  - 5xx, refused recipients, a message the server cannot take: ERROR at once.
// A lane's next send waits while the head is in backoff: order is kept.
//
//   OutboxSender sender(loop, pool, outbox, options, queue);
//   sender.Start();                    // on the loop, once
//   sender.Kick(match_key);            // after a send was queued
//   sender.Drain([] { /* no attempt in flight */ });
//
// Loop-confined.
#ifndef MAILPOOL_SEND_OUTBOX_SENDER_H_
#define MAILPOOL_SEND_OUTBOX_SENDER_H_

#include <map>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mailpool/v1/send.pb.h"
#include "net/event_loop.h"
#include "net/timer.h"
#include "outbox/outbox.h"
#include "pool/pool.h"
#include "send/send.h"
#include "session/link.h"
#include "smtp/client.h"

namespace mailpool::sender {

struct SenderOptions {
  // Attempts per send, the first included, before a temporary failure becomes ERROR.
  int max_attempts = 8;
  // Wait before the second attempt; doubles per attempt up to max_backoff. The actual
  // wait is drawn between half and all of it (jitter), so many senders do not retry in step.
  absl::Duration initial_backoff = absl::Seconds(5);
  absl::Duration max_backoff = absl::Minutes(10);
  // How often a lane without a matching session looks for one.
  absl::Duration session_poll = absl::Milliseconds(200);
};

// The lane of a session: owner, SMTP server and user. Empty when the session has no SMTP
// link.
std::string MatchKey(const session::SessionSnapshot& session);

// The wait before the attempt after `attempts` failed ones (pure, for tests): capped
// exponential, scaled by `jitter` in [0.5, 1].
absl::Duration Backoff(const SenderOptions& options, int attempts, double jitter);

class OutboxSender {
 public:
  // Attempts wait in the session's SMTP link queue, after its earlier sends and probes.
  OutboxSender(net::EventLoop& loop, pool::Pool& pool, outbox::Outbox& outbox,
               SenderOptions options);
  ~OutboxSender();

  // Looks at every lane with pending sends.
  void Start();
  // Looks for work in one lane (a send was queued there).
  void Kick(const std::string& match_key);
  // Starts no new attempt from now on; `done` runs once no attempt is in flight.
  void Drain(absl::AnyInvocable<void()> done);

 private:
  struct Lane {
    bool busy = false;  // an attempt is running
    std::unique_ptr<net::Timer> timer;
  };
  // Loop: runs the lane's head send if due and a session is there.
  void Pump(const std::string& match_key);
  // The session to send `send` over: the one that queued it, else any asynchronous
  // session with the same key. Empty if none.
  std::string FindSession(const outbox::Outbox::Send& send);
  void Attempt(const std::string& match_key, const std::string& session_id,
               outbox::Outbox::Send send);
  void AttemptDone(const std::string& match_key, const std::string& send_id, int attempts,
                   absl::Status status, smtp::SendResult result);
  // The lane's attempt ended (or never began): free the lane, look for its next send.
  void Release(const std::string& match_key);
  void PollSessions();

  net::EventLoop& loop_;
  pool::Pool& pool_;
  outbox::Outbox& outbox_;
  SenderOptions options_;
  std::map<std::string, Lane> lanes_;
  std::map<std::string, bool> waiting_for_session_;
  net::Timer poll_timer_;
  bool draining_ = false;
  int in_flight_ = 0;
  absl::AnyInvocable<void()> drained_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mailpool::sender

#endif  // MAILPOOL_SEND_OUTBOX_SENDER_H_
