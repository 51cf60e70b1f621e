#include "smtp/client.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/transcript.h"
#include "tests/unit/wire/scram_vectors.h"
#include "wire/sasl.h"

namespace mailpool::smtp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using wire::ClientProtocol;
using wire::LoginOptions;
using wire::Mechanism;
using wire::Security;
using Phase = ClientProtocol::Phase;

constexpr absl::string_view kUser = "alice@example.test";
constexpr absl::string_view kPassword = "s3cret";
constexpr absl::string_view kToken = "ya29.tok";

// Expected client lines, computed independently of wire/sasl.cc:
// base64("\0alice@example.test\0s3cret"), base64(user), base64(password),
// base64("user=alice@example.test^Aauth=Bearer ya29.tok^A^A"),
// base64("n,a=alice@example.test,^Ahost=smtp.example.test^Aport=465^A"
//        "auth=Bearer ya29.tok^A^A").
constexpr absl::string_view kPlainIr = "AGFsaWNlQGV4YW1wbGUudGVzdABzM2NyZXQ=";
constexpr absl::string_view kUserB64 = "YWxpY2VAZXhhbXBsZS50ZXN0";
constexpr absl::string_view kPasswordB64 = "czNjcmV0";
constexpr absl::string_view kXoauth2Ir =
    "dXNlcj1hbGljZUBleGFtcGxlLnRlc3QBYXV0aD1CZWFyZXIgeWEyOS50b2sBAQ==";
constexpr absl::string_view kOauthbearerIr =
    "bixhPWFsaWNlQGV4YW1wbGUudGVzdCwBaG9zdD1zbXRwLmV4YW1wbGUudGVzdAFwb3J0PTQ2NQFhdXRoPUJlYXJl"
    "ciB5YTI5LnRvawEB";

// Postfix 3.7's reply on a TLS connection (STARTTLS is no longer listed there).
constexpr absl::string_view kPostfixEhloTls = R"(
  S: 250-mx.example.test
  S: 250-PIPELINING
  S: 250-SIZE 10240000
  S: 250-VRFY
  S: 250-ETRN
  S: 250-AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER
  S: 250-ENHANCEDSTATUSCODES
  S: 250-8BITMIME
  S: 250-DSN
  S: 250-SMTPUTF8
  S: 250 CHUNKING
)";

const std::vector<std::string>& PostfixCapabilities() {
  static const auto* caps = new std::vector<std::string>{"PIPELINING",
                                                         "SIZE 10240000",
                                                         "VRFY",
                                                         "ETRN",
                                                         "AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER",
                                                         "ENHANCEDSTATUSCODES",
                                                         "8BITMIME",
                                                         "DSN",
                                                         "SMTPUTF8",
                                                         "CHUNKING"};
  return *caps;
}

// The greeting and the first EHLO, as most scripts start.
constexpr absl::string_view kHello = R"(
  S: 220 mx.example.test ESMTP
  C: EHLO client.example.test
)";

// Replaces {HELLO}, {POSTFIX_EHLO}, {PLAIN_IR}, ... in a transcript.
std::string Expand(absl::string_view script) {
  return absl::StrReplaceAll(script, {{"{HELLO}", kHello},
                                      {"{POSTFIX_EHLO}", kPostfixEhloTls},
                                      {"{PLAIN_IR}", kPlainIr},
                                      {"{USER_B64}", kUserB64},
                                      {"{PASSWORD_B64}", kPasswordB64},
                                      {"{XOAUTH2_IR}", kXoauth2Ir},
                                      {"{OAUTHBEARER_IR}", kOauthbearerIr}});
}

// Runs the expanded script whole and byte by byte; returns the byte-by-byte client.
std::unique_ptr<ClientProtocol> RunScript(const LoginOptions& options, absl::string_view script) {
  return testing::ExpectTranscript([options] { return NewClient(options); }, Expand(script));
}

LoginOptions Base(Security security = Security::kImplicitTls) {
  LoginOptions options;
  options.security = security;
  options.user = std::string(kUser);
  options.ehlo_name = "client.example.test";
  options.host = "smtp.example.test";
  options.port = 465;
  return options;
}

LoginOptions WithPassword(Security security = Security::kImplicitTls,
                          Mechanism mechanism = Mechanism::kAuto) {
  LoginOptions options = Base(security);
  options.password = Secret(kPassword);
  options.mechanism = mechanism;
  return options;
}

