#include "mailbox/imap_support.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mailpool::mailbox {
namespace {

TEST(MessageIdTest, RoundTripsFolderValidityAndUid) {
  std::string account = AccountTag("Mail.Example.org", 993, "alice");
  for (const char* folder : {"INBOX", "Archive.2024", "Entwürfe ☕", "say \"hi\"", "a|b\\c"}) {
    std::string id = EncodeMessageId(account, {folder, 1700000000, 42});
    absl::StatusOr<MessageRef> ref = DecodeMessageId(account, id);
    ASSERT_TRUE(ref.ok()) << ref.status();
    EXPECT_EQ(ref->folder, folder);
    EXPECT_EQ(ref->uid_validity, 1700000000u);
    EXPECT_EQ(ref->uid, 42u);
    // Opaque: the folder name does not show.
    EXPECT_EQ(id.find(' '), std::string::npos);
  }
  // INBOX is normalized, so IDs of "inbox" and "INBOX" name the same folder.
  EXPECT_EQ(DecodeMessageId(account, EncodeMessageId(account, {"inbox", 1, 1}))->folder, "INBOX");
}

TEST(MessageIdTest, RefusesForeignAndMalformedIds) {
  std::string mine = AccountTag("mail.example.org", 993, "alice");
  std::string other = AccountTag("mail.example.org", 993, "bob");
  std::string id = EncodeMessageId(mine, {"INBOX", 7, 9});
  EXPECT_EQ(DecodeMessageId(other, id).status().code(), absl::StatusCode::kFailedPrecondition);
  for (const char* bad :
       {"", "i1.", "i1.!!!", "p1.abc.def", "i1.AAAA", "i2.AAAAAAAAAAAAAAAAAAAA"}) {
    EXPECT_EQ(DecodeMessageId(mine, bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  // UID 0 and UIDVALIDITY 0 do not exist.
  EXPECT_FALSE(DecodeMessageId(mine, EncodeMessageId(mine, {"INBOX", 0, 9})).ok());
  EXPECT_FALSE(DecodeMessageId(mine, EncodeMessageId(mine, {"INBOX", 7, 0})).ok());
  // A folder name with CR/LF could only come from a forged ID.
  EXPECT_FALSE(DecodeMessageId(mine, EncodeMessageId(mine, {"x\r\nA1 DELETE INBOX", 7, 1})).ok());
}

TEST(PageTokenTest, RoundTripsAndRefusesOtherKinds) {
  std::string token = EncodePageToken("l1", {"3", "n", "folder|with|bars"});
  absl::StatusOr<std::vector<std::string>> fields = DecodePageToken(token, "l1", 3);
  ASSERT_TRUE(fields.ok());
  EXPECT_THAT(*fields, ::testing::ElementsAre("3", "n", "folder|with|bars"));
  EXPECT_FALSE(DecodePageToken(token, "s1", 3).ok());
  EXPECT_FALSE(DecodePageToken(token, "l1", 4).ok());
  EXPECT_FALSE(DecodePageToken("not base64!", "l1", 3).ok());
}

TEST(FlagsTest, ConvertsBothWays) {
  v1::Flags flags = FlagsFromImap({"\\Seen", "\\FLAGGED", "$Work", "\\Recent", "\\Unknown"});
  EXPECT_TRUE(flags.seen());
  EXPECT_TRUE(flags.flagged());
  EXPECT_TRUE(flags.recent());
  EXPECT_FALSE(flags.deleted());
  EXPECT_THAT(flags.keywords(), ::testing::ElementsAre("$Work"));
  flags.set_recent(false);
  EXPECT_THAT(FlagsToImap(flags), ::testing::ElementsAre("\\Seen", "\\Flagged", "$Work"));
}

TEST(FlagsTest, ValidatesKeywordsAsAtoms) {
  v1::Flags ok;
  ok.add_keywords("$Forwarded");
  EXPECT_TRUE(ValidateFlags("flags", ok).ok());
  for (const char* bad : {"", "two words", "a(b", "x]", "q\"", "back\\slash", "per%cent", "st*r",
                          "br{ace", "ctl\x01"}) {
    v1::Flags f;
    f.add_keywords(bad);
    EXPECT_EQ(ValidateFlags("flags", f).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  v1::Flags recent;
  recent.set_recent(true);
  EXPECT_FALSE(ValidateFlags("flags", recent).ok());
}

TEST(FolderTest, RolesNamesAndValidation) {
  EXPECT_EQ(RoleOf("inbox", ""), v1::FOLDER_ROLE_INBOX);
  EXPECT_EQ(RoleOf("Sent Items", "\\Sent"), v1::FOLDER_ROLE_SENT);
  EXPECT_EQ(RoleOf("Corbeille", "\\trash"), v1::FOLDER_ROLE_TRASH);
  EXPECT_EQ(RoleOf("Misc", ""), v1::FOLDER_ROLE_UNSPECIFIED);
  EXPECT_TRUE(SameFolder("INBOX", "Inbox"));
  EXPECT_FALSE(SameFolder("Archive", "archive"));
  EXPECT_TRUE(ValidateFolderName("folder", "Entwürfe/2024 \"x\"").ok());
  EXPECT_FALSE(ValidateFolderName("folder", "\xff\xfe").ok());
  EXPECT_FALSE(ValidateFolderName("folder", "tab\there").ok());
}

}  // namespace
}  // namespace mailpool::mailbox
