// The one e-mail address grammar of the daemon: the RFC 5322 / RFC 5321 rules that the
// message builder (mime), the SMTP client (smtp) and CheckAddress (send) all check
// addresses with. Pure functions over bytes, no allocation; UTF-8 is accepted wherever
// RFC 6532 section 3.2 allows it (UTF8-non-ascii in atext, qtext and domain labels);
// whether it is *valid* UTF-8 is the caller's check.
//
// It lives in common/ (not mime/) so that smtp, a protocol module, can use it without
// depending on the message model.
//
//   if (!IsAddrSpec("alice@example.org")) ...
//   std::optional<AddrSpecParts> p = SplitAddrSpec(path);   // local-part, domain
//   std::string why = StrictDomainError("example.org");     // "" when fine
#ifndef MAILPOOL_COMMON_ADDRESS_H_
#define MAILPOOL_COMMON_ADDRESS_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace mailpool {

// RFC 5321 section 4.5.3.1: the longest paths an SMTP client may send.
inline constexpr size_t kMaxPathBytes = 256;      // section 4.5.3.1.3, without "<>"
inline constexpr size_t kMaxLocalPartBytes = 64;  // section 4.5.3.1.1
inline constexpr size_t kMaxDomainBytes = 255;    // section 4.5.3.1.2

// RFC 5322 section 3.2.3:
//   atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "/" /
//           "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
// RFC 6532 section 3.2: atext =/ UTF8-non-ascii (any byte >= 0x80 here).
bool IsAtext(char c);

// RFC 5322 section 3.2.3: dot-atom-text = 1*atext *("." 1*atext)
bool IsDotAtomText(absl::string_view s);

// RFC 5322 section 3.2.4, without folding white space inside:
//   quoted-string = DQUOTE *qcontent DQUOTE;  qcontent = qtext / quoted-pair
//   qtext = %d32-33 / %d35-91 / %d93-126 (+ UTF8-non-ascii);  quoted-pair = "\" VCHAR / WSP
// Here: any byte but controls (< 0x20, 0x7F) and a bare DQUOTE; "\" escapes the next byte.
bool IsQuotedString(absl::string_view s);

// RFC 5322 section 3.4.1: local-part = dot-atom / quoted-string
bool IsLocalPart(absl::string_view s);

// RFC 5322 section 3.4.1: domain-literal = "[" *dtext "]"
//   dtext = %d33-90 / %d94-126   (printable ASCII but "[", "]" and "\")
bool IsDomainLiteral(absl::string_view s);

// RFC 5321 section 4.1.2 / 4.1.3: address-literal = "[" ( IPv4-address-literal /
// IPv6-address-literal / General-address-literal ) "]", checked loosely: at least one
// byte of letters, digits, "." and ":" between the brackets.
bool IsAddressLiteral(absl::string_view s);

// A domain in dot-atom form whose atoms hold only letters, digits, "-" and UTF-8 (the
// dot-atom of RFC 5322 restricted to what RFC 5321 section 4.1.2 sub-domains may hold).
bool IsDotAtomDomain(absl::string_view s);

// RFC 5322 section 3.4.1: addr-spec = local-part "@" domain, with
// domain = dot-atom (IsDotAtomDomain) / domain-literal. The last "@" separates the parts.
bool IsAddrSpec(absl::string_view s);

// The local-part and domain of `s`, split at its last "@"; nullopt without one.
struct AddrSpecParts {
  absl::string_view local;
  absl::string_view domain;
};
std::optional<AddrSpecParts> SplitAddrSpec(absl::string_view s);

// RFC 5321 section 4.1.2 Domain, strictly: "" when `domain` is an address literal or
//   Domain = sub-domain 1*("." sub-domain);  sub-domain = Let-dig [Ldh-str]
// with labels of 1..63 bytes (RFC 1035 section 2.3.4), the whole at most kMaxDomainBytes,
// U-labels (UTF-8) allowed, at least two labels. Otherwise why not, for a person.
std::string StrictDomainError(absl::string_view domain);

}  // namespace mailpool

#endif  // MAILPOOL_COMMON_ADDRESS_H_
