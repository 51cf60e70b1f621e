#include "session/gate.h"

#include <algorithm>

namespace mailpool::session {

HandshakeGate::~HandshakeGate() {
  for (Ticket* t : waiting_) t->gate_ = nullptr;
}

HandshakeGate::Ticket::~Ticket() {
  if (gate_ == nullptr) return;
  if (granted_) {
    gate_->Release(key_);
    return;
  }
  auto& w = gate_->waiting_;
  w.erase(std::remove(w.begin(), w.end(), this), w.end());
}

bool HandshakeGate::CanGrant(const std::string& key) const {
  if (limit_ <= 0) return true;
  if (in_flight_ >= limit_) return false;
  auto it = by_key_.find(key);
  return it == by_key_.end() || it->second < per_key_limit_;
}

std::unique_ptr<HandshakeGate::Ticket> HandshakeGate::Acquire(absl::AnyInvocable<void()> granted,
                                                              std::string key) {
  std::unique_ptr<Ticket> ticket(new Ticket(this, std::move(key)));
  ticket->on_grant_ = std::move(granted);
  if (CanGrant(ticket->key_)) {
    Grant(ticket.get());
  } else {
    waiting_.push_back(ticket.get());
  }
  return ticket;
}

void HandshakeGate::Grant(Ticket* ticket) {
  ticket->granted_ = true;
  ++in_flight_;
  ++by_key_[ticket->key_];
  ++total_;
  peak_ = std::max(peak_, in_flight_);
  auto fn = std::move(ticket->on_grant_);
  ticket->on_grant_ = nullptr;
  if (fn) fn();
}

void HandshakeGate::Release(const std::string& key) {
  --in_flight_;
  if (auto it = by_key_.find(key); it != by_key_.end() && --it->second <= 0) by_key_.erase(it);
  // The first waiter that may go, in arrival order (a waiter for a server at its share
  // lets the ones behind it for other servers pass).
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (!CanGrant((*it)->key_)) continue;
    Ticket* next = *it;
    waiting_.erase(it);
    Grant(next);
    return;
  }
}

}  // namespace mailpool::session
