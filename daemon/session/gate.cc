#include "session/gate.h"

#include <algorithm>

namespace mailpool::session {

HandshakeGate::~HandshakeGate() {
  for (Ticket* t : waiting_) t->gate_ = nullptr;
}

HandshakeGate::Ticket::~Ticket() {
  if (gate_ == nullptr) return;
  if (granted_) {
    gate_->Release();
    return;
  }
  auto& w = gate_->waiting_;
  w.erase(std::remove(w.begin(), w.end(), this), w.end());
}

std::unique_ptr<HandshakeGate::Ticket> HandshakeGate::Acquire(absl::AnyInvocable<void()> granted) {
  std::unique_ptr<Ticket> ticket(new Ticket(this));
  ticket->on_grant_ = std::move(granted);
  if (limit_ <= 0 || in_flight_ < limit_) {
    Grant(ticket.get());
  } else {
    waiting_.push_back(ticket.get());
  }
  return ticket;
}

void HandshakeGate::Grant(Ticket* ticket) {
  ticket->granted_ = true;
  ++in_flight_;
  ++total_;
  peak_ = std::max(peak_, in_flight_);
  auto fn = std::move(ticket->on_grant_);
  ticket->on_grant_ = nullptr;
  if (fn) fn();
}

void HandshakeGate::Release() {
  --in_flight_;
  if (!waiting_.empty() && (limit_ <= 0 || in_flight_ < limit_)) {
    Ticket* next = waiting_.front();
    waiting_.pop_front();
    Grant(next);
  }
}

}  // namespace mailpool::session
