#include "pop3/client.h"

#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "tests/fakes/transcript.h"
#include "tests/unit/wire/scram_vectors.h"
#include "wire/sasl.h"

namespace mailpool::pop3 {
namespace {

using ::mailpool::testing::ExpectTranscript;
using wire::LoginOptions;
using wire::Mechanism;
using wire::Security;
using Phase = wire::ClientProtocol::Phase;

constexpr char kPassword[] = "s3cret-pass";
constexpr char kToken[] = "alice-token-1";

LoginOptions PasswordOptions(Security security = Security::kImplicitTls,
                             Mechanism mechanism = Mechanism::kAuto) {
  LoginOptions o;
  o.security = security;
  o.user = "alice";
  o.password = Secret(kPassword);
  o.mechanism = mechanism;
  return o;
}

LoginOptions TokenOptions(Mechanism mechanism = Mechanism::kAuto, std::string token = kToken) {
  LoginOptions o;
  o.security = Security::kImplicitTls;
  o.user = "alice@example.test";
  o.oauth2_token = Secret(token);
  o.mechanism = mechanism;
  o.host = "mail.example.test";
  o.port = 995;
  return o;
}

testing::ClientFactory Factory(const LoginOptions& options) {
  return [options] { return NewClient(options); };
}

std::string Payload(const absl::Status& s, absl::string_view key) {
  return GetPayloadText(s, key).value_or("<none>");
}

// No secret may leak into anything but TakeOutput().
void ExpectNoSecrets(const wire::ClientProtocol& client) {
  std::string everything =
      absl::StrCat(client.error().ToString(), "|", client.last_reply(), "|", client.info().greeting,
                   "|", absl::StrJoin(client.info().capabilities, " "));
  for (absl::string_view secret : {absl::string_view(kPassword), absl::string_view(kToken)}) {
    EXPECT_EQ(everything.find(std::string(secret)), std::string::npos) << everything;
  }
}

void ExpectFailure(const wire::ClientProtocol& client, absl::StatusCode code,
                   absl::string_view reason, absl::string_view command = "<none>",
                   absl::string_view reply = "<none>") {
  EXPECT_EQ(client.phase(), Phase::kFailed);
  EXPECT_EQ(client.error().code(), code) << client.error();
  EXPECT_EQ(Payload(client.error(), kReasonPayload), reason) << client.error();
  EXPECT_EQ(Payload(client.error(), kCommandPayload), command) << client.error();
  EXPECT_EQ(Payload(client.error(), kServerReplyPayload), reply) << client.error();
  ExpectNoSecrets(client);
}

constexpr char kDovecotCapa[] = R"(
  S: +OK
  S: CAPA
  S: TOP
  S: UIDL
  S: RESP-CODES
  S: PIPELINING
  S: AUTH-RESP-CODE
  S: STLS
  S: USER
  S: SASL PLAIN LOGIN XOAUTH2 OAUTHBEARER
  S: .
)";

constexpr char kDovecotCapaAfterLogin[] = R"(
  S: +OK
  S: CAPA
  S: TOP
  S: UIDL
  S: RESP-CODES
  S: PIPELINING
  S: AUTH-RESP-CODE
  S: USER
  S: SASL PLAIN LOGIN XOAUTH2 OAUTHBEARER
  S: IMPLEMENTATION Dovecot
  S: .
)";

TEST(Pop3ClientTest, StlsThenUserPassThenNoopAndQuit) {
  LoginOptions o = PasswordOptions(Security::kStartTls, Mechanism::kCommand);
  auto client = ExpectTranscript(Factory(o), absl::StrCat(R"(
    S: +OK Dovecot ready.
    C: CAPA
  )",
                                                          kDovecotCapa, R"(
    C: STLS
    S: +OK Begin TLS negotiation now.
    PHASE NEED_TLS
    TLS
    C: CAPA
  )",
                                                          kDovecotCapa, R"(
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: +OK Logged in.
    C: CAPA
  )",
                                                          kDovecotCapaAfterLogin, R"(
    PHASE READY
    !noop
    C: NOOP
    PHASE BUSY
    S: +OK
    PHASE READY
    !logout
    C: QUIT
    S: +OK Logging out.
    PHASE CLOSED
  )"));
  EXPECT_TRUE(client->error().ok()) << client->error();
  EXPECT_EQ(client->last_reply(), "+OK Logging out.");
  EXPECT_EQ(client->info().greeting, "+OK Dovecot ready.");
  EXPECT_EQ(client->info().mechanism, Mechanism::kCommand);
  ASSERT_FALSE(client->info().capabilities.empty());
  EXPECT_EQ(client->info().capabilities.back(), "IMPLEMENTATION Dovecot");
  ExpectNoSecrets(*client);
}

