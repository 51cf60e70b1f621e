// SMTP syntax shared by the SMTP client and the commands built on it (SendMessage):
// reply parsing (RFC 5321 section 4.2), the keywords of an EHLO reply (section 4.1.1.1)
// and the EHLO argument check. No I/O.
//
//   ReplyParser parser;
//   while (std::optional<std::string> line = reader.NextLine()) {   // wire::LineReader
//     absl::StatusOr<std::optional<Reply>> reply = parser.AddLine(*line);
//     if (!reply.ok()) return reply.status();   // PROTOCOL_VIOLATION: drop the link
//     if (*reply) Handle(**reply);              // complete, possibly multi-line
//   }
//
//   Extensions ext = Extensions::FromEhloReply(ehlo_reply);
//   // ... or, from a logged-in client: Extensions::FromCapabilities(client.info().capabilities)
//   if (ext.Has("SMTPUTF8")) ...
//   uint64_t limit = ext.MaxMessageSize();
//
// Thread-compatible.
#ifndef MAILPOOL_SMTP_REPLY_H_
#define MAILPOOL_SMTP_REPLY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mailpool::smtp {

// One complete server reply.
struct Reply {
  int code = 0;                    // three digits, 200..559 (see Reply-code)
  std::vector<std::string> lines;  // each line's text after "250-" / "250 ", maybe empty;
                                   // never empty for a parsed reply

  bool IsPositive() const { return code / 100 == 2; }
  bool IsIntermediate() const { return code / 100 == 3; }
  bool IsTransientFailure() const { return code / 100 == 4; }
  bool IsPermanentFailure() const { return code / 100 == 5; }
  // The reply as the server sent it, lines joined by '\n' ("250-a\n250 b"). Not sanitized:
  // pass it through SanitizeServerText before showing it.
  std::string Raw() const;
};

// Assembles replies from lines. Server bytes are hostile: malformed lines and oversized
// replies are errors, never crashes, and memory stays bounded by the caps.
class ReplyParser {
 public:
  static constexpr size_t kDefaultMaxLines = 1000;
  static constexpr size_t kDefaultMaxBytes = 64 * 1024;

  explicit ReplyParser(size_t max_lines = kDefaultMaxLines, size_t max_bytes = kDefaultMaxBytes)
      : max_lines_(max_lines), max_bytes_(max_bytes) {}

  // Adds one line, without its CRLF. Returns the reply when `line` was its last line,
  // nullopt while a multi-line reply goes on, or kUnavailable PROTOCOL_VIOLATION for a
  // malformed line, a code that differs from the reply's first line, or a reply over
  // max_lines lines / max_bytes bytes of text. After an error the parser starts afresh,
  // but the caller should drop the link.
  absl::StatusOr<std::optional<Reply>> AddLine(absl::string_view line);

  // Whether a multi-line reply has started and not finished.
  bool in_reply() const { return !pending_.lines.empty(); }

 private:
  size_t max_lines_;
  size_t max_bytes_;
  size_t bytes_ = 0;
  Reply pending_;
};

// One EHLO keyword with its parameters.
struct Extension {
  std::string keyword;              // upper case: "SIZE"
  std::vector<std::string> params;  // as sent: {"10240000"}
};

// The service extensions a server announced in its EHLO reply. Empty after HELO.
class Extensions {
 public:
  Extensions() = default;

  // Reads every line of a positive EHLO reply after the first (which holds the server's
  // domain). Lines that do not match ehlo-line are skipped.
  static Extensions FromEhloReply(const Reply& reply);
  // Reads the strings ToStrings() produced (ServerInfo::capabilities).
  static Extensions FromCapabilities(const std::vector<std::string>& capabilities);

  // Adds one ehlo-line ("SIZE 10240000"). Returns false, adding nothing, when the line
  // does not match the grammar. A repeated keyword keeps its first parameters, except
  // AUTH, whose mechanisms are merged (servers may send both "AUTH" and "AUTH=").
  bool AddLine(absl::string_view ehlo_line);

  // The extension with that keyword (any case), or nullptr.
  const Extension* Find(absl::string_view keyword) const;
  bool Has(absl::string_view keyword) const { return Find(keyword) != nullptr; }
  // SASL mechanism names from AUTH (RFC 4954), upper case, in the server's order.
  std::vector<std::string> AuthMechanisms() const;
  // RFC 1870 SIZE: the maximum message size in octets; 0 when SIZE is absent, has no
  // number, or is 0 ("no fixed maximum").
  uint64_t MaxMessageSize() const;
  // "KEYWORD param param" for each extension, in the server's order.
  std::vector<std::string> ToStrings() const;

  const std::vector<Extension>& all() const { return list_; }
  bool empty() const { return list_.empty(); }

 private:
  std::vector<Extension> list_;
};

// Whether `name` may follow EHLO / HELO: a Domain or an address-literal (RFC 5321
// section 4.1.2), at most 255 octets.
bool IsValidEhloName(absl::string_view name);

}  // namespace mailpool::smtp

#endif  // MAILPOOL_SMTP_REPLY_H_
