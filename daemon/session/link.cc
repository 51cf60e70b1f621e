#include "session/link.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "imap/client.h"
#include "pop3/client.h"
#include "smtp/client.h"

namespace mailpool::session {
namespace {

using Phase = wire::ClientProtocol::Phase;

std::unique_ptr<wire::ClientProtocol> NewClient(const LinkSpec& spec) {
  switch (spec.protocol) {
    case Protocol::kImap: {
      imap::Options options;
      options.login = spec.login;
      options.initial_folder = spec.initial_folder;
      return imap::NewClient(std::move(options));
    }
    case Protocol::kPop3:
      return pop3::NewClient(spec.login);
    case Protocol::kSmtp:
      return smtp::NewClient(spec.login);
  }
  return nullptr;
}

const LinkPolicy& DefaultPolicy() {
  static const LinkPolicy* policy = new LinkPolicy();
  return *policy;
}

// Refusals that logging in again cannot fix: retrying them would only hammer the server
// (and, for credentials, risk locking the account).
bool IsPermanent(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
      return true;
    default:
      return false;
  }
}

// Whether a reconnect can cure what broke the link: a lost connection, a server that
// restarted, yes; data the client cannot accept (a protocol violation: an oversize
// literal, broken framing) no — the same command would meet the same answer.
bool CuredByReconnect(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         GetPayloadText(status, kReasonPayload).value_or("") != "PROTOCOL_VIOLATION";
}

// Errors worth a line in the log and in last_error although the link stays usable.
bool IsServerFault(const absl::Status& status) {
  std::string reason = GetPayloadText(status, kReasonPayload).value_or("");
  return reason == "MALFORMED_RESPONSE" || reason == "PROTOCOL_VIOLATION";
}

}  // namespace

struct Link::Pending {
  bool logout = false;
  Turn turn;
  LogoutDone logout_done;
  RunOptions options;
  int attempts = 0;      // reconnects started while this command waited
  bool started = false;  // a step ran (a later one on a new connection calls `restart`)
  bool dropped = false;  // the connection dropped under it: `restart` before the next step
  bool yielded = false;  // Turn::yield was called during the running step
  CallToken::Watch watch;
};

absl::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kImap:
      return "IMAP";
    case Protocol::kPop3:
      return "POP3";
    case Protocol::kSmtp:
      return "SMTP";
  }
  return "?";
}

Link::Link(net::EventLoop& loop, LinkSpec spec, std::function<absl::Duration()> silence_timeout,
           const LinkPolicy* policy)
    : loop_(loop),
      spec_(std::move(spec)),
      silence_timeout_(std::move(silence_timeout)),
      policy_(policy != nullptr ? policy : &DefaultPolicy()),
      silence_timer_(loop),
      backoff_(policy_->backoff),
      last_activity_(policy_->clock->Now()) {}

Link::~Link() {
  *alive_ = false;
  Abort();
}

bool Link::ready() const {
  return broken_.ok() && client_ && connection_ && client_->phase() == Phase::kReady &&
         op_ == Op::kNone;
}

const wire::ServerInfo* Link::server_info() const { return client_ ? &client_->info() : nullptr; }

net::TlsInfo Link::tls_info() const {
  return connection_ ? connection_->tls_info() : net::TlsInfo{};
}

void Link::Open(Done done, std::shared_ptr<CallToken> call) {
  if (call && call->cancelled()) return done(call->status());
  done_ = std::move(done);
  open_call_ = std::move(call);
  internal_open_ = false;
  if (open_call_) {
    // The watcher lives in the token only as long as the Open runs (see OnOpened).
    open_watch_ = open_call_->OnCancel([this, alive = alive_](const absl::Status& why) {
      if (!*alive || op_ != Op::kOpen || internal_open_) return;
      Abort();
      op_ = Op::kNone;
      open_call_.reset();
      if (auto cb = std::move(done_)) {
        done_ = nullptr;
        cb(why);
      }
    });
  }
  StartOpen();
}

