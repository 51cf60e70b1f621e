#include "common/secret.h"

#include <string.h>

namespace mailpool {

void WipeBytes(void* data, size_t size) {
  if (size > 0) explicit_bzero(data, size);
}

void WipeString(std::string& s) {
  s.resize(s.capacity());
  WipeBytes(s.data(), s.size());
  s.clear();
}

Secret& Secret::operator=(const Secret& other) {
  if (this != &other) {
    Wipe();
    value_ = other.value_;
  }
  return *this;
}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Wipe();
    value_ = std::move(other.value_);
    other.Wipe();
  }
  return *this;
}

void Secret::Wipe() { WipeString(value_); }

}  // namespace mailpool
