// IMAP4rev1 (RFC 3501 section 9) grammar helpers shared by the IMAP client: quoting of
// command arguments and the parsing of the few response shapes the client acts on. No I/O,
// no state; every function takes hostile server text and never fails by crashing.
//
//   std::string arg = AString("Sent Items");               // "\"Sent Items\""
//   std::optional<StatusResponse> r = ParseStatus("OK [UIDNEXT 4] done");
//   std::optional<uint64_t> n = TrailingLiteralSize("* 1 FETCH (BODY[] {42}");   // 42
//
// Thread-safe (stateless).
#ifndef MAILPOOL_IMAP_SYNTAX_H_
#define MAILPOOL_IMAP_SYNTAX_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mailpool::imap {

// ATOM-CHAR       = <any CHAR except atom-specials>
// atom-specials   = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials /
//                   resp-specials
// list-wildcards  = "%" / "*"
// quoted-specials = DQUOTE / "\"
// resp-specials   = "]"
bool IsAtomChar(char c);

// ASTRING-CHAR    = ATOM-CHAR / resp-specials
bool IsAstringChar(char c);

// Whether `text` can only be sent as a literal: a quoted string holds TEXT-CHARs, which
// are 7-bit (CHAR = %x01-7F), so any byte >= 0x80 needs a literal.
bool NeedsLiteral(absl::string_view text);

// quoted          = DQUOTE *QUOTED-CHAR DQUOTE
// QUOTED-CHAR     = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials
// Precondition: !NeedsLiteral(text) and no CR, LF or NUL (callers check first).
std::string Quote(absl::string_view text);
// Appends Quote(text) to *out without a temporary (for secrets: no stray copy).
void AppendQuoted(absl::string_view text, std::string* out);

// astring         = 1*ASTRING-CHAR / string
// The bare form when `text` is a non-empty run of ASTRING-CHARs, else Quote(text).
// Same precondition as Quote().
std::string AString(absl::string_view text);

// The parts of a line after "tag SP" or "* " that the client acts on.
// resp-cond-state = ("OK" / "NO" / "BAD") SP resp-text
// resp-cond-auth  = ("OK" / "PREAUTH") SP resp-text
// resp-cond-bye   = "BYE" SP resp-text
// resp-text       = ["[" resp-text-code "]" SP] text
struct StatusResponse {
  enum class Kind { kOk, kNo, kBad, kPreauth, kBye };
  Kind kind;
  absl::string_view code;  // inside the brackets ("UIDNEXT 4"); empty when absent
  absl::string_view text;
};

// Parses `rest` (the line after the tag and its SP) as a status response, or nullopt when
// it is not one (e.g. "CAPABILITY ..." or "3 EXISTS"). The keyword is case-insensitive.
// Tolerates a missing resp-text ("a1 OK") and an unterminated "[" (then no code).
std::optional<StatusResponse> ParseStatus(absl::string_view rest);

// The first word of a resp-text-code ("UIDNEXT" for "UIDNEXT 4"), and what follows it.
// resp-text-code  = ... / atom [SP 1*<any TEXT-CHAR except "]">]
absl::string_view CodeName(absl::string_view code);
absl::string_view CodeArgument(absl::string_view code);

// capability-data = "CAPABILITY" *(SP capability) SP "IMAP4rev1" *(SP capability)
// capability      = ("AUTH=" auth-type) / atom
// `list` is what follows "CAPABILITY" (in untagged data or in the response code). Splits
// on runs of spaces; empty tokens are dropped.
std::vector<std::string> ParseCapabilityList(absl::string_view list);

// literal         = "{" number "}" CRLF *CHAR8
// literal8        = "~{" number "}" CRLF *OCTET          (RFC 3516)
// The byte count of the literal announced at the end of `line`, or nullopt when the line
// does not end with "{number}". Absurd counts (more than 2^53) yield nullopt.
std::optional<uint64_t> TrailingLiteralSize(absl::string_view line);

// number          = 1*DIGIT  ; unsigned 32-bit integer
// nullopt when `text` is not such a number.
std::optional<uint32_t> ParseNumber(absl::string_view text);

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_SYNTAX_H_
