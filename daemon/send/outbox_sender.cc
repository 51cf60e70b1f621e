#include "send/outbox_sender.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace mailpool::sender {
namespace {

// Failures worth another attempt: the server said 4xx, the connection was lost or went
// silent. Everything else (5xx, a message the server cannot take) will fail again.
bool IsTemporary(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded ||
         status.code() == absl::StatusCode::kAborted;
}

double Jitter() {
  static thread_local std::mt19937 random{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.5, 1.0)(random);
}

}  // namespace

std::string MatchKey(const session::SessionSnapshot& session) {
  for (const session::LinkSnapshot& link : session.links) {
    if (link.protocol != session::Protocol::kSmtp) continue;
    return absl::StrCat(session.owner, "\n", absl::AsciiStrToLower(link.host), ":", link.port, "\n",
                        session.user);
  }
  return "";
}

absl::Duration Backoff(const SenderOptions& options, int attempts, double jitter) {
  absl::Duration wait = options.initial_backoff;
  for (int i = 1; i < attempts && wait < options.max_backoff; ++i) wait *= 2;
  return std::min(wait, options.max_backoff) * jitter;
}

OutboxSender::OutboxSender(net::EventLoop& loop, pool::Pool& pool, outbox::Outbox& outbox,
                           SenderOptions options)
    : loop_(loop), pool_(pool), outbox_(outbox), options_(options), poll_timer_(loop) {}

OutboxSender::~OutboxSender() { *alive_ = false; }

void OutboxSender::Start() {
  absl::StatusOr<std::vector<std::string>> keys = outbox_.PendingKeys();
  if (!keys.ok()) {
    Log(LogLevel::kError, "outbox: cannot list pending sends",
        {{"error", std::string(keys.status().message())}});
    return;
  }
  for (const std::string& key : *keys) Pump(key);
}

void OutboxSender::Kick(const std::string& match_key) { Pump(match_key); }

void OutboxSender::Drain(absl::AnyInvocable<void()> done) {
  draining_ = true;
  poll_timer_.Cancel();
  for (auto& [key, lane] : lanes_) {
    if (lane.timer) lane.timer->Cancel();
  }
  if (in_flight_ == 0) return done();
  drained_ = std::move(done);
}

void OutboxSender::Pump(const std::string& match_key) {
  if (draining_) return;
  Lane& lane = lanes_[match_key];
  if (lane.busy) return;
  absl::StatusOr<outbox::Outbox::Send> next = outbox_.NextPending(match_key);
  if (!next.ok()) {
    if (!absl::IsNotFound(next.status())) {
      Log(LogLevel::kError, "outbox: cannot read the queue",
          {{"error", std::string(next.status().message())}});
    }
    lanes_.erase(match_key);
    return;
  }
  const google::protobuf::Timestamp& due_ts = next->status.next_attempt_time();
  absl::Time due = absl::FromUnixSeconds(due_ts.seconds()) + absl::Nanoseconds(due_ts.nanos());
  absl::Time now = absl::Now();
  if (due > now) {
    if (!lane.timer) lane.timer = std::make_unique<net::Timer>(loop_);
    lane.timer->Start(due - now, [this, match_key] { Pump(match_key); });
    return;
  }
  std::string session_id = FindSession(*next);
  if (session_id.empty()) {
    // Credentials are not stored: wait for the caller to start a matching session.
    waiting_for_session_[match_key] = true;
    if (!poll_timer_.armed()) {
      poll_timer_.Start(options_.session_poll, [this] { PollSessions(); });
    }
    return;
  }
  Attempt(match_key, session_id, std::move(*next));
}

void OutboxSender::PollSessions() {
  std::map<std::string, bool> waiting = std::move(waiting_for_session_);
  waiting_for_session_.clear();
  for (const auto& [key, unused] : waiting) Pump(key);
}

std::string OutboxSender::FindSession(const outbox::Outbox::Send& send) {
  std::string found;
  for (const session::SessionSnapshot& s : pool_.List(send.owner)) {
    if (!s.asynchronous || s.state == session::State::kConnecting ||
        s.state == session::State::kClosed || MatchKey(s) != send.match_key) {
      continue;
    }
    if (s.id == send.status.session_id()) return s.id;
    if (found.empty()) found = s.id;
  }
  return found;
}