LoginOptions WithToken(Security security = Security::kImplicitTls,
                       Mechanism mechanism = Mechanism::kAuto) {
  LoginOptions options = Base(security);
  options.oauth2_token = Secret(kToken);
  options.mechanism = mechanism;
  return options;
}

std::string Reason(const absl::Status& status) {
  return GetPayloadText(status, kReasonPayload).value_or("");
}

// No credential in anything a caller, a log or an RPC answer could see.
void ExpectNoSecrets(const ClientProtocol& client) {
  std::string seen = absl::StrCat(client.error().ToString(), "\n", client.last_reply(), "\n",
                                  client.info().greeting);
  for (const std::string& c : client.info().capabilities) absl::StrAppend(&seen, "\n", c);
  for (absl::string_view secret : {kPassword, kPasswordB64, kToken, kPlainIr, kXoauth2Ir}) {
    EXPECT_THAT(seen, Not(HasSubstr(secret)));
  }
}

// --- Success paths -----------------------------------------------------------------------

TEST(SmtpClientTest, PlainOverStartTlsRedoesEhloAndForgetsPlaintextCapabilities) {
  auto client = RunScript(WithPassword(Security::kStartTls), R"(
    S: 220 mx.example.test ESMTP Postfix
    C: EHLO client.example.test
    S: 250-mx.example.test
    S: 250-X-PLAINTEXT-ONLY
    S: 250-STARTTLS
    S: 250 AUTH PLAIN
    C: STARTTLS
    PHASE LOGGING_IN
    S: 220 2.0.0 Ready to start TLS
    PHASE NEED_TLS
    TLS
    PHASE LOGGING_IN
    C: EHLO client.example.test
    {POSTFIX_EHLO}
    C: AUTH PLAIN {PLAIN_IR}
    PHASE LOGGING_IN
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )");
  EXPECT_TRUE(client->error().ok());
  EXPECT_EQ(client->info().greeting, "220 mx.example.test ESMTP Postfix");
  EXPECT_EQ(client->info().mechanism, Mechanism::kPlain);
  EXPECT_EQ(client->info().capabilities, PostfixCapabilities());
  EXPECT_EQ(client->last_reply(), "235 2.7.0 Authentication successful");
  ExpectNoSecrets(*client);
}

TEST(SmtpClientTest, ImplicitTlsSkipsStartTls) {
  auto client = RunScript(WithPassword(Security::kImplicitTls), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH PLAIN {PLAIN_IR}
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kPlain);
  EXPECT_EQ(client->info().capabilities, PostfixCapabilities());
}

TEST(SmtpClientTest, ImplicitTlsIgnoresOfferedStartTls) {
  RunScript(Base(Security::kImplicitTls), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 STARTTLS
    PHASE READY
  )");
}

TEST(SmtpClientTest, LoginAnswersUserThenPasswordPrompts) {
  auto client = RunScript(WithPassword(Security::kImplicitTls, Mechanism::kLogin), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH LOGIN
    S: 334 VXNlcm5hbWU6
    C: {USER_B64}
    S: 334 UGFzc3dvcmQ6
    C: {PASSWORD_B64}
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kLogin);
  ExpectNoSecrets(*client);
}

TEST(SmtpClientTest, CramMd5AnswersRfc2195Challenge) {
  LoginOptions options = WithPassword(Security::kImplicitTls, Mechanism::kCramMd5);
  options.user = "tim";
  options.password = Secret("tanstaaftanstaaf");
  // RFC 2195 section 2's example challenge and response.
  auto client = RunScript(options, R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH PLAIN CRAM-MD5
    C: AUTH CRAM-MD5
    S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
    C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kCramMd5);
}

TEST(SmtpClientTest, Xoauth2SendsInitialResponse) {
  auto client = RunScript(WithToken(Security::kImplicitTls, Mechanism::kXoauth2), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH XOAUTH2 {XOAUTH2_IR}
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kXoauth2);
  ExpectNoSecrets(*client);
}

TEST(SmtpClientTest, OauthbearerSendsInitialResponseWithHostAndPort) {
  auto client = RunScript(WithToken(Security::kImplicitTls, Mechanism::kOauthbearer), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH OAUTHBEARER {OAUTHBEARER_IR}
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kOauthbearer);
  ExpectNoSecrets(*client);
}