TEST(Pop3ClientTest, AutoPrefersSaslPlainWithInitialResponse) {
  std::string ir = wire::PlainInitialResponse("alice", Secret(kPassword));
  auto client = ExpectTranscript(Factory(PasswordOptions()),
                                 absl::StrCat(R"(
    S: +OK Dovecot ready. <1a2b.3@host>
    C: CAPA
  )",
                                              kDovecotCapa, "C: AUTH PLAIN ", ir, R"(
    S: +OK Logged in.
    C: CAPA
    S: -ERR not now
    PHASE READY
  )"));
  EXPECT_EQ(client->info().mechanism, Mechanism::kPlain);
  // CAPA failed after login: the last listing seen is kept.
  EXPECT_EQ(client->info().capabilities.back(), "SASL PLAIN LOGIN XOAUTH2 OAUTHBEARER");
}

TEST(Pop3ClientTest, LongInitialResponseWaitsForContinuation) {
  LoginOptions o = PasswordOptions();
  o.user = std::string(200, 'u');
  std::string ir = wire::PlainInitialResponse(o.user, Secret(kPassword));
  ASSERT_GT(ir.size() + 13, 255u);
  ExpectTranscript(Factory(o), absl::StrCat(R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: SASL PLAIN
    S: .
    C: AUTH PLAIN
    S: +
    C: )",
                                            ir, R"(
    S: +OK Logged in.
    C: CAPA
    S: -ERR
    PHASE READY
  )"));
}

TEST(Pop3ClientTest, InitialResponseLimitCountsCrlf) {
  // "AUTH PLAIN " (11) + IR + CRLF (2) must stay within 255 octets.
  auto ir_for = [](const std::string& user) {
    return wire::PlainInitialResponse(user, Secret(kPassword));
  };
  std::string user;
  while (11 + ir_for(user + 'u').size() + 2 <= 255) user += 'u';
  ASSERT_EQ(11 + ir_for(user).size() + 2, 253u);  // base64 grows in steps of 4
  LoginOptions o = PasswordOptions();
  o.user = user;
  ExpectTranscript(Factory(o), absl::StrCat(R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: SASL PLAIN
    S: .
    C: AUTH PLAIN )",
                                            ir_for(user), R"(
    S: +OK
    C: CAPA
    S: -ERR
    PHASE READY
  )"));
  user += 'u';
  ASSERT_EQ(11 + ir_for(user).size() + 2, 257u);
  o.user = user;
  ExpectTranscript(Factory(o), absl::StrCat(R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: SASL PLAIN
    S: .
    C: AUTH PLAIN
    S: +
    C: )",
                                            ir_for(user), R"(
    S: +OK
    C: CAPA
    S: -ERR
    PHASE READY
  )"));
}

TEST(Pop3ClientTest, SaslLogin) {
  ExpectTranscript(Factory(PasswordOptions(Security::kImplicitTls, Mechanism::kLogin)),
                   absl::StrCat(R"(
    S: +OK ready
    C: CAPA
  )",
                                kDovecotCapa, R"(
    C: AUTH LOGIN
    S: + VXNlcm5hbWU6
    C: YWxpY2U=
    S: + UGFzc3dvcmQ6
    C: )",
                                wire::Base64Encode(kPassword), R"(
    S: +OK Logged in.
    C: CAPA
    S: -ERR
    PHASE READY
  )"));
}

TEST(Pop3ClientTest, ScramSha256IsPreferred) {
  // The RFC 7677 example exchange carried by POP3 AUTH (RFC 5034).
  LoginOptions o = PasswordOptions();
  o.user = "user";
  o.password = Secret("pencil");
  wire::SetScramNonceForTesting("rOprNGfwEbeRWgbNEkqO");
  auto client = ExpectTranscript(Factory(o), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: USER
    S: SASL PLAIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256
    S: .
    C: AUTH SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=
    S: + cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=
    C: Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSWxqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6N0FuZFZRPQ==
    S: + dj02cnJpVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ==
    C:
    S: +OK
    C: CAPA
    S: -ERR
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kScramSha256);
  wire::SetScramNonceForTesting("");
}

