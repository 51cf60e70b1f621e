#include "common/backoff.h"

#include <algorithm>
#include <random>

namespace mailpool {

absl::Duration Backoff::Next(double unit) {
  absl::Duration d = policy_.initial;
  for (int i = 0; i < attempts_ && d < policy_.max; ++i) d = d * policy_.multiplier;
  d = std::min(d, policy_.max);
  if (attempts_ < 1000) ++attempts_;
  double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  unit = std::clamp(unit, 0.0, 1.0);
  return d * (1.0 - jitter * unit);
}

double Backoff::Random() {
  static thread_local std::minstd_rand rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace mailpool
