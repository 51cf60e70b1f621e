#include "net/timer.h"

#include "net/asio_access.h"

namespace mailpool::net {

struct Timer::State {
  explicit State(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
  uint64_t generation = 0;
  bool armed = false;
  absl::AnyInvocable<void()> on_fire;
};

Timer::Timer(EventLoop& loop) : state_(std::make_shared<State>(IoContext(loop))) {}

Timer::~Timer() { Cancel(); }

void Timer::Start(absl::Duration after, absl::AnyInvocable<void()> on_fire) {
  Cancel();
  state_->on_fire = std::move(on_fire);
  state_->armed = true;
  uint64_t generation = ++state_->generation;
  state_->timer.expires_after(absl::ToChronoNanoseconds(after));
  state_->timer.async_wait(
      [weak = std::weak_ptr<State>(state_), generation](const asio::error_code& ec) {
        auto state = weak.lock();
        if (!state || ec || state->generation != generation || !state->armed) return;
        state->armed = false;
        auto fn = std::move(state->on_fire);
        fn();
      });
}

void Timer::Cancel() {
  ++state_->generation;
  state_->armed = false;
  state_->on_fire = nullptr;
  state_->timer.cancel();
}

bool Timer::armed() const { return state_->armed; }

}  // namespace mailpool::net
