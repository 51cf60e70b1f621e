// UTF-8 at the boundary: every server byte that ends up in a proto3 `string` field (a
// greeting, capabilities, folder names, header values) must be valid UTF-8, or strict
// clients (Python, Go, Java) fail to parse the whole reply.
//
//   std::string greeting = ToValidUtf8(line);                  // invalid bytes -> U+FFFD
//   std::string subject = ToValidUtf8(raw, "iso-8859-1");      // decoded by its charset
//   MakeValidUtf8(&entry.name);                                // in place
//
// Thread-safe (pure functions).
#ifndef MAILPOOL_COMMON_UTF8_H_
#define MAILPOOL_COMMON_UTF8_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mailpool {

// Whether `text` is well-formed UTF-8 (RFC 3629: shortest forms only, no surrogates,
// nothing above U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// `text` as valid UTF-8. With a `charset` other than UTF-8/US-ASCII that the system knows
// (iconv: ISO-8859-*, windows-125x, KOI8-R, GB18030, ...), the bytes are decoded from it;
// otherwise (or when that decoding fails) valid UTF-8 stays as it is and every invalid
// sequence becomes one U+FFFD (per maximal subpart, as in Unicode 15 section 3.9).
std::string ToValidUtf8(absl::string_view text, absl::string_view charset = {});

// Makes `text` valid UTF-8 in place (see ToValidUtf8); returns whether it changed.
bool MakeValidUtf8(std::string* text);

// The longest prefix of `text` of at most `max_bytes` that does not end inside a UTF-8
// sequence.
absl::string_view Utf8Prefix(absl::string_view text, size_t max_bytes);

}  // namespace mailpool

#endif  // MAILPOOL_COMMON_UTF8_H_
