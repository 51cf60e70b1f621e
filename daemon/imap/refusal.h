// What an IMAP server's tagged NO means to a caller: one table from the command, the
// response code (RFC 5530, RFC 3501 section 7.1, RFC 4469/7889) and, when the server sent
// no code, the response text, to a status code and a stable reason.
//
//   Refusal r = ClassifyRefusal(RefusedCommand::kCreate, "", "Mailbox already exists");
//   // r.code == absl::StatusCode::kAlreadyExists, r.reason == "FOLDER_EXISTS"
//
// A tagged NO is the server's considered answer, so it is never kUnavailable (which tells
// clients to retry) unless the server says the failure is temporary ([UNAVAILABLE],
// [INUSE]). Pure functions; thread-safe.
#ifndef MAILPOOL_IMAP_REFUSAL_H_
#define MAILPOOL_IMAP_REFUSAL_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mailpool::imap {

enum class RefusedCommand {
  kSelect,  // SELECT and EXAMINE
  kStatus,
  kCreate,
  kDelete,
  kRename,
  kSubscribe,  // SUBSCRIBE and UNSUBSCRIBE
  kCopy,       // COPY and MOVE
  kAppend,
  kOther,  // FETCH, STORE, SEARCH, EXPUNGE, LIST, NOOP, ...
};

struct Refusal {
  absl::StatusCode code;
  absl::string_view reason;  // FOLDER_NOT_FOUND, FOLDER_EXISTS, MESSAGE_TOO_BIG, ...
};

// `code` is the response code's name without brackets or argument ("TRYCREATE"; empty
// when none), `text` the human-readable text after it.
//  - codes (also one placed after the command's name, "NO APPEND [TRYCREATE] failed", as
//    GNU Mailutils imap4d sends them): TRYCREATE, NONEXISTENT: kNotFound FOLDER_NOT_FOUND; ALREADYEXISTS:
//    kAlreadyExists FOLDER_EXISTS; TOOBIG: kResourceExhausted MESSAGE_TOO_BIG; OVERQUOTA,
//    LIMIT: kResourceExhausted COMMAND_REFUSED; NOPERM, AUTHORIZATIONFAILED,
//    CONTACTADMIN: kPermissionDenied; READ-ONLY, CANNOT, PRIVACYREQUIRED, EXPUNGEISSUED:
//    kFailedPrecondition; BADCHARSET, CLIENTBUG: kInvalidArgument; SERVERBUG: kInternal;
//    CORRUPTION: kDataLoss; UNAVAILABLE, INUSE: kUnavailable (the server says: later).
//  - no code (or an unknown one), by text: "already exist(s)" / "exists" →
//    FOLDER_EXISTS for CREATE and RENAME; "does not exist", "doesn't exist", "no such",
//    "not found", "unknown mailbox", "nonexistent" → FOLDER_NOT_FOUND; "too big", "too
//    large", "too long", "size limit", "exceeds" → MESSAGE_TOO_BIG for APPEND; "quota" →
//    kResourceExhausted; "permission", "not allowed", "denied" → kPermissionDenied.
//  - no code and no telling text, by command: SELECT, STATUS, DELETE, RENAME, SUBSCRIBE
//    name an existing folder: kNotFound FOLDER_NOT_FOUND (Dovecot and others omit the
//    code); anything else kFailedPrecondition COMMAND_REFUSED.
Refusal ClassifyRefusal(RefusedCommand command, absl::string_view code, absl::string_view text);

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_REFUSAL_H_
