#include "imap/syntax.h"

#include "gtest/gtest.h"

namespace mailpool::imap {
namespace {

// atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials /
//                 resp-specials
TEST(SyntaxTest, AtomCharsExcludeAtomSpecials) {
  for (char c : std::string("(){ %*\"\\]\x01\x1f\x7f\x80\xff", 15)) {
    EXPECT_FALSE(IsAtomChar(c)) << static_cast<int>(c);
  }
  EXPECT_FALSE(IsAtomChar('\0'));
  for (char c : std::string("azAZ09!#$&'+,-./:;<=>?@[^_`|}~")) EXPECT_TRUE(IsAtomChar(c)) << c;
}

// ASTRING-CHAR = ATOM-CHAR / resp-specials
TEST(SyntaxTest, AstringCharsAddCloseBracket) {
  EXPECT_TRUE(IsAstringChar(']'));
  EXPECT_FALSE(IsAstringChar('('));
  EXPECT_TRUE(IsAstringChar('a'));
}

// CHAR = %x01-7F: quoted strings cannot carry 8-bit bytes.
TEST(SyntaxTest, EightBitTextNeedsALiteral) {
  EXPECT_FALSE(NeedsLiteral("plain ascii \"quoted\""));
  EXPECT_TRUE(NeedsLiteral("p\xc3\xa4ss"));
  EXPECT_FALSE(NeedsLiteral(""));
}

// quoted = DQUOTE *QUOTED-CHAR DQUOTE
// QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials
TEST(SyntaxTest, QuoteEscapesOnlyQuotedSpecials) {
  EXPECT_EQ(Quote(""), R"("")");
  EXPECT_EQ(Quote("a b"), R"("a b")");
  EXPECT_EQ(Quote(R"(a"b\c)"), R"("a\"b\\c")");
  EXPECT_EQ(Quote("(){}%*]"), R"("(){}%*]")");
  std::string out = "x";
  AppendQuoted(R"(\)", &out);
  EXPECT_EQ(out, R"(x"\\")");
}

// astring = 1*ASTRING-CHAR / string
TEST(SyntaxTest, AStringIsBareOnlyWhenEveryCharIsAnAstringChar) {
  EXPECT_EQ(AString("INBOX"), "INBOX");
  EXPECT_EQ(AString("Lists/imap]"), "Lists/imap]");
  EXPECT_EQ(AString(""), R"("")");
  EXPECT_EQ(AString("Sent Items"), R"("Sent Items")");
  EXPECT_EQ(AString("a{5}"), R"("a{5}")");
  EXPECT_EQ(AString("50%"), R"("50%")");
  EXPECT_EQ(AString("*"), R"("*")");
}

// resp-cond-state = ("OK" / "NO" / "BAD") SP resp-text
// resp-text       = ["[" resp-text-code "]" SP] text
TEST(SyntaxTest, ParseStatusSplitsKindCodeAndText) {
  auto r = ParseStatus("OK [UIDNEXT 4] Predicted next UID");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, StatusResponse::Kind::kOk);
  EXPECT_EQ(r->code, "UIDNEXT 4");
  EXPECT_EQ(r->text, "Predicted next UID");
  EXPECT_EQ(CodeName(r->code), "UIDNEXT");
  EXPECT_EQ(CodeArgument(r->code), "4");

  r = ParseStatus("no Mailbox doesn't exist");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, StatusResponse::Kind::kNo);
  EXPECT_EQ(r->code, "");
  EXPECT_EQ(r->text, "Mailbox doesn't exist");

  EXPECT_EQ(ParseStatus("BAD x")->kind, StatusResponse::Kind::kBad);
  EXPECT_EQ(ParseStatus("PREAUTH hi")->kind, StatusResponse::Kind::kPreauth);
  EXPECT_EQ(ParseStatus("BYE")->kind, StatusResponse::Kind::kBye);
  EXPECT_FALSE(ParseStatus("CAPABILITY IMAP4rev1").has_value());
  EXPECT_FALSE(ParseStatus("3 EXISTS").has_value());
  EXPECT_FALSE(ParseStatus("").has_value());
  EXPECT_FALSE(ParseStatus("OKAY").has_value());
}

TEST(SyntaxTest, ParseStatusToleratesSloppyResponseText) {
  auto r = ParseStatus("OK");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->text, "");
  r = ParseStatus("OK [READ-WRITE]");
  EXPECT_EQ(r->code, "READ-WRITE");
  EXPECT_EQ(r->text, "");
  r = ParseStatus("OK [unterminated code");
  EXPECT_EQ(r->code, "");
  EXPECT_EQ(r->text, "[unterminated code");
  EXPECT_EQ(CodeArgument("ALERT"), "");
}

// capability-data = "CAPABILITY" *(SP capability) SP "IMAP4rev1" *(SP capability)
TEST(SyntaxTest, CapabilityListSplitsOnSpaces) {
  EXPECT_EQ(ParseCapabilityList("IMAP4rev1  AUTH=PLAIN SASL-IR "),
            (std::vector<std::string>{"IMAP4rev1", "AUTH=PLAIN", "SASL-IR"}));
  EXPECT_TRUE(ParseCapabilityList("").empty());
}

// literal = "{" number "}" CRLF *CHAR8 ; literal8 = "~{" number "}" CRLF *OCTET
TEST(SyntaxTest, TrailingLiteralSize) {
  EXPECT_EQ(TrailingLiteralSize("* 1 FETCH (BODY[] {42}"), 42u);
  EXPECT_EQ(TrailingLiteralSize("* 1 FETCH (BINARY[] ~{0}"), 0u);
  EXPECT_EQ(TrailingLiteralSize("{7}"), 7u);
  EXPECT_FALSE(TrailingLiteralSize("* OK {42} later").has_value());
  EXPECT_FALSE(TrailingLiteralSize("* OK {}").has_value());
  EXPECT_FALSE(TrailingLiteralSize("* OK {4a}").has_value());
  EXPECT_FALSE(TrailingLiteralSize("* OK 42}").has_value());
  EXPECT_FALSE(TrailingLiteralSize("* OK {-1}").has_value());
  EXPECT_FALSE(TrailingLiteralSize("* OK {99999999999999999999}").has_value());
  EXPECT_FALSE(TrailingLiteralSize("").has_value());
}

// number = 1*DIGIT ; unsigned 32-bit integer
TEST(SyntaxTest, ParseNumberIs32Bit) {
  EXPECT_EQ(ParseNumber("0"), 0u);
  EXPECT_EQ(ParseNumber("4294967295"), 4294967295u);
  EXPECT_FALSE(ParseNumber("4294967296").has_value());
  EXPECT_FALSE(ParseNumber("").has_value());
  EXPECT_FALSE(ParseNumber("12a").has_value());
  EXPECT_FALSE(ParseNumber("-1").has_value());
}

}  // namespace
}  // namespace mailpool::imap
