#include "imap/mailbox_name.h"

#include "gtest/gtest.h"

namespace mailpool::imap {
namespace {

// RFC 3501 section 5.1.3's example: "~peter/mail/&U,BTFw-/&ZeVnLIqe-" is
// "~peter/mail/台北/日本語".
TEST(MailboxNameTest, Rfc3501Example) {
  EXPECT_EQ(*EncodeMailboxName("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
  EXPECT_EQ(*DecodeMailboxName("~peter/mail/&U,BTFw-/&ZeVnLIqe-"), "~peter/mail/台北/日本語");
}

// "&" is represented by "&-"; printable US-ASCII represents itself.
TEST(MailboxNameTest, AmpersandAndAscii) {
  EXPECT_EQ(*EncodeMailboxName("R&D"), "R&-D");
  EXPECT_EQ(*DecodeMailboxName("R&-D"), "R&D");
  EXPECT_EQ(*EncodeMailboxName("INBOX/Sent Items"), "INBOX/Sent Items");
  EXPECT_EQ(*EncodeMailboxName(""), "");
}

TEST(MailboxNameTest, AccentsAndAstralCharactersRoundTrip) {
  EXPECT_EQ(*EncodeMailboxName("Entwürfe"), "Entw&APw-rfe");
  EXPECT_EQ(*EncodeMailboxName("Éléments envoyés"), "&AMk-l&AOk-ments envoy&AOk-s");
  // U+1F4E7 goes as the surrogate pair D83D DCE7.
  EXPECT_EQ(*EncodeMailboxName("\xf0\x9f\x93\xa7"), "&2D3c5w-");
  for (const char* name :
       {"Entwürfe", "Éléments envoyés", "\xf0\x9f\x93\xa7 mail", "a&b&c", "тест", "x\x7fy"}) {
    auto wire = EncodeMailboxName(name);
    ASSERT_TRUE(wire.ok()) << name;
    auto back = DecodeMailboxName(*wire);
    ASSERT_TRUE(back.ok()) << *wire;
    EXPECT_EQ(*back, name);
  }
}

TEST(MailboxNameTest, EncodeRejectsMalformedUtf8) {
  for (const char* bad :
       {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "a\x80"}) {
    EXPECT_FALSE(EncodeMailboxName(bad).ok()) << bad;
  }
}

TEST(MailboxNameTest, DecodeRejectsMalformedInput) {
  for (const char* bad : {"&U,BTFw", "&!!-", "caf\xc3\xa9", "&2D3-", "&3OfYPQ-", "&AOl-"}) {
    EXPECT_FALSE(DecodeMailboxName(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace mailpool::imap
