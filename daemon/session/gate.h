// HandshakeGate: a daemon-wide limit on logins in flight (connect + TLS handshake +
// authentication), so that a server restart with thousands of open sessions does not
// turn into thousands of simultaneous TLS handshakes against it and on our one loop.
//
//   HandshakeGate gate(32);
//   std::unique_ptr<HandshakeGate::Ticket> t = gate.Acquire([] { /* may connect now */ });
//   t.reset();   // done (or gave up): the next waiter, first come first served, goes
//
// One mail server (the key, host:port) gets at most three quarters of the slots, so that
// logins stuck on a dead or slow server (each may wait for its connect timeout) never hold
// every slot: logins to other servers still go through.
//
// Loop-confined. `granted` runs at once inside Acquire when a slot is free, else later
// from the Ticket release that frees one; never after its own Ticket is destroyed.
#ifndef MAILPOOL_SESSION_GATE_H_
#define MAILPOOL_SESSION_GATE_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"

namespace mailpool::session {

class HandshakeGate {
 public:
  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    bool granted() const { return granted_; }

   private:
    friend class HandshakeGate;
    Ticket(HandshakeGate* gate, std::string key) : gate_(gate), key_(std::move(key)) {}
    HandshakeGate* gate_;
    std::string key_;
    bool granted_ = false;
    absl::AnyInvocable<void()> on_grant_;
  };

  // `limit` <= 0: no limit.
  explicit HandshakeGate(int limit)
      : limit_(limit), per_key_limit_(limit <= 0 ? 0 : std::max(1, limit - limit / 4)) {}
  ~HandshakeGate();

  // `key` names the mail server the login goes to.
  std::unique_ptr<Ticket> Acquire(absl::AnyInvocable<void()> granted, std::string key = "");

  int in_flight() const { return in_flight_; }
  int peak() const { return peak_; }
  size_t waiting() const { return waiting_.size(); }
  uint64_t total() const { return total_; }
  int limit() const { return limit_; }
  // Restarts peak() from the current count (benchmarks measure one phase).
  void ResetPeak() { peak_ = in_flight_; }

 private:
  bool CanGrant(const std::string& key) const;
  void Grant(Ticket* ticket);
  void Release(const std::string& key);

  int limit_;
  int per_key_limit_;
  absl::flat_hash_map<std::string, int> by_key_;  // in flight per server
  int in_flight_ = 0;
  int peak_ = 0;
  uint64_t total_ = 0;
  std::deque<Ticket*> waiting_;
};

}  // namespace mailpool::session

#endif  // MAILPOOL_SESSION_GATE_H_
