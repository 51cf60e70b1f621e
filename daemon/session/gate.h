// HandshakeGate: a daemon-wide limit on logins in flight (connect + TLS handshake +
// authentication), so that a server restart with thousands of open sessions does not
// turn into thousands of simultaneous TLS handshakes against it and on our one loop.
//
//   HandshakeGate gate(32);
//   std::unique_ptr<HandshakeGate::Ticket> t = gate.Acquire([] { /* may connect now */ });
//   t.reset();   // done (or gave up): the next waiter, first come first served, goes
//
// Loop-confined. `granted` runs at once inside Acquire when a slot is free, else later
// from the Ticket release that frees one; never after its own Ticket is destroyed.
#ifndef MAILPOOL_SESSION_GATE_H_
#define MAILPOOL_SESSION_GATE_H_

#include <cstdint>
#include <deque>
#include <memory>

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
    explicit Ticket(HandshakeGate* gate) : gate_(gate) {}
    HandshakeGate* gate_;
    bool granted_ = false;
    absl::AnyInvocable<void()> on_grant_;
  };

  // `limit` <= 0: no limit.
  explicit HandshakeGate(int limit) : limit_(limit) {}
  ~HandshakeGate();

  std::unique_ptr<Ticket> Acquire(absl::AnyInvocable<void()> granted);

  int in_flight() const { return in_flight_; }
  int peak() const { return peak_; }
  size_t waiting() const { return waiting_.size(); }
  uint64_t total() const { return total_; }
  int limit() const { return limit_; }
  // Restarts peak() from the current count (benchmarks measure one phase).
  void ResetPeak() { peak_ = in_flight_; }

 private:
  void Grant(Ticket* ticket);
  void Release();

  int limit_;
  int in_flight_ = 0;
  int peak_ = 0;
  uint64_t total_ = 0;
  std::deque<Ticket*> waiting_;
};

}  // namespace mailpool::session

#endif  // MAILPOOL_SESSION_GATE_H_
