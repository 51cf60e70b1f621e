// CallToken: watchers run once on cancel, and not after their Watch is gone.
#include "common/call.h"

#include "gtest/gtest.h"

namespace mailpool {
namespace {

TEST(CallTokenTest, CancelRunsWatchersOnce) {
  auto call = std::make_shared<CallToken>(absl::InfiniteFuture());
  int runs = 0;
  absl::Status seen;
  CallToken::Watch w = call->OnCancel([&](const absl::Status& why) {
    ++runs;
    seen = why;
  });
  EXPECT_FALSE(call->cancelled());
  call->Cancel(absl::DeadlineExceededError("late"));
  call->Cancel(absl::CancelledError("again"));
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(seen.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(call->cancelled());
  EXPECT_EQ(call->status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(CallTokenTest, ADroppedWatchIsNotRun) {
  auto call = std::make_shared<CallToken>();
  int runs = 0;
  {
    CallToken::Watch w = call->OnCancel([&](const absl::Status&) { ++runs; });
  }
  CallToken::Watch kept = call->OnCancel([&](const absl::Status&) { runs += 10; });
  call->Cancel(absl::CancelledError("bye"));
  EXPECT_EQ(runs, 10);
}

TEST(CallTokenTest, AWatcherMayUnregisterAnotherBeforeItRuns) {
  auto call = std::make_shared<CallToken>();
  std::unique_ptr<CallToken::Watch> other;
  int first_runs = 0, other_runs = 0;
  CallToken::Watch first = call->OnCancel([&](const absl::Status&) {
    ++first_runs;
    other.reset();
  });
  other = std::make_unique<CallToken::Watch>(
      call->OnCancel([&](const absl::Status&) { ++other_runs; }));
  call->Cancel(absl::CancelledError("bye"));
  EXPECT_EQ(first_runs, 1);
  EXPECT_EQ(other_runs, 0);
}

}  // namespace
}  // namespace mailpool
