#include "pop3/response.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "wire/sasl.h"

namespace mailpool::pop3 {
namespace {

// Response codes are short atoms; anything longer is not treated as one.
constexpr size_t kMaxCodeLength = 64;

// `line` starts with `indicator` (case-insensitively) followed by the end or a space.
bool ConsumeIndicator(absl::string_view& line, absl::string_view indicator) {
  if (line.size() < indicator.size() ||
      !absl::EqualsIgnoreCase(line.substr(0, indicator.size()), indicator)) {
    return false;
  }
  absl::string_view rest = line.substr(indicator.size());
  if (!rest.empty() && rest[0] != ' ') return false;
  if (!rest.empty()) rest.remove_prefix(1);
  line = rest;
  return true;
}

std::string ResponseCode(absl::string_view text) {
  if (text.empty() || text[0] != '[') return "";
  size_t close = text.find(']');
  if (close == absl::string_view::npos || close == 1 || close > kMaxCodeLength) return "";
  absl::string_view code = text.substr(1, close - 1);
  for (char c : code) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return "";
  }
  return absl::AsciiStrToUpper(code);
}

bool CodeIs(absl::string_view code, absl::string_view base) {
  return code == base ||
         (absl::StartsWith(code, base) && code.size() > base.size() && code[base.size()] == '/');
}

}  // namespace

Reply ParseReply(absl::string_view line) {
  Reply reply;
  absl::string_view rest = line;
  if (ConsumeIndicator(rest, "+OK")) {
    reply.kind = Reply::Kind::kOk;
  } else if (ConsumeIndicator(rest, "-ERR")) {
    reply.kind = Reply::Kind::kErr;
  } else if (ConsumeIndicator(rest, "+")) {
    reply.kind = Reply::Kind::kContinuation;
    reply.text = std::string(rest);
    return reply;
  } else {
    return reply;
  }
  reply.text = std::string(rest);
  reply.code = ResponseCode(rest);
  return reply;
}

bool IsTemporaryCode(absl::string_view code) {
  return CodeIs(code, "SYS/TEMP") || CodeIs(code, "IN-USE") || CodeIs(code, "LOGIN-DELAY");
}

std::optional<std::string> ApopTimestamp(absl::string_view greeting) {
  size_t open = greeting.find('<');
  if (open == absl::string_view::npos) return std::nullopt;
  size_t close = greeting.find('>', open + 1);
  if (close == absl::string_view::npos) return std::nullopt;
  absl::string_view ts = greeting.substr(open, close - open + 1);
  bool at = false;
  for (char c : ts.substr(1, ts.size() - 2)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return std::nullopt;
    if (c == '@') at = true;
  }
  if (!at) return std::nullopt;
  return std::string(ts);
}

Capabilities ParseCapabilities(const std::vector<std::string>& lines) {
  Capabilities caps;
  for (const std::string& raw : lines) {
    std::string line = SanitizeServerText(raw);
    std::vector<absl::string_view> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.empty()) continue;
    caps.lines.push_back(line);
    std::string tag = absl::AsciiStrToUpper(words[0]);
    if (tag == "USER") {
      caps.user = true;
    } else if (tag == "STLS") {
      caps.stls = true;
    } else if (tag == "SASL") {
      for (size_t i = 1; i < words.size(); ++i) {
        wire::Mechanism m = wire::MechanismFromSaslName(words[i]);
        if (m == wire::Mechanism::kAuto) continue;
        if (std::find(caps.sasl.begin(), caps.sasl.end(), m) == caps.sasl.end()) {
          caps.sasl.push_back(m);
        }
      }
    }
  }
  return caps;
}

}  // namespace mailpool::pop3
