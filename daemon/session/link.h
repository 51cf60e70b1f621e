// Link: one protocol client joined to one connection on the event loop, kept usable.
//
// A Link connects, runs implicit TLS or STARTTLS when the client asks for it, feeds every
// byte from the server to the client, writes what the client produces, and bounds every
// wait for the server by the silence timeout. Commands from many callers queue (FIFO) and
// run one at a time. When the connection drops or the server restarts, the next command
// reconnects, logs in again (IMAP: re-selects `initial_folder`) and runs — the caller sees
// no error when the command is safe to repeat:
//
//   Link link(loop, spec, [&] { return absl::Minutes(10); });
//   link.Open([](absl::Status s) { /* logged in, or why not */ });
//   link.Run([](wire::ClientProtocol& c) { c.StartNoop(); }, [](absl::Status s) { ... });
//   // Not safe to repeat (SMTP DATA, IMAP APPEND without UIDPLUS): mark it.
//   link.Run(start_send, done, session::Repeat::kUnsafe);
//   // Bound by the caller's gRPC call (deadline, cancellation):
//   RunOptions o; o.call = token; link.Run(start, done, std::move(o));
//   link.Logout([](absl::Status s, std::string reply) { ... });
//   // Several commands no other caller may come between (IMAP: SELECT, then FETCH):
//   Turn turn;
//   turn.step = [](wire::ClientProtocol& c) { /* SELECT if needed, else the command */ };
//   turn.more = [](const absl::Status& s) { return /* that was the SELECT */ s.ok(); };
//   turn.yield = [](wire::ClientProtocol& c) { /* leave IDLE: another turn waits */ };
//   turn.done = [](absl::Status s) { ... };
//   link.Run(std::move(turn), std::move(options));
//
// The Link's queue is the only queue of a session's connection: the mailbox backends and
// the send path queue whole turns here (not one command at a time from a queue of their
// own), so LinkPolicy::max_queue and cancel-while-queued hold for every call.
//
// Recovery rules (see RunOptions):
//  - A command that finds the link down waits for a reconnect (capped exponential backoff
//    with jitter, LinkPolicy::backoff; every login goes through the daemon-wide
//    HandshakeGate), at most LinkPolicy::max_attempts_per_call attempts and never past its
//    call's deadline; then UNAVAILABLE with the last connect/login error.
//  - The connection drops while a command runs: Repeat::kSafe runs it again on the new
//    connection (`start` is then called again, on a new client); Repeat::kUnsafe ends with
//    UNAVAILABLE, reason OUTCOME_UNKNOWN, "may have been carried out".
//  - The client gives up on the connection over data it cannot accept (PROTOCOL_VIOLATION:
//    an oversize literal, broken framing): a reconnect cannot cure that, so the command
//    ends with that error (never repeated, never RECONNECT_FAILED); last_error() holds
//    it; the next command reconnects, and that reconnect is not counted as one.
//  - Credentials (or any other login refusal that retrying cannot fix: UNAUTHENTICATED,
//    FAILED_PRECONDITION, INVALID_ARGUMENT, PERMISSION_DENIED) refused on a reconnect are
//    never tried again: every later command gets that error at once, until the caller
//    updates the credentials (UpdateSession) or restarts the session.
//  - Refreshable OAuth2 credentials (LoginOptions::token_source): every login first asks
//    the source for an access token (a cached one while it lives); a token the server
//    refuses (UNAUTHENTICATED) is replaced by a new one and the login tried once more
//    within the same attempt. A refresh that fails is that login's error (reason
//    OAUTH2_REFRESH_FAILED): UNAUTHENTICATED (the grant was refused) is permanent as above.
//  - A call cancelled (or past its deadline) while queued leaves the queue; while its
//    command runs, the connection is reset (never reused in an unknown state) and the
//    next command reconnects.
//  - More than LinkPolicy::max_queue commands waiting: RESOURCE_EXHAUSTED.
//  - Wrong security for the port: a greeting or TLS handshake that does not come within
//    LinkPolicy::greeting_timeout is DEADLINE_EXCEEDED GREETING_TIMEOUT with a hint at the
//    other security mode; TLS records where a plaintext greeting belongs (and a plaintext
//    answer to a TLS handshake, see net/connection.h) are FAILED_PRECONDITION
//    WRONG_SECURITY, not retried.
//
// Loop-confined. Callbacks run on the loop and never after the Link is destroyed.
#ifndef MAILPOOL_SESSION_LINK_H_
#define MAILPOOL_SESSION_LINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/call.h"
#include "common/clock.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "net/timer.h"
#include "session/gate.h"
#include "wire/protocol.h"

