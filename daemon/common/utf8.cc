#include "common/utf8.h"

#include <errno.h>
#include <iconv.h>

#include <cstdint>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace mailpool {
namespace {

constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence at the start of `s` (1..4), or 0 when it is not
// one; *subpart is then the length of the maximal subpart to replace (at least 1).
size_t SequenceLength(absl::string_view s, size_t* subpart) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  unsigned char c = p[0];
  *subpart = 1;
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlongs
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // no overlongs
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  for (size_t i = 1; i < len; ++i) {
    if (i >= n) return 0;
    unsigned char b = p[i];
    unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) return 0;
    *subpart = i + 1;
  }
  return len;
}

std::string ReplaceInvalid(absl::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  while (!text.empty()) {
    size_t subpart = 1;
    size_t len = SequenceLength(text, &subpart);
    if (len == 0) {
      out.append(kReplacement.data(), kReplacement.size());
      text.remove_prefix(subpart);
    } else {
      out.append(text.data(), len);
      text.remove_prefix(len);
    }
  }
  return out;
}

bool IsUtf8Name(absl::string_view charset) {
  std::string c = absl::AsciiStrToLower(charset);
  return c.empty() || c == "utf-8" || c == "utf8" || c == "us-ascii" || c == "ascii" ||
         c == "ansi_x3.4-1968";
}

// Decodes `text` from `charset` with iconv; false when the charset is unknown or the
// bytes are not valid in it.
bool Decode(absl::string_view text, absl::string_view charset, std::string* out) {
  std::string name(charset);
  if (name.size() > 64) return false;
  iconv_t cd = iconv_open("UTF-8", name.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;
  out->clear();
  out->resize(text.size() * 4 + 16);
  char* in = const_cast<char*>(text.data());
  size_t in_left = text.size();
  char* dst = out->data();
  size_t out_left = out->size();
  size_t r = iconv(cd, &in, &in_left, &dst, &out_left);
  bool ok = r != static_cast<size_t>(-1) && in_left == 0;
  if (ok) ok = iconv(cd, nullptr, nullptr, &dst, &out_left) != static_cast<size_t>(-1);
  iconv_close(cd);
  if (!ok) return false;
  out->resize(out->size() - out_left);
  return IsValidUtf8(*out);
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    if (i + 8 <= n) {
      uint64_t chunk;
      std::memcpy(&chunk, text.data() + i, 8);
      if ((chunk & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    size_t subpart = 1;
    size_t len = SequenceLength(text.substr(i), &subpart);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string ToValidUtf8(absl::string_view text, absl::string_view charset) {
  if (!IsUtf8Name(charset)) {
    std::string decoded;
    if (Decode(text, charset, &decoded)) return decoded;
  }
  if (IsValidUtf8(text)) return std::string(text);
  return ReplaceInvalid(text);
}

bool MakeValidUtf8(std::string* text) {
  if (IsValidUtf8(*text)) return false;
  *text = ReplaceInvalid(*text);
  return true;
}

absl::string_view Utf8Prefix(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // A cut before a continuation byte falls inside a sequence: back up to its lead byte.
  while (end > 0 && max_bytes - end < 3 &&
         (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return text.substr(0, end);
}

}  // namespace mailpool