void Link::StartOpen() {
  if (connection_) Abort();
  broken_ = absl::OkStatus();
  paused_ = false;
  aborted_ = false;
  op_ = Op::kOpen;
  ++attempt_seq_;
  attempt_epoch_ = credentials_epoch_;
  if (spec_.login.token_source) {
    // Refreshable OAuth2 credentials: a current access token first (may answer at once).
    bool fresh = std::exchange(fresh_token_, false);
    spec_.login.token_source->Get(
        fresh, [this, alive = alive_, seq = attempt_seq_](absl::StatusOr<Secret> token) {
          if (!*alive || seq != attempt_seq_ || op_ != Op::kOpen) return;
          if (!token.ok()) return Complete(token.status());
          spec_.login.oauth2_token = *std::move(token);
          Handshake();
        });
    return;
  }
  Handshake();
}

void Link::Handshake() {
  client_ = NewClient(spec_);
  if (policy_->gate != nullptr) {
    // Connect() may run inside Acquire (a free slot) or later, when another login ends.
    ticket_ = policy_->gate->Acquire([this] { Connect(); },
                                     absl::StrCat(spec_.endpoint.host, ":", spec_.endpoint.port));
  } else {
    Connect();
  }
}

void Link::Connect() {
  net::Endpoint endpoint = spec_.endpoint;
  endpoint.connect_timeout = std::min(endpoint.connect_timeout, silence_timeout_());
  net::Connection::Connect(loop_, endpoint,
                           [this, alive = alive_, seq = attempt_seq_](
                               absl::StatusOr<std::unique_ptr<net::Connection>> connection) {
                             // A later Open() or Abort() superseded this attempt: its socket just
                             // closes.
                             if (*alive && seq == attempt_seq_ && op_ == Op::kOpen)
                               OnConnected(std::move(connection));
                           });
}

void Link::OnConnected(absl::StatusOr<std::unique_ptr<net::Connection>> connection) {
  if (aborted_) return;  // the connection, if any, closes as it goes out of scope
  if (!connection.ok()) return Complete(connection.status());
  connection_ = std::move(*connection);
  greeted_ = false;
  if (spec_.login.security == wire::Security::kImplicitTls) {
    tls_in_progress_ = true;
    ArmSilenceTimer();
    connection_->StartTls(spec_.tls, [this](absl::Status status) {
      tls_in_progress_ = false;
      if (!status.ok()) return Complete(status);
      Pump();
    });
    return;
  }
  Pump();
}

void Link::OnOpened(absl::Status status) {
  ticket_.reset();  // the next login waiting at the gate may start
  // The server refused an OAuth2 access token that came from the source's cache (revoked,
  // or its lifetime was shorter than it said): once, a new token and a new login.
  if (status.code() == absl::StatusCode::kUnauthenticated && spec_.login.token_source &&
      !token_retried_ && attempt_epoch_ == credentials_epoch_ &&
      GetPayloadText(status, kReasonPayload).value_or("") != "OAUTH2_REFRESH_FAILED") {
    token_retried_ = true;
    fresh_token_ = true;
    Abort();
    StartOpen();
    return;
  }
  token_retried_ = false;
  bool internal = internal_open_;
  internal_open_ = false;
  open_watch_.Reset();
  open_call_.reset();
  absl::Time now = Now();
  if (status.ok()) {
    ++generation_;
    // A reconnect after the client itself dropped a link over data it could not accept
    // is not a sign of an unreachable server: not counted.
    if (internal && !dropped_by_client_) ++reconnects_;
    dropped_by_client_ = false;
    connected_at_ = now;
    last_activity_ = now;
  } else {
    if (broken_.ok()) broken_ = status;
    last_error_ = std::string(status.message());
    Abort();
    // A refusal of credentials replaced meanwhile says nothing about the new ones: the
    // next attempt tries them at once.
    bool stale = attempt_epoch_ != credentials_epoch_;
    if (IsPermanent(status) && !stale) permanent_ = status;
    if (internal) {
      ++failed_attempts_;
      ScheduleRetry(/*failed_attempt=*/true);
    }
    if (stale) next_attempt_ = now;
  }
  replaced_secrets_.clear();
  if (!internal) {
    if (auto cb = std::move(done_)) {
      done_ = nullptr;
      auto alive = alive_;
      cb(WithProtocol(status));
      if (!*alive) return;
    }
  }
  Next();
}

