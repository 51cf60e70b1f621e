#include "wire/sasl_exchange.h"

#include <string>

#include "absl/strings/match.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "wire/sasl.h"

namespace mailpool::wire {
namespace {

LoginOptions Pencil() {
  LoginOptions o;
  o.user = "user";
  o.password = Secret("pencil");
  return o;
}

std::string B64(absl::string_view s) { return Base64Encode(s); }

std::string Decoded(absl::string_view b64) {
  absl::StatusOr<std::string> d = Base64Decode(b64);
  return d.ok() ? *d : "<bad base64>";
}

std::string Reason(const absl::Status& s) { return GetPayloadText(s, kReasonPayload).value_or(""); }

// RFC 5802 section 5, the SCRAM-SHA-1 example exchange.
constexpr char kSha1Nonce[] = "fyko+d2lbbFgONRv9qkxdawL";
constexpr char kSha1ServerFirst[] =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
constexpr char kSha1ClientFinal[] =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
constexpr char kSha1ServerFinal[] = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

// RFC 7677 section 3, the SCRAM-SHA-256 example exchange.
constexpr char kSha256Nonce[] = "rOprNGfwEbeRWgbNEkqO";
constexpr char kSha256ServerFirst[] =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr char kSha256ClientFinal[] =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr char kSha256ServerFinal[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

TEST(SaslExchangeTest, ScramSha1MatchesRfc5802Example) {
  SaslExchange sasl(Mechanism::kScramSha1, Pencil(), kSha1Nonce);
  EXPECT_EQ(sasl.name(), "SCRAM-SHA-1");
  std::optional<std::string> first = sasl.Initial();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(Decoded(*first), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
  absl::StatusOr<std::string> final_message = sasl.Step(B64(kSha1ServerFirst));
  ASSERT_TRUE(final_message.ok()) << final_message.status();
  EXPECT_EQ(Decoded(*final_message), kSha1ClientFinal);
  EXPECT_FALSE(sasl.done());
  absl::StatusOr<std::string> last = sasl.Step(B64(kSha1ServerFinal));
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(*last, "");
  EXPECT_TRUE(sasl.done());
  EXPECT_TRUE(sasl.Finish().ok());
}

TEST(SaslExchangeTest, ScramSha256MatchesRfc7677Example) {
  SaslExchange sasl(Mechanism::kScramSha256, Pencil(), kSha256Nonce);
  std::optional<std::string> first = sasl.Initial();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(Decoded(*first), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  absl::StatusOr<std::string> final_message = sasl.Step(B64(kSha256ServerFirst));
  ASSERT_TRUE(final_message.ok()) << final_message.status();
  EXPECT_EQ(Decoded(*final_message), kSha256ClientFinal);
  ASSERT_TRUE(sasl.Step(B64(kSha256ServerFinal)).ok());
  EXPECT_TRUE(sasl.Finish().ok());
}

TEST(SaslExchangeTest, ScramServerFinalWithTheSuccessIsVerifiedByFinish) {
  SaslExchange sasl(Mechanism::kScramSha256, Pencil(), kSha256Nonce);
  ASSERT_TRUE(sasl.Initial().has_value());
  ASSERT_TRUE(sasl.Step(B64(kSha256ServerFirst)).ok());
  EXPECT_TRUE(sasl.Finish(B64(kSha256ServerFinal)).ok());
}

TEST(SaslExchangeTest, ScramWrongServerSignatureIsUnauthenticatedWithoutSecrets) {
  SaslExchange sasl(Mechanism::kScramSha256, Pencil(), kSha256Nonce);
  ASSERT_TRUE(sasl.Initial().has_value());
  ASSERT_TRUE(sasl.Step(B64(kSha256ServerFirst)).ok());
  // RFC 7677's signature with one byte changed.
  absl::StatusOr<std::string> r = sasl.Step(B64("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl96G4="));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(r.status()), "SERVER_SIGNATURE_MISMATCH");
  EXPECT_FALSE(absl::StrContains(r.status().ToString(), "pencil"));
  EXPECT_FALSE(absl::StrContains(r.status().ToString(), "6rriTRBi"));
  // A short signature too.
  SaslExchange short_sig(Mechanism::kScramSha256, Pencil(), kSha256Nonce);
  ASSERT_TRUE(short_sig.Initial().has_value());
  ASSERT_TRUE(short_sig.Step(B64(kSha256ServerFirst)).ok());
  EXPECT_EQ(short_sig.Step(B64("v=AAAA")).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(SaslExchangeTest, ScramSuccessWithoutServerSignatureIsRefused) {
  SaslExchange sasl(Mechanism::kScramSha1, Pencil(), kSha1Nonce);
  ASSERT_TRUE(sasl.Initial().has_value());
  ASSERT_TRUE(sasl.Step(B64(kSha1ServerFirst)).ok());
  absl::Status finished = sasl.Finish();
  EXPECT_EQ(finished.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(finished), "SERVER_SIGNATURE_MISSING");
  // And before the server-first message.
  SaslExchange early(Mechanism::kScramSha1, Pencil(), kSha1Nonce);
  ASSERT_TRUE(early.Initial().has_value());
  EXPECT_FALSE(early.Finish(B64(kSha1ServerFinal)).ok());
}

TEST(SaslExchangeTest, ScramServerErrorIsAuthFailed) {
  SaslExchange sasl(Mechanism::kScramSha1, Pencil(), kSha1Nonce);
  ASSERT_TRUE(sasl.Initial().has_value());
  ASSERT_TRUE(sasl.Step(B64(kSha1ServerFirst)).ok());
  absl::StatusOr<std::string> r = sasl.Step(B64("e=invalid-proof"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(r.status()), "AUTH_FAILED");
  EXPECT_TRUE(absl::StrContains(r.status().message(), "invalid-proof")) << r.status();
}

TEST(SaslExchangeTest, ScramRejectsHostileServerFirstMessages) {
  const char* hostile[] = {
      "",                                                             // empty
      "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",         // nonce not extended
      "r=other3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",          // nonce replaced
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=!!!,i=4096",                     // salt not base64
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=,i=4096",                        // empty salt
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=0",           // no iterations
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=-1",          // negative
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=999999999",   // CPU bomb
      "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=12a",         // not a number
      "m=ext,r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4096",  // mandatory ext
      "s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawLx,i=4096",        // order
      "r=fyko+d2lbbFgONRv9qkxdawLx",                                  // short
  };
  for (const char* server_first : hostile) {
    SaslExchange sasl(Mechanism::kScramSha1, Pencil(), kSha1Nonce);
    ASSERT_TRUE(sasl.Initial().has_value());
    absl::StatusOr<std::string> r = sasl.Step(B64(server_first));
    EXPECT_EQ(Reason(r.status()), "PROTOCOL_VIOLATION") << server_first;
  }
  SaslExchange not_base64(Mechanism::kScramSha1, Pencil(), kSha1Nonce);
  ASSERT_TRUE(not_base64.Initial().has_value());
  EXPECT_EQ(Reason(not_base64.Step("not base64!").status()), "PROTOCOL_VIOLATION");
}

TEST(SaslExchangeTest, ScramEscapesTheUserNameAndUsesARandomNonce) {
  LoginOptions o = Pencil();
  o.user = "a=b,c";
  SaslExchange one(Mechanism::kScramSha256, o);
  SaslExchange two(Mechanism::kScramSha256, o);
  std::string first = Decoded(*one.Initial());
  std::string second = Decoded(*two.Initial());
  EXPECT_TRUE(absl::StartsWith(first, "n,,n=a=3Db=2Cc,r=")) << first;
  EXPECT_GE(first.size(), std::string("n,,n=a=3Db=2Cc,r=").size() + 20);
  EXPECT_NE(first, second);
}

TEST(SaslExchangeTest, ScramWithoutInitialResponseAnswersTheEmptyChallenge) {
  SaslExchange sasl(Mechanism::kScramSha1, Pencil(), kSha1Nonce);
  absl::StatusOr<std::string> first = sasl.Step("");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Decoded(*first), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
  absl::StatusOr<std::string> final_message = sasl.Step(B64(kSha1ServerFirst));
  ASSERT_TRUE(final_message.ok());
  EXPECT_EQ(Decoded(*final_message), kSha1ClientFinal);
}

TEST(SaslExchangeTest, PlainIsDoneAfterItsInitialResponse) {
  SaslExchange sasl(Mechanism::kPlain, Pencil());
  EXPECT_EQ(sasl.Initial(), "AHVzZXIAcGVuY2ls");
  EXPECT_TRUE(sasl.done());
  EXPECT_FALSE(sasl.Step("").ok());
  EXPECT_TRUE(sasl.Finish().ok());
}

TEST(SaslExchangeTest, InitialResponseTooLongWaitsForTheChallenge) {
  SaslExchange sasl(Mechanism::kPlain, Pencil());
  EXPECT_EQ(sasl.Initial(4), std::nullopt);
  EXPECT_FALSE(sasl.done());
  EXPECT_EQ(*sasl.Step(""), "AHVzZXIAcGVuY2ls");
  EXPECT_TRUE(sasl.done());
}

TEST(SaslExchangeTest, LoginAnswersUserThenPassword) {
  SaslExchange sasl(Mechanism::kLogin, Pencil());
  EXPECT_EQ(sasl.Initial(), std::nullopt);
  EXPECT_EQ(*sasl.Step("VXNlcm5hbWU6"), B64("user"));
  EXPECT_EQ(*sasl.Step("UGFzc3dvcmQ6"), B64("pencil"));
  EXPECT_TRUE(sasl.done());
  EXPECT_EQ(sasl.Step("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SaslExchangeTest, CramMd5AnswersRfc2195Challenge) {
  LoginOptions o;
  o.user = "tim";
  o.password = Secret("tanstaaftanstaaf");
  SaslExchange sasl(Mechanism::kCramMd5, o);
  EXPECT_EQ(sasl.Initial(), std::nullopt);
  EXPECT_EQ(*sasl.Step("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
  EXPECT_TRUE(sasl.done());
  SaslExchange bad(Mechanism::kCramMd5, o);
  EXPECT_EQ(bad.Step("not base64!").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SaslExchangeTest, OauthErrorChallengeGetsTheDummyResponseOnce) {
  LoginOptions o;
  o.user = "alice";
  o.oauth2_token = Secret("tok-1");
  const std::string error = B64(R"({"status":"401","schemes":"bearer"})");
  SaslExchange xoauth2(Mechanism::kXoauth2, o);
  ASSERT_TRUE(xoauth2.Initial().has_value());
  EXPECT_FALSE(xoauth2.done());
  EXPECT_EQ(*xoauth2.Step(error), "");
  EXPECT_EQ(xoauth2.oauth_error(), R"({"status":"401","schemes":"bearer"})");
  EXPECT_TRUE(xoauth2.done());
  EXPECT_FALSE(xoauth2.Step(error).ok());

  SaslExchange bearer(Mechanism::kOauthbearer, o);
  ASSERT_TRUE(bearer.Initial().has_value());
  EXPECT_EQ(*bearer.Step(error), "AQ==");  // a single %x01 (RFC 7628 section 3.2.3)
  EXPECT_TRUE(bearer.done());
}

}  // namespace
}  // namespace mailpool::wire