// --- Mechanism choice --------------------------------------------------------------------

TEST(SmtpClientTest, DefaultPasswordMechanismOverTlsPrefersPlainToCramMd5) {
  RunScript(WithPassword(), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH LOGIN PLAIN CRAM-MD5
    C: AUTH PLAIN {PLAIN_IR}
  )");
}

TEST(SmtpClientTest, DefaultPasswordMechanismPrefersScramSha256) {
  // The RFC 7677 example exchange carried by SMTP AUTH (RFC 4954).
  LoginOptions o = WithPassword();
  o.user = "user";
  o.password = Secret("pencil");
  wire::SetScramNonceForTesting("rOprNGfwEbeRWgbNEkqO");
  auto client = RunScript(o, R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH LOGIN PLAIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256
    C: AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=
    S: 334 cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=
    C: Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSWxqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6N0FuZFZRPQ==
    S: 334 dj02cnJpVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ==
    C:
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kScramSha256);
  wire::SetScramNonceForTesting("");
}

TEST(SmtpClientTest, DefaultPasswordMechanismOnPostfixIsPlain) {
  RunScript(WithPassword(), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH PLAIN {PLAIN_IR}
  )");
}

TEST(SmtpClientTest, DefaultTokenMechanismPrefersOauthbearer) {
  RunScript(WithToken(), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH OAUTHBEARER {OAUTHBEARER_IR}
  )");
}

TEST(SmtpClientTest, ReadsOldAuthEqualsForm) {
  auto client = RunScript(WithPassword(), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH=LOGIN
    C: AUTH LOGIN
  )");
  EXPECT_THAT(client->info().capabilities, ElementsAre("AUTH LOGIN"));
}

TEST(SmtpClientTest, ExplicitMechanismNotOfferedIsPassedThrough) {
  auto client = RunScript(WithPassword(Security::kImplicitTls, Mechanism::kLogin), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH PLAIN
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(client->error()), "MECHANISM_NOT_OFFERED");
}

TEST(SmtpClientTest, NoSecretSkipsAuthAfterStartTls) {
  auto client = RunScript(Base(Security::kStartTls), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 STARTTLS
    C: STARTTLS
    S: 220 2.0.0 Ready to start TLS
    TLS
    C: EHLO client.example.test
    {POSTFIX_EHLO}
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kNone);
  EXPECT_EQ(client->info().capabilities, PostfixCapabilities());
}

TEST(SmtpClientTest, NoSecretOverPlainNeedsNoTls) {
  RunScript(Base(Security::kPlain), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250-STARTTLS
    S: 250 AUTH PLAIN
    PHASE READY
  )");
}

TEST(SmtpClientTest, EhloRefusedFallsBackToHeloWithoutExtensions) {
  auto client = RunScript(Base(), R"(
    {HELLO}
    S: 502 5.5.2 Error: command not recognized
    C: HELO client.example.test
    S: 250 mx.example.test
    PHASE READY
  )");
  EXPECT_TRUE(client->info().capabilities.empty());
}

TEST(SmtpClientTest, HeloOnlyServerCannotAuthenticate) {
  auto client = RunScript(WithPassword(), R"(
    {HELLO}
    S: 500 5.5.1 what?
    C: HELO client.example.test
    S: 250 mx.example.test
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "MECHANISM_NOT_OFFERED");
}

TEST(SmtpClientTest, HeloRefusedFails) {
  auto client = RunScript(Base(), R"(
    {HELLO}
    S: 500 5.5.1 what?
    C: HELO client.example.test
    S: 550 5.7.1 go away
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "SERVER_REFUSED");
}

TEST(SmtpClientTest, EhloTemporaryRefusalFails) {
  auto client = RunScript(WithPassword(), R"(
    {HELLO}
    S: 421 4.3.2 Service shutting down
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "SERVER_REFUSED");
}

// --- Authentication failures -------------------------------------------------------------