bool Link::UpdateCredentials(const wire::LoginOptions& login) {
  if (op_ == Op::kOpen) {
    replaced_secrets_.push_back(spec_.login.password);
    replaced_secrets_.push_back(spec_.login.oauth2_token);
  }
  spec_.login.user = login.user;
  spec_.login.password = login.password;
  spec_.login.oauth2_token = login.oauth2_token;
  spec_.login.token_source = login.token_source;
  spec_.login.mechanism = login.mechanism;
  spec_.login.allow_insecure_auth = login.allow_insecure_auth;
  ++credentials_epoch_;
  if (permanent_.ok()) return false;
  permanent_ = absl::OkStatus();
  backoff_.Reset();
  next_attempt_ = Now();
  if (retry_timer_) retry_timer_->Cancel();
  return true;
}

void Link::Noop(Done done, RunOptions options) {
  Run([](wire::ClientProtocol& client) { client.StartNoop(); }, std::move(done),
      std::move(options));
}

bool Link::Keepalive() {
  if (!idle()) return false;
  RunOptions options;
  options.reconnect = false;
  Noop([](absl::Status) {}, std::move(options));
  return true;
}

void Link::Run(Start start, Done done, RunOptions options) {
  Turn turn;
  turn.step = std::move(start);
  turn.done = std::move(done);
  Run(std::move(turn), std::move(options));
}

void Link::Run(Turn turn, RunOptions options) {
  if (options.call && options.call->cancelled()) return turn.done(options.call->status());
  if (static_cast<int>(queue_.size()) >= std::max(1, policy_->max_queue)) {
    return turn.done(ReasonError(
        absl::StatusCode::kResourceExhausted, "SESSION_QUEUE_FULL",
        absl::StrCat("more than ", policy_->max_queue, " calls are waiting on this session's ",
                     ProtocolName(spec_.protocol), " connection; try again later")));
  }
  auto pending = std::make_unique<Pending>();
  pending->turn = std::move(turn);
  pending->options = std::move(options);
  if (pending->options.call) {
    Pending* raw = pending.get();
    pending->watch =
        pending->options.call->OnCancel([this, raw, alive = alive_](const absl::Status& why) {
          if (*alive) OnCallCancelled(raw, why);
        });
  }
  queue_.push_back(std::move(pending));
  YieldIfWaiting();
  Next();
}

void Link::Logout(LogoutDone done) {
  auto pending = std::make_unique<Pending>();
  pending->logout = true;
  pending->logout_done = std::move(done);
  queue_.push_back(std::move(pending));
  YieldIfWaiting();
  Next();
}

void Link::YieldIfWaiting() {
  if (queue_.empty() || op_ != Op::kCommand || !current_ || current_->yielded) return;
  if (!current_->turn.yield || !client_) return;
  current_->yielded = true;
  current_->turn.yield(*client_);
  Flush();  // IMAP DONE goes out now, not with the next read
}

void Link::StartStep() {
  op_ = Op::kCommand;
  paused_ = false;
  current_->yielded = false;
  if (current_->dropped) {
    current_->dropped = false;
    if (current_->started && current_->turn.restart) current_->turn.restart();
  }
  current_->started = true;
  current_->turn.step(*client_);
  YieldIfWaiting();
  Pump();
}

absl::Status Link::WithProtocol(absl::Status status) const {
  if (!status.ok() && !GetPayloadText(status, kProtocolPayload)) {
    status.SetPayload(kProtocolPayload, absl::Cord(ProtocolName(spec_.protocol)));
  }
  return status;
}

void Link::Answer(std::unique_ptr<Pending> pending, absl::Status status) {
  status = WithProtocol(std::move(status));
  pending->watch.Reset();
  if (pending->logout) {
    auto cb = std::move(pending->logout_done);
    pending.reset();
    if (cb) cb(status, std::string());
    return;
  }
  auto cb = std::move(pending->turn.done);
  pending.reset();
  if (cb) cb(status);
}