namespace mailpool::session {

enum class Protocol { kImap, kPop3, kSmtp };
absl::string_view ProtocolName(Protocol protocol);

// Everything needed to open one link. Holds the credentials (as Secrets).
struct LinkSpec {
  Protocol protocol = Protocol::kImap;
  net::Endpoint endpoint;
  net::TlsOptions tls;
  wire::LoginOptions login;    // login.security says plain / STARTTLS / implicit TLS
  std::string initial_folder;  // IMAP only: selected after every (re)login
};

// Daemon-wide recovery settings, shared by every link (owned by the pool).
struct LinkPolicy {
  const Clock* clock = &Clock::Real();
  HandshakeGate* gate = nullptr;  // null: no limit
  BackoffPolicy backoff;
  // Commands waiting behind the running one; more is RESOURCE_EXHAUSTED.
  int max_queue = 64;
  // Reconnect attempts one command waits for before it fails.
  int max_attempts_per_call = 3;
  // How long a new connection waits for the server's greeting (its first bytes) and for a
  // TLS handshake (at most the silence timeout): a port spoken to with the wrong security
  // (STARTTLS against an implicit-TLS port) is silent, and this ends the wait early with
  // a hint, instead of after the full silence timeout.
  absl::Duration greeting_timeout = absl::Seconds(15);
};

// Whether a command may run twice when the connection drops under it.
enum class Repeat {
  kSafe,    // reads, NOOP, idempotent changes: re-run transparently after a reconnect
  kUnsafe,  // SMTP DATA, IMAP APPEND without UIDPLUS: UNAVAILABLE "may have happened"
};

struct RunOptions {
  RunOptions() = default;
  RunOptions(Repeat r) : repeat(r) {}  // NOLINT: implicit, so Run(..., Repeat::kUnsafe)

  Repeat repeat = Repeat::kSafe;
  // The caller's call: its cancellation ends the command. Null: no caller to watch.
  std::shared_ptr<CallToken> call;
  // False: fail at once instead of reconnecting a link that is down (keepalives).
  bool reconnect = true;
  // Non-zero: run only on this connection (generation()); after a reconnect fail with
  // ABORTED, reason LINK_RECONNECTED, before writing anything. For commands that name
  // things valid for one connection only (POP3 message numbers).
  uint64_t generation = 0;
};

using Start = absl::AnyInvocable<void(wire::ClientProtocol&)>;
using Done = absl::AnyInvocable<void(absl::Status)>;

// One turn on a link: client commands that run back to back on one connection, with no
// other queued command between them. A turn waits in the Link's queue like any command
// (one slot of LinkPolicy::max_queue; cancelled while queued, it leaves the queue).
struct Turn {
  // Starts exactly one command on the ready client. Called when the turn reaches the
  // front, again after `more` returned true (same client), and, for Repeat::kSafe, on a
  // new client after the connection dropped under the turn (after `restart`).
  Start step;
  // Optional: called as each step's command ends normally, with client.error(). True: the
  // turn goes on with another `step`; false (or unset): the turn ends with `done(status)`.
  absl::AnyInvocable<bool(const absl::Status&)> more;
  // Optional: called before `step` runs again on a new connection after a drop (forget
  // what the lost attempt gathered).
  absl::AnyInvocable<void()> restart;
  // Optional: called (once per step) while a step runs and another turn or a logout is
  // waiting, with the running client; the link then writes what the client produced. The
  // IMAP watch leaves IDLE (DONE) here so the waiting call can go.
  Start yield;
  // The turn's result: the last command's status, or why the turn could not run.
  Done done;
};

class Link {
 public:
  using Start = session::Start;
  using Done = session::Done;
  using LogoutDone = absl::AnyInvocable<void(absl::Status, std::string reply)>;
  // `silence_timeout` is asked each time the link starts waiting for the server. `policy`
  // must outlive the link; null: defaults.
  Link(net::EventLoop& loop, LinkSpec spec, std::function<absl::Duration()> silence_timeout,
       const LinkPolicy* policy = nullptr);
  ~Link();

