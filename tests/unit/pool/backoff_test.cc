// Backoff: capped exponential growth, jitter bounds, reset.
#include "common/backoff.h"

#include "gtest/gtest.h"

namespace mailpool {
namespace {

TEST(BackoffTest, DoublesUpToTheCapWithoutJitter) {
  BackoffPolicy policy;
  policy.initial = absl::Seconds(1);
  policy.max = absl::Seconds(10);
  policy.jitter = 0;
  Backoff b(policy);
  EXPECT_EQ(b.Next(0.7), absl::Seconds(1));
  EXPECT_EQ(b.Next(0.7), absl::Seconds(2));
  EXPECT_EQ(b.Next(0.7), absl::Seconds(4));
  EXPECT_EQ(b.Next(0.7), absl::Seconds(8));
  EXPECT_EQ(b.Next(0.7), absl::Seconds(10));
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(b.Next(0.1), absl::Seconds(10));
}

TEST(BackoffTest, JitterStaysWithinItsFraction) {
  BackoffPolicy policy;
  policy.initial = absl::Seconds(2);
  policy.max = absl::Seconds(60);
  policy.jitter = 0.5;
  Backoff b(policy);
  // unit 0 gives the full delay, unit ~1 half of it.
  EXPECT_EQ(b.Next(0.0), absl::Seconds(2));
  EXPECT_EQ(b.Next(0.999999), absl::Seconds(4) * (1 - 0.5 * 0.999999));
  for (int i = 0; i < 1000; ++i) {
    Backoff r(policy);
    for (int k = 0; k < 8; ++k) {
      absl::Duration full = std::min(policy.max, policy.initial * (1 << k));
      absl::Duration d = r.Next(Backoff::Random());
      EXPECT_GE(d, full / 2) << "attempt " << k;
      EXPECT_LE(d, full) << "attempt " << k;
    }
  }
}

TEST(BackoffTest, RandomIsSpreadOverTheUnitInterval) {
  int low = 0, high = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = Backoff::Random();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    (u < 0.5 ? low : high)++;
  }
  // Sessions must not all pick the same delay: both halves are well used.
  EXPECT_GT(low, 4000);
  EXPECT_GT(high, 4000);
}

TEST(BackoffTest, ResetStartsOver) {
  BackoffPolicy policy;
  policy.jitter = 0;
  Backoff b(policy);
  b.Next(0);
  b.Next(0);
  EXPECT_EQ(b.attempts(), 2);
  b.Reset();
  EXPECT_EQ(b.Next(0), policy.initial);
}

}  // namespace
}  // namespace mailpool