void Link::Next() {
  auto alive = alive_;
  while (*alive && op_ == Op::kNone && !queue_.empty()) {
    if (retry_timer_ && retry_timer_->armed()) return;
    Pending& front = *queue_.front();
    auto pop = [this] {
      std::unique_ptr<Pending> p = std::move(queue_.front());
      queue_.erase(queue_.begin());
      if (queue_.empty()) queue_.shrink_to_fit();
      return p;
    };
    if (front.logout) {
      std::unique_ptr<Pending> p = pop();
      if (!ready()) {
        // Nothing to log out of: no reconnect just to say goodbye.
        Abort();
        Answer(std::move(p),
               broken_.ok() ? absl::FailedPreconditionError("the link is not ready") : broken_);
        continue;
      }
      current_ = std::move(p);
      op_ = Op::kLogout;
      client_->StartLogout();
      Pump();
      return;
    }
    bool pinned = front.options.generation != 0;
    if (ready()) {
      if (pinned && front.options.generation != generation_) {
        Answer(pop(), ReasonError(absl::StatusCode::kAborted, "LINK_RECONNECTED",
                                  "the connection was re-established; what the call named on "
                                  "the old one must be looked up again"));
        continue;
      }
      current_ = pop();
      StartStep();
      return;
    }
    // The link is down (dropped, reset, never reopened after a logout).
    if (!permanent_.ok()) {
      Answer(pop(), permanent_);
      continue;
    }
    if (pinned) {
      Answer(pop(), ReasonError(absl::StatusCode::kAborted, "LINK_RECONNECTED",
                                "the connection was lost; what the call named on it must be "
                                "looked up again"));
      continue;
    }
    if (!front.options.reconnect) {
      Answer(pop(), broken_.ok() ? ReasonError(absl::StatusCode::kUnavailable, "NOT_CONNECTED",
                                               "the session is not connected")
                                 : broken_);
      continue;
    }
    std::string where = absl::StrCat(ProtocolName(spec_.protocol), " server ", spec_.endpoint.host,
                                     ":", spec_.endpoint.port);
    if (front.attempts >= std::max(1, policy_->max_attempts_per_call)) {
      std::string cause = !last_error_.empty()         ? last_error_
                          : !broken_.message().empty() ? std::string(broken_.message())
                                                       : std::string("no error was reported");
      Answer(pop(), ReasonError(absl::StatusCode::kUnavailable, "RECONNECT_FAILED",
                                absl::StrCat("could not reconnect to the ", where, " after ",
                                             front.attempts, " attempts: ", cause)));
      continue;
    }
    absl::Time now = Now();
    if (now < next_attempt_) {
      absl::Time deadline =
          front.options.call ? front.options.call->deadline() : absl::InfiniteFuture();
      if (deadline < next_attempt_) {
        Answer(pop(), ReasonError(absl::StatusCode::kUnavailable, "RECONNECT_BACKOFF",
                                  absl::StrCat("the ", where, " is unreachable (", last_error_,
                                               "); the next attempt, in ",
                                               absl::FormatDuration(next_attempt_ - now),
                                               ", comes after this call's deadline")));
        continue;
      }
      if (!retry_timer_) retry_timer_ = std::make_unique<net::Timer>(loop_);
      retry_timer_->Start(next_attempt_ - now, [this] { Next(); });
      return;
    }
    for (auto& p : queue_) ++p->attempts;  // every waiting command waits for this one
    internal_open_ = true;
    StartOpen();
    return;
  }
}

