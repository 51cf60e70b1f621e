#include "wire/sasl.h"

#include "absl/strings/str_cat.h"
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

TEST(ChooseMechanismTest, PasswordPrefersScramThenPlainOverTlsAndCramWithout) {
  const std::vector<Mechanism> all = {Mechanism::kLogin, Mechanism::kPlain, Mechanism::kCramMd5,
                                      Mechanism::kScramSha1, Mechanism::kScramSha256};
  EXPECT_EQ(*ChooseMechanism(WithPassword(), all), Mechanism::kScramSha256);
  EXPECT_EQ(*ChooseMechanism(WithPassword(), {Mechanism::kPlain, Mechanism::kScramSha1}),
            Mechanism::kScramSha1);
  // Over TLS (the default), CRAM-MD5 only when nothing better is offered.
  EXPECT_EQ(
      *ChooseMechanism(WithPassword(), {Mechanism::kLogin, Mechanism::kPlain, Mechanism::kCramMd5}),
      Mechanism::kPlain);
  EXPECT_EQ(*ChooseMechanism(WithPassword(), {Mechanism::kCommand, Mechanism::kCramMd5}),
            Mechanism::kCramMd5);
  LoginOptions plaintext = WithPassword();
  plaintext.security = Security::kPlain;
  EXPECT_EQ(
      *ChooseMechanism(plaintext, {Mechanism::kLogin, Mechanism::kPlain, Mechanism::kCramMd5}),
      Mechanism::kCramMd5);
  EXPECT_EQ(*ChooseMechanism(WithPassword(), {Mechanism::kCommand, Mechanism::kPlain}),
            Mechanism::kPlain);
  EXPECT_EQ(*ChooseMechanism(WithPassword(), {Mechanism::kCommand}), Mechanism::kCommand);
  // Asked for by name: must be offered.
  LoginOptions scram = WithPassword();
  scram.mechanism = Mechanism::kScramSha256;
  EXPECT_EQ(ChooseMechanism(scram, {Mechanism::kPlain}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Replays an RFC example exchange: the client's messages must be the RFC's, byte for byte.
void ReplayScram(Mechanism m, const char* nonce, const char* server_first, const char* client_final,
                 const char* server_final) {
  ScramClient scram(m, "user", Secret("pencil"), nonce);
  ASSERT_EQ(*Base64Decode(scram.InitialResponse()), absl::StrCat("n,,n=user,r=", nonce));
  absl::StatusOr<std::string> r = scram.Respond(Base64Encode(server_first));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*Base64Decode(*r), client_final);
  EXPECT_FALSE(scram.verified());
  r = scram.Respond(Base64Encode(server_final));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "");
  EXPECT_TRUE(scram.verified());
}

TEST(ScramTest, Sha1MatchesRfc5802Example) {
  ReplayScram(Mechanism::kScramSha1, "fyko+d2lbbFgONRv9qkxdawL",
              "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
              "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
              "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

TEST(ScramTest, Sha256MatchesRfc7677Example) {
  ReplayScram(Mechanism::kScramSha256, "rOprNGfwEbeRWgbNEkqO",
              "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
              "i=4096",
              "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
              "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

TEST(ScramTest, AServerThatDoesNotKnowThePasswordIsRefused) {
  ScramClient scram(Mechanism::kScramSha256, "user", Secret("pencil"), "rOprNGfwEbeRWgbNEkqO");
  ASSERT_TRUE(scram
                  .Respond(Base64Encode("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                        "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
                  .ok());
  absl::StatusOr<std::string> r =
      scram.Respond(Base64Encode("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_FALSE(scram.verified());
  EXPECT_EQ(std::string(r.status().message()).find("pencil"), std::string::npos);
}

TEST(ScramTest, HostileServerFirstMessagesAreProtocolViolations) {
  for (const char* first :
       {"r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096",  // not our nonce
        "r=abc,s=QSXCR+Q6sek8bf92,i=4096",          // our nonce, nothing added
        "r=abcd,s=!!,i=4096", "r=abcd,s=QSXCR+Q6sek8bf92,i=0",
        "r=abcd,s=QSXCR+Q6sek8bf92,i=4000000000", "m=ext,r=abcd,s=QQ==,i=1", "r=abcd", ""}) {
    ScramClient scram(Mechanism::kScramSha1, "user", Secret("pencil"), "abc");
    absl::StatusOr<std::string> r = scram.Respond(Base64Encode(first));
    EXPECT_FALSE(r.ok()) << first;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << first;
  }
  ScramClient scram(Mechanism::kScramSha1, "user", Secret("pencil"), "abc");
  EXPECT_FALSE(scram.Respond("not base64!").ok());
}

TEST(ScramTest, ServerErrorIsUnauthenticatedAndUserNamesAreEscaped) {
  ScramClient scram(Mechanism::kScramSha1, "a,b=c", Secret("pencil"), "abc");
  EXPECT_EQ(*Base64Decode(scram.InitialResponse()), "n,,n=a=2Cb=3Dc,r=abc");
  ASSERT_TRUE(scram.Respond(Base64Encode("r=abcdef,s=QSXCR+Q6sek8bf92,i=16")).ok());
  absl::StatusOr<std::string> r = scram.Respond(Base64Encode("e=invalid-proof"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(std::string(r.status().message()).find("invalid-proof"), std::string::npos);
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

TEST(ChooseMechanismTest, ScramNeedsAPasswordSaslprepCanPrepare) {
  LoginOptions o;
  o.user = "u";
  o.password = Secret("p\xc3\xa4ss");  // non-ASCII: SASLprep is done for ASCII only
  EXPECT_EQ(*ChooseMechanism(o, {Mechanism::kScramSha256, Mechanism::kPlain}), Mechanism::kPlain);
  o.mechanism = Mechanism::kScramSha256;
  absl::StatusOr<Mechanism> explicit_scram = ChooseMechanism(o, {Mechanism::kScramSha256});
  EXPECT_EQ(explicit_scram.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(explicit_scram.status().message().find("p\xc3\xa4ss"), absl::string_view::npos);
  o.password = Secret("tab\there");
  EXPECT_EQ(ChooseMechanism(o, {Mechanism::kScramSha256}).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.password = Secret("pencil");
  EXPECT_EQ(*ChooseMechanism(o, {Mechanism::kScramSha256}), Mechanism::kScramSha256);
  EXPECT_TRUE(CheckScramPassword(Secret("~ printable ASCII !")).ok());
}

}  // namespace
}  // namespace mailpool::wire
