#include "smtp/reply.h"

#include <string>
#include <vector>

#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mailpool::smtp {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Feeds lines; returns the reply completed by the last one, or the error.
absl::StatusOr<Reply> Parse(const std::vector<std::string>& lines) {
  ReplyParser parser;
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::StatusOr<std::optional<Reply>> r = parser.AddLine(lines[i]);
    if (!r.ok()) return r.status();
    if (r->has_value() != (i + 1 == lines.size())) {
      return absl::InternalError("reply completed at the wrong line");
    }
    if (r->has_value()) return **r;
  }
  return absl::InternalError("no lines");
}

void ExpectViolation(const std::vector<std::string>& lines) {
  absl::StatusOr<Reply> r = Parse(lines);
  ASSERT_FALSE(r.ok()) << lines.back();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GetPayloadText(r.status(), kReasonPayload), "PROTOCOL_VIOLATION");
}

// Reply-code     = %x32-35 %x30-35 %x30-39
TEST(ReplyParserTest, ReplyCodeDigitRanges) {
  for (const char* ok : {"200 x", "259 x", "354 x", "421 x", "550 x", "559 x"}) {
    absl::StatusOr<Reply> r = Parse({ok});
    ASSERT_TRUE(r.ok()) << ok;
    EXPECT_EQ(r->code, std::stoi(std::string(ok, 3)));
  }
  // First digit 2-5, second 0-5, third a digit.
  for (const char* bad : {"100 x", "199 x", "600 x", "260 x", "290 x", "25x x", "x50 x"}) {
    ExpectViolation({bad});
  }
}

// Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
//                  Reply-code [ SP textstring ] CRLF
TEST(ReplyParserTest, ContinuationLinesThenLastLine) {
  absl::StatusOr<Reply> r = Parse({"250-mx.example.test", "250-", "250-SIZE 100", "250 DSN"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->code, 250);
  EXPECT_THAT(r->lines, ElementsAre("mx.example.test", "", "SIZE 100", "DSN"));
}

TEST(ReplyParserTest, LastLineMayBeCodeAlone) {
  absl::StatusOr<Reply> r = Parse({"220-mx.example.test", "220"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->lines, ElementsAre("mx.example.test", ""));
  // "334 " (an empty SASL challenge, RFC 4954) is accepted too.
  r = Parse({"334 "});
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->lines, ElementsAre(""));
}

TEST(ReplyParserTest, CodeMustBeFollowedBySpaceOrHyphen) {
  for (const char* bad : {"2500 x", "250:x", "250\tx", "25", "2", ""}) ExpectViolation({bad});
}

// textstring     = 1*(%d09 / %d32-126) ; HT, SP, Printable US-ASCII
// (and, beyond it, any octet: SMTPUTF8 servers send UTF-8)
TEST(ReplyParserTest, TextKeepsTabsAndUtf8) {
  absl::StatusOr<Reply> r = Parse({"250 ok\tthere caf\xc3\xa9"});
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->lines, ElementsAre("ok\tthere caf\xc3\xa9"));
}

// RFC 5321 section 4.2.1: "the reply code on each of the lines MUST be the same".
TEST(ReplyParserTest, MixedCodesInOneReplyAreAViolation) {
  ExpectViolation({"250-a", "251 b"});
  ExpectViolation({"250-a", "250-b", "550 c"});
}

TEST(ReplyParserTest, CapsLinesAndBytes) {
  ReplyParser parser(/*max_lines=*/3, /*max_bytes=*/100);
  ASSERT_TRUE(parser.AddLine("250-a").ok());
  ASSERT_TRUE(parser.AddLine("250-b").ok());
  ASSERT_TRUE(parser.AddLine("250-c").ok());
  EXPECT_FALSE(parser.AddLine("250 d").ok());

  ReplyParser small(/*max_lines=*/1000, /*max_bytes=*/10);
  ASSERT_TRUE(small.AddLine("250-12345").ok());
  EXPECT_FALSE(small.AddLine("250 123456").ok());
}

TEST(ReplyParserTest, DefaultCapIsAThousandLines) {
  ReplyParser parser;
  for (int i = 0; i < 999; ++i) ASSERT_TRUE(parser.AddLine("250-x").ok()) << i;
  absl::StatusOr<std::optional<Reply>> last = parser.AddLine("250 x");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ((*last)->lines.size(), 1000u);

  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(parser.AddLine("250-x").ok()) << i;
  EXPECT_FALSE(parser.AddLine("250-x").ok());
}

TEST(ReplyParserTest, StartsAfreshAfterAnError) {
  ReplyParser parser;
  ASSERT_TRUE(parser.AddLine("250-a").ok());
  EXPECT_TRUE(parser.in_reply());
  EXPECT_FALSE(parser.AddLine("551 b").ok());
  EXPECT_FALSE(parser.in_reply());
  absl::StatusOr<std::optional<Reply>> r = parser.AddLine("221 bye");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->code, 221);
}