void Link::OnCallCancelled(Pending* pending, const absl::Status& why) {
  for (size_t i = 0; i < queue_.size(); ++i) {
    if (queue_[i].get() != pending) continue;
    std::unique_ptr<Pending> p = std::move(queue_[i]);
    queue_.erase(queue_.begin() + static_cast<ptrdiff_t>(i));
    auto alive = alive_;
    Answer(std::move(p), why);
    if (*alive) Next();  // it may have been the one a retry timer waited for
    return;
  }
  if (current_.get() != pending) return;
  // The command is on the wire: the connection is in an unknown state, so it is reset and
  // the next command logs in afresh (at once: the server did nothing wrong).
  absl::Status reset = ReasonError(absl::StatusCode::kUnavailable, "CONNECTION_RESET",
                                   "the connection was reset: a call ended while its command "
                                   "was running");
  if (broken_.ok()) broken_ = reset;
  last_error_ = std::string(reset.message());
  Abort();
  op_ = Op::kNone;
  next_attempt_ = Now();
  auto alive = alive_;
  Answer(std::move(current_), why);
  if (*alive) Next();
}

void Link::Flush() {
  if (!client_ || !connection_ || connection_->closed()) return;
  std::string output = client_->TakeOutput();
  if (output.empty()) return;
  connection_->Write(std::move(output), [this, alive = alive_](absl::Status status) {
    if (*alive && !status.ok()) MarkBroken(status);
  });
}

void Link::PauseReading() {
  paused_ = true;
  silence_timer_.Cancel();
}

void Link::ResumeReading() {
  if (!paused_) return;
  paused_ = false;
  if (op_ == Op::kNone || !connection_ || connection_->closed()) return;
  ArmSilenceTimer();
  EnsureReading();
}

void Link::FailPending(absl::Status status) {
  // A command that cannot be repeated and was running when the link is given up may have
  // been carried out: its caller must not take the failure for "not done".
  bool running_unsafe = op_ == Op::kCommand && current_ && !current_->logout &&
                        current_->options.repeat == Repeat::kUnsafe;
  Abort();
  op_ = Op::kNone;
  internal_open_ = false;
  auto alive = alive_;
  std::vector<std::unique_ptr<Pending>> all = std::move(queue_);
  queue_.clear();
  if (current_) all.insert(all.begin(), std::move(current_));
  if (auto cb = std::move(done_)) {
    done_ = nullptr;
    cb(status);
    if (!*alive) return;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    absl::Status why = status;
    if (i == 0 && running_unsafe) {
      why = ReasonError(absl::StatusCode::kUnavailable, "OUTCOME_UNKNOWN",
                        absl::StrCat("the command to the ", ProtocolName(spec_.protocol),
                                     " server ", spec_.endpoint.host,
                                     " was stopped while it ran, so it may or may not have "
                                     "been carried out (check before repeating it): ",
                                     status.message()));
    }
    Answer(std::move(all[i]), std::move(why));
    if (!*alive) return;
  }
}

void Link::Abort() {
  aborted_ = true;
  silence_timer_.Cancel();
  if (retry_timer_) retry_timer_->Cancel();
  if (connection_) connection_->Close();
  reading_ = false;
  tls_in_progress_ = false;
  ticket_.reset();
  ++attempt_seq_;
}

void Link::Pump() {
  if (!connection_ || connection_->closed()) return;
  std::string output = client_->TakeOutput();
  if (!output.empty()) {
    connection_->Write(std::move(output), [this, alive = alive_](absl::Status status) {
      if (*alive && !status.ok()) MarkBroken(status);
    });
  }
  switch (client_->phase()) {
    case Phase::kNeedTls:
      if (tls_in_progress_) return;
      tls_in_progress_ = true;
      ArmSilenceTimer();
      connection_->StartTls(spec_.tls, [this](absl::Status status) {
        tls_in_progress_ = false;
        if (!status.ok()) return Complete(status);
        client_->OnTlsEstablished();
        Pump();
      });
      return;
    case Phase::kReady: {
      if (op_ == Op::kOpen || op_ == Op::kCommand) {
        auto alive = alive_;
        Complete(client_->error());
        if (!*alive || !connection_ || connection_->closed()) return;
      }
      EnsureReading();  // notice a server that hangs up while idle
      return;
    }
    case Phase::kClosed:
      if (op_ != Op::kLogout) {
        // The server said goodbye on its own (IMAP "* BYE Autologout", POP3 -ERR, SMTP 421).
        const std::string& reply = client_->last_reply();
        return MarkBroken(MailServerError(absl::StatusCode::kUnavailable, "SERVER_CLOSED",
                                          "the server closed the session", "", reply));
      }
      return Complete(absl::OkStatus());
    case Phase::kFailed: {
      absl::Status error =
          client_->error().ok() ? absl::UnavailableError("protocol failure") : client_->error();
      // Failed while idle (an SMTP server's unsolicited 421 before it hangs up, data the
      // client refuses): the link is down, not busy, until the next call reconnects.
      if (op_ == Op::kNone) return MarkBroken(std::move(error));
      return Complete(std::move(error));
    }
    case Phase::kLoggingIn:
    case Phase::kBusy:
      ArmSilenceTimer();
      EnsureReading();
      return;
  }
}

