#include "smtp/reply.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"

namespace mailpool::smtp {
namespace {

absl::Status Violation(absl::string_view what) {
  return ReasonError(absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", what);
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetDig(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

// Let-dig        = ALPHA / DIGIT
// Ldh-str        = *( ALPHA / DIGIT / "-" ) Let-dig
bool IsLdhStr(absl::string_view s) {
  if (s.empty() || !IsLetDig(s.back())) return false;
  for (char c : s) {
    if (!IsLetDig(c) && c != '-') return false;
  }
  return true;
}

// Domain         = sub-domain *("." sub-domain)
// sub-domain     = Let-dig [Ldh-str]
bool IsDomain(absl::string_view s) {
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (label.empty() || !IsLetDig(label.front())) return false;
    if (label.size() > 1 && !IsLdhStr(label.substr(1))) return false;
  }
  return true;
}

// Snum           = 1*3DIGIT
//                ; representing a decimal integer
//                ; value in the range 0 through 255
// IPv4-address-literal  = Snum 3("."  Snum)
bool IsIpv4AddressLiteral(absl::string_view s) {
  std::vector<absl::string_view> parts = absl::StrSplit(s, '.');
  if (parts.size() != 4) return false;
  for (absl::string_view part : parts) {
    if (part.empty() || part.size() > 3) return false;
    int value = 0;
    for (char c : part) {
      if (!IsDigit(c)) return false;
      value = value * 10 + (c - '0');
    }
    if (value > 255) return false;
  }
  return true;
}

// General-address-literal  = Standardized-tag ":" 1*dcontent
// Standardized-tag  = Ldh-str
// dcontent       = %d33-90 / ; Printable US-ASCII
//                %d94-126 ; excl. "[", "\", "]"
// IPv6-address-literal = "IPv6:" IPv6-addr is accepted through this rule (tag "IPv6");
// the address itself is not checked.
bool IsGeneralAddressLiteral(absl::string_view s) {
  size_t colon = s.find(':');
  if (colon == absl::string_view::npos || !IsLdhStr(s.substr(0, colon))) return false;
  absl::string_view content = s.substr(colon + 1);
  if (content.empty()) return false;
  for (char c : content) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!((u >= 33 && u <= 90) || (u >= 94 && u <= 126))) return false;
  }
  return true;
}

// ehlo-keyword   = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
bool IsEhloKeyword(absl::string_view s) {
  if (s.empty() || !IsLetDig(s.front())) return false;
  for (char c : s) {
    if (!IsLetDig(c) && c != '-') return false;
  }
  return true;
}

// ehlo-param     = 1*(%d33-126)
bool IsEhloParam(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126) return false;
  }
  return true;
}

}  // namespace

std::string Reply::Raw() const {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    absl::StrAppend(&out, code);
    if (i + 1 < lines.size()) {
      absl::StrAppend(&out, "-", lines[i]);
    } else if (!lines[i].empty()) {
      absl::StrAppend(&out, " ", lines[i]);
    }
  }
  return out;
}

// RFC 5321 section 4.2:
//   Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
//                  Reply-code [ SP textstring ] CRLF
//   Reply-code     = %x32-35 %x30-35 %x30-39
//   textstring     = 1*(%d09 / %d32-126) ; HT, SP, Printable US-ASCII
// Section 4.2.1: "In a multiline reply, the reply code on each of the lines MUST be the
// same."
// Text is taken as any octets (SMTPUTF8 servers send UTF-8, RFC 6531) and sanitized where
// it is shown; "250 " with empty text is accepted (RFC 4954 challenges are "334 ").
absl::StatusOr<std::optional<Reply>> ReplyParser::AddLine(absl::string_view line) {
  auto fail = [this](absl::string_view what) {
    pending_ = Reply();
    bytes_ = 0;
    return Violation(what);
  };
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
      !IsDigit(line[2])) {
    return fail("the server sent a line without a valid reply code");
  }
  int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  bool last;
  if (line.size() == 3) {
    last = true;
  } else if (line[3] == ' ') {
    last = true;
  } else if (line[3] == '-') {
    last = false;
  } else {
    return fail("the server sent a reply code not followed by SP or \"-\"");
  }
  if (in_reply() && code != pending_.code) {
    return fail(absl::StrCat("the server mixed reply codes ", pending_.code, " and ", code,
                             " in one multi-line reply"));
  }
  absl::string_view text = line.size() > 4 ? line.substr(4) : absl::string_view();
  if (pending_.lines.size() >= max_lines_) {
    return fail(absl::StrCat("the server sent a reply longer than ", max_lines_, " lines"));
  }
  bytes_ += text.size();
  if (bytes_ > max_bytes_) {
    return fail(absl::StrCat("the server sent a reply longer than ", max_bytes_, " bytes"));
  }
  pending_.code = code;
  pending_.lines.emplace_back(text.data(), text.size());
  if (!last) return std::optional<Reply>();
  Reply done = std::move(pending_);
  pending_ = Reply();
  bytes_ = 0;
  return std::optional<Reply>(std::move(done));
}