  // Connects, negotiates TLS and logs in. Call once, or again after Logout() or Abort() to
  // start over on a new connection with a new client (POP3 Refresh: QUIT commits the
  // deletions, a new login sees new mail); broken() is cleared.
  void Open(Done done, std::shared_ptr<CallToken> call = nullptr);
  // NOOP, queued like any command.
  void Noop(Done done, RunOptions options = {});
  // A keepalive NOOP if the link is idle (connected, nothing running or queued); never
  // reconnects. Returns whether one was started.
  bool Keepalive();
  // Queues one protocol command: `start` is called with the ready client and must start
  // exactly one command on it (e.g. a POP3 RETR whose data goes to a sink the caller gave
  // the client). `done` runs with client.error() once the client is ready again, or with
  // why the command could not run. See the recovery rules above.
  void Run(Start start, Done done, RunOptions options = {});
  // Queues a turn (see Turn): its steps run back to back when it reaches the front.
  void Run(Turn turn, RunOptions options = {});
  // Flow control for a command whose data goes to a slow consumer: while paused the link
  // reads nothing more from the server (the kernel's buffers then push back on it) and the
  // silence timeout does not run. Resume continues. A new command starts unpaused.
  void PauseReading();
  void ResumeReading();
  // LOGOUT/QUIT (after the commands queued before it), then closes the connection
  // whatever the server said. A link that is down is just closed (no reconnect).
  void Logout(LogoutDone done);
  // Drops the connection at once; a pending Open() never completes (its callback is
  // dropped), so the owner must answer its own callers.
  void Abort();
  // Abort(), and answers a pending Open/Logout and every queued command with `status`.
  void FailPending(absl::Status status);

  // Writes what the client produced outside OnBytes() (IMAP DONE ending an IDLE, asked
  // for while the server is silent).
  void Flush();
  // New credentials (user, password, OAuth2 token, mechanism, allow_insecure_auth from
  // `login`; the rest of the spec stays) for every later login. A logged-in connection
  // stays as it is. Returns whether a permanent refusal was cleared: the link then logs
  // in at the next command, at once (no backoff). A login in flight with the old
  // credentials that the server refuses does not count against the new ones.
  bool UpdateCredentials(const wire::LoginOptions& login);
  // IMAP: the folder to select after a re-login (the IMAP backend keeps it current).
  void set_initial_folder(std::string folder) { spec_.initial_folder = std::move(folder); }

  bool ready() const;
  // Connected, logged in, nothing running or queued.
  bool idle() const { return ready() && queue_.empty(); }
  const LinkSpec& spec() const { return spec_; }
  const wire::ServerInfo* server_info() const;  // null before the client exists
  net::TlsInfo tls_info() const;
  // Why the link is unusable (connection lost, protocol violation), OK otherwise.
  const absl::Status& broken() const { return broken_; }
  // A refusal that reconnecting cannot fix (rejected credentials); OK otherwise.
  const absl::Status& permanent_failure() const { return permanent_; }
  bool reconnecting() const { return op_ == Op::kOpen && internal_open_; }
  // Successful logins so far; changes on every new connection.
  uint64_t generation() const { return generation_; }
  // Logins after a drop (not counting the first, nor Open() calls by the owner).
  uint32_t reconnect_count() const { return reconnects_; }
  // Failed reconnect attempts, all time.
  uint32_t failed_attempts() const { return failed_attempts_; }
  // The last error the link saw (kept after it recovered); empty if none.
  const std::string& last_error() const { return last_error_; }
  // Last time the server said something or a command completed.
  absl::Time last_activity() const { return last_activity_; }
  size_t queued() const { return queue_.size(); }
  // A command, turn or logout is on the wire (not counting Open() or a reconnect).
  bool turn_running() const { return current_ != nullptr; }

