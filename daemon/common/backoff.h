// Backoff: capped exponential delays with jitter between reconnect attempts, so that a
// server coming back after a restart is not hit by every session at the same instant.
//
//   Backoff backoff(BackoffPolicy{});
//   absl::Duration wait = backoff.Next(Backoff::Random());  // 1st failure: ~1s, then ~2s...
//   backoff.Reset();                                         // after a stable connection
//
// The delay of attempt k (k = 0 after the first failure) is
//   d = min(max, initial * multiplier^k), drawn uniformly from [d * (1 - jitter), d].
// Thread-compatible.
#ifndef MAILPOOL_COMMON_BACKOFF_H_
#define MAILPOOL_COMMON_BACKOFF_H_

#include "absl/time/time.h"

namespace mailpool {

struct BackoffPolicy {
  absl::Duration initial = absl::Seconds(1);
  absl::Duration max = absl::Seconds(60);
  double multiplier = 2.0;
  // Fraction of each delay that is random (0: none, 1: "full jitter").
  double jitter = 0.5;
  // A connection that lived this long counts as stable: its loss starts a new series
  // with an immediate first attempt.
  absl::Duration stable_after = absl::Seconds(60);
};

class Backoff {
 public:
  explicit Backoff(const BackoffPolicy& policy) : policy_(policy) {}

  // The delay before the next attempt; `unit` is a random number in [0, 1).
  absl::Duration Next(double unit);
  void Reset() { attempts_ = 0; }
  int attempts() const { return attempts_; }

  // A random number in [0, 1) from a per-thread generator.
  static double Random();

 private:
  const BackoffPolicy& policy_;
  int attempts_ = 0;
};

}  // namespace mailpool

#endif  // MAILPOOL_COMMON_BACKOFF_H_
