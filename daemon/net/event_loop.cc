#include "net/event_loop.h"

#include <future>

#include "net/asio_access.h"

namespace mailpool::net {

EventLoop::EventLoop() : impl_(std::make_unique<Impl>()) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Start() {
  impl_->work.emplace(impl_->io.get_executor());
  std::promise<void> started;
  impl_->thread = std::thread([this, &started] {
    impl_->thread_id = std::this_thread::get_id();
    started.set_value();
    impl_->io.run();
  });
  started.get_future().wait();
}

void EventLoop::Stop() {
  if (!impl_->thread.joinable()) return;
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
}

void EventLoop::Post(absl::AnyInvocable<void()> fn) {
  asio::post(impl_->io, [fn = std::move(fn)]() mutable { fn(); });
}

void EventLoop::RunSync(absl::AnyInvocable<void()> fn) {
  std::promise<void> done;
  Post([&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

bool EventLoop::IsInLoopThread() const { return std::this_thread::get_id() == impl_->thread_id; }

}  // namespace mailpool::net