 private:
  enum class Op { kNone, kOpen, kCommand, kLogout };
  struct Pending;

  void Next();
  void StartOpen();
  // The rest of StartOpen once the login's secret is known: a new client, the gate, Connect.
  void Handshake();
  void Connect();
  void OnConnected(absl::StatusOr<std::unique_ptr<net::Connection>> connection);
  void OnOpened(absl::Status status);
  // Starts the front turn's next step on the ready client.
  void StartStep();
  // Lets a running step know that another turn waits (Turn::yield).
  void YieldIfWaiting();
  void FinishCommand(absl::Status status);
  void Pump();
  void EnsureReading();
  void ArmSilenceTimer();
  void Complete(absl::Status status);
  void MarkBroken(absl::Status status);
  void ScheduleRetry(bool failed_attempt);
  void OnCallCancelled(Pending* pending, const absl::Status& why);
  // `status` with the link's protocol attached (kProtocolPayload) when it failed.
  absl::Status WithProtocol(absl::Status status) const;
  // Runs the pending command's (or logout's) callback with `status`.
  void Answer(std::unique_ptr<Pending> pending, absl::Status status);
  absl::Time Now() const { return policy_->clock->Now(); }

  net::EventLoop& loop_;
  LinkSpec spec_;
  std::function<absl::Duration()> silence_timeout_;
  const LinkPolicy* policy_;
  std::unique_ptr<net::Connection> connection_;
  std::unique_ptr<wire::ClientProtocol> client_;
  net::Timer silence_timer_;
  std::unique_ptr<net::Timer> retry_timer_;  // created on first use: idle links hold none
  std::unique_ptr<HandshakeGate::Ticket> ticket_;
  Op op_ = Op::kNone;
  bool internal_open_ = false;  // the running kOpen is a reconnect, not Open()
  Done done_;                   // Open()'s
  std::shared_ptr<CallToken> open_call_;
  CallToken::Watch open_watch_;
  uint64_t attempt_seq_ = 0;        // tells a connect callback whether it is still wanted
  uint64_t credentials_epoch_ = 0;  // UpdateCredentials() calls so far
  uint64_t attempt_epoch_ = 0;      // credentials_epoch_ of the login in flight
  bool fresh_token_ = false;        // the next login asks the token source for a new token
  bool token_retried_ = false;      // the running open is that one retry after a refusal
  // The secrets of a login still in flight when they were replaced: redacted from what
  // the server says about it, then wiped when it ends.
  std::vector<Secret> replaced_secrets_;
  std::unique_ptr<Pending> current_;             // the running command or logout
  std::vector<std::unique_ptr<Pending>> queue_;  // FIFO; a vector holds nothing when empty
  bool reading_ = false;
  bool paused_ = false;
  bool tls_in_progress_ = false;
  bool aborted_ = false;
  // The client dropped the link over data it could not accept (not the server or the
  // network): the reconnect that follows is not counted in reconnects_.
  bool dropped_by_client_ = false;
  // The server sent something on the current connection (its greeting has begun).
  bool greeted_ = false;
  absl::Status broken_;
  absl::Status permanent_;
  Backoff backoff_;
  absl::Time next_attempt_ = absl::InfinitePast();
  absl::Time connected_at_ = absl::InfinitePast();
  absl::Time last_activity_;
  uint64_t generation_ = 0;
  uint32_t reconnects_ = 0;
  uint32_t failed_attempts_ = 0;
  std::string last_error_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace mailpool::session

#endif  // MAILPOOL_SESSION_LINK_H_