TEST(SmtpClientTest, AuthFailureCarriesServerTextAndRedactedCommand) {
  auto client = RunScript(WithPassword(), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH PLAIN {PLAIN_IR}
    S: 535 5.7.8 Error: authentication failed: bad user or password
    PHASE FAILED
  )");
  const absl::Status& error = client->error();
  EXPECT_EQ(error.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(error), "AUTH_FAILED");
  EXPECT_THAT(error.message(), HasSubstr("535 5.7.8 Error: authentication failed"));
  EXPECT_EQ(GetPayloadText(error, kCommandPayload), "AUTH PLAIN ***");
  EXPECT_EQ(GetPayloadText(error, kServerReplyPayload),
            "535 5.7.8 Error: authentication failed: bad user or password");
  ExpectNoSecrets(*client);
}

TEST(SmtpClientTest, LoginFailureIsRedacted) {
  auto client = RunScript(WithPassword(Security::kImplicitTls, Mechanism::kLogin), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH LOGIN
    C: AUTH LOGIN
    S: 334 VXNlcm5hbWU6
    C: {USER_B64}
    S: 334 UGFzc3dvcmQ6
    C: {PASSWORD_B64}
    S: 535-5.7.8 Username and Password not accepted.
    S: 535 5.7.8 Try again later.
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "AUTH LOGIN ***");
  EXPECT_THAT(client->error().message(), HasSubstr("Try again later"));
  ExpectNoSecrets(*client);
}

TEST(SmtpClientTest, AuthTemporaryFailureIsUnavailable) {
  auto client = RunScript(WithPassword(), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH PLAIN {PLAIN_IR}
    S: 454 4.7.0 Temporary authentication failure
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "AUTH_TEMPORARY_FAILURE");
}

TEST(SmtpClientTest, Xoauth2FailureAnswersErrorWithEmptyLine) {
  // The continuation is base64({"status":"401","schemes":"bearer","scope":"mail"}).
  auto client = RunScript(WithToken(Security::kImplicitTls, Mechanism::kXoauth2), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH XOAUTH2 {XOAUTH2_IR}
    S: 334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0=
    PHASE LOGGING_IN
    C:
    S: 535 5.7.8 Error: authentication failed
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "AUTH XOAUTH2 ***");
  // The decoded error tells an expired token from a refused one.
  EXPECT_THAT(client->error().message(), HasSubstr(R"("status":"401")"));
  ExpectNoSecrets(*client);
}

TEST(SmtpClientTest, OauthbearerFailureAnswersErrorWithControlA) {
  // The continuation is base64({"status":"invalid_token"}).
  auto client = RunScript(WithToken(Security::kImplicitTls, Mechanism::kOauthbearer), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH OAUTHBEARER {OAUTHBEARER_IR}
    S: 334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=
    C: AQ==
    S: 535 5.7.8 Error: authentication failed
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "AUTH OAUTHBEARER ***");
  EXPECT_THAT(client->error().message(), HasSubstr("invalid_token"));
  ExpectNoSecrets(*client);
}

LoginOptions ScramOptions() {
  wire::SetScramNonceForTesting(testing::rfc7677::kClientNonce);
  LoginOptions o = WithPassword();
  o.user = testing::rfc7677::kUser;
  o.password = Secret(testing::rfc7677::kPassword);
  return o;
}

// Postfix with Dovecot SASL and SCRAM enabled.
constexpr absl::string_view kScramEhlo = R"(
  S: 250-mx.example.test
  S: 250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256
  S: 250 8BITMIME
)";

TEST(SmtpClientTest, ScramSha256IsPreferredAndReplaysRfc7677) {
  namespace rfc = testing::rfc7677;
  auto client = RunScript(ScramOptions(), absl::StrCat("{HELLO}", kScramEhlo, R"(
    C: AUTH SCRAM-SHA-256 )",
                                                       rfc::ClientFirst(), R"(
    S: 334 )",
                                                       rfc::ServerFirst(), R"(
    C: )",
                                                       rfc::ClientFinal(), R"(
    S: 334 )",
                                                       rfc::ServerFinal(), R"(
    C:
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )"));
  EXPECT_EQ(client->info().mechanism, Mechanism::kScramSha256);
  wire::SetScramNonceForTesting("");
}

TEST(SmtpClientTest, ScramServerWithAWrongSignatureIsUnauthenticated) {
  namespace rfc = testing::rfc7677;
  auto client = RunScript(ScramOptions(), absl::StrCat("{HELLO}", kScramEhlo, R"(
    C: AUTH SCRAM-SHA-256 )",
                                                       rfc::ClientFirst(), R"(
    S: 334 )",
                                                       rfc::ServerFirst(), R"(
    C: )",
                                                       rfc::ClientFinal(), R"(
    S: 334 )",
                                                       rfc::WrongServerFinal(), R"(
    PHASE FAILED
  )"));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(client->error()), "SERVER_SIGNATURE_MISMATCH");
  EXPECT_THAT(client->error().ToString(), Not(HasSubstr("pencil")));
  wire::SetScramNonceForTesting("");
}