TEST(Pop3ClientTest, CramMd5WhenListed) {
  LoginOptions o = PasswordOptions(Security::kImplicitTls, Mechanism::kCramMd5);
  o.user = "tim";
  o.password = Secret("tanstaaftanstaaf");
  auto client = ExpectTranscript(Factory(o), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: USER
    S: SASL PLAIN CRAM-MD5
    S: .
    C: AUTH CRAM-MD5
    S: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
    C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
    S: +OK
    C: CAPA
    S: -ERR
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kCramMd5);
}

TEST(Pop3ClientTest, CramMd5MalformedChallengeIsProtocolViolation) {
  auto client =
      ExpectTranscript(Factory(PasswordOptions(Security::kImplicitTls, Mechanism::kCramMd5)), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: SASL CRAM-MD5
    S: .
    C: AUTH CRAM-MD5
    S: + not*base64
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", "<none>",
                "+ not*base64");
}

TEST(Pop3ClientTest, ApopWithRfc1939Timestamp) {
  LoginOptions o = PasswordOptions(Security::kImplicitTls, Mechanism::kApop);
  o.user = "mrose";
  o.password = Secret("tanstaaf");
  auto client = ExpectTranscript(Factory(o), R"(
    S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>
    C: CAPA
    S: -ERR unknown command
    C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
    S: +OK maildrop has 1 message (369 octets)
    C: CAPA
    S: -ERR unknown command
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kApop);
  EXPECT_TRUE(client->info().capabilities.empty());
}

TEST(Pop3ClientTest, ApopRefusedTraceIsRedacted) {
  auto client =
      ExpectTranscript(Factory(PasswordOptions(Security::kImplicitTls, Mechanism::kApop)),
                       absl::StrCat(R"(
    S: +OK Dovecot ready. <1a2b.3@host>
    C: CAPA
    S: -ERR
    C: APOP alice )",
                                    wire::ApopDigest("<1a2b.3@host>", Secret(kPassword)), R"(
    S: -ERR [AUTH] Authentication failed.
    PHASE FAILED
  )"));
  ExpectFailure(*client, absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "APOP alice ***",
                "-ERR [AUTH] Authentication failed.");
}

TEST(Pop3ClientTest, ApopNotOfferedWithoutTimestamp) {
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kImplicitTls, Mechanism::kApop)),
                                 absl::StrCat(R"(
    S: +OK Dovecot ready.
    C: CAPA
  )",
                                              kDovecotCapa, R"(
    PHASE FAILED
  )"));
  ExpectFailure(*client, absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED");
}

TEST(Pop3ClientTest, AutoNeverPicksApop) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: +OK ready <1.2@host>
    C: CAPA
    S: -ERR
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: +OK
    C: CAPA
    S: -ERR
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kCommand);
}

TEST(Pop3ClientTest, CapaWithoutUserOffersOnlySasl) {
  auto client =
      ExpectTranscript(Factory(PasswordOptions(Security::kImplicitTls, Mechanism::kCommand)), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: SASL PLAIN
    S: .
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED");
}

TEST(Pop3ClientTest, CapaDotUnstuffing) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: ..DOTTED
    S: USER
    S: .
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: +OK
    C: CAPA
    S: +OK
    S: ..AFTER
    S: .
    PHASE READY
  )");
  EXPECT_EQ(client->info().capabilities, std::vector<std::string>{".AFTER"});
}

TEST(Pop3ClientTest, PassRefused) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: USER
    S: .
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: -ERR [AUTH] Authentication failed.
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "PASS ***",
                "-ERR [AUTH] Authentication failed.");
}

TEST(Pop3ClientTest, UserRefused) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: +OK ready
    C: CAPA
    S: -ERR
    C: USER alice
    S: -ERR no such mailbox
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "USER alice",
                "-ERR no such mailbox");
}

