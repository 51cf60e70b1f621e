// SearchCriteria evaluated by the daemon itself, over the message model (POP3, where the
// server cannot search; IMAP uses it to refine what the server's SEARCH returns).
//
//   MP_RETURN_IF_ERROR(ValidateCriteria(criteria, /*pop3=*/true));
//   Needs needs = NeedsOf(criteria);          // fetch headers / bodies only when needed
//   MessageFacts facts{.size = 4096, .headers = &parsed};
//   bool hit = Matches(criteria, facts);
//
// Text matches are case-insensitive (ASCII) substrings of the decoded text, as in IMAP
// SEARCH. Thread-compatible; pure functions.
#ifndef MAILPOOL_MAILBOX_SEARCH_H_
#define MAILPOOL_MAILBOX_SEARCH_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "mailpool/v1/mailbox.pb.h"

namespace mailpool::mailbox {

// Nesting and size limits of SearchCriteria (mailbox.proto).
inline constexpr int kMaxCriteriaDepth = 8;
inline constexpr int kMaxCriteria = 200;

// INVALID_ARGUMENT past the limits or for malformed fields (CR/LF/NUL in text, empty
// header names, timestamps out of range); with `pop3`, FAILED_PRECONDITION for what POP3
// cannot answer: flags other than `seen` (`unread` and `seen` there mean "not yet / already
// retrieved by this session").
absl::Status ValidateCriteria(const v1::SearchCriteria& criteria, bool pop3);

struct Needs {
  bool headers = false;  // header fields (TOP n 0 on POP3)
  bool bodies = false;   // decoded bodies (RETR on POP3)
};
Needs NeedsOf(const v1::SearchCriteria& criteria);

// What is known about one message. `headers` is required when NeedsOf(...).headers,
// `full` (bodies parsed, headers too) when NeedsOf(...).bodies.
struct MessageFacts {
  uint64_t size = 0;
  bool seen = false;
  const v1::EmailMessage* headers = nullptr;
  const v1::EmailMessage* full = nullptr;
};
bool Matches(const v1::SearchCriteria& criteria, const MessageFacts& facts);

// Case-insensitive (ASCII) substring test; an empty needle matches.
bool ContainsIgnoreCase(absl::string_view haystack, absl::string_view needle);

// The date of an RFC 5322 date-time ("Tue, 1 Jul 2003 10:52:37 +0200", day name and
// seconds optional, trailing comments ignored), or nullopt.
absl::optional<absl::Time> ParseMailDate(absl::string_view text);
// When the server received the message: the date after the last ';' of the topmost
// Received header field (RFC 5321 section 4.4), or nullopt.
absl::optional<absl::Time> ReceiveTimeOf(const v1::EmailMessage& headers);

}  // namespace mailpool::mailbox

#endif  // MAILPOOL_MAILBOX_SEARCH_H_
