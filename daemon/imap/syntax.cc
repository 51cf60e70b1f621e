#include "imap/syntax.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace mailpool::imap {
namespace {

constexpr uint64_t kMaxLiteral = uint64_t{1} << 53;

}  // namespace

bool IsAtomChar(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  // CHAR = %x01-7F; CTL = %x00-1F / %x7F.
  if (u <= 0x1f || u >= 0x7f) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case ' ':
    case '%':
    case '*':
    case '"':
    case '\\':
    case ']':
      return false;
    default:
      return true;
  }
}

bool IsAstringChar(char c) { return c == ']' || IsAtomChar(c); }

bool NeedsLiteral(absl::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

void AppendQuoted(absl::string_view text, std::string* out) {
  *out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') *out += '\\';
    *out += c;
  }
  *out += '"';
}

std::string Quote(absl::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  AppendQuoted(text, &out);
  return out;
}

std::string AString(absl::string_view text) {
  if (text.empty()) return Quote(text);
  for (char c : text) {
    if (!IsAstringChar(c)) return Quote(text);
  }
  return std::string(text);
}

std::optional<StatusResponse> ParseStatus(absl::string_view rest) {
  size_t space = rest.find(' ');
  absl::string_view word = rest.substr(0, space);
  StatusResponse r;
  if (absl::EqualsIgnoreCase(word, "OK")) {
    r.kind = StatusResponse::Kind::kOk;
  } else if (absl::EqualsIgnoreCase(word, "NO")) {
    r.kind = StatusResponse::Kind::kNo;
  } else if (absl::EqualsIgnoreCase(word, "BAD")) {
    r.kind = StatusResponse::Kind::kBad;
  } else if (absl::EqualsIgnoreCase(word, "PREAUTH")) {
    r.kind = StatusResponse::Kind::kPreauth;
  } else if (absl::EqualsIgnoreCase(word, "BYE")) {
    r.kind = StatusResponse::Kind::kBye;
  } else {
    return std::nullopt;
  }
  absl::string_view text = space == absl::string_view::npos ? "" : rest.substr(space + 1);
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close != absl::string_view::npos) {
      r.code = text.substr(1, close - 1);
      text.remove_prefix(close + 1);
      if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    }
  }
  r.text = text;
  return r;
}

absl::string_view CodeName(absl::string_view code) { return code.substr(0, code.find(' ')); }

absl::string_view CodeArgument(absl::string_view code) {
  size_t space = code.find(' ');
  return space == absl::string_view::npos ? absl::string_view() : code.substr(space + 1);
}

std::vector<std::string> ParseCapabilityList(absl::string_view list) {
  return absl::StrSplit(list, ' ', absl::SkipEmpty());
}

std::optional<uint64_t> TrailingLiteralSize(absl::string_view line) {
  if (line.empty() || line.back() != '}') return std::nullopt;
  line.remove_suffix(1);
  size_t open = line.rfind('{');
  if (open == absl::string_view::npos) return std::nullopt;
  absl::string_view digits = line.substr(open + 1);
  if (digits.empty() || digits.size() > 16) return std::nullopt;
  uint64_t n = 0;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > kMaxLiteral) return std::nullopt;
  return n;
}

std::optional<uint32_t> ParseNumber(absl::string_view text) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  uint64_t n = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(n);
}

}  // namespace mailpool::imap
