#include "pop3/response.h"

#include "gtest/gtest.h"

namespace mailpool::pop3 {
namespace {

using Kind = Reply::Kind;

TEST(ParseReplyTest, StatusIndicators) {
  EXPECT_EQ(ParseReply("+OK").kind, Kind::kOk);
  EXPECT_EQ(ParseReply("+OK hello").text, "hello");
  EXPECT_EQ(ParseReply("+ok lower").kind, Kind::kOk);
  EXPECT_EQ(ParseReply("-ERR").kind, Kind::kErr);
  EXPECT_EQ(ParseReply("-ERR no such user").text, "no such user");
  EXPECT_EQ(ParseReply("+OKAY").kind, Kind::kInvalid);
  EXPECT_EQ(ParseReply("-ERROR").kind, Kind::kInvalid);
  EXPECT_EQ(ParseReply("").kind, Kind::kInvalid);
  EXPECT_EQ(ParseReply("* OK imap").kind, Kind::kInvalid);
}

TEST(ParseReplyTest, Continuations) {
  Reply r = ParseReply("+ VXNlcm5hbWU6");
  EXPECT_EQ(r.kind, Kind::kContinuation);
  EXPECT_EQ(r.text, "VXNlcm5hbWU6");
  EXPECT_EQ(ParseReply("+").kind, Kind::kContinuation);
  EXPECT_EQ(ParseReply("+").text, "");
  EXPECT_EQ(ParseReply("+ ").text, "");
  EXPECT_EQ(ParseReply("+abc").kind, Kind::kInvalid);
}

TEST(ParseReplyTest, ResponseCodes) {
  EXPECT_EQ(ParseReply("-ERR [AUTH] Authentication failed.").code, "AUTH");
  EXPECT_EQ(ParseReply("-ERR [sys/temp] later").code, "SYS/TEMP");
  EXPECT_EQ(ParseReply("-ERR [IN-USE] Mailbox locked").code, "IN-USE");
  EXPECT_EQ(ParseReply("-ERR no code").code, "");
  EXPECT_EQ(ParseReply("-ERR [unterminated").code, "");
  EXPECT_EQ(ParseReply("-ERR []").code, "");
  EXPECT_EQ(ParseReply("-ERR [has space] x").code, "");
  EXPECT_EQ(ParseReply(std::string("-ERR [") + std::string(100, 'A') + "]").code, "");
}

TEST(ParseReplyTest, TemporaryCodes) {
  EXPECT_TRUE(IsTemporaryCode("SYS/TEMP"));
  EXPECT_TRUE(IsTemporaryCode("SYS/TEMP/QUOTA"));
  EXPECT_TRUE(IsTemporaryCode("IN-USE"));
  EXPECT_TRUE(IsTemporaryCode("LOGIN-DELAY"));
  EXPECT_FALSE(IsTemporaryCode("SYS/PERM"));
  EXPECT_FALSE(IsTemporaryCode("SYS/TEMPORARY"));
  EXPECT_FALSE(IsTemporaryCode("AUTH"));
  EXPECT_FALSE(IsTemporaryCode(""));
}

TEST(ApopTimestampTest, Rfc1939Example) {
  EXPECT_EQ(ApopTimestamp("POP3 server ready <1896.697170952@dbc.mtview.ca.us>"),
            "<1896.697170952@dbc.mtview.ca.us>");
}

TEST(ApopTimestampTest, DovecotGreeting) {
  EXPECT_EQ(ApopTimestamp("Dovecot ready. <1a2b.3@host>"), "<1a2b.3@host>");
  EXPECT_EQ(ApopTimestamp("Dovecot ready."), std::nullopt);
}

TEST(ApopTimestampTest, EndsAtFirstClosingBracket) {
  EXPECT_EQ(ApopTimestamp("x <a@b> trailing > text"), "<a@b>");
}

TEST(ApopTimestampTest, RejectsMalformed) {
  EXPECT_EQ(ApopTimestamp("ready <no-at-sign>"), std::nullopt);
  EXPECT_EQ(ApopTimestamp("ready <a@b"), std::nullopt);
  EXPECT_EQ(ApopTimestamp("ready <a @b>"), std::nullopt);
  EXPECT_EQ(ApopTimestamp("ready <a\x01@b>"), std::nullopt);
  EXPECT_EQ(ApopTimestamp("ready >a@b<"), std::nullopt);
  EXPECT_EQ(ApopTimestamp("<>"), std::nullopt);
  EXPECT_EQ(ApopTimestamp("<"), std::nullopt);
}

TEST(ParseCapabilitiesTest, DovecotListing) {
  Capabilities caps =
      ParseCapabilities({"TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS",
                         "USER", "SASL PLAIN LOGIN XOAUTH2 OAUTHBEARER"});
  EXPECT_TRUE(caps.user);
  EXPECT_TRUE(caps.stls);
  EXPECT_EQ(caps.sasl, (std::vector<wire::Mechanism>{
                           wire::Mechanism::kPlain, wire::Mechanism::kLogin,
                           wire::Mechanism::kXoauth2, wire::Mechanism::kOauthbearer}));
  EXPECT_EQ(caps.lines.size(), 8u);
  EXPECT_EQ(caps.lines.back(), "SASL PLAIN LOGIN XOAUTH2 OAUTHBEARER");
}

TEST(ParseCapabilitiesTest, CaseInsensitiveAndUnknownMechanismsSkipped) {
  Capabilities caps = ParseCapabilities({"user", "sasl  cram-md5 GSSAPI plain PLAIN", ""});
  EXPECT_TRUE(caps.user);
  EXPECT_FALSE(caps.stls);
  EXPECT_EQ(caps.sasl,
            (std::vector<wire::Mechanism>{wire::Mechanism::kCramMd5, wire::Mechanism::kPlain}));
  EXPECT_EQ(caps.lines.size(), 2u);
}

TEST(ParseCapabilitiesTest, SanitizesLines) {
  Capabilities caps = ParseCapabilities({"IMPLEMENTATION evil\x1b[31m"});
  ASSERT_EQ(caps.lines.size(), 1u);
  EXPECT_EQ(caps.lines[0], "IMPLEMENTATION evil?[31m");
}

}  // namespace
}  // namespace mailpool::pop3
