// Helpers shared by the libFuzzer targets in this folder.
//
// Every target reads a few control bytes from the front of its input (which command to
// start, how to cut the server bytes into reads) and treats the rest as hostile server
// data. Server lines that start with "T " get the tag of the command in flight, so seed
// transcripts keep working while the fuzzer mutates everything else.
#ifndef MAILPOOL_TESTS_FUZZ_FUZZ_UTIL_H_
#define MAILPOOL_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mailpool::fuzz {

// Consumes control bytes from the front of the input; 0 once it is exhausted.
class Input {
 public:
  Input(const uint8_t* data, size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}
  uint8_t Byte() {
    if (rest_.empty()) return 0;
    uint8_t b = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return b;
  }
  absl::string_view rest() const { return rest_; }

 private:
  absl::string_view rest_;
};

// Cuts `data` into reads: pattern 0 feeds it whole, 1 one byte at a time, otherwise reads
// of 1..pattern bytes in a deterministic sequence.
template <typename Feed>
void FeedInChunks(absl::string_view data, uint8_t pattern, Feed&& feed) {
  if (pattern == 0) {
    if (!data.empty()) feed(data);
    return;
  }
  size_t step = 1;
  while (!data.empty()) {
    size_t n = pattern == 1 ? 1 : 1 + (step * 7) % pattern;
    if (n > data.size()) n = data.size();
    feed(data.substr(0, n));
    data.remove_prefix(n);
    ++step;
  }
}

// Splits `data` into lines, each with its "\n" (the last one may lack it).
inline std::vector<absl::string_view> SplitKeepingNewlines(absl::string_view data) {
  std::vector<absl::string_view> lines;
  while (!data.empty()) {
    size_t nl = data.find('\n');
    size_t n = nl == absl::string_view::npos ? data.size() : nl + 1;
    lines.push_back(data.substr(0, n));
    data.remove_prefix(n);
  }
  return lines;
}

// The tag of the last command line in `output` ("a12 UID FETCH ..." -> "a12"), or "".
inline std::string LastTag(absl::string_view output) {
  std::string tag;
  for (absl::string_view line : SplitKeepingNewlines(output)) {
    if (line.size() < 2 || line[0] != 'a' || line[1] < '0' || line[1] > '9') continue;
    size_t end = 1;
    while (end < line.size() && line[end] >= '0' && line[end] <= '9') ++end;
    if (end < line.size() && line[end] == ' ') tag = std::string(line.substr(0, end));
  }
  return tag;
}

}  // namespace mailpool::fuzz

#endif  // MAILPOOL_TESTS_FUZZ_FUZZ_UTIL_H_
