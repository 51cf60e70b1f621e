#include "wire/line_reader.h"

#include "absl/strings/str_cat.h"

namespace mailpool::wire {

void LineReader::Append(absl::string_view data) {
  if (!status_.ok()) return;
  Compact();
  buffer_.append(data.data(), data.size());
}

std::optional<std::string> LineReader::NextLine() {
  if (!status_.ok()) return std::nullopt;
  size_t lf = buffer_.find('\n', pos_ + scan_);
  if (lf == std::string::npos) {
    scan_ = buffer_.size() - pos_;
    if (scan_ > max_line_) {
      status_ = absl::UnavailableError(
          absl::StrCat("server sent a line longer than ", max_line_, " bytes"));
    }
    return std::nullopt;
  }
  size_t end = lf;
  if (end > pos_ && buffer_[end - 1] == '\r') --end;
  if (end - pos_ > max_line_) {
    status_ = absl::UnavailableError(
        absl::StrCat("server sent a line longer than ", max_line_, " bytes"));
    return std::nullopt;
  }
  std::string line = buffer_.substr(pos_, end - pos_);
  pos_ = lf + 1;
  scan_ = 0;
  return line;
}

std::string LineReader::TakeBytes(size_t max) {
  size_t n = std::min(max, buffered());
  std::string out = buffer_.substr(pos_, n);
  pos_ += n;
  scan_ = 0;
  return out;
}

void LineReader::Compact() {
  if (pos_ == 0) return;
  if (pos_ == buffer_.size()) {
    buffer_.clear();
  } else if (pos_ > 4096 && pos_ * 2 > buffer_.size()) {
    buffer_.erase(0, pos_);
  } else {
    return;
  }
  pos_ = 0;
}

}  // namespace mailpool::wire