TEST(ReplyTest, RawRebuildsTheLines) {
  Reply multi{250, {"mx", "SIZE 1", "DSN"}};
  EXPECT_EQ(multi.Raw(), "250-mx\n250-SIZE 1\n250 DSN");
  Reply bare{220, {""}};
  EXPECT_EQ(bare.Raw(), "220");
}

TEST(ReplyTest, Classes) {
  EXPECT_TRUE((Reply{250, {""}}).IsPositive());
  EXPECT_TRUE((Reply{334, {""}}).IsIntermediate());
  EXPECT_TRUE((Reply{454, {""}}).IsTransientFailure());
  EXPECT_TRUE((Reply{535, {""}}).IsPermanentFailure());
  EXPECT_FALSE((Reply{535, {""}}).IsPositive());
}

// ehlo-ok-rsp    = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
//                / ( "250-" Domain [ SP ehlo-greet ] CRLF
//                *( "250-" ehlo-line CRLF )
//                "250" SP ehlo-line CRLF )
TEST(ExtensionsTest, FirstLineIsTheDomainNotAnExtension) {
  Extensions single = Extensions::FromEhloReply(Reply{250, {"mx.example.test Hello"}});
  EXPECT_TRUE(single.empty());

  Extensions ext =
      Extensions::FromEhloReply(Reply{250, {"mx.example.test greets you", "PIPELINING", "DSN"}});
  EXPECT_THAT(ext.ToStrings(), ElementsAre("PIPELINING", "DSN"));
  EXPECT_FALSE(ext.Has("MX.EXAMPLE.TEST"));
}

TEST(ExtensionsTest, PostfixReply) {
  Reply postfix{250,
                {"mx.example.test", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
                 "AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
                 "SMTPUTF8", "CHUNKING"}};
  Extensions ext = Extensions::FromEhloReply(postfix);
  EXPECT_EQ(ext.all().size(), 11u);
  EXPECT_TRUE(ext.Has("STARTTLS"));
  EXPECT_TRUE(ext.Has("8bitmime"));
  EXPECT_FALSE(ext.Has("BINARYMIME"));
  EXPECT_EQ(ext.MaxMessageSize(), 10240000u);
  EXPECT_THAT(ext.AuthMechanisms(), ElementsAre("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"));
  EXPECT_EQ(ext.ToStrings()[5], "AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER");
}

// ehlo-line      = ehlo-keyword *( SP ehlo-param )
// ehlo-keyword   = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
TEST(ExtensionsTest, KeywordGrammar) {
  Extensions ext;
  EXPECT_TRUE(ext.AddLine("X-EXPS GSSAPI"));
  EXPECT_TRUE(ext.AddLine("8bitmime"));
  EXPECT_FALSE(ext.AddLine("-LEADING"));
  EXPECT_FALSE(ext.AddLine("UNDER_SCORE"));
  EXPECT_FALSE(ext.AddLine("caf\xc3\xa9"));
  EXPECT_FALSE(ext.AddLine(""));
  EXPECT_FALSE(ext.AddLine("   "));
  // Keywords are case-insensitive (RFC 5321 section 2.4) and stored upper case.
  EXPECT_THAT(ext.ToStrings(), ElementsAre("X-EXPS GSSAPI", "8BITMIME"));
  ASSERT_NE(ext.Find("x-exps"), nullptr);
  EXPECT_THAT(ext.Find("x-exps")->params, ElementsAre("GSSAPI"));
}

// ehlo-param     = 1*(%d33-126)
TEST(ExtensionsTest, ParamGrammar) {
  Extensions ext;
  EXPECT_TRUE(ext.AddLine("X-A a=b,c!~"));
  EXPECT_FALSE(ext.AddLine("X-B bad\tparam"));
  EXPECT_FALSE(ext.AddLine("X-C caf\xc3\xa9"));
  EXPECT_FALSE(ext.AddLine("X-D nul\x7f"));
  // Runs of spaces between parameters are tolerated.
  EXPECT_TRUE(ext.AddLine("X-E  one   two "));
  EXPECT_THAT(ext.ToStrings(), ElementsAre("X-A a=b,c!~", "X-E one two"));
}

TEST(ExtensionsTest, RepeatedKeywordKeepsFirst) {
  Extensions ext;
  EXPECT_TRUE(ext.AddLine("SIZE 100"));
  EXPECT_TRUE(ext.AddLine("SIZE 200"));
  EXPECT_THAT(ext.ToStrings(), ElementsAre("SIZE 100"));
}