TEST(SmtpClientTest, ScramSuccessWithoutTheServerProofIsUnauthenticated) {
  namespace rfc = testing::rfc7677;
  auto client = RunScript(ScramOptions(), absl::StrCat("{HELLO}", kScramEhlo, R"(
    C: AUTH SCRAM-SHA-256 )",
                                                       rfc::ClientFirst(), R"(
    S: 334 )",
                                                       rfc::ServerFirst(), R"(
    C: )",
                                                       rfc::ClientFinal(), R"(
    S: 235 2.7.0 Authentication successful
    PHASE FAILED
  )"));
  EXPECT_EQ(Reason(client->error()), "SERVER_SIGNATURE_MISSING");
  wire::SetScramNonceForTesting("");
}

TEST(SmtpClientTest, ScramWrongPasswordIsAuthFailed) {
  namespace rfc = testing::rfc7677;
  auto client = RunScript(ScramOptions(), absl::StrCat("{HELLO}", kScramEhlo, R"(
    C: AUTH SCRAM-SHA-256 )",
                                                       rfc::ClientFirst(), R"(
    S: 334 )",
                                                       rfc::ServerFirst(), R"(
    C: )",
                                                       rfc::ClientFinal(), R"(
    S: 535 5.7.8 Error: authentication failed
    PHASE FAILED
  )"));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "AUTH SCRAM-SHA-256 ***");
  wire::SetScramNonceForTesting("");
}

