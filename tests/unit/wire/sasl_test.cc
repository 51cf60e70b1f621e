#include "wire/sasl.h"

#include "gtest/gtest.h"

namespace mailpool::wire {
namespace {

TEST(SaslTest, PlainInitialResponseMatchesRfc4616Layout) {
  // base64("\0tim\0tanstaaftanstaaf") from RFC 4616 section 4.
  EXPECT_EQ(PlainInitialResponse("tim", Secret("tanstaaftanstaaf")),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
}

TEST(SaslTest, CramMd5MatchesRfc2195Example) {
  // RFC 2195 section 2: the challenge and expected response.
  auto r = CramMd5Response("tim", Secret("tanstaaftanstaaf"),
                           "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
}

TEST(SaslTest, CramMd5RejectsMalformedChallenge) {
  EXPECT_FALSE(CramMd5Response("tim", Secret("x"), "not base64!").ok());
}

TEST(SaslTest, ApopMatchesRfc1939Example) {
  EXPECT_EQ(ApopDigest("<1896.697170952@dbc.mtview.ca.us>", Secret("tanstaaf")),
            "c4c9334bac560ecc979e58001b3e22fb");
}

TEST(SaslTest, Xoauth2Layout) {
  auto decoded = Base64Decode(Xoauth2InitialResponse("a@b", Secret("tok")));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded,
            "user=a@b\x01"
            "auth=Bearer tok\x01\x01");
}

TEST(SaslTest, OauthbearerLayoutEscapesSaslName) {
  auto decoded = Base64Decode(OauthbearerInitialResponse("a,b=c", "h", 993, Secret("tok")));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded,
            "n,a=a=2Cb=3Dc,\x01host=h\x01port=993\x01"
            "auth=Bearer tok\x01\x01");
}

LoginOptions WithPassword() {
  LoginOptions o;
  o.user = "u";
  o.password = Secret("p");
  return o;
}

TEST(ChooseMechanismTest, PasswordPrefersCramThenPlain) {
  EXPECT_EQ(
      *ChooseMechanism(WithPassword(), {Mechanism::kLogin, Mechanism::kPlain, Mechanism::kCramMd5}),
      Mechanism::kCramMd5);
  EXPECT_EQ(*ChooseMechanism(WithPassword(), {Mechanism::kCommand, Mechanism::kPlain}),
            Mechanism::kPlain);
  EXPECT_EQ(*ChooseMechanism(WithPassword(), {Mechanism::kCommand}), Mechanism::kCommand);
}

TEST(ChooseMechanismTest, TokenPrefersOauthbearer) {
  LoginOptions o;
  o.oauth2_token = Secret("t");
  EXPECT_EQ(*ChooseMechanism(o, {Mechanism::kXoauth2, Mechanism::kOauthbearer}),
            Mechanism::kOauthbearer);
  EXPECT_EQ(*ChooseMechanism(o, {Mechanism::kXoauth2, Mechanism::kPlain}), Mechanism::kXoauth2);
  EXPECT_EQ(ChooseMechanism(o, {Mechanism::kPlain}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ChooseMechanismTest, ExplicitMechanismMustBeOfferedAndFit) {
  LoginOptions o = WithPassword();
  o.mechanism = Mechanism::kLogin;
  EXPECT_EQ(ChooseMechanism(o, {Mechanism::kPlain}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  o.mechanism = Mechanism::kXoauth2;
  EXPECT_EQ(ChooseMechanism(o, {Mechanism::kXoauth2}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ChooseMechanismTest, NoSecretMeansNoAuth) {
  LoginOptions o;
  EXPECT_EQ(*ChooseMechanism(o, {Mechanism::kPlain}), Mechanism::kNone);
}

TEST(SaslTest, CommandSafety) {
  EXPECT_TRUE(IsCommandSafe("alice@example.test"));
  EXPECT_FALSE(IsCommandSafe("a\r\nb"));
  EXPECT_FALSE(IsCommandSafe(absl::string_view("a\0b", 3)));
  EXPECT_FALSE(IsCommandSafe("a\nb"));
}

}  // namespace
}  // namespace mailpool::wire
