// Pieces of the IMAP mailbox that need no connection: opaque message IDs, page tokens,
// flag and folder-role conversions, and the checks of caller-given flags and folder names.
//
//   std::string id = EncodeMessageId(account, {"Archive/2024", 1700000000, 42});
//   absl::StatusOr<MessageRef> ref = DecodeMessageId(account, id);   // same folder/UIDs
//   std::string token = EncodePageToken("l1", {"3", "n", "50"});
//   absl::StatusOr<std::vector<std::string>> fields = DecodePageToken(token, "l1", 3);
//
// Thread-safe (pure functions).
#ifndef MAILPOOL_MAILBOX_IMAP_SUPPORT_H_
#define MAILPOOL_MAILBOX_IMAP_SUPPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mailpool/v1/mailbox.pb.h"

namespace mailpool::mailbox {

// What an IMAP message ID names: a UID in one incarnation (UIDVALIDITY) of one folder.
struct MessageRef {
  std::string folder;  // UTF-8, "INBOX" normalized to upper case
  uint32_t uid_validity = 0;
  uint32_t uid = 0;
};

// A short tag of the account (host, port, user) so that an ID from another account is
// recognised instead of addressing a message with the same UID there.
std::string AccountTag(absl::string_view host, uint16_t port, absl::string_view user);

// "i1." + base64url(account tag, UIDVALIDITY, UID, folder): opaque to callers, checked on
// the way back.
std::string EncodeMessageId(absl::string_view account, const MessageRef& ref);
// INVALID_ARGUMENT for anything that is not such an ID; FAILED_PRECONDITION FOREIGN_ID for
// an ID of another account.
absl::StatusOr<MessageRef> DecodeMessageId(absl::string_view account, absl::string_view id);

// The same folder name as IMAP compares them: INBOX case-insensitively, the rest exactly.
bool SameFolder(absl::string_view a, absl::string_view b);
// "inbox" -> "INBOX"; other names unchanged.
std::string NormalizeFolder(absl::string_view name);

// Page tokens: base64url of NUL-separated fields, the first being `kind`. Every request
// field that shapes a listing is one of the fields, so a token is refused for another
// request shape (INVALID_ARGUMENT).
std::string EncodePageToken(absl::string_view kind, const std::vector<std::string>& fields);
absl::StatusOr<std::vector<std::string>> DecodePageToken(absl::string_view token,
                                                         absl::string_view kind, size_t fields);

// 64-bit FNV-1a, to fold long inputs (folder names, criteria) into token fields.
uint64_t Fingerprint(absl::string_view data);

// Flags <-> IMAP flag atoms ("\\Seen", "$Forwarded").
std::vector<std::string> FlagsToImap(const v1::Flags& flags);
v1::Flags FlagsFromImap(const std::vector<std::string>& flags);

// The RFC 6154 attribute ("\\Sent") -> role; INBOX by name.
v1::FolderRole RoleOf(absl::string_view folder, absl::string_view special_use);

// Caller-given flags: `recent` false, keywords IMAP atoms (1-128 bytes, no spaces,
// parentheses, braces, '%', '*', '"', '\\', ']' or controls). INVALID_ARGUMENT naming
// `field`.
absl::Status ValidateFlags(absl::string_view field, const v1::Flags& flags);
// Folder names: valid UTF-8 (they are sent in modified UTF-7 or as UTF-8), no controls.
absl::Status ValidateFolderName(absl::string_view field, absl::string_view name);

}  // namespace mailpool::mailbox

#endif  // MAILPOOL_MAILBOX_IMAP_SUPPORT_H_