// RFC 5321 section 4.1.1.1:
//   ehlo-ok-rsp    = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
//                  / ( "250-" Domain [ SP ehlo-greet ] CRLF
//                  *( "250-" ehlo-line CRLF )
//                  "250" SP ehlo-line CRLF )
// The first line (Domain and greeting) is not an extension.
Extensions Extensions::FromEhloReply(const Reply& reply) {
  Extensions out;
  for (size_t i = 1; i < reply.lines.size(); ++i) out.AddLine(reply.lines[i]);
  return out;
}

Extensions Extensions::FromCapabilities(const std::vector<std::string>& capabilities) {
  Extensions out;
  for (const std::string& line : capabilities) out.AddLine(line);
  return out;
}

// RFC 5321 section 4.1.1.1:
//   ehlo-line      = ehlo-keyword *( SP ehlo-param )
//   ehlo-keyword   = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
//   ehlo-param     = 1*(%d33-126)
// Keywords are case-insensitive (section 2.4) and stored upper case. Runs of spaces are
// tolerated. Besides, "AUTH=PLAIN LOGIN", the form of pre-standard drafts that some
// servers still send next to "AUTH", is read as AUTH (RFC 4954: "The AUTH EHLO keyword
// contains as a parameter a space-separated list of the names of available SASL
// mechanisms").
bool Extensions::AddLine(absl::string_view ehlo_line) {
  std::vector<absl::string_view> words = absl::StrSplit(ehlo_line, ' ', absl::SkipEmpty());
  if (words.empty()) return false;
  Extension ext;
  size_t first_param = 1;
  if (words[0].size() >= 5 && absl::EqualsIgnoreCase(words[0].substr(0, 5), "AUTH=")) {
    ext.keyword = "AUTH";
    words[0].remove_prefix(5);
    first_param = words[0].empty() ? 1 : 0;
  } else if (IsEhloKeyword(words[0])) {
    ext.keyword = absl::AsciiStrToUpper(words[0]);
  } else {
    return false;
  }
  for (size_t i = first_param; i < words.size(); ++i) {
    if (!IsEhloParam(words[i])) return false;
    ext.params.emplace_back(words[i].data(), words[i].size());
  }
  for (Extension& existing : list_) {
    if (existing.keyword != ext.keyword) continue;
    if (ext.keyword == "AUTH") {
      for (std::string& param : ext.params) {
        bool seen = false;
        for (const std::string& have : existing.params) {
          seen = seen || absl::EqualsIgnoreCase(have, param);
        }
        if (!seen) existing.params.push_back(std::move(param));
      }
    }
    return true;
  }
  list_.push_back(std::move(ext));
  return true;
}

const Extension* Extensions::Find(absl::string_view keyword) const {
  for (const Extension& ext : list_) {
    if (absl::EqualsIgnoreCase(ext.keyword, keyword)) return &ext;
  }
  return nullptr;
}

std::vector<std::string> Extensions::AuthMechanisms() const {
  std::vector<std::string> out;
  if (const Extension* auth = Find("AUTH")) {
    for (const std::string& name : auth->params) out.push_back(absl::AsciiStrToUpper(name));
  }
  return out;
}

// RFC 1870 section 4: "size-param ::= [1*DIGIT]" ... "A parameter value of 0 (zero)
// indicates that no fixed maximum message size is in force."
uint64_t Extensions::MaxMessageSize() const {
  const Extension* size = Find("SIZE");
  if (size == nullptr || size->params.empty()) return 0;
  const std::string& digits = size->params[0];
  uint64_t value = 0;
  for (char c : digits) {
    if (!IsDigit(c)) return 0;
  }
  if (!absl::SimpleAtoi(digits, &value)) return 0;
  return value;
}

std::vector<std::string> Extensions::ToStrings() const {
  std::vector<std::string> out;
  out.reserve(list_.size());
  for (const Extension& ext : list_) {
    std::string line = ext.keyword;
    for (const std::string& param : ext.params) absl::StrAppend(&line, " ", param);
    out.push_back(std::move(line));
  }
  return out;
}

// RFC 5321 section 4.1.1.1 and 4.1.2:
//   ehlo           = "EHLO" SP ( Domain / address-literal ) CRLF
//   address-literal  = "[" ( IPv4-address-literal /
//                    IPv6-address-literal /
//                    General-address-literal ) "]"
// Section 4.5.3.1.2: "The maximum total length of a domain name or number is 255 octets."
bool IsValidEhloName(absl::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  if (name.front() == '[') {
    if (name.size() < 3 || name.back() != ']') return false;
    absl::string_view inner = name.substr(1, name.size() - 2);
    return IsIpv4AddressLiteral(inner) || IsGeneralAddressLiteral(inner);
  }
  return IsDomain(name);
}

}  // namespace mailpool::smtp
