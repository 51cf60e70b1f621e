#include "common/utf8.h"

#include <string>

#include "common/status.h"
#include "gtest/gtest.h"

namespace mailpool {
namespace {

TEST(Utf8Test, ValidTextIsKept) {
  for (const char* s : {"", "plain ascii", "Gr\xc3\xbc\xc3\x9f", "\xe2\x98\x95 coffee",
                        "\xf0\x9f\x98\x80", "\xef\xbf\xbd"}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(ToValidUtf8(s), s);
    std::string copy = s;
    EXPECT_FALSE(MakeValidUtf8(&copy));
  }
}

TEST(Utf8Test, InvalidSequencesBecomeReplacementCharacters) {
  struct Case {
    std::string in, out;
  };
  for (const Case& c : {
           Case{"caf\xe9", "caf\xef\xbf\xbd"},                  // Latin-1 byte
           Case{"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},         // overlong
           Case{"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},  // surrogate
           Case{"\xf4\x90\x80\x80",  // above U+10FFFF
                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
           Case{"a\xe2\x98", "a\xef\xbf\xbd"},                   // truncated: one U+FFFD
           Case{"\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd"},
           Case{"ok \x80 ok", "ok \xef\xbf\xbd ok"},
       }) {
    const std::string& want = c.out;
    EXPECT_FALSE(IsValidUtf8(c.in));
    EXPECT_EQ(ToValidUtf8(c.in), want);
    std::string copy = c.in;
    EXPECT_TRUE(MakeValidUtf8(&copy));
    EXPECT_EQ(copy, want);
    EXPECT_TRUE(IsValidUtf8(copy));
  }
}

TEST(Utf8Test, DeclaredCharsetsAreDecoded) {
  EXPECT_EQ(ToValidUtf8("caf\xe9", "ISO-8859-1"), "caf\xc3\xa9");
  EXPECT_EQ(ToValidUtf8("\x80 5", "windows-1252"), "\xe2\x82\xac 5");
  EXPECT_EQ(ToValidUtf8("\xf0\xd2\xc9\xd7\xc5\xd4", "koi8-r"),
            "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
  // Unknown charset, or bytes invalid in it: replaced, never copied through.
  EXPECT_EQ(ToValidUtf8("caf\xe9", "x-no-such-charset"), "caf\xef\xbf\xbd");
  EXPECT_EQ(ToValidUtf8("caf\xe9", "utf-8"), "caf\xef\xbf\xbd");
}

TEST(Utf8Test, PrefixNeverEndsInsideACharacter) {
  std::string s = "ab\xe2\x98\x95z";  // a b U+2615 z
  EXPECT_EQ(Utf8Prefix(s, 2), "ab");
  EXPECT_EQ(Utf8Prefix(s, 3), "ab");
  EXPECT_EQ(Utf8Prefix(s, 4), "ab");
  EXPECT_EQ(Utf8Prefix(s, 5), "ab\xe2\x98\x95");
  EXPECT_EQ(Utf8Prefix(s, 100), s);
}

// Greetings and server replies in error details pass through SanitizeServerText: they
// come out valid UTF-8 even when cut in the middle of a character.
TEST(Utf8Test, SanitizedServerTextIsValidUtf8) {
  EXPECT_EQ(SanitizeServerText("* OK caf\xe9 ready"), "* OK caf\xef\xbf\xbd ready");
  std::string cut = SanitizeServerText("ab\xe2\x98\x95", 3);
  EXPECT_EQ(cut, "ab...");
  EXPECT_TRUE(IsValidUtf8(SanitizeServerText(std::string(600, '\xc3'), 100)));
}

}  // namespace
}  // namespace mailpool
