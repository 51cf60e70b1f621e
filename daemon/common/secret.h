// Secret: a password or token that cannot be printed and is wiped when destroyed.
//
// There is deliberately no operator<<, no implicit conversion and no AbslStringify: the
// only way to the bytes is Reveal(), which call sites use exactly where the secret goes on
// the wire. The memory is zeroed on destruction and on reassignment, and the process
// disables core dumps at start (server/), so secrets do not reach a dump on purpose.
//
//   Secret password("hunter2");
//   wire.Append(password.Reveal());   // the only door
//
// Thread-compatible.
#ifndef MAILPOOL_COMMON_SECRET_H_
#define MAILPOOL_COMMON_SECRET_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mailpool {

class Secret {
 public:
  Secret() = default;
  explicit Secret(absl::string_view value) : value_(value) {}
  Secret(const Secret& other) : value_(other.value_) {}
  Secret(Secret&& other) noexcept : value_(std::move(other.value_)) { other.Wipe(); }
  Secret& operator=(const Secret& other);
  Secret& operator=(Secret&& other) noexcept;
  ~Secret() { Wipe(); }

  bool empty() const { return value_.empty(); }
  size_t size() const { return value_.size(); }
  // The secret's bytes, for putting on the wire. Never log the result.
  absl::string_view Reveal() const { return value_; }
  // Zeroes and clears the value.
  void Wipe();

 private:
  std::string value_;
};

// Overwrites a buffer so the compiler cannot elide it.
void WipeBytes(void* data, size_t size);
// Wipes a string's whole capacity and clears it.
void WipeString(std::string& s);

}  // namespace mailpool

#endif  // MAILPOOL_COMMON_SECRET_H_
