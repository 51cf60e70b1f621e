// CheckAddress without the server: the RFC 5322 / 5321 grammar of common/address.h.
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/address.h"
#include "mime/mime.h"
#include "send/send.h"

namespace mailpool::sender {

v1::CheckAddressResponse CheckAddressSyntax(absl::string_view input, bool strict) {
  v1::CheckAddressResponse response;
  auto invalid = [&](absl::string_view why) {
    response.set_result(v1::CHECK_RESULT_INVALID);
    response.set_reason(std::string(why));
    response.clear_parsed();
    return response;
  };
  for (char c : input) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 && c != '\t') return invalid("control character (CR, LF, NUL ...)");
  }
  absl::string_view text = absl::StripAsciiWhitespace(input);
  if (text.empty()) return invalid("empty address");
  std::string name;
  absl::string_view spec = text;
  // name-addr = [display-name] angle-addr; angle-addr = [CFWS] "<" addr-spec ">" [CFWS]
  if (text.back() == '>') {
    if (strict) return invalid("strict mode takes a bare address, without a display name");
    size_t open = text.rfind('<');
    if (open == absl::string_view::npos) return invalid("'>' without '<'");
    absl::string_view display = absl::StripAsciiWhitespace(text.substr(0, open));
    if (display.size() >= 2 && display.front() == '"' && display.back() == '"') {
      if (!IsQuotedString(display)) return invalid("malformed quoted display name");
      display = display.substr(1, display.size() - 2);
    } else {
      for (char c : display) {
        if (c == '<' || c == '>' || c == '@' || c == '"' || c == ',' || c == ';' || c == ':') {
          return invalid(
              absl::StrCat("display name has '", std::string(1, c), "' and is not quoted"));
        }
      }
    }
    name = std::string(display);
    if (absl::StrContains(name, "=?") || absl::StrContains(name, "\\")) {
      // RFC 2047 encoded words and quoted pairs: decoded as a From header's name would be
      // (the input has no CR or LF, checked above).
      mime::ParseOptions options;
      options.headers_only = true;
      v1::EmailMessage m = mime::Parse(absl::StrCat("From: ", text, "\r\n\r\n"), options, nullptr);
      if (!m.from().name().empty()) name = m.from().name();
    }
    spec = text.substr(open + 1, text.size() - open - 2);
  }
  if (spec.find('<') != absl::string_view::npos || spec.find('>') != absl::string_view::npos) {
    return invalid("stray '<' or '>'");
  }
  size_t at = spec.rfind('@');
  if (at == absl::string_view::npos) return invalid("missing '@'");
  absl::string_view local = spec.substr(0, at);
  absl::string_view domain = spec.substr(at + 1);
  if (local.empty()) return invalid("empty local part");
  if (domain.empty()) return invalid("empty domain");
  if (local.size() > kMaxLocalPartBytes) return invalid("local part longer than 64 bytes");
  if (spec.size() > kMaxPathBytes) return invalid("address longer than 256 bytes");
  if (strict) {
    if (!IsDotAtomText(local)) return invalid("local part is not a dot-atom");
    if (std::string why = StrictDomainError(domain); !why.empty()) return invalid(why);
  } else {
    if (!IsLocalPart(local)) {
      return invalid("local part is neither a dot-atom nor a quoted string");
    }
    if (!IsDotAtomText(domain) && !IsAddressLiteral(domain)) {
      return invalid("domain is neither a dot-atom nor an address literal");
    }
  }
  response.set_result(v1::CHECK_RESULT_VALID);
  response.mutable_parsed()->set_name(name);
  response.mutable_parsed()->set_address(std::string(spec));
  return response;
}

}  // namespace mailpool::sender
