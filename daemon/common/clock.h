// Clock: the time source of the pool and its sessions, so that keepalive, eviction and
// reconnect backoff can be tested with a clock the test moves (no sleeps).
//
//   const Clock& clock = Clock::Real();
//   absl::Time now = clock.Now();
//
//   FakeClock fake;                       // in tests
//   fake.Advance(absl::Minutes(30));      // then call pool.Tick()
//
// Real() is thread-safe; a FakeClock is loop-confined like whatever reads it.
#ifndef MAILPOOL_COMMON_CLOCK_H_
#define MAILPOOL_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mailpool {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // The process-wide wall clock.
  static const Clock& Real();
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_;
};

}  // namespace mailpool

#endif  // MAILPOOL_COMMON_CLOCK_H_