TEST(Pop3ClientTest, TemporaryFailures) {
  for (absl::string_view reply :
       {"-ERR [SYS/TEMP] Temporary authentication failure.", "-ERR [IN-USE] Mailbox is locked",
        "-ERR [in-use] x", "-ERR [LOGIN-DELAY] wait"}) {
    auto client =
        ExpectTranscript(Factory(PasswordOptions()),
                         absl::StrCat(R"(
      S: +OK ready
      C: CAPA
      S: +OK
      S: SASL PLAIN
      S: .
      C: AUTH PLAIN )",
                                      wire::PlainInitialResponse("alice", Secret(kPassword)), R"(
      S: )",
                                      reply, R"(
      PHASE FAILED
    )"));
    ExpectFailure(*client, absl::StatusCode::kUnavailable, "AUTH_TEMPORARY_FAILURE",
                  "AUTH PLAIN ***", reply);
  }
}

TEST(Pop3ClientTest, SysPermIsAuthFailed) {
  auto client =
      ExpectTranscript(Factory(PasswordOptions()),
                       absl::StrCat(R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: SASL PLAIN
    S: .
    C: AUTH PLAIN )",
                                    wire::PlainInitialResponse("alice", Secret(kPassword)), R"(
    S: -ERR [SYS/PERM] broken
    PHASE FAILED
  )"));
  ExpectFailure(*client, absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "AUTH PLAIN ***",
                "-ERR [SYS/PERM] broken");
}

TEST(Pop3ClientTest, Xoauth2ShortTokenUsesInitialResponse) {
  std::string ir = wire::Xoauth2InitialResponse("alice@example.test", Secret(kToken));
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kXoauth2)),
                                 absl::StrCat(R"(
    S: +OK ready
    C: CAPA
  )",
                                              kDovecotCapa, "C: AUTH XOAUTH2 ", ir, R"(
    S: +OK Logged in.
    C: CAPA
  )",
                                              kDovecotCapaAfterLogin, R"(
    PHASE READY
  )"));
  EXPECT_EQ(client->info().mechanism, Mechanism::kXoauth2);
  ExpectNoSecrets(*client);
}

TEST(Pop3ClientTest, AutoTokenPrefersOauthbearer) {
  std::string ir = wire::OauthbearerInitialResponse("alice@example.test", "mail.example.test", 995,
                                                    Secret(kToken));
  auto client = ExpectTranscript(Factory(TokenOptions()),
                                 absl::StrCat(R"(
    S: +OK ready
    C: CAPA
  )",
                                              kDovecotCapa, "C: AUTH OAUTHBEARER ", ir, R"(
    S: +OK Logged in.
    C: CAPA
    S: -ERR
    PHASE READY
  )"));
  EXPECT_EQ(client->info().mechanism, Mechanism::kOauthbearer);
}

TEST(Pop3ClientTest, Xoauth2LongTokenFailureAnswersErrorContinuation) {
  std::string token = "ya29." + std::string(300, 'x');
  std::string ir = wire::Xoauth2InitialResponse("alice@example.test", Secret(token));
  std::string json = R"({"status":"401","schemes":"bearer","scope":"https://mail.google.com/"})";
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kXoauth2, token)),
                                 absl::StrCat(R"(
    S: +OK ready
    C: CAPA
  )",
                                              kDovecotCapa, R"(
    C: AUTH XOAUTH2
    S: +
    C: )",
                                              ir, R"(
    S: + )",
                                              wire::Base64Encode(json), R"(
    C:
    S: -ERR [AUTH] Authentication failed.
    PHASE FAILED
  )"));
  ExpectFailure(*client, absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "AUTH XOAUTH2 ***",
                "-ERR [AUTH] Authentication failed.");
  EXPECT_NE(client->error().message().find("\"status\":\"401\""), std::string::npos)
      << client->error();
  EXPECT_EQ(client->error().ToString().find(token), std::string::npos);
}

TEST(Pop3ClientTest, OauthbearerFailureWithInitialResponse) {
  std::string ir = wire::OauthbearerInitialResponse("alice@example.test", "mail.example.test", 995,
                                                    Secret(kToken));
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kOauthbearer)),
                                 absl::StrCat(R"(
    S: +OK ready
    C: CAPA
  )",
                                              kDovecotCapa, "C: AUTH OAUTHBEARER ", ir, R"(
    S: + eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=
    C: AQ==
    S: -ERR [AUTH] Authentication failed.
    PHASE FAILED
  )"));
  ExpectFailure(*client, absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "AUTH OAUTHBEARER ***",
                "-ERR [AUTH] Authentication failed.");
}

