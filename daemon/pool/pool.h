// Pool: the registry of live sessions, keyed by ID and by (owner, name).
//
// It also keeps them alive and bounded: a keepalive NOOP inside each protocol's
// autologout window, eviction of sessions idle too long or older than their maximum
// lifetime, limits per caller and per mail server, and (through the links) reconnects
// that go through one daemon-wide HandshakeGate. Time comes from options.link.clock, so
// tests move a FakeClock and call Tick() instead of sleeping.
//
//   pool::Pool pool(loop, options);
//   pool.Start("local", std::move(spec), [](absl::StatusOr<session::SessionSnapshot> s) {});
//   absl::StatusOr<session::SessionSnapshot> s = pool.Get("local", "ms0_...");
//
// A caller names a session by its ID or by its name; sessions of another owner are
// NOT_FOUND, exactly like unknown ones. Loop-confined: every method must run on the loop.
#ifndef MAILPOOL_POOL_POOL_H_
#define MAILPOOL_POOL_POOL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/call.h"
#include "net/timer.h"
#include "session/gate.h"
#include "session/session.h"

namespace mailpool::pool {

struct PoolOptions {
  // Instance tag put in front of every session ID (letters, digits, '-').
  std::string instance_tag = "0";
  // Server-silence timeout for sessions without their own (the seed's default: 10 min).
  absl::Duration default_timeout = absl::Minutes(10);
  // Most sessions one owner may hold; 0 means no limit.
  int max_sessions_per_owner = 1000;
  // Most connections (links of live sessions) to one mail server (host:port); 0: none.
  int max_connections_per_server = 0;
  // Keepalive NOOP after this much quiet on a connection, per protocol; 0: none (the
  // server's autologout closes the connection and the next call reconnects). Defaults
  // sit well inside the autologout windows: IMAP 30 min (RFC 3501), POP3 10 min (RFC
  // 1939), SMTP 5 min (RFC 5321; lazy reconnect by default, a warm SMTP connection holds
  // a server process).
  absl::Duration keepalive_imap = absl::Minutes(10);
  absl::Duration keepalive_pop3 = absl::Minutes(4);
  absl::Duration keepalive_smtp = absl::ZeroDuration();
  // A session not used for this long is closed (LOGOUT/QUIT) and forgotten; 0: never.
  absl::Duration idle_timeout = absl::Hours(1);
  // A session older than this is closed and forgotten; 0: never.
  absl::Duration max_lifetime = absl::ZeroDuration();
  // Logins (connect + TLS + authentication) in flight at once, daemon-wide; 0: no limit.
  int max_handshakes_in_flight = 32;
  // Clock, reconnect backoff, per-session queue bound (the gate is the pool's own).
  session::LinkPolicy link;
  // How often the pool looks for keepalives and evictions due; 0: only when Tick() is
  // called (tests).
  absl::Duration tick_interval = absl::Seconds(5);
};

// Totals since the pool started (for metrics and benchmarks).
struct PoolStats {
  uint64_t reconnects = 0;         // successful logins after a drop, all sessions
  uint64_t failed_reconnects = 0;  // failed attempts
  uint64_t keepalives = 0;         // NOOPs sent by Tick()
  uint64_t evicted_idle = 0;
  uint64_t evicted_lifetime = 0;
  int handshakes_in_flight = 0;
  int peak_handshakes_in_flight = 0;
  size_t handshakes_waiting = 0;
};

class Pool {
 public:
  using StartDone = absl::AnyInvocable<void(absl::StatusOr<session::SessionSnapshot>)>;
  using CloseDone = absl::AnyInvocable<void(absl::StatusOr<std::string>)>;

  Pool(net::EventLoop& loop, PoolOptions options);
  ~Pool();

