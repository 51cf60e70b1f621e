// Timer: a one-shot, restartable timer on the event loop.
//
//   net::Timer timer(loop);
//   timer.Start(absl::Seconds(30), [] { /* silence timeout */ });
//   timer.Cancel();
//
// Loop-confined. After Cancel() or destruction the callback is never run.
#ifndef MAILPOOL_NET_TIMER_H_
#define MAILPOOL_NET_TIMER_H_

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "net/event_loop.h"

namespace mailpool::net {

class Timer {
 public:
  explicit Timer(EventLoop& loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // (Re)arms the timer; a pending callback is replaced.
  void Start(absl::Duration after, absl::AnyInvocable<void()> on_fire);
  void Cancel();
  bool armed() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace mailpool::net

#endif  // MAILPOOL_NET_TIMER_H_
