// Pool: the registry of live sessions, keyed by ID and by (owner, name).
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
#include "session/session.h"

namespace mailpool::pool {

struct PoolOptions {
  // Instance tag put in front of every session ID (letters, digits, '-').
  std::string instance_tag = "0";
  // Server-silence timeout for sessions without their own (the seed's default: 10 min).
  absl::Duration default_timeout = absl::Minutes(10);
  // Most sessions one owner may hold; 0 means no limit.
  int max_sessions_per_owner = 1000;
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
  void Start(const std::string& owner, session::SessionSpec spec, StartDone done);
  // LOGOUT/QUIT and forget. Yields the server's reply.
  void Close(const std::string& owner, const std::string& key, CloseDone done);
  absl::StatusOr<session::SessionSnapshot> Get(const std::string& owner, const std::string& key);
  // The live, started session for a call, touched (last use = now). NOT_FOUND for unknown
  // or foreign sessions, FAILED_PRECONDITION while it is still starting or closing. The
  // pointer is valid until the current loop callback returns; keep the ID, not the pointer,
  // across asynchronous steps and look it up again.
  absl::StatusOr<session::Session*> Use(const std::string& owner, const std::string& key);
  // The owner's sessions, oldest first.
  std::vector<session::SessionSnapshot> List(const std::string& owner) const;
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

 private:
  absl::StatusOr<session::Session*> Find(const std::string& owner, const std::string& key) const;
  void Forget(const std::string& id);

  net::EventLoop& loop_;
  PoolOptions options_;
  absl::flat_hash_map<std::string, std::unique_ptr<session::Session>> sessions_;
  // owner + '\n' + name -> id
  absl::flat_hash_map<std::string, std::string> names_;
  absl::flat_hash_map<std::string, int> per_owner_;
  bool shut_down_ = false;
};

}  // namespace mailpool::pool

#endif  // MAILPOOL_POOL_POOL_H_