  // Registers a CONNECTING session at once (reserving its name), then logs it in. On
  // failure the session is forgotten. ALREADY_EXISTS for a taken name,
  // RESOURCE_EXHAUSTED past the per-owner limit.
  // `call` (optional): the StartSession call, whose cancellation abandons the start.
  // RESOURCE_EXHAUSTED also past max_connections_per_server.
  void Start(const std::string& owner, session::SessionSpec spec, StartDone done,
             std::shared_ptr<CallToken> call = nullptr);
  // LOGOUT/QUIT and forget. Yields the server's reply. `call` (optional): the
  // CloseSession call; when it is cancelled or its deadline passes before the servers
  // answered, the connections are dropped, the session is forgotten all the same and
  // `done` gets the call's status.
  void Close(const std::string& owner, const std::string& key, CloseDone done,
             std::shared_ptr<CallToken> call = nullptr);
  absl::StatusOr<session::SessionSnapshot> Get(const std::string& owner, const std::string& key);
  // The live, started session for a call, touched (last use = now). NOT_FOUND for unknown
  // or foreign sessions, FAILED_PRECONDITION while it is still starting or closing. The
  // pointer is valid until the current loop callback returns; keep the ID, not the pointer,
  // across asynchronous steps and look it up again.
  absl::StatusOr<session::Session*> Use(const std::string& owner, const std::string& key);
  // The owner's sessions, oldest first.
  std::vector<session::SessionSnapshot> List(const std::string& owner) const;
  // Every owner's sessions, oldest first (for admin callers).
  std::vector<session::SessionSnapshot> ListAll() const;
  // The owner of a live session by its ID (for an admin closing another's session).
  absl::optional<std::string> OwnerOf(const std::string& id) const;
  // Sets (or, with nullopt, clears) the session's own timeout.
  absl::StatusOr<session::SessionSnapshot> UpdateTimeout(const std::string& owner,
                                                         const std::string& key,
                                                         absl::optional<absl::Duration> timeout);
  absl::Duration default_timeout() const { return options_.default_timeout; }
  void set_default_timeout(absl::Duration timeout) { options_.default_timeout = timeout; }
  size_t size() const { return sessions_.size(); }
  // Calls `fn` for every live session (any owner, any state), e.g. to count them for
  // metrics. `fn` must not start, close or forget sessions.
  void ForEach(absl::FunctionRef<void(const session::Session&)> fn) const {
    for (const auto& [id, session] : sessions_) fn(*session);
  }
  // Closes every session politely; `done` runs when all have answered or failed.
  void CloseAll(absl::AnyInvocable<void()> done);
  // Refuses new sessions from now on and answers every pending call (start, close) with
  // UNAVAILABLE; the sessions are dropped. For the end of a graceful shutdown.
  void Shutdown();

  // Sends the keepalives and does the evictions that are due at the clock's now. Runs by
  // itself every tick_interval.
  void Tick();
  PoolStats stats() const;
  session::HandshakeGate& gate() { return gate_; }

 private:
  absl::StatusOr<session::Session*> Find(const std::string& owner, const std::string& key) const;
  std::vector<session::SessionSnapshot> ListWhere(const std::string* owner) const;
  void Forget(const std::string& id);
  void Evict(session::Session& session, absl::string_view why);
  void ScheduleTick();
  absl::Duration KeepaliveInterval(session::Protocol protocol) const;
  static std::string ServerKey(const session::LinkSpec& spec);

  net::EventLoop& loop_;
  PoolOptions options_;
  // Declared before the sessions: their links hold tickets of it.
  session::HandshakeGate gate_;
  std::unique_ptr<net::Timer> tick_timer_;
  PoolStats stats_;
  uint64_t forgotten_reconnects_ = 0;  // of sessions already forgotten
  uint64_t forgotten_failed_ = 0;
  // host:port -> links of live sessions
  absl::flat_hash_map<std::string, int> per_server_;
  // Recently evicted session IDs -> why (bounded), so a late call hears what happened.
  absl::flat_hash_map<std::string, std::pair<std::string, std::string>> evicted_;  // owner, why
  std::vector<std::string> evicted_order_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  absl::flat_hash_map<std::string, std::unique_ptr<session::Session>> sessions_;
  // owner + '\n' + name -> id
  absl::flat_hash_map<std::string, std::string> names_;
  absl::flat_hash_map<std::string, int> per_owner_;
  bool shut_down_ = false;
};

}  // namespace mailpool::pool

#endif  // MAILPOOL_POOL_POOL_H_
