// Mailbox names between the API (UTF-8) and IMAP4rev1's wire form, modified UTF-7
// (RFC 3501 section 5.1.3).
//
//   absl::StatusOr<std::string> wire = EncodeMailboxName("Entwürfe");   // "Entw&APw-rfe"
//   absl::StatusOr<std::string> name = DecodeMailboxName("Entw&APw-rfe");
//
// Thread-safe (stateless).
#ifndef MAILPOOL_IMAP_MAILBOX_NAME_H_
#define MAILPOOL_IMAP_MAILBOX_NAME_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mailpool::imap {

// UTF-8 -> modified UTF-7. Printable US-ASCII other than "&" stays as is, "&" becomes
// "&-", every other run of characters becomes "&" modified-BASE64(UTF-16BE) "-" (RFC 2152
// base64 with "," in place of "/" and no padding). INVALID_ARGUMENT for malformed UTF-8.
absl::StatusOr<std::string> EncodeMailboxName(absl::string_view utf8);

// Modified UTF-7 -> UTF-8. INVALID_ARGUMENT for 8-bit bytes, an unterminated or malformed
// base64 run, or unpaired surrogates.
absl::StatusOr<std::string> DecodeMailboxName(absl::string_view mutf7);

}  // namespace mailpool::imap

#endif  // MAILPOOL_IMAP_MAILBOX_NAME_H_