LoginOptions ScramOptions() {
  wire::SetScramNonceForTesting(testing::rfc7677::kClientNonce);
  LoginOptions o = PasswordOptions();
  o.user = testing::rfc7677::kUser;
  o.password = Secret(testing::rfc7677::kPassword);
  return o;
}

constexpr char kScramCapa[] = R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: USER
    S: SASL PLAIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256
    S: .
)";

TEST(Pop3ClientTest, ScramSha256IsPreferredAndReplaysRfc7677) {
  namespace rfc = testing::rfc7677;
  auto client = ExpectTranscript(Factory(ScramOptions()), absl::StrCat(kScramCapa, R"(
    C: AUTH SCRAM-SHA-256 )",
                                                                       rfc::ClientFirst(), R"(
    S: + )",
                                                                       rfc::ServerFirst(), R"(
    C: )",
                                                                       rfc::ClientFinal(), R"(
    S: + )",
                                                                       rfc::ServerFinal(), R"(
    C:
    S: +OK Logged in.
    C: CAPA
    S: -ERR
    PHASE READY
  )"));
  EXPECT_EQ(client->info().mechanism, Mechanism::kScramSha256);
  wire::SetScramNonceForTesting("");
}

TEST(Pop3ClientTest, ScramServerWithAWrongSignatureIsUnauthenticated) {
  namespace rfc = testing::rfc7677;
  auto client = ExpectTranscript(Factory(ScramOptions()), absl::StrCat(kScramCapa, R"(
    C: AUTH SCRAM-SHA-256 )",
                                                                       rfc::ClientFirst(), R"(
    S: + )",
                                                                       rfc::ServerFirst(), R"(
    C: )",
                                                                       rfc::ClientFinal(), R"(
    S: + )",
                                                                       rfc::WrongServerFinal(), R"(
    PHASE FAILED
  )"));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Payload(client->error(), kReasonPayload), "SERVER_SIGNATURE_MISMATCH");
  ExpectNoSecrets(*client);
  wire::SetScramNonceForTesting("");
}

TEST(Pop3ClientTest, ScramSuccessWithoutTheServerProofIsUnauthenticated) {
  namespace rfc = testing::rfc7677;
  auto client = ExpectTranscript(Factory(ScramOptions()), absl::StrCat(kScramCapa, R"(
    C: AUTH SCRAM-SHA-256 )",
                                                                       rfc::ClientFirst(), R"(
    S: + )",
                                                                       rfc::ServerFirst(), R"(
    C: )",
                                                                       rfc::ClientFinal(), R"(
    S: +OK Logged in.
    PHASE FAILED
  )"));
  EXPECT_EQ(Payload(client->error(), kReasonPayload), "SERVER_SIGNATURE_MISSING");
  wire::SetScramNonceForTesting("");
}

TEST(Pop3ClientTest, ExplicitScramSha1) {
  LoginOptions o = ScramOptions();
  o.mechanism = Mechanism::kScramSha1;
  ExpectTranscript(Factory(o), absl::StrCat(kScramCapa, R"(
    C: AUTH SCRAM-SHA-1 )",
                                            testing::rfc7677::ClientFirst(), R"(
  )"));
  wire::SetScramNonceForTesting("");
}

TEST(Pop3ClientTest, OauthSecondChallengeIsViolation) {
  std::string ir = wire::Xoauth2InitialResponse("alice@example.test", Secret(kToken));
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kXoauth2)), absl::StrCat(R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: SASL XOAUTH2
    S: .
    C: AUTH XOAUTH2 )",
                                                                                          ir, R"(
    S: + e30=
    C:
    S: + e30=
    PHASE FAILED
  )"));
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", "<none>", "+ e30=");
}

TEST(Pop3ClientTest, PlainUnexpectedChallengeIsViolation) {
  auto client =
      ExpectTranscript(Factory(PasswordOptions()),
                       absl::StrCat(R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: SASL PLAIN
    S: .
    C: AUTH PLAIN )",
                                    wire::PlainInitialResponse("alice", Secret(kPassword)), R"(
    S: + more?
    PHASE FAILED
  )"));
  EXPECT_EQ(Payload(client->error(), kReasonPayload), "PROTOCOL_VIOLATION");
}