void OutboxSender::Attempt(const std::string& match_key, const std::string& session_id,
                           outbox::Outbox::Send send) {
  lanes_[match_key].busy = true;
  ++in_flight_;
  const std::string id = send.status.send_id();
  absl::StatusOr<session::Link*> link = SmtpLinkOf(pool_, send.owner, session_id);
  if (!link.ok()) {
    // The session went away before the attempt began: nothing was tried.
    return Release(match_key);
  }
  if (absl::Status marked = outbox_.MarkSending(id); !marked.ok()) {
    // Cancelled meanwhile (FAILED_PRECONDITION), or the database failed: nothing was tried.
    if (!absl::IsFailedPrecondition(marked)) {
      Log(LogLevel::kError, "outbox: cannot mark a send",
          {{"send", id}, {"error", std::string(marked.message())}});
    }
    return Release(match_key);
  }
  int attempts = static_cast<int>(send.status.attempts()) + 1;
  auto complete = [this, alive = alive_, match_key, id, attempts](absl::Status status,
                                                                  smtp::SendResult result) mutable {
    if (*alive) AttemptDone(match_key, id, attempts, std::move(status), std::move(result));
  };
  absl::StatusOr<std::string> source = outbox_.Source(id);
  if (!source.ok()) return complete(source.status(), smtp::SendResult());
  auto out = std::make_shared<Outgoing>();
  out->envelope.mail_from = send.envelope.mail_from();
  out->envelope.rcpt_to.assign(send.envelope.rcpt_to().begin(), send.envelope.rcpt_to().end());
  out->envelope.request_dsn = send.envelope.request_dsn();
  out->require_all = send.require_all_recipients;
  out->source = std::move(*source);
  // The attempt waits in the link's queue behind the session's earlier commands, marked
  // SENDING. A dropped connection is reopened by the link (logging in again) before the
  // command runs; one dropped during the transaction is not repeated by the link (the
  // server may have the message): the outbox retries it, marked possibly sent if its data
  // was in flight.
  Transact(
      **link, std::move(out),
      [this, id] {
        if (absl::Status s = outbox_.MarkDataInFlight(id); !s.ok()) {
          Log(LogLevel::kError, "outbox: cannot mark data in flight",
              {{"send", id}, {"error", std::string(s.message())}});
        }
      },
      nullptr, std::move(complete));
}

void OutboxSender::Release(const std::string& match_key) {
  lanes_[match_key].busy = false;
  --in_flight_;
  if (draining_) {
    if (in_flight_ == 0 && drained_) std::exchange(drained_, nullptr)();
    return;
  }
  loop_.Post([this, alive = alive_, match_key] {
    if (*alive) Pump(match_key);
  });
}

void OutboxSender::AttemptDone(const std::string& match_key, const std::string& send_id,
                               int attempts, absl::Status status, smtp::SendResult result) {
  outbox::Outbox::Outcome outcome;
  outcome.interrupted = IsTemporary(status);
  for (const smtp::RecipientReply& r : result.recipients) {
    outcome.recipients.push_back(ToRecipientResult(r));
  }
  if (status.ok()) {
    outcome.state = v1::SEND_STATE_SENT;
    outcome.server_reply = result.data_reply;
    outcome.detail = absl::StrCat("sent: ", result.data_reply);
  } else if (IsTemporary(status) && attempts < options_.max_attempts) {
    outcome.state = v1::SEND_STATE_QUEUED;
    absl::Duration wait = Backoff(options_, attempts, Jitter());
    outcome.next_attempt_time = absl::Now() + wait;
    outcome.detail =
        absl::StrCat("attempt ", attempts, " failed (", status.message(), "); retrying in ",
                     absl::FormatDuration(absl::Trunc(wait, absl::Milliseconds(1))));
  } else {
    outcome.state = v1::SEND_STATE_ERROR;
    outcome.detail = IsTemporary(status)
                         ? absl::StrCat("gave up after ", attempts, " attempts: ", status.message())
                         : std::string(status.message());
  }
  if (absl::Status s = outbox_.Finish(send_id, std::move(outcome)); !s.ok()) {
    Log(LogLevel::kError, "outbox: cannot record an outcome",
        {{"send", send_id}, {"error", std::string(s.message())}});
  }
  Release(match_key);
}

}  // namespace mailpool::sender
