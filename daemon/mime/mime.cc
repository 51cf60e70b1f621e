// The message model over GMime 3.
//
// Why GMime (Debian: libgmime-3.0-dev, LGPL-2.1): it is the maintained C MIME library
// behind several mail clients, built to parse real-world mail robustly (it recovers from
// missing boundaries, bad headers and 8-bit junk and reports each problem through a
// warning callback instead of failing), it decodes RFC 2047 encoded-words and RFC 2231
// parameters (continuations and charsets), converts charsets through iconv with a table
// of the aliases seen in the wild, decodes IDN domains, and its parser reads the input in
// place (parts are windows on the source stream, not copies). Hand-written MIME is where
// mail libraries grow their bugs; this file only maps GMime's tree to the proto model.
//
// What is done here rather than in GMime, and why:
//  - RFC 2047 encoding of header text: GMime 3.2 writes encoded-words longer than the
//    75 characters RFC 2047 section 2 allows (CJK subjects become one 150-character
//    word), so EncodeWords() below writes B-encoded UTF-8 words of at most 75 characters.
//  - Header folding and raw UTF-8 headers (RFC 6532): GMime can only write encoded
//    headers, so the top-level header block is written here and GMime serializes the
//    MIME body tree (Content-* headers, boundaries, transfer encodings, RFC 2231).
//  - Body charset conversion: done with GMime's iconv wrapper, but with our own loop so
//    that undecodable bytes become U+FFFD and are reported, never dropped silently.
#include "mime/mime.h"

#include <gmime/gmime.h>
#include <iconv.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/address.h"
#include "common/status.h"

namespace mailpool::mime {
namespace {

// ---------------------------------------------------------------------------------------
// GLib/GMime plumbing.

void EnsureGMime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

struct GObjectUnref {
  void operator()(void* p) const {
    if (p != nullptr) g_object_unref(p);
  }
};
template <typename T>
using GObj = std::unique_ptr<T, GObjectUnref>;

struct GFreeDeleter {
  void operator()(void* p) const { g_free(p); }
};
using GChars = std::unique_ptr<char, GFreeDeleter>;

// Takes ownership of a g_malloc'd string; "" for null.
std::string TakeString(char* s) {
  GChars owned(s);
  return s == nullptr ? std::string() : std::string(s);
}

std::string OrEmpty(const char* s) { return s == nullptr ? std::string() : std::string(s); }

// A write-only GMimeStream that appends to a std::string, so that decoded content and
// built messages land in their final buffer without an intermediate GByteArray copy.
struct MailpoolStringSink {
  GMimeStream parent;
  std::string* out;
};
struct MailpoolStringSinkClass {
  GMimeStreamClass parent_class;
};

G_DEFINE_TYPE(MailpoolStringSink, mailpool_string_sink, GMIME_TYPE_STREAM)

ssize_t StringSinkWrite(GMimeStream* stream, const char* buf, size_t len) {
  auto* sink = reinterpret_cast<MailpoolStringSink*>(stream);
  sink->out->append(buf, len);
  stream->position += static_cast<gint64>(len);
  return static_cast<ssize_t>(len);
}
ssize_t StringSinkRead(GMimeStream*, char*, size_t) { return -1; }
int StringSinkOk(GMimeStream*) { return 0; }
gboolean StringSinkEos(GMimeStream*) { return TRUE; }
gint64 StringSinkSeek(GMimeStream*, gint64, GMimeSeekWhence) { return -1; }
gint64 StringSinkTell(GMimeStream* stream) { return stream->position; }
gint64 StringSinkLength(GMimeStream* stream) {
  return static_cast<gint64>(reinterpret_cast<MailpoolStringSink*>(stream)->out->size());
}
GMimeStream* StringSinkSubstream(GMimeStream*, gint64, gint64) { return nullptr; }

void mailpool_string_sink_class_init(MailpoolStringSinkClass* klass) {
  GMimeStreamClass* stream_class = GMIME_STREAM_CLASS(klass);
  stream_class->read = StringSinkRead;
  stream_class->write = StringSinkWrite;
  stream_class->flush = StringSinkOk;
  stream_class->close = StringSinkOk;
  stream_class->eos = StringSinkEos;
  stream_class->reset = StringSinkOk;
  stream_class->seek = StringSinkSeek;
  stream_class->tell = StringSinkTell;
  stream_class->length = StringSinkLength;
  stream_class->substream = StringSinkSubstream;
}
void mailpool_string_sink_init(MailpoolStringSink* sink) { sink->out = nullptr; }

GObj<GMimeStream> NewStringSink(std::string* out) {
  auto* sink =
      static_cast<MailpoolStringSink*>(g_object_new(mailpool_string_sink_get_type(), nullptr));
  sink->out = out;
  g_mime_stream_construct(&sink->parent, 0, -1);
  return GObj<GMimeStream>(&sink->parent);
}

// Read-only GMime streams over caller-owned bytes, without copying them. GMime's memory
// stream reads from a GByteArray; we lend it ours (the stream is told it does not own the
// array, and nothing writes to it) and free only the array header afterwards. Every
// stream made here must be released before the lender (declare it before the GMime
// objects that use it, so that it is destroyed after them).
class BorrowedBytes {
 public:
  BorrowedBytes() = default;
  BorrowedBytes(const BorrowedBytes&) = delete;
  BorrowedBytes& operator=(const BorrowedBytes&) = delete;
  ~BorrowedBytes() {
    for (GByteArray* array : arrays_) g_byte_array_free(array, FALSE);  // not the data
  }

  GObj<GMimeStream> Stream(absl::string_view bytes) {
    static const char kEmpty[1] = {0};
    const char* data = bytes.empty() ? kEmpty : bytes.data();
    GByteArray* array =
        g_byte_array_new_take(reinterpret_cast<guint8*>(const_cast<char*>(data)), bytes.size());
    arrays_.push_back(array);
    GMimeStream* stream = g_mime_stream_mem_new_with_byte_array(array);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
    return GObj<GMimeStream>(stream);
  }
  // Keeps `text` alive as long as the streams, and streams it.
  GObj<GMimeStream> StreamOwned(std::string text) {
    owned_.push_back(std::move(text));
    return Stream(owned_.back());
  }

 private:
  std::vector<GByteArray*> arrays_;
  std::deque<std::string> owned_;
};

// ---------------------------------------------------------------------------------------
// Text helpers.

bool IsAscii(absl::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) return false;
  }
  return true;
}

// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlongs, no
// surrogates, at most U+10FFFF), or 0 when it is not valid.
size_t Utf8SequenceLength(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  if (n == 0) return 0;
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  auto cont = [&](size_t i) { return i < n && (p[i] & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;   // overlong
    if (c == 0xED && p[1] >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;   // overlong
    if (c == 0xF4 && p[1] >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = Utf8SequenceLength(s.substr(i));
    if (len == 0) return false;
    i += len;
  }
  return true;
}

constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// `s` with every invalid UTF-8 byte replaced by U+FFFD; counts the replacements.
std::string MakeValidUtf8(absl::string_view s, size_t* replaced = nullptr) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  size_t count = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t len = Utf8SequenceLength(s.substr(i));
    if (len == 0) {
      out.append(kReplacement.data(), kReplacement.size());
      ++count;
      ++i;
    } else {
      out.append(s.data() + i, len);
      i += len;
    }
  }
  if (replaced != nullptr) *replaced = count;
  return out;
}

// Printable, bounded form of untrusted text for warning messages.
std::string Excerpt(absl::string_view s, size_t max = 60) {
  std::string out;
  for (size_t i = 0; i < s.size() && out.size() < max; ++i) {
    unsigned char c = s[i];
    out.push_back(c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '?');
  }
  if (s.size() > max) out.append("...");
  return out;
}

// Text with every line end as CRLF (lone LF and lone CR become CRLF).
std::string ToCrlf(absl::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32 + 2);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') {
      out.append("\r\n");
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out.append("\r\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Warnings.

// Collects distinct warnings, at most kMaxWarnings of them. Thread-compatible.
class Warnings {
 public:
  explicit Warnings(std::vector<std::string>* out) : out_(out) {}

  void Add(std::string text) {
    if (out_ == nullptr) return;
    if (!seen_.insert(text).second) return;
    if (out_->size() - initial_ >= kMaxWarnings) {
      ++dropped_;
      return;
    }
    out_->push_back(std::move(text));
  }
  void Finish() {
    if (out_ != nullptr && dropped_ > 0) {
      out_->push_back(absl::StrCat(dropped_, " more warnings were left out"));
    }
  }

 private:
  std::vector<std::string>* out_;
  size_t initial_ = out_ == nullptr ? 0 : out_->size();
  absl::flat_hash_set<std::string> seen_;
  size_t dropped_ = 0;
};

void OnParserWarning(gint64 offset, GMimeParserWarning code, const gchar* item,
                     gpointer user_data) {
  auto* warnings = static_cast<Warnings*>(user_data);
  const char* what = "MIME parser warning";
  switch (code) {
    case GMIME_WARN_DUPLICATED_HEADER:
      what = "duplicated header";
      break;
    case GMIME_WARN_DUPLICATED_PARAMETER:
      what = "duplicated header parameter";
      break;
    case GMIME_WARN_UNENCODED_8BIT_HEADER:
      what = "unencoded 8-bit text in header (read as UTF-8, else windows-1252)";
      break;
    case GMIME_WARN_INVALID_CONTENT_TYPE:
      what = "invalid Content-Type";
      break;
    case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
      what = "bad encoded-word in header";
      break;
    case GMIME_WARN_INVALID_PARAMETER:
      what = "invalid header parameter";
      break;
    case GMIME_WARN_MALFORMED_MULTIPART:
      what = "multipart without parts";
      break;
    case GMIME_WARN_TRUNCATED_MESSAGE:
      what = "missing closing boundary (the message may be truncated)";
      break;
    case GMIME_WARN_MALFORMED_MESSAGE:
      what = "malformed message";
      break;
    case GMIME_WARN_INVALID_ADDRESS_LIST:
      what = "invalid address list";
      break;
    case GMIME_CRIT_INVALID_HEADER_NAME:
      what = "invalid header line";
      break;
    case GMIME_CRIT_CONFLICTING_HEADER:
      what = "conflicting header";
      break;
    case GMIME_CRIT_CONFLICTING_PARAMETER:
      what = "conflicting header parameter";
      break;
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
      what = "multipart without a boundary parameter";
      break;
    case GMIME_CRIT_NESTING_OVERFLOW:
      what = "MIME nesting too deep; deeper parts were not parsed";
      break;
    case GMIME_WARN_PART_WITHOUT_CONTENT:
      what = "MIME part without content";
      break;
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
      what = "MIME part without headers or content";
      break;
  }
  std::string text = what;
  if (item != nullptr && *item != '\0') {
    absl::StrAppend(&text, ": ", Excerpt(absl::StripTrailingAsciiWhitespace(item)));
  }
  if (offset >= 0) absl::StrAppend(&text, " (at byte ", offset, ")");
  warnings->Add(std::move(text));
}

// Parser options for one Parse call (the warning callback points at its Warnings).
class ParserOptions {
 public:
  explicit ParserOptions(Warnings* warnings) : options_(g_mime_parser_options_new()) {
    static const char* kFallback[] = {"utf-8", "windows-1252", nullptr};
    g_mime_parser_options_set_fallback_charsets(options_, kFallback);
    g_mime_parser_options_set_rfc2047_compliance_mode(options_, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(options_, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(options_, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_allow_addresses_without_domain(options_, TRUE);
    g_mime_parser_options_set_warning_callback(options_, OnParserWarning, warnings);
  }
  ~ParserOptions() { g_mime_parser_options_free(options_); }
  ParserOptions(const ParserOptions&) = delete;
  ParserOptions& operator=(const ParserOptions&) = delete;

  GMimeParserOptions* get() const { return options_; }

 private:
  GMimeParserOptions* options_;
};

// ---------------------------------------------------------------------------------------
// Charsets.

bool IsUtf8OrAscii(absl::string_view charset) {
  std::string c = absl::AsciiStrToLower(charset);
  return c.empty() || c == "utf-8" || c == "utf8" || c == "us-ascii" || c == "ascii" ||
         c == "ansi_x3.4-1968" || c == "iso-646-us";
}

// Converts with iconv; undecodable bytes become U+FFFD and are counted. False when the
// charset is unknown to iconv.
bool ConvertWithIconv(absl::string_view bytes, const char* charset, std::string* out,
                      size_t* replaced) {
  iconv_t cd = g_mime_iconv_open("UTF-8", charset);
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;
  out->clear();
  out->reserve(bytes.size() + bytes.size() / 2 + 16);
  char* in = const_cast<char*>(bytes.data());
  size_t in_left = bytes.size();
  char buffer[4096];
  *replaced = 0;
  while (in_left > 0) {
    char* dst = buffer;
    size_t dst_left = sizeof(buffer);
    size_t rc = iconv(cd, &in, &in_left, &dst, &dst_left);
    out->append(buffer, dst - buffer);
    if (rc == static_cast<size_t>(-1)) {
      if (errno == E2BIG) continue;
      // EILSEQ (invalid sequence) or EINVAL (truncated at the end): replace one byte.
      out->append(kReplacement.data(), kReplacement.size());
      ++*replaced;
      ++in;
      --in_left;
      iconv(cd, nullptr, nullptr, nullptr, nullptr);  // reset the shift state
    }
  }
  char* dst = buffer;
  size_t dst_left = sizeof(buffer);
  iconv(cd, nullptr, nullptr, &dst, &dst_left);  // flush
  out->append(buffer, dst - buffer);
  g_mime_iconv_close(cd);
  return true;
}

// Converts text declared as `charset` to UTF-8; `where` names it in warnings.
std::string TextToUtf8(absl::string_view bytes, absl::string_view charset, absl::string_view where,
                       Warnings& warnings) {
  std::string cs(absl::StripAsciiWhitespace(charset));
  if (IsUtf8OrAscii(cs)) {
    if (IsValidUtf8(bytes)) return std::string(bytes);
    std::string out;
    size_t replaced = 0;
    if (absl::StartsWithIgnoreCase(cs, "utf")) {
      out = MakeValidUtf8(bytes, &replaced);
      warnings.Add(absl::StrCat(replaced, " bytes of invalid UTF-8 in ", where,
                                " were replaced with U+FFFD"));
      return out;
    }
    // Undeclared (or declared ASCII) 8-bit text: most often windows-1252 in practice.
    if (ConvertWithIconv(bytes, "windows-1252", &out, &replaced)) {
      warnings.Add(absl::StrCat("8-bit text without a declared charset in ", where,
                                " was read as windows-1252"));
      return MakeValidUtf8(out);
    }
    return MakeValidUtf8(bytes);
  }
  std::string out;
  size_t replaced = 0;
  if (!ConvertWithIconv(bytes, cs.c_str(), &out, &replaced)) {
    warnings.Add(absl::StrCat("unknown charset \"", Excerpt(cs), "\" in ", where,
                              "; read as UTF-8 where valid, else windows-1252"));
    if (IsValidUtf8(bytes)) return std::string(bytes);
    if (ConvertWithIconv(bytes, "windows-1252", &out, &replaced)) return MakeValidUtf8(out);
    return MakeValidUtf8(bytes);
  }
  if (replaced > 0) {
    warnings.Add(absl::StrCat(replaced, " bytes in ", where, " are not valid ", Excerpt(cs),
                              " and were replaced with U+FFFD"));
  }
  return MakeValidUtf8(out);
}

// Reports encoded-words that cannot be decoded (unknown charset, bad base64): GMime
// decodes around them silently. Cheap when the value has no "=?".
void CheckEncodedWords(absl::string_view name, absl::string_view raw, Warnings& warnings) {
  size_t pos = 0;
  while ((pos = raw.find("=?", pos)) != absl::string_view::npos) {
    // encoded-word = "=?" charset "?" encoding "?" encoded-text "?=" (RFC 2047 section 2)
    size_t q1 = raw.find('?', pos + 2);
    if (q1 == absl::string_view::npos || q1 + 2 >= raw.size() || raw[q1 + 2] != '?') {
      pos += 2;
      continue;
    }
    size_t end = raw.find("?=", q1 + 3);
    if (end == absl::string_view::npos) break;
    absl::string_view charset = raw.substr(pos + 2, q1 - pos - 2);
    charset = charset.substr(0, charset.find('*'));  // RFC 2231 language suffix
    char encoding = absl::ascii_tolower(raw[q1 + 1]);
    absl::string_view text = raw.substr(q1 + 3, end - q1 - 3);
    std::string problem;
    if (charset.empty() || charset.find_first_of(" \t\r\n") != absl::string_view::npos) {
      pos += 2;
      continue;  // not an encoded-word
    }
    if (encoding != 'b' && encoding != 'q') {
      problem = absl::StrCat("unknown encoding '", Excerpt(raw.substr(q1 + 1, 1)), "'");
    } else if (encoding == 'b') {
      std::string ignored;
      if (!absl::Base64Unescape(text, &ignored)) problem = "bad base64";
    }
    if (problem.empty() && !IsUtf8OrAscii(charset)) {
      iconv_t cd = g_mime_iconv_open("UTF-8", std::string(charset).c_str());
      if (cd == reinterpret_cast<iconv_t>(-1)) {
        problem = absl::StrCat("unknown charset \"", Excerpt(charset), "\"");
      } else {
        g_mime_iconv_close(cd);
      }
    }
    if (!problem.empty()) {
      warnings.Add(absl::StrCat("bad encoded-word in ", Excerpt(name), ": ", problem));
    }
    pos = end + 2;
  }
}

// ---------------------------------------------------------------------------------------
// Parsing.

// Header fields owned by a dedicated field of EmailMessage or by MIME (message.proto).
bool IsOwnedHeader(absl::string_view name) {
  static constexpr absl::string_view kOwned[] = {"From",
                                                 "Sender",
                                                 "Reply-To",
                                                 "To",
                                                 "Cc",
                                                 "Bcc",
                                                 "Subject",
                                                 "Date",
                                                 "Message-ID",
                                                 "In-Reply-To",
                                                 "References",
                                                 "MIME-Version",
                                                 "X-Priority",
                                                 "Importance",
                                                 "Priority",
                                                 "Sensitivity",
                                                 "Return-Receipt-To",
                                                 "Disposition-Notification-To"};
  if (absl::StartsWithIgnoreCase(name, "Content-")) return true;
  for (absl::string_view owned : kOwned) {
    if (absl::EqualsIgnoreCase(name, owned)) return true;
  }
  return false;
}

// Whether the first line looks like a header field ("Name:" with a printable name) or an
// mbox "From " separator.
bool StartsWithHeader(absl::string_view source) {
  if (absl::StartsWith(source, "From ")) return true;
  for (size_t i = 0; i < source.size(); ++i) {
    unsigned char c = source[i];
    if (c == ':') return i > 0;
    if (c <= 32 || c >= 127) return false;
  }
  return false;
}

v1::Address ToAddress(InternetAddressMailbox* mailbox) {
  v1::Address address;
  address.set_name(MakeValidUtf8(OrEmpty(internet_address_get_name(INTERNET_ADDRESS(mailbox)))));
  address.set_address(MakeValidUtf8(OrEmpty(internet_address_mailbox_get_addr(mailbox))));
  return address;
}

// Appends the mailboxes of `list`, flattening groups (RFC 5322 group syntax).
void CollectMailboxes(InternetAddressList* list, std::vector<v1::Address>* out, int depth = 0) {
  if (list == nullptr || depth > 8) return;
  int n = internet_address_list_length(list);
  for (int i = 0; i < n; ++i) {
    InternetAddress* ia = internet_address_list_get_address(list, i);
    if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
      v1::Address address = ToAddress(INTERNET_ADDRESS_MAILBOX(ia));
      if (!address.address().empty()) out->push_back(std::move(address));
    } else if (INTERNET_ADDRESS_IS_GROUP(ia)) {
      CollectMailboxes(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out,
                       depth + 1);
    }
  }
}

// One header field as written: `raw` is everything after the colon, folding included.
struct Field {
  absl::string_view name;
  absl::string_view raw;
};

// Splits a header block into fields (RFC 5322 section 2.2: a field is name ":" value,
// continued on lines that start with whitespace), up to the first empty line. An mbox
// "From " line at the start is skipped; other lines that are not fields are reported and
// skipped, as GMime does on the full path.
std::vector<Field> SplitFields(absl::string_view block, Warnings& warnings) {
  std::vector<Field> fields;
  size_t pos = 0;
  if (absl::StartsWith(block, "From ")) {
    pos = block.find('\n');
    pos = pos == absl::string_view::npos ? block.size() : pos + 1;
  }
  while (pos < block.size()) {
    // The field's extent: this line and its continuation lines.
    size_t end = pos;
    while (true) {
      size_t lf = block.find('\n', end);
      end = lf == absl::string_view::npos ? block.size() : lf + 1;
      if (end >= block.size() || (block[end] != ' ' && block[end] != '\t')) break;
    }
    absl::string_view line = block.substr(pos, end - pos);
    pos = end;
    if (line == "\n" || line == "\r\n") break;  // end of the header block
    size_t colon = line.find(':');
    absl::string_view name =
        colon == absl::string_view::npos ? absl::string_view() : line.substr(0, colon);
    // RFC 5322 section 4.5.1 (obsolete syntax): whitespace before the colon.
    name = absl::StripTrailingAsciiWhitespace(name);
    bool valid = !name.empty();
    for (unsigned char c : name) valid = valid && c >= 33 && c <= 126;
    if (!valid) {
      warnings.Add(
          absl::StrCat("invalid header line: ", Excerpt(absl::StripTrailingAsciiWhitespace(line))));
      continue;
    }
    fields.push_back({name, line.substr(colon + 1)});
  }
  return fields;
}

// The fields of a header list parsed by GMime (valid while `object` lives).
std::vector<Field> FieldsOf(GMimeObject* object) {
  std::vector<Field> fields;
  GMimeHeaderList* headers = g_mime_object_get_header_list(object);
  int n = g_mime_header_list_get_count(headers);
  fields.reserve(n);
  for (int i = 0; i < n; ++i) {
    GMimeHeader* header = g_mime_header_list_get_header_at(headers, i);
    const char* name = g_mime_header_get_name(header);
    const char* raw = g_mime_header_get_raw_value(header);
    if (name != nullptr) fields.push_back({name, raw == nullptr ? "" : raw});
  }
  return fields;
}

// RFC 5322 section 2.2.3 unfolding (CRLF removed), then surrounding whitespace trimmed.
std::string Unfold(absl::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (char c : raw) {
    if (c != '\r' && c != '\n') out.push_back(c);
  }
  return std::string(absl::StripAsciiWhitespace(out));
}

// Decodes unstructured header text to UTF-8 (encoded-words; 8-bit text by the parser
// options' fallback charsets).
std::string DecodeText(GMimeParserOptions* options, const std::string& unfolded) {
  return MakeValidUtf8(TakeString(g_mime_utils_header_decode_text(options, unfolded.c_str())));
}

void AddMailboxes(GMimeParserOptions* options, const std::string& unfolded,
                  std::vector<v1::Address>* out) {
  GObj<InternetAddressList> list(internet_address_list_parse(options, unfolded.c_str()));
  CollectMailboxes(list.get(), out);
}

void AddMessageIds(GMimeParserOptions* options, const std::string& unfolded,
                   google::protobuf::RepeatedPtrField<std::string>* out) {
  GMimeReferences* refs = g_mime_references_parse(options, unfolded.c_str());
  if (refs == nullptr) return;
  int n = g_mime_references_length(refs);
  for (int i = 0; i < n; ++i) {
    *out->Add() = MakeValidUtf8(OrEmpty(g_mime_references_get_message_id(refs, i)));
  }
  g_mime_references_free(refs);
}

// X-Priority: 1-2 high, 3 normal, 4-5 low; then Importance, then Priority (RFC 2156).
v1::Priority ParsePriority(const std::string* x_priority, const std::string* importance,
                           const std::string* priority) {
  if (x_priority != nullptr && !x_priority->empty() && (*x_priority)[0] >= '1' &&
      (*x_priority)[0] <= '5') {
    char c = (*x_priority)[0];
    return c <= '2' ? v1::PRIORITY_HIGH : c == '3' ? v1::PRIORITY_NORMAL : v1::PRIORITY_LOW;
  }
  if (importance != nullptr) {
    if (absl::EqualsIgnoreCase(*importance, "high")) return v1::PRIORITY_HIGH;
    if (absl::EqualsIgnoreCase(*importance, "normal")) return v1::PRIORITY_NORMAL;
    if (absl::EqualsIgnoreCase(*importance, "low")) return v1::PRIORITY_LOW;
  }
  if (priority != nullptr) {
    if (absl::EqualsIgnoreCase(*priority, "urgent")) return v1::PRIORITY_HIGH;
    if (absl::EqualsIgnoreCase(*priority, "normal")) return v1::PRIORITY_NORMAL;
    if (absl::EqualsIgnoreCase(*priority, "non-urgent")) return v1::PRIORITY_LOW;
  }
  return v1::PRIORITY_UNSPECIFIED;
}

v1::Sensitivity ParseSensitivity(absl::string_view v) {
  if (absl::EqualsIgnoreCase(v, "Personal")) return v1::SENSITIVITY_PERSONAL;
  if (absl::EqualsIgnoreCase(v, "Private")) return v1::SENSITIVITY_PRIVATE;
  if (absl::EqualsIgnoreCase(v, "Company-Confidential")) {
    return v1::SENSITIVITY_COMPANY_CONFIDENTIAL;
  }
  return v1::SENSITIVITY_UNSPECIFIED;
}

// Fills the header-derived fields of `out` from `fields`. The same code serves the full
// parse (fields from GMime's header list) and the headers-only fast path (fields split
// here, with no MIME parser at all), so both give the same answers. Single-valued fields
// take their first occurrence; address fields repeated by broken mailers are joined.
// `warn_8bit`: report raw 8-bit values (the GMime parser does it on the full path).
void FillHeaders(const std::vector<Field>& fields, GMimeParserOptions* options, bool warn_8bit,
                 v1::EmailMessage* out, Warnings& warnings) {
  std::vector<v1::Address> from, sender, reply_to, to, cc, bcc, receipt_to;
  bool have_subject = false, have_id = false, have_in_reply_to = false, have_refs = false;
  bool have_date = false;
  std::optional<std::string> x_priority, importance, priority, sensitivity;
  for (const Field& field : fields) {
    const absl::string_view name = field.name;
    if (absl::StrContains(field.raw, "=?")) CheckEncodedWords(name, field.raw, warnings);
    if (warn_8bit && !IsAscii(field.raw)) {
      warnings.Add(absl::StrCat(
          "unencoded 8-bit text in header (read as UTF-8, else windows-1252): ", Excerpt(name)));
    }
    const std::string value = Unfold(field.raw);
    auto is = [&](absl::string_view n) { return absl::EqualsIgnoreCase(name, n); };
    if (is("From")) {
      AddMailboxes(options, value, &from);
    } else if (is("Sender")) {
      AddMailboxes(options, value, &sender);
    } else if (is("Reply-To")) {
      AddMailboxes(options, value, &reply_to);
    } else if (is("To")) {
      AddMailboxes(options, value, &to);
    } else if (is("Cc")) {
      AddMailboxes(options, value, &cc);
    } else if (is("Bcc")) {
      AddMailboxes(options, value, &bcc);
    } else if (is("Subject")) {
      if (!have_subject) out->set_subject(DecodeText(options, value));
      have_subject = true;
    } else if (is("Message-ID")) {
      if (!have_id) {
        out->set_message_id(
            MakeValidUtf8(TakeString(g_mime_utils_decode_message_id(value.c_str()))));
      }
      have_id = true;
    } else if (is("In-Reply-To")) {
      if (!have_in_reply_to) AddMessageIds(options, value, out->mutable_in_reply_to());
      have_in_reply_to = true;
    } else if (is("References")) {
      if (!have_refs) AddMessageIds(options, value, out->mutable_references());
      have_refs = true;
    } else if (is("Date")) {
      if (!have_date) {
        if (GDateTime* date = g_mime_utils_header_decode_date(value.c_str())) {
          out->mutable_date()->set_seconds(g_date_time_to_unix(date));
          out->set_date_utc_offset_minutes(
              static_cast<int32_t>(g_date_time_get_utc_offset(date) / G_TIME_SPAN_MINUTE));
          g_date_time_unref(date);
        } else {
          warnings.Add(absl::StrCat("unparsable Date header: ", Excerpt(value)));
        }
      }
      have_date = true;
    } else if (is("X-Priority")) {
      if (!x_priority) x_priority = value;
    } else if (is("Importance")) {
      if (!importance) importance = value;
    } else if (is("Priority")) {
      if (!priority) priority = value;
    } else if (is("Sensitivity")) {
      if (!sensitivity) sensitivity = value;
    } else if (is("Return-Receipt-To")) {
      out->set_delivery_receipt(true);
    } else if (is("Disposition-Notification-To")) {
      out->set_read_receipt(true);
      AddMailboxes(options, value, &receipt_to);
    } else if (!IsOwnedHeader(name)) {
      v1::Header* header = out->add_headers();
      header->set_name(MakeValidUtf8(name));
      header->set_value(DecodeText(options, value));
    }
  }
  if (!from.empty()) *out->mutable_from() = from.front();
  if (from.size() > 1) {
    warnings.Add(absl::StrCat("From has ", from.size(), " addresses; only the first is kept"));
  }
  if (!sender.empty()) *out->mutable_sender() = sender.front();
  if (!receipt_to.empty()) *out->mutable_read_receipt_to() = receipt_to.front();
  for (auto& a : reply_to) *out->add_reply_to() = std::move(a);
  for (auto& a : to) *out->add_to() = std::move(a);
  for (auto& a : cc) *out->add_cc() = std::move(a);
  for (auto& a : bcc) *out->add_bcc() = std::move(a);
  out->set_priority(ParsePriority(x_priority ? &*x_priority : nullptr,
                                  importance ? &*importance : nullptr,
                                  priority ? &*priority : nullptr));
  if (sensitivity) out->set_sensitivity(ParseSensitivity(*sensitivity));
}

// Walks the MIME tree of a parsed message into bodies and attachments.
class BodyCollector {
 public:
  BodyCollector(const ParseOptions& options, Warnings& warnings, v1::EmailMessage* out)
      : options_(options), warnings_(warnings), out_(out) {}

  // `part_id` is the IMAP section number of `object` ("" for the message's root).
  void Walk(GMimeObject* object, const std::string& part_id, int depth) {
    if (object == nullptr) return;
    if (depth > kMaxDepth) {
      warnings_.Add(absl::StrCat("MIME nesting deeper than ", kMaxDepth,
                                 " levels; deeper parts were skipped"));
      return;
    }
    if (++parts_ > kMaxParts) {
      warnings_.Add(absl::StrCat("more than ", kMaxParts, " MIME parts; the rest were skipped"));
      return;
    }
    if (GMIME_IS_MULTIPART(object)) {
      GMimeMultipart* multipart = GMIME_MULTIPART(object);
      int n = g_mime_multipart_get_count(multipart);
      if (n == 0) {
        // Without a usable boundary GMime keeps the whole body as the prologue: better
        // to show it as text than to lose it.
        const char* prologue = g_mime_multipart_get_prologue(multipart);
        if (prologue != nullptr && *prologue != '\0' && !have_text_) {
          have_text_ = true;
          warnings_.Add("multipart without parts; its content was read as the text body");
          out_->set_text_body(TextToUtf8(prologue, "", "the text body", warnings_));
        }
        return;
      }
      for (int i = 0; i < n && parts_ <= kMaxParts; ++i) {
        std::string child_id =
            part_id.empty() ? absl::StrCat(i + 1) : absl::StrCat(part_id, ".", i + 1);
        Walk(g_mime_multipart_get_part(multipart, i), child_id, depth + 1);
      }
      return;
    }
    // IMAP: the body of a single-part message is section 1.
    const std::string id = part_id.empty() ? "1" : part_id;
    if (GMIME_IS_MESSAGE_PART(object)) {
      AddMessageAttachment(GMIME_MESSAGE_PART(object), id);
    } else if (GMIME_IS_PART(object)) {
      AddLeaf(GMIME_PART(object), id);
    }
  }

 private:
  static std::string Decode(GMimeDataWrapper* wrapper) {
    std::string out;
    if (wrapper == nullptr) return out;
    GMimeStream* raw = g_mime_data_wrapper_get_stream(wrapper);
    if (raw != nullptr) {
      gint64 length = g_mime_stream_length(raw);
      if (length > 0) out.reserve(static_cast<size_t>(length));
    }
    GObj<GMimeStream> sink = NewStringSink(&out);
    g_mime_data_wrapper_write_to_stream(wrapper, sink.get());
    return out;
  }

  static uint64_t DecodedSize(GMimeDataWrapper* wrapper) {
    if (wrapper == nullptr) return 0;
    GObj<GMimeStream> counter(g_mime_stream_null_new());
    g_mime_data_wrapper_write_to_stream(wrapper, counter.get());
    return GMIME_STREAM_NULL(counter.get())->written;
  }

  static std::string ContentTypeText(GMimeContentType* type) {
    if (type == nullptr) return "application/octet-stream";
    std::string text =
        absl::AsciiStrToLower(absl::StrCat(OrEmpty(g_mime_content_type_get_media_type(type)), "/",
                                           OrEmpty(g_mime_content_type_get_media_subtype(type))));
    GMimeParamList* params = g_mime_content_type_get_parameters(type);
    int n = params == nullptr ? 0 : g_mime_param_list_length(params);
    for (int i = 0; i < n; ++i) {
      GMimeParam* param = g_mime_param_list_get_parameter_at(params, i);
      std::string name = OrEmpty(g_mime_param_get_name(param));
      if (name.empty() || absl::EqualsIgnoreCase(name, "name")) continue;  // in file_name
      std::string value = OrEmpty(g_mime_param_get_value(param));
      bool quote =
          value.empty() || value.find_first_of(" \t()<>@,;:\\\"/[]?=") != std::string::npos;
      if (quote) {
        std::string escaped;
        for (char c : value) {
          if (c == '"' || c == '\\') escaped.push_back('\\');
          escaped.push_back(c);
        }
        value = absl::StrCat("\"", escaped, "\"");
      }
      absl::StrAppend(&text, "; ", name, "=", value);
    }
    return MakeValidUtf8(text);
  }

  static v1::AttachmentDisposition Disposition(GMimeObject* object) {
    GMimeContentDisposition* d = g_mime_object_get_content_disposition(object);
    const char* value = d == nullptr ? nullptr : g_mime_content_disposition_get_disposition(d);
    if (value == nullptr || *value == '\0') return v1::ATTACHMENT_DISPOSITION_UNSPECIFIED;
    if (absl::EqualsIgnoreCase(value, "inline")) return v1::ATTACHMENT_DISPOSITION_INLINE;
    // RFC 2183 section 2.8: unknown dispositions are treated as "attachment".
    return v1::ATTACHMENT_DISPOSITION_ATTACHMENT;
  }

  void AddLeaf(GMimePart* part, const std::string& id) {
    GMimeObject* object = GMIME_OBJECT(part);
    GMimeContentType* type = g_mime_object_get_content_type(object);
    const bool is_plain = type != nullptr && g_mime_content_type_is_type(type, "text", "plain");
    const bool is_html = type != nullptr && g_mime_content_type_is_type(type, "text", "html");
    const v1::AttachmentDisposition disposition = Disposition(object);
    const std::string file_name = MakeValidUtf8(OrEmpty(g_mime_part_get_filename(part)));
    const std::string content_id = MakeValidUtf8(OrEmpty(g_mime_part_get_content_id(part)));

    // A body is a text part that is not marked as an attachment: not "attachment", no
    // file name, and not an inline part with a Content-ID (an HTML resource).
    const bool body_like =
        disposition != v1::ATTACHMENT_DISPOSITION_ATTACHMENT && file_name.empty() &&
        !(disposition == v1::ATTACHMENT_DISPOSITION_INLINE && !content_id.empty());
    if (body_like && is_plain && !have_text_) {
      have_text_ = true;
      out_->set_text_body(
          TextToUtf8(Decode(g_mime_part_get_content(part)),
                     OrEmpty(g_mime_object_get_content_type_parameter(object, "charset")),
                     absl::StrCat("the text body (part ", id, ")"), warnings_));
      return;
    }
    if (body_like && is_html && !have_html_) {
      have_html_ = true;
      out_->set_html_body(
          TextToUtf8(Decode(g_mime_part_get_content(part)),
                     OrEmpty(g_mime_object_get_content_type_parameter(object, "charset")),
                     absl::StrCat("the HTML body (part ", id, ")"), warnings_));
      return;
    }

    v1::Attachment* attachment = out_->add_attachments();
    attachment->set_file_name(file_name);
    attachment->set_content_type(ContentTypeText(type));
    attachment->set_content_id(content_id);
    attachment->set_disposition(disposition);
    attachment->set_part_id(id);
    GMimeDataWrapper* content = g_mime_part_get_content(part);
    FillContent(
        attachment, [&] { return Decode(content); }, [&] { return DecodedSize(content); },
        content == nullptr || g_mime_data_wrapper_get_stream(content) == nullptr
            ? 0
            : g_mime_stream_length(g_mime_data_wrapper_get_stream(content)));
  }

  // A message/rfc822 part: one attachment holding the embedded message (CRLF form).
  void AddMessageAttachment(GMimeMessagePart* part, const std::string& id) {
    GMimeObject* object = GMIME_OBJECT(part);
    v1::Attachment* attachment = out_->add_attachments();
    std::string file_name =
        OrEmpty(g_mime_object_get_content_disposition_parameter(object, "filename"));
    if (file_name.empty()) {
      file_name = OrEmpty(g_mime_object_get_content_type_parameter(object, "name"));
    }
    attachment->set_file_name(MakeValidUtf8(file_name));
    attachment->set_content_type(ContentTypeText(g_mime_object_get_content_type(object)));
    attachment->set_disposition(Disposition(object));
    attachment->set_part_id(id);
    GMimeMessage* embedded = g_mime_message_part_get_message(part);
    auto serialize = [&] {
      std::string bytes;
      if (embedded != nullptr) {
        GMimeFormatOptions* format = g_mime_format_options_new();
        g_mime_format_options_set_newline_format(format, GMIME_NEWLINE_FORMAT_DOS);
        GObj<GMimeStream> sink = NewStringSink(&bytes);
        g_mime_object_write_to_stream(GMIME_OBJECT(embedded), format, sink.get());
        g_mime_format_options_free(format);
      }
      return bytes;
    };
    FillContent(
        attachment, serialize, [&] { return serialize().size(); }, 0);
  }

  template <typename DecodeFn, typename SizeFn>
  void FillContent(v1::Attachment* attachment, DecodeFn decode, SizeFn size,
                   gint64 encoded_length) {
    const size_t limit = options_.max_attachment_bytes;
    if (options_.omit_attachment_content ||
        (limit > 0 && encoded_length > 0 && static_cast<uint64_t>(encoded_length) > limit)) {
      // Count without keeping the bytes; the encoded size may overstate the decoded one.
      uint64_t decoded = size();
      if (options_.omit_attachment_content || decoded > limit) {
        attachment->set_size(decoded);
        attachment->set_content_omitted(true);
        return;
      }
    }
    std::string content = decode();
    attachment->set_size(content.size());
    if (limit > 0 && content.size() > limit) {
      attachment->set_content_omitted(true);
      return;
    }
    attachment->set_content(std::move(content));
  }

  const ParseOptions& options_;
  Warnings& warnings_;
  v1::EmailMessage* out_;
  int parts_ = 0;
  bool have_text_ = false;
  bool have_html_ = false;
};

GObj<GMimeMessage> ParseMessage(GMimeStream* stream, GMimeParserOptions* options) {
  GObj<GMimeParser> parser(g_mime_parser_new_with_stream(stream));
  g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
  return GObj<GMimeMessage>(g_mime_parser_construct_message(parser.get(), options));
}

// ---------------------------------------------------------------------------------------
// Building: validation.

// Text for a header: valid UTF-8, at most `max` bytes, no CR, LF or NUL.
absl::Status CheckHeaderText(absl::string_view field, absl::string_view value, size_t max) {
  if (value.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  if (value.find_first_of(absl::string_view("\r\n\0", 3)) != absl::string_view::npos) {
    return Invalid(field, "contains CR, LF or NUL");
  }
  if (!IsValidUtf8(value)) return Invalid(field, "is not valid UTF-8");
  return absl::OkStatus();
}

absl::Status CheckAddress(absl::string_view field, const v1::Address& address) {
  MP_RETURN_IF_ERROR(CheckHeaderText(absl::StrCat(field, ".name"), address.name(), 256));
  const std::string& a = address.address();
  if (a.empty()) return Invalid(absl::StrCat(field, ".address"), "is required");
  if (a.size() > 320) return Invalid(absl::StrCat(field, ".address"), "longer than 320 bytes");
  if (!IsValidUtf8(a) || !IsAddrSpec(a)) {
    return Invalid(absl::StrCat(field, ".address"),
                   absl::StrCat("\"", Excerpt(a), "\" is not a valid address"));
  }
  return absl::OkStatus();
}

absl::Status CheckAddresses(absl::string_view field,
                            const google::protobuf::RepeatedPtrField<v1::Address>& list) {
  if (list.size() > 1000) return Invalid(field, "more than 1000 addresses");
  for (int i = 0; i < list.size(); ++i) {
    MP_RETURN_IF_ERROR(CheckAddress(absl::StrCat(field, "[", i, "]"), list[i]));
  }
  return absl::OkStatus();
}

// A Message-ID without its angle brackets: printable ASCII without spaces or '<' '>'.
absl::Status CheckMessageId(absl::string_view field, absl::string_view id) {
  if (id.empty()) return Invalid(field, "is empty");
  if (id.size() > 900) return Invalid(field, "longer than 900 bytes");
  for (unsigned char c : id) {
    if (c <= 32 || c >= 127 || c == '<' || c == '>') {
      return Invalid(field, "must be printable ASCII without spaces or angle brackets");
    }
  }
  return absl::OkStatus();
}

// A header field name: RFC 5322 section 3.6.8 ftext (printable ASCII except ':').
bool IsFieldName(absl::string_view name) {
  if (name.empty() || name.size() > 76) return false;
  for (unsigned char c : name) {
    if (c < 33 || c > 126 || c == ':') return false;
  }
  return true;
}

bool IsToken(absl::string_view s) {
  // RFC 2045 token: printable ASCII except SPACE and tspecials.
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 32 || c >= 127 ||
        absl::string_view("()<>@,;:\\\"/[]?=").find(static_cast<char>(c)) !=
            absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool IsHostName(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (unsigned char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '.')) return false;
  }
  return IsDotAtomText(s);
}

absl::Status Validate(const v1::EmailMessage& m, const v1::BuildOptions& options) {
  if (!m.has_from() || m.from().address().empty()) {
    return Invalid("message.from.address", "is required");
  }
  MP_RETURN_IF_ERROR(CheckAddress("message.from", m.from()));
  if (m.has_sender() && (!m.sender().address().empty() || !m.sender().name().empty())) {
    MP_RETURN_IF_ERROR(CheckAddress("message.sender", m.sender()));
  }
  MP_RETURN_IF_ERROR(CheckAddresses("message.reply_to", m.reply_to()));
  MP_RETURN_IF_ERROR(CheckAddresses("message.to", m.to()));
  MP_RETURN_IF_ERROR(CheckAddresses("message.cc", m.cc()));
  MP_RETURN_IF_ERROR(CheckAddresses("message.bcc", m.bcc()));
  MP_RETURN_IF_ERROR(CheckHeaderText("message.subject", m.subject(), 16 * 1024));
  if (!IsValidUtf8(m.text_body())) return Invalid("message.text_body", "is not valid UTF-8");
  if (!IsValidUtf8(m.html_body())) return Invalid("message.html_body", "is not valid UTF-8");
  if (m.headers_size() > 1000) return Invalid("message.headers", "more than 1000 fields");
  for (int i = 0; i < m.headers_size(); ++i) {
    const v1::Header& h = m.headers(i);
    std::string field = absl::StrCat("message.headers[", i, "]");
    if (!IsFieldName(h.name())) {
      return Invalid(absl::StrCat(field, ".name"),
                     absl::StrCat("\"", Excerpt(h.name()),
                                  "\" is not a header name (1 to 76 printable ASCII "
                                  "characters without ':' or spaces)"));
    }
    if (IsOwnedHeader(h.name())) {
      return Invalid(absl::StrCat(field, ".name"),
                     absl::StrCat(h.name(),
                                  " is written from its dedicated field or by MIME; it cannot "
                                  "be an extra header"));
    }
    MP_RETURN_IF_ERROR(CheckHeaderText(absl::StrCat(field, ".value"), h.value(), 16 * 1024));
  }
  if (!m.message_id().empty())
    MP_RETURN_IF_ERROR(CheckMessageId("message.message_id", m.message_id()));
  for (int i = 0; i < m.in_reply_to_size(); ++i) {
    MP_RETURN_IF_ERROR(
        CheckMessageId(absl::StrCat("message.in_reply_to[", i, "]"), m.in_reply_to(i)));
  }
  if (m.references_size() > 1000) return Invalid("message.references", "more than 1000 IDs");
  for (int i = 0; i < m.references_size(); ++i) {
    MP_RETURN_IF_ERROR(
        CheckMessageId(absl::StrCat("message.references[", i, "]"), m.references(i)));
  }
  if (m.has_date()) {
    // 0001-01-01 to 9999-12-31, as google.protobuf.Timestamp allows.
    if (m.date().seconds() < -62135596800 || m.date().seconds() > 253402300799 ||
        m.date().nanos() < 0 || m.date().nanos() > 999999999) {
      return Invalid("message.date", "out of range");
    }
  }
  if (m.date_utc_offset_minutes() < -720 || m.date_utc_offset_minutes() > 840) {
    return Invalid("message.date_utc_offset_minutes", "must be between -720 and 840");
  }
  if (!v1::Priority_IsValid(m.priority())) return Invalid("message.priority", "unknown value");
  if (!v1::Sensitivity_IsValid(m.sensitivity())) {
    return Invalid("message.sensitivity", "unknown value");
  }
  if (m.read_receipt() && m.has_read_receipt_to() &&
      (!m.read_receipt_to().address().empty() || !m.read_receipt_to().name().empty())) {
    MP_RETURN_IF_ERROR(CheckAddress("message.read_receipt_to", m.read_receipt_to()));
  }
  for (int i = 0; i < m.attachments_size(); ++i) {
    const v1::Attachment& a = m.attachments(i);
    std::string field = absl::StrCat("message.attachments[", i, "]");
    MP_RETURN_IF_ERROR(CheckHeaderText(absl::StrCat(field, ".file_name"), a.file_name(), 255));
    if (a.file_name().find_first_of("/\\") != std::string::npos) {
      return Invalid(absl::StrCat(field, ".file_name"), "contains '/' or '\\'");
    }
    MP_RETURN_IF_ERROR(
        CheckHeaderText(absl::StrCat(field, ".content_type"), a.content_type(), 1024));
    if (!a.content_type().empty()) {
      absl::string_view type = a.content_type();
      type = absl::StripAsciiWhitespace(type.substr(0, type.find(';')));
      size_t slash = type.find('/');
      if (slash == absl::string_view::npos || !IsToken(type.substr(0, slash)) ||
          !IsToken(type.substr(slash + 1))) {
        return Invalid(absl::StrCat(field, ".content_type"),
                       absl::StrCat("\"", Excerpt(a.content_type()), "\" is not a MIME type"));
      }
      if (absl::StartsWithIgnoreCase(type, "multipart/")) {
        return Invalid(absl::StrCat(field, ".content_type"), "an attachment cannot be multipart");
      }
    }
    if (!a.content_id().empty()) {
      MP_RETURN_IF_ERROR(CheckMessageId(absl::StrCat(field, ".content_id"), a.content_id()));
    }
    if (!v1::AttachmentDisposition_IsValid(a.disposition())) {
      return Invalid(absl::StrCat(field, ".disposition"), "unknown value");
    }
  }
  if (m.attachments_size() > kMaxParts) return Invalid("message.attachments", "too many");
  if (!options.message_id_domain().empty() && !IsHostName(options.message_id_domain())) {
    return Invalid("options.message_id_domain", "is not an ASCII domain name");
  }
  if (!v1::HeaderEncoding_IsValid(options.header_encoding())) {
    return Invalid("options.header_encoding", "unknown value");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Building: headers.

// RFC 2047 encoded-words of UTF-8 `text`: each at most 75 characters (section 2) and
// holding whole characters (section 5), separated by a space, which decoders drop
// between adjacent words. B encoding, except that a word followed by another B word must
// hold a multiple of 3 bytes: GMime (and other decoders) join adjacent B words of one
// charset before decoding, so base64 padding inside the run would corrupt it. Where no
// character boundary allows that, one character goes into a Q word, which ends the run.
std::string EncodeWords(absl::string_view text) {
  // "=?UTF-8?B?" + base64 + "?=" <= 75: at most 63 base64 characters, 45 bytes.
  constexpr size_t kMaxBytes = 45;
  auto char_len = [&](size_t at) {
    size_t len = Utf8SequenceLength(text.substr(at));
    return len == 0 ? size_t{1} : len;
  };
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    if (text.size() - i <= kMaxBytes) {  // the last word may be padded
      words.push_back(absl::StrCat("=?UTF-8?B?", absl::Base64Escape(text.substr(i)), "?="));
      break;
    }
    size_t best = 0;
    for (size_t end = i; end - i <= kMaxBytes;) {
      if (end > i && (end - i) % 3 == 0) best = end;
      end += char_len(end);
    }
    if (best != 0) {
      words.push_back(
          absl::StrCat("=?UTF-8?B?", absl::Base64Escape(text.substr(i, best - i)), "?="));
      i = best;
      continue;
    }
    size_t len = char_len(i);
    std::string q = "=?UTF-8?Q?";
    for (unsigned char c : text.substr(i, len)) {
      if (absl::ascii_isalnum(c)) {
        q.push_back(static_cast<char>(c));
      } else {
        absl::StrAppend(&q, "=",
                        absl::AsciiStrToUpper(absl::BytesToHexString(
                            absl::string_view(reinterpret_cast<char*>(&c), 1))));
      }
    }
    words.push_back(absl::StrCat(q, "?="));
    i += len;
  }
  return absl::StrJoin(words, " ");
}

bool IsWsp(char c) { return c == ' ' || c == '\t'; }

// Unstructured text (RFC 5322 section 3.2.5) ready for a header: as is when ASCII (or
// raw UTF-8 is allowed); otherwise the runs of words that need it become encoded-words,
// keeping the whitespace between a plain word and an encoded one outside the encoding,
// so that decoding gives back exactly `value`.
std::string EncodeUnstructured(absl::string_view value, bool raw_utf8) {
  auto needs = [&](absl::string_view word) {
    return (!raw_utf8 && !IsAscii(word)) || absl::StrContains(word, "=?");
  };
  // Segments: leading whitespace + word.
  struct Segment {
    absl::string_view space, word;
  };
  std::vector<Segment> segments;
  size_t i = 0;
  while (i < value.size()) {
    size_t s = i;
    while (i < value.size() && IsWsp(value[i])) ++i;
    size_t w = i;
    while (i < value.size() && !IsWsp(value[i])) ++i;
    segments.push_back({value.substr(s, w - s), value.substr(w, i - w)});
  }
  bool any = false;
  for (const Segment& seg : segments) any = any || needs(seg.word);
  if (!any) return std::string(value);
  std::string out;
  for (size_t k = 0; k < segments.size();) {
    if (!needs(segments[k].word)) {
      absl::StrAppend(&out, segments[k].space, segments[k].word);
      ++k;
      continue;
    }
    // A run of words to encode, with the whitespace between them inside the encoding.
    std::string run(segments[k].word);
    size_t j = k + 1;
    while (j < segments.size() && needs(segments[j].word)) {
      absl::StrAppend(&run, segments[j].space, segments[j].word);
      ++j;
    }
    absl::StrAppend(&out, segments[k].space, EncodeWords(run));
    k = j;
  }
  return out;
}

// A display name as an RFC 5322 phrase: atoms as they are, else a quoted-string, or
// encoded-words for non-ASCII names (unless raw UTF-8 is allowed).
std::string EncodePhrase(absl::string_view name, bool raw_utf8) {
  if (!raw_utf8 && !IsAscii(name)) return EncodeWords(name);
  bool atoms = !name.empty() && !IsWsp(name.front()) && !IsWsp(name.back()) &&
               !absl::StrContains(name, "  ") && !absl::StrContains(name, "=?");
  for (unsigned char c : name) atoms = atoms && (c == ' ' || IsAtext(static_cast<char>(c)));
  if (atoms) return std::string(name);
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string FormatAddress(const v1::Address& address, bool raw_utf8) {
  std::string addr = address.address();
  if (!raw_utf8 && !IsAscii(addr)) {
    // An ASCII message carries the IDNA (punycode) form of a UTF-8 domain; a UTF-8 local
    // part stays (sending it needs SMTPUTF8).
    GObj<InternetAddress> ia(internet_address_mailbox_new(nullptr, addr.c_str()));
    addr = OrEmpty(internet_address_mailbox_get_idn_addr(INTERNET_ADDRESS_MAILBOX(ia.get())));
  }
  if (address.name().empty()) return addr;
  return absl::StrCat(EncodePhrase(address.name(), raw_utf8), " <", addr, ">");
}

// Appends "Name: value" CRLF, folded before whitespace so lines stay within 78
// characters where the value allows (RFC 5322 section 2.2.3: folding only inserts CRLF
// before existing whitespace, so unfolding restores the value). INVALID_ARGUMENT when a
// line would still exceed the 998-character limit.
absl::Status AppendField(std::string* out, absl::string_view name, absl::string_view value,
                         absl::string_view field) {
  constexpr size_t kFold = 78;
  constexpr size_t kMaxLine = 998;
  std::string text = absl::StrCat(name, ":");
  size_t line_start = 0;
  size_t i = 0;
  bool first = true;
  while (i < value.size()) {
    size_t s = i;
    while (i < value.size() && IsWsp(value[i])) ++i;
    while (i < value.size() && !IsWsp(value[i])) ++i;
    absl::string_view segment = value.substr(s, i - s);
    if (first) {
      text.push_back(' ');
      first = false;
    }
    const bool can_break = !segment.empty() && IsWsp(segment.front()) &&
                           segment.find_first_not_of(" \t") != absl::string_view::npos &&
                           text.size() - line_start > name.size() + 2;
    if (can_break && text.size() - line_start + segment.size() > kFold) {
      text.append("\r\n");
      line_start = text.size();
    }
    text.append(segment.data(), segment.size());
    if (text.size() - line_start > kMaxLine) {
      return Invalid(field, "has more than 998 characters without a space to fold at");
    }
  }
  if (first) text.push_back(' ');
  text.append("\r\n");
  out->append(text);
  return absl::OkStatus();
}

// Unstructured header: encoded as needed; in UTF-8 mode, falls back to encoded-words when
// the raw text cannot be folded within the line limit.
absl::Status AppendText(std::string* out, absl::string_view name, absl::string_view value,
                        bool raw_utf8, absl::string_view field) {
  absl::Status status = AppendField(out, name, EncodeUnstructured(value, raw_utf8), field);
  if (!status.ok() && raw_utf8 && !IsAscii(value)) {
    return AppendField(out, name, EncodeUnstructured(value, false), field);
  }
  return status;
}

absl::Status AppendAddresses(std::string* out, absl::string_view name,
                             const std::vector<const v1::Address*>& addresses, bool raw_utf8,
                             absl::string_view field) {
  if (addresses.empty()) return absl::OkStatus();
  std::vector<std::string> parts;
  parts.reserve(addresses.size());
  for (const v1::Address* a : addresses) parts.push_back(FormatAddress(*a, raw_utf8));
  return AppendField(out, name, absl::StrJoin(parts, ", "), field);
}

std::vector<const v1::Address*> Pointers(
    const google::protobuf::RepeatedPtrField<v1::Address>& list) {
  std::vector<const v1::Address*> out;
  for (const v1::Address& a : list) out.push_back(&a);
  return out;
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      // No entropy source: fall back to a clock- and address-based value (still unique
      // enough for a Message-ID, never used for secrets).
      uint64_t t = static_cast<uint64_t>(g_get_real_time()) ^ reinterpret_cast<uintptr_t>(&raw) ^
                   static_cast<uint64_t>(g_random_int());
      for (size_t i = got; i < bytes; ++i) raw[i] = static_cast<char>(t >> ((i % 8) * 8));
      break;
    }
    got += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(raw);
}

std::string NewMessageId(const v1::EmailMessage& m, const v1::BuildOptions& options) {
  std::string domain = options.message_id_domain();
  if (domain.empty()) {
    absl::string_view from = m.from().address();
    size_t at = from.rfind('@');
    if (at != absl::string_view::npos && IsHostName(from.substr(at + 1))) {
      domain = std::string(from.substr(at + 1));
    }
  }
  if (domain.empty()) domain = "mailpool.invalid";
  return absl::StrCat(absl::Hex(g_get_real_time() / 1000), ".", RandomHex(12), "@", domain);
}

std::string FormatDate(const v1::EmailMessage& m) {
  gint64 seconds = m.has_date() ? m.date().seconds() : g_get_real_time() / G_USEC_PER_SEC;
  GTimeZone* zone = g_time_zone_new_offset(m.date_utc_offset_minutes() * 60);
  GDateTime* utc = g_date_time_new_from_unix_utc(seconds);
  GDateTime* local = utc == nullptr ? nullptr : g_date_time_to_timezone(utc, zone);
  std::string text = local == nullptr ? "" : TakeString(g_mime_utils_header_format_date(local));
  if (local != nullptr) g_date_time_unref(local);
  if (utc != nullptr) g_date_time_unref(utc);
  g_time_zone_unref(zone);
  return text;
}

// ---------------------------------------------------------------------------------------
// Building: the MIME tree.

std::string GuessContentType(absl::string_view file_name) {
  static constexpr std::pair<absl::string_view, absl::string_view> kTypes[] = {
      {"pdf", "application/pdf"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"svg", "image/svg+xml"},
      {"bmp", "image/bmp"},
      {"tif", "image/tiff"},
      {"tiff", "image/tiff"},
      {"ico", "image/vnd.microsoft.icon"},
      {"txt", "text/plain"},
      {"csv", "text/csv"},
      {"htm", "text/html"},
      {"html", "text/html"},
      {"md", "text/markdown"},
      {"ics", "text/calendar"},
      {"vcf", "text/vcard"},
      {"xml", "application/xml"},
      {"json", "application/json"},
      {"zip", "application/zip"},
      {"gz", "application/gzip"},
      {"tar", "application/x-tar"},
      {"7z", "application/x-7z-compressed"},
      {"rtf", "application/rtf"},
      {"doc", "application/msword"},
      {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
      {"xls", "application/vnd.ms-excel"},
      {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
      {"ppt", "application/vnd.ms-powerpoint"},
      {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
      {"odt", "application/vnd.oasis.opendocument.text"},
      {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
      {"mp3", "audio/mpeg"},
      {"wav", "audio/wav"},
      {"mp4", "video/mp4"},
      {"eml", "message/rfc822"},
  };
  size_t dot = file_name.rfind('.');
  if (dot != absl::string_view::npos) {
    std::string ext = absl::AsciiStrToLower(file_name.substr(dot + 1));
    for (const auto& [e, type] : kTypes) {
      if (ext == e) return std::string(type);
    }
  }
  return "application/octet-stream";
}

void SetUtf8Param(GMimeParamList* params, const char* name) {
  if (GMimeParam* param = g_mime_param_list_get_parameter(params, name)) {
    g_mime_param_set_charset(param, "utf-8");
  }
}

// Builds GMime parts; the bytes are lent by `bytes`, which outlives the parts.
class TreeBuilder {
 public:
  explicit TreeBuilder(BorrowedBytes& bytes) : bytes_(bytes) {}

  GObj<GMimeObject> Text(absl::string_view subtype, absl::string_view text) {
    GMimePart* part = g_mime_part_new_with_type("text", std::string(subtype).c_str());
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "utf-8");
    // RFC 2046 section 4.1.1: text is CRLF-delimited in canonical form.
    SetContent(part, bytes_.StreamOwned(ToCrlf(text)));
    // 7bit when it can be, else quoted-printable for mostly-ASCII text and base64 for
    // the rest (GMime's statistics, RFC 2045 line length limits respected).
    g_mime_part_set_content_encoding(
        part, g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT));
    return GObj<GMimeObject>(GMIME_OBJECT(part));
  }

  GObj<GMimeObject> Attachment(const v1::Attachment& a, GMimeParserOptions* parser_options) {
    std::string type_text =
        a.content_type().empty() ? GuessContentType(a.file_name()) : a.content_type();
    GObj<GMimeContentType> type(g_mime_content_type_parse(parser_options, type_text.c_str()));
    // RFC 2045 section 5.1: attribute := token. GMime's encoder grows without bound on a
    // long parameter name it cannot fold (found by fuzzing): drop names that are no token.
    GMimeParamList* params = g_mime_content_type_get_parameters(type.get());
    for (int i = params ? g_mime_param_list_length(params) - 1 : -1; i >= 0; --i) {
      const char* name = g_mime_param_get_name(g_mime_param_list_get_parameter_at(params, i));
      if (name == nullptr || !IsToken(name)) g_mime_param_list_remove_at(params, i);
    }
    // RFC 2046 section 5.2: these may only be 7bit, 8bit or binary (never base64).
    const bool is_message = g_mime_content_type_is_type(type.get(), "message", "rfc822") ||
                            g_mime_content_type_is_type(type.get(), "message", "partial") ||
                            g_mime_content_type_is_type(type.get(), "message", "external-body");
    GMimePart* part = g_mime_part_new();
    GMimeObject* object = GMIME_OBJECT(part);
    g_mime_object_set_content_type(object, type.get());

    v1::AttachmentDisposition disposition = a.disposition();
    if (disposition == v1::ATTACHMENT_DISPOSITION_UNSPECIFIED) {
      disposition = a.content_id().empty() ? v1::ATTACHMENT_DISPOSITION_ATTACHMENT
                                           : v1::ATTACHMENT_DISPOSITION_INLINE;
    }
    GObj<GMimeContentDisposition> d(g_mime_content_disposition_new());
    g_mime_content_disposition_set_disposition(
        d.get(), disposition == v1::ATTACHMENT_DISPOSITION_INLINE ? "inline" : "attachment");
    if (!a.file_name().empty()) {
      // filename (RFC 2183/2231) for everyone, and the older Content-Type name for
      // clients that only read that one.
      g_mime_content_disposition_set_parameter(d.get(), "filename", a.file_name().c_str());
      SetUtf8Param(g_mime_content_disposition_get_parameters(d.get()), "filename");
      g_mime_object_set_content_type_parameter(object, "name", a.file_name().c_str());
      SetUtf8Param(g_mime_content_type_get_parameters(g_mime_object_get_content_type(object)),
                   "name");
    }
    g_mime_object_set_content_disposition(object, d.get());
    if (!a.content_id().empty()) g_mime_part_set_content_id(part, a.content_id().c_str());

    if (is_message) {
      std::string canonical = ToCrlf(a.content());
      const bool ascii = IsAscii(canonical);
      SetContent(part, bytes_.StreamOwned(std::move(canonical)));
      g_mime_part_set_content_encoding(
          part, ascii ? GMIME_CONTENT_ENCODING_7BIT : GMIME_CONTENT_ENCODING_8BIT);
    } else {
      // base64 keeps every byte as given (text attachments included).
      SetContent(part, bytes_.Stream(a.content()));
      g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
    }
    return GObj<GMimeObject>(object);
  }

  static GObj<GMimeObject> Multipart(const char* subtype, std::vector<GObj<GMimeObject>> parts) {
    GMimeMultipart* multipart = g_mime_multipart_new_with_subtype(subtype);
    for (auto& part : parts) g_mime_multipart_add(multipart, part.get());
    return GObj<GMimeObject>(GMIME_OBJECT(multipart));
  }

 private:
  static void SetContent(GMimePart* part, GObj<GMimeStream> stream) {
    GObj<GMimeDataWrapper> wrapper(
        g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
    g_mime_part_set_content(part, wrapper.get());
  }

  BorrowedBytes& bytes_;
};

}  // namespace

// ---------------------------------------------------------------------------------------

v1::EmailMessage Parse(absl::string_view source, const ParseOptions& options,
                       std::vector<std::string>* warnings) {
  EnsureGMime();
  v1::EmailMessage message;
  Warnings sink(warnings);
  message.set_size(source.size());
  if (options.include_source) message.set_source(std::string(source));
  if (source.empty()) {
    sink.Add("empty input");
    sink.Finish();
    return message;
  }
  absl::string_view input = source;
  if (input.size() > std::numeric_limits<guint>::max()) {
    input = input.substr(0, std::numeric_limits<guint>::max());
    sink.Add("input larger than 4 GiB; only the first 4 GiB were parsed");
  }
  ParserOptions parser_options(&sink);
  if (options.headers_only) {
    // The fast path: split the header block here and decode the fields, no MIME parser.
    FillHeaders(SplitFields(input, sink), parser_options.get(),
                /*warn_8bit=*/true, &message, sink);
    sink.Finish();
    return message;
  }
  std::string patched;  // only for input without a header block
  if (!StartsWithHeader(input) && !absl::StartsWith(input, "\n") &&
      !absl::StartsWith(input, "\r\n")) {
    // RFC 5322 section 2.1: the header block may be empty; an empty line must then start
    // the message. Without one, read everything as the body.
    sink.Add("the input does not start with a header field; it was read as a body");
    patched = absl::StrCat("\r\n", input);
    input = patched;
  }

  // Declaration order is destruction order in reverse: the message goes first, the lent
  // bytes last.
  BorrowedBytes bytes;
  GObj<GMimeStream> stream = bytes.Stream(input);
  GObj<GMimeMessage> parsed = ParseMessage(stream.get(), parser_options.get());
  if (parsed == nullptr) {
    sink.Add("no message could be parsed from the input");
    sink.Finish();
    return message;
  }
  FillHeaders(FieldsOf(GMIME_OBJECT(parsed.get())), parser_options.get(), /*warn_8bit=*/false,
              &message, sink);
  BodyCollector collector(options, sink, &message);
  collector.Walk(g_mime_message_get_mime_part(parsed.get()), "", 0);
  parsed.reset();
  sink.Finish();
  return message;
}

absl::StatusOr<std::string> Build(const v1::EmailMessage& message, const v1::BuildOptions& options,
                                  std::string* message_id) {
  EnsureGMime();
  MP_RETURN_IF_ERROR(Validate(message, options));
  const bool raw_utf8 = options.header_encoding() == v1::HEADER_ENCODING_UTF8;

  std::string id = message.message_id();
  if (id.empty() || options.regenerate_message_id()) id = NewMessageId(message, options);

  std::string out;
  out.reserve(4096 + message.text_body().size() + message.html_body().size() * 11 / 10 +
              message.attachments_size() * 256);
  auto& m = message;
  MP_RETURN_IF_ERROR(AppendField(&out, "Date", FormatDate(m), "message.date"));
  MP_RETURN_IF_ERROR(AppendAddresses(&out, "From", {&m.from()}, raw_utf8, "message.from"));
  if (m.has_sender() && !m.sender().address().empty()) {
    MP_RETURN_IF_ERROR(AppendAddresses(&out, "Sender", {&m.sender()}, raw_utf8, "message.sender"));
  }
  MP_RETURN_IF_ERROR(
      AppendAddresses(&out, "Reply-To", Pointers(m.reply_to()), raw_utf8, "message.reply_to"));
  MP_RETURN_IF_ERROR(AppendAddresses(&out, "To", Pointers(m.to()), raw_utf8, "message.to"));
  MP_RETURN_IF_ERROR(AppendAddresses(&out, "Cc", Pointers(m.cc()), raw_utf8, "message.cc"));
  if (options.include_bcc_header()) {
    MP_RETURN_IF_ERROR(AppendAddresses(&out, "Bcc", Pointers(m.bcc()), raw_utf8, "message.bcc"));
  }
  if (!m.subject().empty()) {
    MP_RETURN_IF_ERROR(AppendText(&out, "Subject", m.subject(), raw_utf8, "message.subject"));
  }
  MP_RETURN_IF_ERROR(
      AppendField(&out, "Message-ID", absl::StrCat("<", id, ">"), "message.message_id"));
  auto bracketed = [](const google::protobuf::RepeatedPtrField<std::string>& ids) {
    std::vector<std::string> parts;
    for (const std::string& i : ids) parts.push_back(absl::StrCat("<", i, ">"));
    return absl::StrJoin(parts, " ");
  };
  if (m.in_reply_to_size() > 0) {
    MP_RETURN_IF_ERROR(
        AppendField(&out, "In-Reply-To", bracketed(m.in_reply_to()), "message.in_reply_to"));
  }
  if (m.references_size() > 0) {
    MP_RETURN_IF_ERROR(
        AppendField(&out, "References", bracketed(m.references()), "message.references"));
  }
  switch (m.priority()) {
    case v1::PRIORITY_HIGH:
      out.append("X-Priority: 1\r\nImportance: high\r\n");
      break;
    case v1::PRIORITY_NORMAL:
      out.append("X-Priority: 3\r\nImportance: normal\r\n");
      break;
    case v1::PRIORITY_LOW:
      out.append("X-Priority: 5\r\nImportance: low\r\n");
      break;
    default:
      break;
  }
  switch (m.sensitivity()) {
    case v1::SENSITIVITY_PERSONAL:
      out.append("Sensitivity: Personal\r\n");
      break;
    case v1::SENSITIVITY_PRIVATE:
      out.append("Sensitivity: Private\r\n");
      break;
    case v1::SENSITIVITY_COMPANY_CONFIDENTIAL:
      out.append("Sensitivity: Company-Confidential\r\n");
      break;
    default:
      break;
  }
  if (m.read_receipt()) {
    const v1::Address& to = m.has_read_receipt_to() && !m.read_receipt_to().address().empty()
                                ? m.read_receipt_to()
                                : m.from();
    MP_RETURN_IF_ERROR(AppendAddresses(&out, "Disposition-Notification-To", {&to}, raw_utf8,
                                       "message.read_receipt_to"));
  }
  if (m.delivery_receipt()) {
    MP_RETURN_IF_ERROR(
        AppendAddresses(&out, "Return-Receipt-To", {&m.from()}, raw_utf8, "message.from"));
  }
  for (int i = 0; i < m.headers_size(); ++i) {
    MP_RETURN_IF_ERROR(AppendText(&out, m.headers(i).name(), m.headers(i).value(), raw_utf8,
                                  absl::StrCat("message.headers[", i, "].value")));
  }
  out.append("MIME-Version: 1.0\r\n");

  // The body tree. `bytes` lends the message's bytes to GMime and is declared before the
  // parts so that it outlives them.
  BorrowedBytes bytes;
  Warnings no_warnings(nullptr);
  ParserOptions parser_options(&no_warnings);
  TreeBuilder tree(bytes);
  std::vector<GObj<GMimeObject>> related_parts, mixed_parts;
  const bool has_html = !m.html_body().empty();
  for (const v1::Attachment& a : m.attachments()) {
    const bool related = has_html && !a.content_id().empty() &&
                         a.disposition() != v1::ATTACHMENT_DISPOSITION_ATTACHMENT;
    (related ? related_parts : mixed_parts).push_back(tree.Attachment(a, parser_options.get()));
  }
  GObj<GMimeObject> html;
  if (has_html) {
    html = tree.Text("html", m.html_body());
    if (!related_parts.empty()) {
      std::vector<GObj<GMimeObject>> parts;
      parts.push_back(std::move(html));
      for (auto& p : related_parts) parts.push_back(std::move(p));
      html = TreeBuilder::Multipart("related", std::move(parts));
      // RFC 2387 section 3.1: the type of the root part.
      g_mime_object_set_content_type_parameter(html.get(), "type", "text/html");
    }
  }
  GObj<GMimeObject> body;
  if (!m.text_body().empty() && html != nullptr) {
    std::vector<GObj<GMimeObject>> parts;
    parts.push_back(tree.Text("plain", m.text_body()));
    parts.push_back(std::move(html));
    body = TreeBuilder::Multipart("alternative", std::move(parts));
  } else if (html != nullptr) {
    body = std::move(html);
  } else if (!m.text_body().empty() || mixed_parts.empty()) {
    body = tree.Text("plain", m.text_body());
  }
  GObj<GMimeObject> root;
  if (mixed_parts.empty()) {
    root = std::move(body);
  } else {
    std::vector<GObj<GMimeObject>> parts;
    if (body != nullptr) parts.push_back(std::move(body));
    for (auto& p : mixed_parts) parts.push_back(std::move(p));
    root = TreeBuilder::Multipart("mixed", std::move(parts));
  }

  GMimeFormatOptions* format = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(format, GMIME_NEWLINE_FORMAT_DOS);
  g_mime_format_options_set_param_encoding_method(format, GMIME_PARAM_ENCODING_METHOD_RFC2231);
  {
    GObj<GMimeStream> sink = NewStringSink(&out);
    ssize_t written = g_mime_object_write_to_stream(root.get(), format, sink.get());
    g_mime_format_options_free(format);
    if (written < 0) {
      return absl::InternalError("GMime could not serialize the message");
    }
  }
  root.reset();
  if (message_id != nullptr) *message_id = id;
  return out;
}

}  // namespace mailpool::mime