void Link::EnsureReading() {
  if (reading_ || paused_ || !connection_ || connection_->closed()) return;
  reading_ = true;
  connection_->Read([this](absl::Status status, absl::string_view data) {
    reading_ = false;
    if (!status.ok()) return MarkBroken(status);
    if (!greeted_ && !data.empty()) {
      greeted_ = true;
      // A TLS record (handshake 0x16 or alert 0x15, version 3.x) where a plaintext greeting
      // belongs: this port speaks implicit TLS.
      if (op_ == Op::kOpen && !connection_->tls_info().active && data.size() >= 2 &&
          (data[0] == 0x16 || data[0] == 0x15) && data[1] == 0x03) {
        return Complete(ReasonError(
            absl::StatusCode::kFailedPrecondition, "WRONG_SECURITY",
            absl::StrCat("the ", ProtocolName(spec_.protocol), " server ", spec_.endpoint.host, ":",
                         spec_.endpoint.port,
                         " answered with TLS records instead of a plaintext greeting: this "
                         "port uses implicit TLS; choose SECURITY_IMPLICIT_TLS for it")));
      }
    }
    client_->OnBytes(data);
    Pump();
  });
}

void Link::ArmSilenceTimer() {
  if (paused_) return;  // waiting for our consumer, not for the server
  absl::Duration timeout = silence_timeout_();
  bool greeting = op_ == Op::kOpen && (!greeted_ || tls_in_progress_);
  if (greeting && policy_->greeting_timeout > absl::ZeroDuration() &&
      policy_->greeting_timeout < timeout) {
    bool handshake = tls_in_progress_;
    bool implicit = spec_.login.security == wire::Security::kImplicitTls;
    absl::Duration limit = policy_->greeting_timeout;
    silence_timer_.Start(limit, [this, limit, handshake, implicit] {
      std::string where = absl::StrCat(ProtocolName(spec_.protocol), " server ",
                                       spec_.endpoint.host, ":", spec_.endpoint.port);
      std::string what;
      if (handshake && implicit) {
        what = absl::StrCat("the TLS handshake with the ", where, " did not complete within ",
                            absl::FormatDuration(limit),
                            "; if this port expects plaintext first, choose SECURITY_STARTTLS "
                            "(or SECURITY_PLAIN)");
      } else if (handshake) {
        what = absl::StrCat("the TLS handshake after STARTTLS with the ", where,
                            " did not complete within ", absl::FormatDuration(limit));
      } else if (!implicit) {
        what = absl::StrCat("the ", where, " sent no greeting within ", absl::FormatDuration(limit),
                            "; if this port uses implicit TLS (IMAP 993, POP3 995, SMTP 465), "
                            "choose SECURITY_IMPLICIT_TLS");
      } else {
        what = absl::StrCat("the ", where, " sent no greeting within ", absl::FormatDuration(limit),
                            " after the TLS handshake");
      }
      MarkBroken(MailServerError(absl::StatusCode::kDeadlineExceeded, "GREETING_TIMEOUT", what));
    });
    return;
  }
  silence_timer_.Start(timeout, [this, timeout] {
    MarkBroken(
        MailServerError(absl::StatusCode::kDeadlineExceeded, "SERVER_SILENT",
                        absl::StrCat(ProtocolName(spec_.protocol), " server ", spec_.endpoint.host,
                                     " sent nothing for ", absl::FormatDuration(timeout))));
  });
}

