// EventLoop: the one thread that owns every socket, TLS object and timer.
//
//   net::EventLoop loop;
//   loop.Start();                          // spawns the loop thread
//   loop.Post([] { /* runs on the loop */ });
//   loop.Stop();                           // runs what is queued, then joins
//
// Everything in net/, session/ and pool/ is loop-confined: touch it only from a function
// that runs on the loop (check with IsInLoopThread() in debug builds). Post() is
// thread-safe. asio stays out of this header; net/ implementation files reach the
// io_context through net/asio_access.h.
#ifndef MAILPOOL_NET_EVENT_LOOP_H_
#define MAILPOOL_NET_EVENT_LOOP_H_

#include <memory>

#include "absl/functional/any_invocable.h"

namespace mailpool::net {

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Starts the loop thread. Call once.
  void Start();
  // Stops the loop and joins its thread. Handlers already posted are not run once the
  // loop has stopped. Idempotent; must not be called from the loop thread.
  void Stop();
  // Runs `fn` on the loop thread. Thread-safe.
  void Post(absl::AnyInvocable<void()> fn);
  // Runs `fn` on the loop and waits for it. Must not be called from the loop thread.
  void RunSync(absl::AnyInvocable<void()> fn);
  bool IsInLoopThread() const;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailpool::net

#endif  // MAILPOOL_NET_EVENT_LOOP_H_
