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
  std::vector<std::string> lines;     // as listed, sanitized (for ServerInfo::capabilities)
  bool user = false;                  // "USER": USER/PASS available
  bool stls = false;                  // "STLS"
  std::vector<wire::Mechanism> sasl;  // known mechanisms from "SASL ...", in listed order
};
Capabilities ParseCapabilities(const std::vector<std::string>& lines);

// Dot-unstuffs the body of a multi-line response pushed in pieces of any size (RFC 1939
// section 3):
//   "... the response is terminated by a line containing a termination octet [.] and
//    CRLF ... If any line of the multi-line response begins with the termination octet,
//    the line is "byte-stuffed" by pre-pending the termination octet to that line."
// A bare LF ends a line too (sloppy servers); line endings are passed through unchanged.
// Input must start at the beginning of a line (right after the status line).
//
//   MultilineDecoder decoder;
//   size_t used = decoder.Consume(bytes, [&](absl::string_view piece) { out += piece; });
//   if (decoder.done()) /* bytes[used...] belong to whatever follows the response */;
//
// Emitted pieces point into `data` (or at a static "\r"), are never empty, and are valid
// only during the call. Thread-compatible.
class MultilineDecoder {
 public:
  template <typename Emit>
  size_t Consume(absl::string_view data, Emit&& emit);
  // The terminating line has been consumed.
  bool done() const { return state_ == State::kDone; }
  void Reset() { state_ = State::kLineStart; }

 private:
  enum class State { kLineStart, kDot, kDotCr, kMid, kDone };
  State state_ = State::kLineStart;
};

template <typename Emit>
size_t MultilineDecoder::Consume(absl::string_view data, Emit&& emit) {
  size_t i = 0;
  const size_t n = data.size();
  while (i < n && state_ != State::kDone) {
    switch (state_) {
      case State::kLineStart:
        if (data[i] == '.') {
          ++i;
          state_ = State::kDot;
        } else {
          state_ = State::kMid;
        }
        break;
      case State::kDot:
        // A '.' opened the line: "." CRLF (or "." LF) ends the response, anything else
        // was stuffed and the dot is dropped.
        if (data[i] == '\r') {
          ++i;
          state_ = State::kDotCr;
        } else if (data[i] == '\n') {
          ++i;
          state_ = State::kDone;
        } else {
          state_ = State::kMid;
        }
        break;
      case State::kDotCr:
        if (data[i] == '\n') {
          ++i;
          state_ = State::kDone;
        } else {
          emit(absl::string_view("\r", 1));  // ".\rX": a stuffed line starting with CR
          state_ = State::kMid;
        }
        break;
      case State::kMid: {
        size_t lf = data.find('\n', i);
        size_t end = lf == absl::string_view::npos ? n : lf + 1;
        emit(data.substr(i, end - i));
        i = end;
        if (lf != absl::string_view::npos) state_ = State::kLineStart;
        break;
      }
      case State::kDone:
        break;
    }
  }
  return i;
}

}  // namespace mailpool::pop3

#endif  // MAILPOOL_POP3_RESPONSE_H_
