#include "common/call.h"

#include <algorithm>

namespace mailpool {

CallToken::Watch& CallToken::Watch::operator=(Watch&& other) noexcept {
  if (this != &other) {
    Reset();
    token_ = std::move(other.token_);
    id_ = other.id_;
    other.id_ = 0;
  }
  return *this;
}

void CallToken::Watch::Reset() {
  if (id_ == 0) return;
  if (auto token = token_.lock()) {
    auto& w = token->watchers_;
    w.erase(std::remove_if(w.begin(), w.end(), [&](const auto& p) { return p.first == id_; }),
            w.end());
  }
  id_ = 0;
  token_.reset();
}

void CallToken::Cancel(absl::Status why) {
  if (cancelled()) return;
  if (why.ok()) why = absl::CancelledError("the call was cancelled");
  status_ = std::move(why);
  auto self = shared_from_this();  // a watcher may drop the last other reference
  // One at a time: a watcher may unregister others (they then do not run) or add some.
  while (!watchers_.empty()) {
    Watcher fn = std::move(watchers_.front().second);
    watchers_.erase(watchers_.begin());
    fn(status_);
  }
}

CallToken::Watch CallToken::OnCancel(Watcher watcher) {
  uint64_t id = next_id_++;
  watchers_.emplace_back(id, std::move(watcher));
  return Watch(weak_from_this(), id);
}

}  // namespace mailpool