void Link::ScheduleRetry(bool failed_attempt) {
  absl::Time now = Now();
  if (!failed_attempt && now - connected_at_ >= policy_->backoff.stable_after) {
    // A connection that lived long enough: its loss starts afresh, first attempt at once.
    backoff_.Reset();
    next_attempt_ = now;
    return;
  }
  next_attempt_ = now + backoff_.Next(Backoff::Random());
}

void Link::MarkBroken(absl::Status status) {
  bool was_up = broken_.ok() && connection_ && op_ != Op::kOpen;
  if (broken_.ok()) broken_ = status;
  last_error_ = std::string(status.message());
  if (was_up) ScheduleRetry(/*failed_attempt=*/false);
  Complete(status);
}

void Link::Complete(absl::Status status) {
  // A server may echo what it was sent; its words never carry our secrets onward.
  status = RedactSecret(RedactSecret(status, spec_.login.password.Reveal()),
                        spec_.login.oauth2_token.Reveal());
  for (const Secret& old : replaced_secrets_) status = RedactSecret(status, old.Reveal());
  Op op = op_;
  op_ = Op::kNone;
  paused_ = false;
  silence_timer_.Cancel();
  switch (op) {
    case Op::kOpen:
      return OnOpened(std::move(status));
    case Op::kCommand:
      return FinishCommand(std::move(status));
    case Op::kLogout: {
      Abort();
      std::string reply = client_ ? client_->last_reply() : std::string();
      std::unique_ptr<Pending> p = std::move(current_);
      auto cb = p ? std::move(p->logout_done) : nullptr;
      p.reset();
      auto alive = alive_;
      if (cb) cb(status, std::move(reply));
      if (*alive) Next();
      return;
    }
    case Op::kNone:
      // The connection died while idle: the next command reconnects.
      if (!status.ok() && !broken_.ok()) Abort();
      return;
  }
}

void Link::FinishCommand(absl::Status status) {
  std::unique_ptr<Pending> p = std::move(current_);
  last_activity_ = Now();
  if (!status.ok() && broken_.ok() && client_->phase() == Phase::kFailed) {
    broken_ = status;
    dropped_by_client_ = !CuredByReconnect(status);
  }
  if (!status.ok() && (IsServerFault(status) || !broken_.ok())) {
    last_error_ = std::string(status.message());
    Log(LogLevel::kWarning, "server response not accepted",
        {{"protocol", ProtocolName(spec_.protocol)},
         {"server", absl::StrCat(spec_.endpoint.host, ":", spec_.endpoint.port)},
         {"error", last_error_}});
  }
  if (!broken_.ok()) {
    Abort();
    // Lost under the command (not a server that is merely silent: its wait already used
    // up the silence timeout, and a timeout is the caller's answer; not data the client
    // refused, which the same command would meet again).
    bool lost = CuredByReconnect(broken_);
    if (lost && p && p->options.repeat == Repeat::kSafe && p->options.reconnect) {
      p->dropped = true;
      queue_.insert(queue_.begin(), std::move(p));
      return Next();
    }
    if (lost && p && p->options.repeat == Repeat::kUnsafe) {
      status =
          ReasonError(absl::StatusCode::kUnavailable, "OUTCOME_UNKNOWN",
                      absl::StrCat("the connection to the ", ProtocolName(spec_.protocol),
                                   " server ", spec_.endpoint.host,
                                   " was lost while the command ran, so it may or "
                                   "may not have been carried out (check before repeating it): ",
                                   broken_.message()));
    } else if (status.ok()) {
      status = broken_;
    }
  }
  if (!p) return Next();
  if (broken_.ok() && !p->logout && p->turn.more && ready()) {
    auto alive = alive_;
    bool more = p->turn.more(status);
    if (!*alive) return;
    if (more && ready()) {
      // The turn goes on at once, on the same client: nothing queued comes between.
      current_ = std::move(p);
      return StartStep();
    }
  }
  auto alive = alive_;
  Answer(std::move(p), std::move(status));
  if (*alive) Next();
}

}  // namespace mailpool::session
