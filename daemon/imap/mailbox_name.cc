#include "imap/mailbox_name.h"

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace mailpool::imap {
namespace {

// RFC 3501 section 5.1.3: "modified BASE64, with a further modification from [UTF-7]
// that "," is used instead of "/"".
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int AlphabetIndex(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == ',') return 63;
  return -1;
}

// "printable US-ASCII characters, except for "&", represent themselves" (0x20-0x7e).
bool IsDirect(uint32_t c) { return c >= 0x20 && c <= 0x7e; }

// Decodes one UTF-8 sequence at text[*pos]; rejects overlong forms, surrogates and
// values above U+10FFFF.
bool NextCodePoint(absl::string_view text, size_t* pos, uint32_t* out) {
  unsigned char b0 = static_cast<unsigned char>(text[*pos]);
  int extra;
  uint32_t cp;
  uint32_t min;
  if (b0 < 0x80) {
    *out = b0;
    ++*pos;
    return true;
  } else if ((b0 & 0xe0) == 0xc0) {
    extra = 1, cp = b0 & 0x1f, min = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    extra = 2, cp = b0 & 0x0f, min = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    extra = 3, cp = b0 & 0x07, min = 0x10000;
  } else {
    return false;
  }
  if (*pos + extra >= text.size()) return false;
  for (int i = 1; i <= extra; ++i) {
    unsigned char b = static_cast<unsigned char>(text[*pos + i]);
    if ((b & 0xc0) != 0x80) return false;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
  *pos += extra + 1;
  *out = cp;
  return true;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// Appends "&" base64(UTF-16BE of `run`) "-".
void AppendShifted(const std::vector<uint32_t>& run, std::string& out) {
  std::vector<uint8_t> bytes;
  for (uint32_t cp : run) {
    if (cp >= 0x10000) {
      uint32_t v = cp - 0x10000;
      uint16_t hi = static_cast<uint16_t>(0xd800 | (v >> 10));
      uint16_t lo = static_cast<uint16_t>(0xdc00 | (v & 0x3ff));
      bytes.insert(bytes.end(), {static_cast<uint8_t>(hi >> 8), static_cast<uint8_t>(hi),
                                 static_cast<uint8_t>(lo >> 8), static_cast<uint8_t>(lo)});
    } else {
      bytes.insert(bytes.end(), {static_cast<uint8_t>(cp >> 8), static_cast<uint8_t>(cp)});
    }
  }
  out += '&';
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  out += '-';
}

}  // namespace

absl::StatusOr<std::string> EncodeMailboxName(absl::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  std::vector<uint32_t> run;
  size_t pos = 0;
  while (pos < utf8.size()) {
    uint32_t cp;
    if (!NextCodePoint(utf8, &pos, &cp)) {
      return absl::InvalidArgumentError("mailbox name is not valid UTF-8");
    }
    if (IsDirect(cp)) {
      if (!run.empty()) {
        AppendShifted(run, out);
        run.clear();
      }
      if (cp == '&') {
        out += "&-";
      } else {
        out += static_cast<char>(cp);
      }
    } else {
      run.push_back(cp);
    }
  }
  if (!run.empty()) AppendShifted(run, out);
  return out;
}

absl::StatusOr<std::string> DecodeMailboxName(absl::string_view mutf7) {
  std::string out;
  out.reserve(mutf7.size());
  size_t pos = 0;
  while (pos < mutf7.size()) {
    char c = mutf7[pos];
    if (static_cast<unsigned char>(c) >= 0x80) {
      return absl::InvalidArgumentError("8-bit byte in a modified UTF-7 mailbox name");
    }
    if (c != '&') {
      out += c;
      ++pos;
      continue;
    }
    size_t end = mutf7.find('-', pos + 1);
    if (end == absl::string_view::npos) {
      return absl::InvalidArgumentError("unterminated base64 run in a mailbox name");
    }
    absl::string_view b64 = mutf7.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (b64.empty()) {
      out += '&';
      continue;
    }
    uint32_t acc = 0;
    int bits = 0;
    uint32_t high = 0;  // pending high surrogate
    for (char d : b64) {
      int v = AlphabetIndex(d);
      if (v < 0) return absl::InvalidArgumentError("malformed base64 in a mailbox name");
      acc = (acc << 6) | static_cast<uint32_t>(v);
      bits += 6;
      if (bits < 16) continue;
      bits -= 16;
      uint32_t unit = (acc >> bits) & 0xffff;
      if (unit >= 0xd800 && unit <= 0xdbff) {
        if (high != 0) return absl::InvalidArgumentError("unpaired surrogate in a mailbox name");
        high = unit;
      } else if (unit >= 0xdc00 && unit <= 0xdfff) {
        if (high == 0) return absl::InvalidArgumentError("unpaired surrogate in a mailbox name");
        AppendUtf8(0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00), out);
        high = 0;
      } else {
        if (high != 0) return absl::InvalidArgumentError("unpaired surrogate in a mailbox name");
        AppendUtf8(unit, out);
      }
    }
    // Leftover bits are padding and must be zero (fewer than 6 of them).
    if (high != 0 || bits >= 6 || (acc & ((1u << bits) - 1)) != 0) {
      return absl::InvalidArgumentError("malformed base64 in a mailbox name");
    }
  }
  return out;
}

}  // namespace mailpool::imap
