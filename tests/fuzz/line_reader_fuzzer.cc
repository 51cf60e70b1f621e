// Fuzzes wire::LineReader (CRLF / LF framing with a line bound, raw byte takes for
// literals) and the dot-stuffing helpers, with arbitrary read boundaries.
//
// Input: byte 0 the read pattern, byte 1 the line bound, byte 2 how often raw bytes are
// taken instead of a line; the rest is the byte stream.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "wire/line_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailpool;
  fuzz::Input in(data, size);
  uint8_t pattern = in.Byte() % 17;
  size_t max_line = 1 + in.Byte() * 4;
  uint8_t take_every = in.Byte();
  wire::LineReader reader(max_line);
  size_t total = 0, count = 0;
  fuzz::FeedInChunks(in.rest(), pattern, [&](absl::string_view piece) {
    reader.Append(piece);
    for (;;) {
      ++count;
      if (take_every != 0 && count % (take_every % 8 + 1) == 0) {
        std::string raw = reader.TakeBytes(take_every);
        if (raw.size() > take_every) __builtin_trap();
        total += raw.size();
        if (raw.empty()) break;
        continue;
      }
      std::optional<std::string> line = reader.NextLine();
      if (!line) break;
      // A line never holds its terminator and never exceeds the bound.
      if (line->find('\n') != std::string::npos || line->size() > max_line) __builtin_trap();
      total += line->size();
    }
  });
  (void)reader.status().ok();
  (void)reader.buffered();
  return 0;
}