TEST(Pop3ClientTest, TokenMechanismNotOffered) {
  auto client = ExpectTranscript(Factory(TokenOptions()), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: USER
    S: SASL PLAIN LOGIN
    S: .
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kFailedPrecondition, "MECHANISM_NOT_OFFERED");
}

TEST(Pop3ClientTest, PlaintextCapabilitiesDiscardedAfterStls) {
  // Post-TLS CAPA fails: nothing learned in plaintext (e.g. an injected SASL list) is
  // kept; USER/PASS is the baseline.
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: STLS
    S: SASL PLAIN
    S: .
    C: STLS
    S: +OK
    TLS
    C: CAPA
    S: -ERR
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: +OK
    C: CAPA
    S: -ERR
    PHASE READY
  )");
  EXPECT_TRUE(client->info().capabilities.empty());
}

TEST(Pop3ClientTest, StlsNotOffered) {
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: USER
    S: .
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kFailedPrecondition, "STARTTLS_NOT_OFFERED");
}

TEST(Pop3ClientTest, StlsNotOfferedWhenCapaFails) {
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: +OK ready
    C: CAPA
    S: -ERR
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kFailedPrecondition, "STARTTLS_NOT_OFFERED");
}

TEST(Pop3ClientTest, StlsRefused) {
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: STLS
    S: .
    C: STLS
    S: -ERR [SYS/TEMP] TLS unavailable
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "STARTTLS_FAILED", "STLS",
                "-ERR [SYS/TEMP] TLS unavailable");
}

TEST(Pop3ClientTest, StlsInjectionIsViolation) {
  // Plaintext sent after "+OK" to STLS must not be processed after the handshake.
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: +OK ready
    C: CAPA
    S: +OK
    S: STLS
    S: USER
    S: .
    C: STLS
    S: +OK Begin TLS
    S: -ERR injected
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION");
}

TEST(Pop3ClientTest, StlsInjectionInOneSegment) {
  auto client = NewClient(PasswordOptions(Security::kStartTls));
  client->OnBytes("+OK ready\r\n");
  EXPECT_EQ(client->TakeOutput(), "CAPA\r\n");
  client->OnBytes("+OK\r\nSTLS\r\nUSER\r\n.\r\n");
  EXPECT_EQ(client->TakeOutput(), "STLS\r\n");
  client->OnBytes("+OK Begin TLS\r\n+OK\r\nUSER\r\n.\r\n");
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION");
  client->OnTlsEstablished();
  EXPECT_EQ(client->TakeOutput(), "");
}

TEST(Pop3ClientTest, InsecureAuthRefusedOnPlainLink) {
  auto client =
      ExpectTranscript(Factory(PasswordOptions(Security::kPlain)), absl::StrCat(R"(
    S: +OK ready
    C: CAPA
  )",
                                                                                kDovecotCapa, R"(
    PHASE FAILED
  )"));
  ExpectFailure(*client, absl::StatusCode::kFailedPrecondition, "INSECURE_AUTH_REFUSED");
}

TEST(Pop3ClientTest, InsecureAuthAllowed) {
  LoginOptions o = PasswordOptions(Security::kPlain, Mechanism::kCommand);
  o.allow_insecure_auth = true;
  ExpectTranscript(Factory(o), absl::StrCat(R"(
    S: +OK ready
    C: CAPA
  )",
                                            kDovecotCapa, R"(
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: +OK
    C: CAPA
    S: -ERR
    PHASE READY
  )"));
}

TEST(Pop3ClientTest, InvalidFieldsWriteNothing) {
  for (int field = 0; field < 4; ++field) {
    LoginOptions o = PasswordOptions();
    if (field == 0) o.user = "alice\r\nDELE 1";
    if (field == 1) o.password = Secret(std::string("pa\0ss", 5));
    if (field == 2) {
      o.password = Secret();
      o.oauth2_token = Secret("tok\n");
    }
    if (field == 3) o.host = "h\rx";
    auto client = ExpectTranscript(Factory(o), R"(
      S: +OK ready
      PHASE FAILED
    )");
    ExpectFailure(*client, absl::StatusCode::kInvalidArgument, "INVALID_FIELD");
  }
}

