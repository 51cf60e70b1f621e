// Fuzzes the decoders of caller- and server-supplied identifiers: IMAP message IDs and
// page tokens (mailbox/imap_support.cc), uid-sets (imap/uid_set.cc), modified UTF-7
// folder names (imap/mailbox_name.cc), date-time, status lines and capability lists
// (imap/syntax.cc, imap/client.cc). Decoded IDs must encode back to what they came from.
//
// Input: byte 0 picks the decoder; the rest is the text.
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

#include "absl/strings/escaping.h"
#include "fuzz_util.h"
#include "imap/client.h"
#include "imap/mailbox_name.h"
#include "imap/syntax.h"
#include "imap/uid_set.h"
#include "mailbox/imap_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mailpool;
  fuzz::Input in(data, size);
  uint8_t which = in.Byte();
  absl::string_view text = in.rest();
  const std::string account = mailbox::AccountTag("imap.example.test", 993, "fuzz");
  switch (which % 8) {
    case 0: {
      // The text as an ID, and as the payload of an ID of this account (past base64).
      absl::StatusOr<mailbox::MessageRef> ref = mailbox::DecodeMessageId(account, text);
      if (!ref.ok()) {
        ref = mailbox::DecodeMessageId(
            account, absl::StrCat("i1.", absl::WebSafeBase64Escape(absl::StrCat(account, text))));
      }
      if (ref.ok()) {
        std::string again = mailbox::EncodeMessageId(account, *ref);
        absl::StatusOr<mailbox::MessageRef> back = mailbox::DecodeMessageId(account, again);
        if (!back.ok() || back->uid != ref->uid || back->uid_validity != ref->uid_validity ||
            back->folder != ref->folder)
          __builtin_trap();
      }
      break;
    }
    case 1: {
      absl::StatusOr<std::vector<std::string>> fields =
          mailbox::DecodePageToken(text, "list", which >> 3);
      if (!fields.ok()) {
        fields = mailbox::DecodePageToken(
            absl::WebSafeBase64Escape(absl::StrCat("list", absl::string_view("\0", 1), text)),
            "list", which >> 3);
      }
      if (fields.ok()) (void)mailbox::EncodePageToken("list", *fields);
      break;
    }
    case 2: {
      absl::StatusOr<imap::UidSet> set = imap::UidSet::Parse(text);
      if (set.ok()) {
        absl::StatusOr<imap::UidSet> back = imap::UidSet::Parse(set->ToString());
        if (!set->empty() && (!back.ok() || !(*back == *set))) __builtin_trap();
      }
      (void)imap::ExpandUidSet(text, 10'000);
      break;
    }
    case 3: {
      absl::StatusOr<std::string> utf8 = imap::DecodeMailboxName(text);
      if (utf8.ok()) (void)imap::EncodeMailboxName(*utf8);
      (void)imap::EncodeMailboxName(text);
      (void)mailbox::ValidateFolderName("folder", text);
      break;
    }
    case 4:
      (void)imap::ParseDateTime(text);
      break;
    case 5: {
      (void)imap::ParseStatus(text);
      (void)imap::ParseCapabilityList(text);
      (void)imap::TrailingLiteralSize(text);
      (void)imap::ParseNumber(text);
      break;
    }
    case 6:
      (void)imap::AString(text);
      (void)imap::Quote(text);
      (void)mailbox::RoleOf(text, text);
      break;
    default: {
      std::string tail(text);
      (void)mailbox::SameFolder(tail, mailbox::NormalizeFolder(tail));
      (void)mailbox::Fingerprint(tail);
      break;
    }
  }
  return 0;
}