TEST(SmtpClientTest, ContinuationToPlainIsAViolation) {
  auto client = RunScript(WithPassword(), R"(
    {HELLO}
    {POSTFIX_EHLO}
    C: AUTH PLAIN {PLAIN_IR}
    S: 334
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

TEST(SmtpClientTest, ThirdLoginPromptIsAViolation) {
  auto client = RunScript(WithPassword(Security::kImplicitTls, Mechanism::kLogin), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH LOGIN
    C: AUTH LOGIN
    S: 334 VXNlcm5hbWU6
    C: {USER_B64}
    S: 334 UGFzc3dvcmQ6
    C: {PASSWORD_B64}
    S: 334 UGFzc3dvcmQ6
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

TEST(SmtpClientTest, MalformedCramMd5ChallengeIsAViolation) {
  auto client = RunScript(WithPassword(Security::kImplicitTls, Mechanism::kCramMd5), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH CRAM-MD5
    C: AUTH CRAM-MD5
    S: 334 not*base64
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

// --- STARTTLS ----------------------------------------------------------------------------

TEST(SmtpClientTest, StartTlsNotOfferedFailsWithoutSendingMore) {
  auto client = RunScript(WithPassword(Security::kStartTls), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH PLAIN LOGIN
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(client->error()), "STARTTLS_NOT_OFFERED");
}

TEST(SmtpClientTest, StartTlsRefusedByServer) {
  auto client = RunScript(WithPassword(Security::kStartTls), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 STARTTLS
    C: STARTTLS
    S: 454 4.7.0 TLS not available due to local problem
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "STARTTLS_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "STARTTLS");
}

TEST(SmtpClientTest, TlsHandshakeDiscardsPlaintextCapabilities) {
  auto client = NewClient(WithPassword(Security::kStartTls));
  client->OnBytes("220 mx ESMTP\r\n250-mx\r\n250-X-PLAINTEXT\r\n250 STARTTLS\r\n");
  client->OnBytes("220 2.0.0 Ready to start TLS\r\n");
  ASSERT_EQ(client->phase(), Phase::kNeedTls);
  EXPECT_THAT(client->info().capabilities, ElementsAre("X-PLAINTEXT", "STARTTLS"));
  EXPECT_EQ(client->TakeOutput(), "EHLO client.example.test\r\nSTARTTLS\r\n");
  client->OnTlsEstablished();
  EXPECT_EQ(client->phase(), Phase::kLoggingIn);
  EXPECT_THAT(client->info().capabilities, ::testing::IsEmpty());
  EXPECT_EQ(client->TakeOutput(), "EHLO client.example.test\r\n");
}

TEST(SmtpClientTest, PlaintextAfterStartTlsAcceptanceIsRefused) {
  // A reply injected behind the 220 must not be taken as if it came over TLS.
  auto client = RunScript(WithPassword(Security::kStartTls), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 STARTTLS
    C: STARTTLS
    S: 220 2.0.0 Ready to start TLS
    S: 250 AUTH PLAIN
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");

  // The same, with the injected bytes in the read that holds the 220.
  auto same_read = NewClient(WithPassword(Security::kStartTls));
  same_read->OnBytes("220 mx ESMTP\r\n250-mx\r\n");
  same_read->OnBytes("250 STARTTLS\r\n");
  EXPECT_EQ(same_read->TakeOutput(), "EHLO client.example.test\r\nSTARTTLS\r\n");
  same_read->OnBytes("220 go ahead\r\n250 AUTH PLAIN\r\n");
  EXPECT_EQ(same_read->phase(), Phase::kFailed);
  EXPECT_EQ(Reason(same_read->error()), "PROTOCOL_VIOLATION");
  same_read->OnTlsEstablished();
  EXPECT_EQ(same_read->TakeOutput(), "");
  EXPECT_EQ(same_read->phase(), Phase::kFailed);
}

// --- Refusals before anything is written -------------------------------------------------

TEST(SmtpClientTest, InsecureAuthRefusedWithNothingSent) {
  for (Mechanism mechanism : {Mechanism::kAuto, Mechanism::kPlain, Mechanism::kCramMd5}) {
    auto client = RunScript(WithPassword(Security::kPlain, mechanism), R"(
      PHASE FAILED
      S: 220 mx.example.test ESMTP
      PHASE FAILED
    )");
    EXPECT_EQ(client->error().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(Reason(client->error()), "INSECURE_AUTH_REFUSED");
  }
  auto token = RunScript(WithToken(Security::kPlain), R"(
    S: 220 mx.example.test ESMTP
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(token->error()), "INSECURE_AUTH_REFUSED");
}

TEST(SmtpClientTest, InsecureAuthAllowedWhenAsked) {
  LoginOptions options = WithPassword(Security::kPlain);
  options.allow_insecure_auth = true;
  RunScript(options, R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250 AUTH PLAIN
    C: AUTH PLAIN {PLAIN_IR}
    S: 235 2.7.0 Authentication successful
    PHASE READY
  )");
}

TEST(SmtpClientTest, LineBreakInUserRefusedWithNothingSent) {
  for (absl::string_view user : {absl::string_view("alice\r\nRSET"), absl::string_view("bob\n"),
                                 absl::string_view("carol\0x", 7)}) {
    LoginOptions options = WithPassword();
    options.user = std::string(user);
    auto client = RunScript(options, R"(
      S: 220 mx.example.test ESMTP
      PHASE FAILED
    )");
    EXPECT_EQ(client->error().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Reason(client->error()), "INVALID_FIELD");
  }
}

TEST(SmtpClientTest, ControlAInUserRefusedWithToken) {
  LoginOptions options = WithToken();
  options.user =
      "alice\x01"
      "auth=Bearer other";
  auto client = RunScript(options, R"(
    S: 220 mx.example.test ESMTP
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "INVALID_FIELD");
}

TEST(SmtpClientTest, BadEhloNameRefusedWithNothingSent) {
  for (absl::string_view name : {"", "two words", "x\r\nMAIL FROM:<a@b>", "-lead.example",
                                 "under_score.example", "[10.0.0.256]", "[unclosed"}) {
    LoginOptions options = Base();
    options.ehlo_name = std::string(name);
    auto client = RunScript(options, R"(
      S: 220 mx.example.test ESMTP
      PHASE FAILED
    )");
    EXPECT_EQ(client->error().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(Reason(client->error()), "INVALID_FIELD") << name;
  }
}

TEST(SmtpClientTest, AddressLiteralEhloNameIsSent) {
  LoginOptions options = Base();
  options.ehlo_name = "[192.0.2.1]";
  RunScript(options, R"(
    S: 220 mx.example.test ESMTP
    C: EHLO [192.0.2.1]
  )");
  options.ehlo_name = "[IPv6:2001:db8::1]";
  RunScript(options, R"(
    S: 220 mx.example.test ESMTP
    C: EHLO [IPv6:2001:db8::1]
  )");
}

// --- Greeting ----------------------------------------------------------------------------

TEST(SmtpClientTest, RefusingGreetingFailsAfterQuit) {
  auto client = RunScript(WithPassword(), R"(
    S: 554 5.7.1 No SMTP service here
    C: QUIT
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "SERVER_REFUSED");
  EXPECT_THAT(client->error().message(), HasSubstr("No SMTP service here"));
  EXPECT_EQ(client->info().greeting, "554 5.7.1 No SMTP service here");
}

TEST(SmtpClientTest, MultiLineGreetingKeepsFirstLine) {
  auto client = RunScript(Base(), R"(
    S: 220-mx.example.test ESMTP
    S: 220-We do not accept spam.
    S: 220 Be nice
    C: EHLO client.example.test
  )");
  EXPECT_EQ(client->info().greeting, "220 mx.example.test ESMTP");
}

TEST(SmtpClientTest, GreetingWithOtherCodeIsAViolation) {
  auto client = RunScript(WithPassword(), R"(
    S: 250 hello
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

// --- Framing and hostile input -----------------------------------------------------------

TEST(SmtpClientTest, MultiLineRepliesSplitAcrossReads) {
  auto client = RunScript(WithPassword(), R"(
    S+ 220 mx.exa
    S: mple.test ESMTP
    C: EHLO client.example.test
    S+ 250-mx.exam
    S: ple.test
    S+ 250-SIZE 1024
    S: 0000
    S+ 250 AUTH PL
    PHASE LOGGING_IN
    S: AIN LOGIN
    C: AUTH PLAIN {PLAIN_IR}
    S+ 235 2.7.0 Auth
    PHASE LOGGING_IN
    S: entication successful
    PHASE READY
  )");
  EXPECT_THAT(client->info().capabilities, ElementsAre("SIZE 10240000", "AUTH PLAIN LOGIN"));
}

TEST(SmtpClientTest, EverySplitOfTheServerStreamGivesTheSameResult) {
  const std::string stream =
      "220 mx ESMTP\r\n250-mx\r\n250-SIZE 100\r\n250 AUTH PLAIN\r\n235 2.7.0 ok\r\n";
  const std::string expected =
      absl::StrCat("EHLO client.example.test\r\nAUTH PLAIN ", kPlainIr, "\r\n");
  for (size_t i = 0; i <= stream.size(); ++i) {
    for (size_t j = i; j <= stream.size(); ++j) {
      auto client = NewClient(WithPassword());
      std::string out;
      client->OnBytes(absl::string_view(stream).substr(0, i));
      out += client->TakeOutput();
      client->OnBytes(absl::string_view(stream).substr(i, j - i));
      out += client->TakeOutput();
      client->OnBytes(absl::string_view(stream).substr(j));
      out += client->TakeOutput();
      ASSERT_EQ(client->phase(), Phase::kReady) << i << " " << j;
      ASSERT_EQ(out, expected) << i << " " << j;
    }
  }
}

TEST(SmtpClientTest, OverLongLineFails) {
  auto client = RunScript(WithPassword(), absl::StrCat(R"(
    {HELLO}
    S+ 250-)",
                                                       std::string(5000, 'x'), R"(
    PHASE FAILED
  )"));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

TEST(SmtpClientTest, GarbageReplyCodeFails) {
  for (absl::string_view line :
       {"hello there", "2", "25", "199 x", "600 x", "260 x", "25x x", "2500 x", "250:x"}) {
    auto client = RunScript(WithPassword(), absl::StrCat("{HELLO}\nS: ", line, "\nPHASE FAILED\n"));
    EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable) << line;
    EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION") << line;
  }
}

TEST(SmtpClientTest, MismatchedCodesInMultiLineReplyFail) {
  auto client = RunScript(WithPassword(), R"(
    {HELLO}
    S: 250-mx.example.test
    S: 250-SIZE 100
    S: 235 AUTH PLAIN
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

TEST(SmtpClientTest, EndlessMultiLineReplyFails) {
  std::string script = "{HELLO}\n";
  for (int i = 0; i < 1001; ++i) script += "S: 250-X-FILLER\n";
  script += "PHASE FAILED\n";
  auto client = RunScript(WithPassword(), script);
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

TEST(SmtpClientTest, RandomServerBytesNeverCrash) {
  // Bytes drawn from what SMTP replies are made of, so that some runs get deep into login.
  constexpr absl::string_view kAlphabet = "2345013-  \r\n\n\tAUTHPLAINSTARTTLS=";
  std::mt19937 random(20240601);
  for (int run = 0; run < 2000; ++run) {
    auto client = NewClient(WithPassword(run % 2 ? Security::kStartTls : Security::kImplicitTls));
    std::string data;
    for (int i = 0; i < 300; ++i) data += kAlphabet[random() % kAlphabet.size()];
    for (size_t pos = 0; pos < data.size();) {
      size_t n = 1 + random() % 20;
      client->OnBytes(absl::string_view(data).substr(pos, n));
      pos += n;
      client->TakeOutput();
      if (client->phase() == Phase::kNeedTls) client->OnTlsEstablished();
      if (client->phase() == Phase::kReady) client->StartNoop();
    }
    if (client->phase() == Phase::kFailed) {
      EXPECT_FALSE(client->error().ok());
    }
  }
}

TEST(SmtpClientTest, InputAfterFailureIsIgnored) {
  auto client = RunScript(WithPassword(), R"(
    {HELLO}
    S: garbage
    PHASE FAILED
    S: 250-mx.example.test
    S: 250 AUTH PLAIN
    !noop
    !logout
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
  EXPECT_EQ(client->last_reply(), "220 mx.example.test ESMTP");
}

TEST(SmtpClientTest, IdleServerClosingWith421Fails) {
  auto client = RunScript(Base(), R"(
    {HELLO}
    S: 250 mx.example.test
    PHASE READY
    S: 421 4.4.2 mx.example.test Error: timeout exceeded
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "SERVER_REFUSED");
}

TEST(SmtpClientTest, UnsolicitedReplyIsAViolation) {
  auto client = RunScript(Base(), R"(
    {HELLO}
    S: 250 mx.example.test
    S: 250 surprise
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

// --- NOOP and QUIT -----------------------------------------------------------------------

TEST(SmtpClientTest, NoopRoundTrip) {
  auto client = RunScript(Base(), R"(
    {HELLO}
    S: 250 mx.example.test
    PHASE READY
    !noop
    C: NOOP
    PHASE BUSY
    S: 250 2.0.0 Ok
    PHASE READY
    !noop
    C: NOOP
    S: 250 2.0.0 Ok
    PHASE READY
  )");
  EXPECT_TRUE(client->error().ok());
  EXPECT_EQ(client->last_reply(), "250 2.0.0 Ok");
}

TEST(SmtpClientTest, NoopRefusalKeepsSessionUsable) {
  auto client = RunScript(Base(), R"(
    {HELLO}
    S: 250 mx.example.test
    !noop
    C: NOOP
    S: 502 5.5.1 not today
    PHASE READY
  )");
  EXPECT_EQ(Reason(client->error()), "COMMAND_REFUSED");
  EXPECT_THAT(client->error().message(), HasSubstr("not today"));
}

TEST(SmtpClientTest, NoopAnsweredWith421Fails) {
  auto client = RunScript(Base(), R"(
    {HELLO}
    S: 250 mx.example.test
    !noop
    C: NOOP
    S: 421 4.4.2 timeout
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "SERVER_REFUSED");
}

TEST(SmtpClientTest, CommandsOutsideReadyAreIgnored) {
  RunScript(Base(), R"(
    !noop
    !logout
    {HELLO}
    !noop
    PHASE LOGGING_IN
    S: 250 mx.example.test
    !noop
    C: NOOP
    !noop
    !logout
    PHASE BUSY
  )");
}

TEST(SmtpClientTest, QuitClosesWithServerGoodbye) {
  auto client = RunScript(Base(), R"(
    {HELLO}
    S: 250 mx.example.test
    !logout
    C: QUIT
    PHASE BUSY
    S: 221 2.0.0 Bye
    PHASE CLOSED
    S: 250 late data is ignored
    !noop
    PHASE CLOSED
  )");
  EXPECT_TRUE(client->error().ok());
  EXPECT_EQ(client->last_reply(), "221 2.0.0 Bye");
}

}  // namespace
}  // namespace mailpool::smtp