TEST(Pop3ClientTest, MissingSecret) {
  LoginOptions o = PasswordOptions();
  o.password = Secret();
  auto client = NewClient(o);
  EXPECT_EQ(client->phase(), Phase::kFailed);
  EXPECT_EQ(client->error().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Pop3ClientTest, GreetingRefused) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: -ERR [SYS/TEMP] too many connections
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "SERVER_REFUSED", "<none>",
                "-ERR [SYS/TEMP] too many connections");
}

TEST(Pop3ClientTest, MalformedGreeting) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * OK IMAP4rev1 ready
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", "<none>",
                "* OK IMAP4rev1 ready");
}

TEST(Pop3ClientTest, MalformedCapaReply) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: +OK ready
    C: CAPA
    S: garbage
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", "<none>", "garbage");
}

TEST(Pop3ClientTest, OverlongLineIsViolation) {
  auto client = NewClient(PasswordOptions());
  client->OnBytes("+OK ");
  std::string chunk(4096, 'x');
  for (int i = 0; i < 4 && client->phase() != Phase::kFailed; ++i) client->OnBytes(chunk);
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION");
}

TEST(Pop3ClientTest, EndlessCapaListingIsViolation) {
  auto client = NewClient(PasswordOptions());
  client->OnBytes("+OK ready\r\n+OK\r\n");
  for (int i = 0; i < 10000 && client->phase() != Phase::kFailed; ++i) {
    client->OnBytes("X-CAP something\r\n");
  }
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION");
}

TEST(Pop3ClientTest, NoopRefusedStaysReady) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: +OK ready
    C: CAPA
    S: -ERR
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: +OK
    C: CAPA
    S: -ERR
    !noop
    C: NOOP
    S: -ERR weird
    PHASE READY
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client->last_reply(), "-ERR weird");
}

TEST(Pop3ClientTest, UnsolicitedErrWhileReadyCloses) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: +OK ready
    C: CAPA
    S: -ERR
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: +OK
    C: CAPA
    S: -ERR
    PHASE READY
    S: -ERR Disconnected for inactivity.
    PHASE CLOSED
    !noop
  )");
  EXPECT_EQ(client->last_reply(), "-ERR Disconnected for inactivity.");
}

TEST(Pop3ClientTest, UnsolicitedGarbageWhileReadyFails) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: +OK ready
    C: CAPA
    S: -ERR
    C: USER alice
    S: +OK
    C: PASS s3cret-pass
    S: +OK
    C: CAPA
    S: -ERR
    S: +OK surprise
    PHASE FAILED
  )");
  ExpectFailure(*client, absl::StatusCode::kUnavailable, "PROTOCOL_VIOLATION", "<none>",
                "+OK surprise");
}

TEST(Pop3ClientTest, CommandsOutsideReadyAreIgnored) {
  auto client = NewClient(PasswordOptions());
  client->StartNoop();
  client->StartLogout();
  client->OnTlsEstablished();
  EXPECT_EQ(client->TakeOutput(), "");
  EXPECT_EQ(client->phase(), Phase::kLoggingIn);
}

TEST(Pop3ClientTest, HostileBytesNeverCrash) {
  std::mt19937 rng(1939);
  const std::vector<std::string> pieces = {
      "+OK",  "-ERR",   "+ ",       "+",         ".",    "..",   "\r\n", "\n",
      "\r",   " ",      "<",        ">",         "@",    "[",    "]",    "SYS/TEMP",
      "SASL", " PLAIN", " XOAUTH2", " CRAM-MD5", "USER", "STLS", "=",    std::string(1, '\0'),
      "\xff", "e30="};
  for (int run = 0; run < 2000; ++run) {
    LoginOptions o = run % 2 ? PasswordOptions(Security::kStartTls) : TokenOptions();
    o.allow_insecure_auth = true;
    auto client = NewClient(o);
    for (int i = 0; i < 200; ++i) {
      client->OnBytes(pieces[rng() % pieces.size()]);
      client->TakeOutput();
      if (client->phase() == Phase::kNeedTls) client->OnTlsEstablished();
      if (client->phase() == Phase::kReady) client->StartNoop();
    }
    ExpectNoSecrets(*client);
  }
}

}  // namespace
}  // namespace mailpool::pop3