// RFC 4954: "The AUTH EHLO keyword contains as a parameter a space-separated list of the
// names of available SASL mechanisms"; the older "AUTH=" form is merged into it.
TEST(ExtensionsTest, AuthAndOldAuthEqualsFormMerge) {
  Extensions ext;
  EXPECT_TRUE(ext.AddLine("AUTH PLAIN login"));
  EXPECT_TRUE(ext.AddLine("AUTH=LOGIN PLAIN CRAM-MD5"));
  EXPECT_THAT(ext.AuthMechanisms(), ElementsAre("PLAIN", "LOGIN", "CRAM-MD5"));
  EXPECT_THAT(ext.ToStrings(), ElementsAre("AUTH PLAIN login CRAM-MD5"));

  Extensions only_old;
  EXPECT_TRUE(only_old.AddLine("auth=LOGIN"));
  EXPECT_THAT(only_old.AuthMechanisms(), ElementsAre("LOGIN"));
  EXPECT_THAT(Extensions().AuthMechanisms(), IsEmpty());
}

// RFC 1870: "size-param ::= [1*DIGIT]"; 0 means no fixed maximum.
TEST(ExtensionsTest, MaxMessageSize) {
  auto size_of = [](const char* line) {
    Extensions ext;
    ext.AddLine(line);
    return ext.MaxMessageSize();
  };
  EXPECT_EQ(size_of("SIZE 35882577"), 35882577u);
  EXPECT_EQ(size_of("SIZE"), 0u);
  EXPECT_EQ(size_of("SIZE 0"), 0u);
  EXPECT_EQ(size_of("SIZE +5"), 0u);
  EXPECT_EQ(size_of("SIZE 99999999999999999999999"), 0u);
  EXPECT_EQ(size_of("PIPELINING"), 0u);
}

TEST(ExtensionsTest, CapabilitiesRoundTrip) {
  std::vector<std::string> caps = {"PIPELINING", "SIZE 10240000", "AUTH PLAIN LOGIN", "SMTPUTF8"};
  Extensions ext = Extensions::FromCapabilities(caps);
  EXPECT_EQ(ext.ToStrings(), caps);
  EXPECT_EQ(ext.MaxMessageSize(), 10240000u);
  EXPECT_TRUE(ext.Has("SMTPUTF8"));
}

// Domain         = sub-domain *("." sub-domain)
// sub-domain     = Let-dig [Ldh-str]
// Let-dig        = ALPHA / DIGIT
// Ldh-str        = *( ALPHA / DIGIT / "-" ) Let-dig
TEST(EhloNameTest, Domain) {
  for (const char* ok : {"localhost", "a", "9", "mail.example.test", "x-1.example", "a--b.c"}) {
    EXPECT_TRUE(IsValidEhloName(ok)) << ok;
  }
  for (const char* bad : {"", ".", "example.", ".example", "a..b", "-a", "a-", "a-.b", "a_b", "a b",
                          "caf\xc3\xa9", "a\r\nb"}) {
    EXPECT_FALSE(IsValidEhloName(bad)) << bad;
  }
}

// RFC 5321 section 4.5.3.1.2: at most 255 octets.
TEST(EhloNameTest, Length) {
  std::string label(63, 'a');
  std::string name = label + "." + label + "." + label + "." + std::string(63, 'b');  // 255
  EXPECT_TRUE(IsValidEhloName(name));
  EXPECT_FALSE(IsValidEhloName(name + "c"));
}

// address-literal  = "[" ( IPv4-address-literal / IPv6-address-literal /
//                  General-address-literal ) "]"
// IPv4-address-literal  = Snum 3("."  Snum)
// Snum           = 1*3DIGIT  ; 0 through 255
TEST(EhloNameTest, Ipv4AddressLiteral) {
  EXPECT_TRUE(IsValidEhloName("[192.0.2.1]"));
  EXPECT_TRUE(IsValidEhloName("[0.0.0.0]"));
  EXPECT_TRUE(IsValidEhloName("[255.255.255.255]"));
  for (const char* bad : {"[256.0.0.1]", "[1.2.3]", "[1.2.3.4.5]", "[1..3.4]", "[1234.1.1.1]", "[]",
                          "[", "192.0.2.1]", "[192.0.2.1"}) {
    EXPECT_FALSE(IsValidEhloName(bad)) << bad;
  }
}

// IPv6-address-literal  = "IPv6:" IPv6-addr
// General-address-literal  = Standardized-tag ":" 1*dcontent
// Standardized-tag  = Ldh-str
// dcontent       = %d33-90 / %d94-126 ; Printable US-ASCII excl. "[", "\", "]"
TEST(EhloNameTest, GeneralAndIpv6AddressLiteral) {
  EXPECT_TRUE(IsValidEhloName("[IPv6:2001:db8::1]"));
  EXPECT_TRUE(IsValidEhloName("[X-tag:anything!~]"));
  EXPECT_TRUE(IsValidEhloName("[-tag:x]"));  // Ldh-str may start with "-", not end with it
  for (const char* bad : {"[IPv6:]", "[:abc]", "[tag-:x]", "[tag:a b]", "[tag:a[b]", "[tag:a\\b]",
                          "[tag:a]b]", "[tag:\x7f]"}) {
    EXPECT_FALSE(IsValidEhloName(bad)) << bad;
  }
}

}  // namespace
}  // namespace mailpool::smtp
