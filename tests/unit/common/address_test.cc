// Every rule of the address grammar (common/address.h), each with inputs on both sides.
#include "common/address.h"

#include <string>

#include "gtest/gtest.h"

namespace mailpool {
namespace {

TEST(AddressGrammarTest, AtextIsLettersDigitsTheListedSpecialsAndUtf8) {
  for (char c : std::string("aZ09!#$%&'*+-/=?^_`{|}~")) EXPECT_TRUE(IsAtext(c)) << c;
  EXPECT_TRUE(IsAtext('\xc3'));  // a UTF-8 lead byte (RFC 6532)
  for (char c : std::string(" \"(),.:;<>@[\\]\t")) EXPECT_FALSE(IsAtext(c)) << c;
  EXPECT_FALSE(IsAtext('\0'));
  EXPECT_FALSE(IsAtext('\x7f'));
}

TEST(AddressGrammarTest, DotAtomTextIsAtomsJoinedBySingleDots) {
  EXPECT_TRUE(IsDotAtomText("a"));
  EXPECT_TRUE(IsDotAtomText("first.last"));
  EXPECT_TRUE(IsDotAtomText("a+tag.b-c"));
  EXPECT_TRUE(IsDotAtomText("j\xc3\xb6rg"));
  EXPECT_FALSE(IsDotAtomText(""));
  EXPECT_FALSE(IsDotAtomText(".a"));
  EXPECT_FALSE(IsDotAtomText("a."));
  EXPECT_FALSE(IsDotAtomText("a..b"));
  EXPECT_FALSE(IsDotAtomText("a b"));
  EXPECT_FALSE(IsDotAtomText("a@b"));
}

TEST(AddressGrammarTest, QuotedStringTakesQtextAndQuotedPairs) {
  EXPECT_TRUE(IsQuotedString("\"\""));
  EXPECT_TRUE(IsQuotedString("\"john doe\""));
  EXPECT_TRUE(IsQuotedString("\"a\\\"b\""));  // quoted-pair escapes a DQUOTE
  EXPECT_TRUE(IsQuotedString("\"a\\\\\""));   // an escaped backslash before the end
  EXPECT_FALSE(IsQuotedString("\""));
  EXPECT_FALSE(IsQuotedString("abc"));
  EXPECT_FALSE(IsQuotedString("\"a\"b\""));  // bare DQUOTE inside
  EXPECT_FALSE(IsQuotedString("\"a\\\""));   // the closing DQUOTE escaped
  EXPECT_FALSE(IsQuotedString("\"a\rb\""));  // control character
  EXPECT_FALSE(IsQuotedString("\"a\x7f\""));
}

TEST(AddressGrammarTest, LocalPartIsDotAtomOrQuotedString) {
  EXPECT_TRUE(IsLocalPart("first.last"));
  EXPECT_TRUE(IsLocalPart("\"first last\""));
  EXPECT_FALSE(IsLocalPart("first last"));
  EXPECT_FALSE(IsLocalPart(""));
}

TEST(AddressGrammarTest, DomainLiteralIsBracketedDtext) {
  EXPECT_TRUE(IsDomainLiteral("[192.0.2.1]"));
  EXPECT_TRUE(IsDomainLiteral("[IPv6:2001:db8::1]"));
  EXPECT_TRUE(IsDomainLiteral("[]"));  // *dtext: zero is allowed
  EXPECT_FALSE(IsDomainLiteral("["));
  EXPECT_FALSE(IsDomainLiteral("192.0.2.1"));
  EXPECT_FALSE(IsDomainLiteral("[a b]"));
  EXPECT_FALSE(IsDomainLiteral("[a\\b]"));
  EXPECT_FALSE(IsDomainLiteral("[a[b]"));
}

TEST(AddressGrammarTest, AddressLiteralIsBracketedLettersDigitsDotsAndColons) {
  EXPECT_TRUE(IsAddressLiteral("[192.0.2.1]"));
  EXPECT_TRUE(IsAddressLiteral("[IPv6:2001:db8::1]"));
  EXPECT_FALSE(IsAddressLiteral("[]"));
  EXPECT_FALSE(IsAddressLiteral("[a-b]"));
  EXPECT_FALSE(IsAddressLiteral("192.0.2.1"));
}

TEST(AddressGrammarTest, DotAtomDomainHoldsLettersDigitsHyphensAndUtf8) {
  EXPECT_TRUE(IsDotAtomDomain("example.org"));
  EXPECT_TRUE(IsDotAtomDomain("localhost"));
  EXPECT_TRUE(
      IsDotAtomDomain("b\xc3\xbc"
                      "cher.de"));
  EXPECT_FALSE(IsDotAtomDomain("exa_mple.org"));
  EXPECT_FALSE(IsDotAtomDomain("example..org"));
  EXPECT_FALSE(IsDotAtomDomain("example.org."));
}

TEST(AddressGrammarTest, AddrSpecIsLocalPartAtDomainSplitAtTheLastAt) {
  EXPECT_TRUE(IsAddrSpec("alice@example.org"));
  EXPECT_TRUE(IsAddrSpec("\"a@b\"@example.org"));
  EXPECT_TRUE(IsAddrSpec("root@[192.0.2.1]"));
  EXPECT_FALSE(IsAddrSpec("alice"));
  EXPECT_FALSE(IsAddrSpec("@example.org"));
  EXPECT_FALSE(IsAddrSpec("alice@"));
  EXPECT_FALSE(IsAddrSpec("a b@example.org"));
  EXPECT_FALSE(IsAddrSpec("alice@exa mple.org"));
  EXPECT_FALSE(IsAddrSpec("alice@[1.2.3.4"));

  std::optional<AddrSpecParts> parts = SplitAddrSpec("\"a@b\"@example.org");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->local, "\"a@b\"");
  EXPECT_EQ(parts->domain, "example.org");
  EXPECT_FALSE(SplitAddrSpec("no-at-sign").has_value());
}

TEST(AddressGrammarTest, StrictDomainNeedsTwoLdhLabelsOfAtMost63Bytes) {
  EXPECT_EQ(StrictDomainError("example.org"), "");
  EXPECT_EQ(StrictDomainError("mail-1.example.org"), "");
  EXPECT_EQ(StrictDomainError("[192.0.2.1]"), "");
  EXPECT_EQ(StrictDomainError("b\xc3\xbc"
                              "cher.de"),
            "");
  EXPECT_EQ(StrictDomainError("localhost"), "domain has a single label");
  EXPECT_EQ(StrictDomainError("a..org"), "empty domain label");
  EXPECT_EQ(StrictDomainError("-a.org"), "domain label starts or ends with '-'");
  EXPECT_EQ(StrictDomainError("a-.org"), "domain label starts or ends with '-'");
  EXPECT_EQ(StrictDomainError("a_b.org"), "invalid character '_' in the domain");
  EXPECT_EQ(StrictDomainError(std::string(64, 'a') + ".org"), "domain label longer than 63 bytes");
  std::string long_domain;
  for (int i = 0; i < 64; ++i) long_domain += "abc.";
  long_domain += "org";
  EXPECT_EQ(StrictDomainError(long_domain), "domain longer than 255 bytes");
}

}  // namespace
}  // namespace mailpool
