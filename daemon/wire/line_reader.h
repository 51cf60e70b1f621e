// LineReader: CRLF framing over pushed bytes, with a hard cap on line length.
//
//   LineReader reader(/*max_line=*/8192);
//   reader.Append(bytes);
//   while (auto line = reader.NextLine()) Handle(*line);   // without CRLF
//   if (!reader.status().ok()) /* a line exceeded the cap: the peer is broken */;
//
// Lines end in CRLF; a bare LF is accepted too (sloppy servers). For IMAP literals the
// reader also hands out raw byte counts (TakeBytes). Thread-compatible.
#ifndef MAILPOOL_WIRE_LINE_READER_H_
#define MAILPOOL_WIRE_LINE_READER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mailpool::wire {

class LineReader {
 public:
  explicit LineReader(size_t max_line = 64 * 1024) : max_line_(max_line) {}

  void Append(absl::string_view data);
  // The next complete line without its line ending, or nullopt when none is buffered
  // (or the reader has failed).
  std::optional<std::string> NextLine();
  // Up to `max` raw bytes from the buffer (for literals); may return fewer.
  std::string TakeBytes(size_t max);
  // Bytes buffered and not yet consumed.
  size_t buffered() const { return buffer_.size() - pos_; }
  // Not OK once a line longer than max_line was seen; stays failed.
  const absl::Status& status() const { return status_; }

 private:
  void Compact();

  size_t max_line_;
  std::string buffer_;
  size_t pos_ = 0;
  size_t scan_ = 0;  // bytes after pos_ already known to hold no LF
  absl::Status status_;
};

}  // namespace mailpool::wire

#endif  // MAILPOOL_WIRE_LINE_READER_H_
