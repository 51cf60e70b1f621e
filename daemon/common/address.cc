#include "common/address.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace mailpool {

bool IsAtext(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return absl::ascii_isalnum(u) || u >= 0x80 ||
         absl::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != absl::string_view::npos;
}

bool IsDotAtomText(absl::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i + 1] == '.') return false;
    } else if (!IsAtext(s[i])) {
      return false;
    }
  }
  return true;
}

bool IsQuotedString(absl::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    unsigned char u = static_cast<unsigned char>(s[i]);
    if (u == '\\') {
      if (i + 2 >= s.size()) return false;  // the closing DQUOTE cannot be escaped
      ++i;
      continue;
    }
    if (u == '"' || u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

bool IsLocalPart(absl::string_view s) { return IsDotAtomText(s) || IsQuotedString(s); }

bool IsDomainLiteral(absl::string_view s) {
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return false;
  for (char c : s.substr(1, s.size() - 2)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == '[' || c == ']' || c == '\\') return false;
  }
  return true;
}

bool IsAddressLiteral(absl::string_view s) {
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return false;
  for (char c : s.substr(1, s.size() - 2)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != ':') return false;
  }
  return true;
}

bool IsDotAtomDomain(absl::string_view s) {
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(absl::ascii_isalnum(u) || c == '-' || c == '.' || u >= 0x80)) return false;
  }
  return IsDotAtomText(s);
}

std::optional<AddrSpecParts> SplitAddrSpec(absl::string_view s) {
  size_t at = s.rfind('@');
  if (at == absl::string_view::npos) return std::nullopt;
  return AddrSpecParts{s.substr(0, at), s.substr(at + 1)};
}

bool IsAddrSpec(absl::string_view s) {
  std::optional<AddrSpecParts> parts = SplitAddrSpec(s);
  if (!parts || parts->local.empty() || parts->domain.empty()) return false;
  if (!IsLocalPart(parts->local)) return false;
  if (parts->domain.front() == '[') return IsDomainLiteral(parts->domain);
  return IsDotAtomDomain(parts->domain);
}

std::string StrictDomainError(absl::string_view domain) {
  if (IsAddressLiteral(domain)) return "";
  if (domain.size() > kMaxDomainBytes) return "domain longer than 255 bytes";
  size_t labels = 0;
  size_t start = 0;
  while (true) {
    size_t dot = domain.find('.', start);
    absl::string_view label = domain.substr(
        start, dot == absl::string_view::npos ? absl::string_view::npos : dot - start);
    if (label.empty()) return "empty domain label";
    if (label.size() > 63) return "domain label longer than 63 bytes";
    if (label.front() == '-' || label.back() == '-') return "domain label starts or ends with '-'";
    for (char c : label) {
      unsigned char u = static_cast<unsigned char>(c);
      if (!absl::ascii_isalnum(u) && c != '-' && u < 0x80) {
        return absl::StrCat("invalid character '", std::string(1, c), "' in the domain");
      }
    }
    ++labels;
    if (dot == absl::string_view::npos) break;
    start = dot + 1;
  }
  if (labels < 2) return "domain has a single label";
  return "";
}

}  // namespace mailpool
