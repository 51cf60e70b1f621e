// CallToken: what a caller's gRPC call looks like to the event loop — its deadline and
// whether it was cancelled — so that work done for it (a command queued on a session, a
// reconnect it waits for) stops when the caller goes away or runs out of time.
//
//   auto call = std::make_shared<CallToken>(deadline);
//   CallToken::Watch watch = call->OnCancel([](const absl::Status& why) { ... });
//   call->Cancel(absl::CancelledError("cancelled by the caller"));   // runs the watchers
//
// The gRPC layer (service/call.h) cancels the token when gRPC cancels the call (the
// caller's cancel, or the deadline passing). Loop-confined, except deadline() which is
// fixed at construction.
#ifndef MAILPOOL_COMMON_CALL_H_
#define MAILPOOL_COMMON_CALL_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace mailpool {

class CallToken : public std::enable_shared_from_this<CallToken> {
 public:
  using Watcher = absl::AnyInvocable<void(const absl::Status&)>;

  // Unregisters its watcher when destroyed. Movable.
  class Watch {
   public:
    Watch() = default;
    Watch(std::weak_ptr<CallToken> token, uint64_t id) : token_(std::move(token)), id_(id) {}
    Watch(Watch&& other) noexcept { *this = std::move(other); }
    Watch& operator=(Watch&& other) noexcept;
    ~Watch() { Reset(); }
    void Reset();

   private:
    std::weak_ptr<CallToken> token_;
    uint64_t id_ = 0;
  };

  explicit CallToken(absl::Time deadline = absl::InfiniteFuture()) : deadline_(deadline) {}

  absl::Time deadline() const { return deadline_; }
  bool cancelled() const { return !status_.ok(); }
  // OK, or why the call ended (CANCELLED / DEADLINE_EXCEEDED).
  const absl::Status& status() const { return status_; }

  // Ends the call; runs every watcher once. Later calls do nothing.
  void Cancel(absl::Status why);
  // `watcher` runs when the call is cancelled (not at once if it already is: check
  // cancelled() first).
  [[nodiscard]] Watch OnCancel(Watcher watcher);

 private:
  absl::Time deadline_;
  absl::Status status_;
  uint64_t next_id_ = 1;
  std::vector<std::pair<uint64_t, Watcher>> watchers_;
};

}  // namespace mailpool

#endif  // MAILPOOL_COMMON_CALL_H_
