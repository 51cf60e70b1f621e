// POP3 server-reply parsing, no I/O: status lines (RFC 1939), response codes
// (RFC 2449 section 8, RFC 3206), the APOP timestamp (RFC 1939 section 7) and CAPA
// listings (RFC 2449).
//
//   Reply r = ParseReply("-ERR [SYS/TEMP] try later");   // kErr, code "SYS/TEMP"
//   std::optional<std::string> ts = ApopTimestamp("+OK ready <1.2@host>");
//
// Server text is hostile: every function here is total and bounded.
#ifndef MAILPOOL_POP3_RESPONSE_H_
#define MAILPOOL_POP3_RESPONSE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "wire/protocol.h"

namespace mailpool::pop3 {

struct Reply {
  enum class Kind {
    kOk,            // "+OK" [SP text]
    kErr,           // "-ERR" [SP text]
    kContinuation,  // "+" [SP base64]  (SASL, RFC 5034)
    kInvalid,       // anything else
  };
  Kind kind = Kind::kInvalid;
  // kOk / kErr: the text after the status indicator (response code included);
  // kContinuation: the challenge (may be empty).
  std::string text;
  // The response code without brackets, upper-cased ("SYS/TEMP", "AUTH", "IN-USE"), or
  // empty when the reply carries none.
  std::string code;
};

// Status indicators are matched case-insensitively ("+ok" from sloppy servers).
Reply ParseReply(absl::string_view line);

// Whether an -ERR response code says the failure is temporary: SYS/TEMP, IN-USE or
// LOGIN-DELAY (and their hierarchical children, e.g. "SYS/TEMP/QUOTA").
bool IsTemporaryCode(absl::string_view code);

// The APOP timestamp of a greeting line: from the first '<' up to and including the first
// '>' after it, which must enclose an '@' and only printable non-space ASCII. nullopt when
// the greeting carries none.
std::optional<std::string> ApopTimestamp(absl::string_view greeting);

// What a CAPA listing says. `lines` are the listing's lines, already dot-unstuffed.
struct Capabilities {
  std::vector<std::string> lines;  // as listed, sanitized (for ServerInfo::capabilities)
  bool user = false;               // "USER": USER/PASS available
  bool stls = false;               // "STLS"
  std::vector<wire::Mechanism> sasl;  // known mechanisms from "SASL ...", in listed order
};
Capabilities ParseCapabilities(const std::vector<std::string>& lines);

}  // namespace mailpool::pop3

#endif  // MAILPOOL_POP3_RESPONSE_H_
