#include "imap/client.h"

#include <random>
#include <string>

#include "absl/strings/match.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "tests/fakes/transcript.h"
#include "wire/sasl.h"

namespace mailpool::imap {
namespace {

using ::mailpool::testing::ExpectTranscript;
using ::mailpool::testing::RunTranscript;
using wire::Mechanism;
using wire::Security;
using Phase = wire::ClientProtocol::Phase;

// The greeting of Debian 12's Dovecot 2.3 (STARTTLS port).
constexpr char kDovecotGreeting[] =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
    "AUTH=PLAIN AUTH=LOGIN AUTH=XOAUTH2 AUTH=OAUTHBEARER] Dovecot ready.";

Options PasswordOptions(Security security = Security::kImplicitTls) {
  Options o;
  o.login.security = security;
  o.login.user = "alice";
  o.login.password = Secret("secret");
  return o;
}

Options TokenOptions(Mechanism mechanism) {
  Options o;
  o.login.security = Security::kImplicitTls;
  o.login.user = "alice";
  o.login.oauth2_token = Secret("tok-9f3e");
  o.login.mechanism = mechanism;
  o.login.host = "imap.example.com";
  o.login.port = 993;
  return o;
}

testing::ClientFactory Factory(const Options& options) {
  return [options] { return NewClient(options); };
}

std::string Reason(const absl::Status& s) { return GetPayloadText(s, kReasonPayload).value_or(""); }

// Secrets may only ever leave through TakeOutput().
void ExpectNoSecretOutsideOutput(const wire::ClientProtocol& client) {
  for (absl::string_view secret : {"secret", "tok-9f3e", "pässwd"}) {
    EXPECT_FALSE(absl::StrContains(client.error().ToString(), secret)) << client.error();
    EXPECT_FALSE(absl::StrContains(client.last_reply(), secret));
    for (const std::string& c : client.info().capabilities) EXPECT_NE(c, secret);
  }
}

TEST(ImapClientTest, DovecotLoginUsesSaslIrAndCapabilitiesFromGreetingAndTaggedOk) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), std::string(R"(
    S: )") + kDovecotGreeting + R"(
    PHASE LOGGING_IN
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: a1 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT MOVE] Logged in
    C: a2 SELECT INBOX
    S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
    S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted.
    S: * 3 EXISTS
    S: * 0 RECENT
    S: * OK [UIDVALIDITY 1700000000] UIDs valid
    S: * OK [UIDNEXT 4] Predicted next UID
    S: a2 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).
    PHASE READY
    !noop
    PHASE BUSY
    C: a3 NOOP
    S: * 4 EXISTS
    S: a3 OK NOOP completed.
    PHASE READY
    !logout
    C: a4 LOGOUT
    S: * BYE Logging out
    PHASE BUSY
    S: a4 OK Logout completed (0.001 + 0.000 secs).
    PHASE CLOSED
  )");
  EXPECT_TRUE(client->error().ok()) << client->error();
  EXPECT_EQ(client->last_reply(), "a4 OK Logout completed (0.001 + 0.000 secs).");
  EXPECT_EQ(client->info().greeting, kDovecotGreeting);
  EXPECT_EQ(client->info().mechanism, Mechanism::kPlain);
  EXPECT_EQ(client->info().capabilities,
            (std::vector<std::string>{"IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE",
                                      "IDLE", "SORT", "MOVE"}));
}

TEST(ImapClientTest, GreetingWithoutCapabilitiesAsksForThemBeforeAndAfterLogin) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * OK IMAP server ready
    C: a1 CAPABILITY
    S: * CAPABILITY IMAP4rev1 AUTH=PLAIN
    S: a1 OK done
    # No SASL-IR: the initial response answers the empty continuation.
    C: a2 AUTHENTICATE PLAIN
    S: +
    C: AGFsaWNlAHNlY3JldA==
    S: a2 OK Logged in
    C: a3 CAPABILITY
    S: * CAPABILITY IMAP4rev1 IDLE
    S: a3 OK done
    C: a4 SELECT INBOX
    S: a4 OK [READ-ONLY] done
    PHASE READY
  )");
  EXPECT_EQ(client->info().capabilities, (std::vector<std::string>{"IMAP4rev1", "IDLE"}));
}

TEST(ImapClientTest, UntaggedCapabilityDuringAuthenticationSparesTheCommand) {
  ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: * CAPABILITY IMAP4rev1 IDLE
    S: a1 OK Logged in
    C: a2 SELECT INBOX
    S: a2 OK done
    PHASE READY
  )");
}

TEST(ImapClientTest, StartTlsDiscardsCapabilitiesLearnedBeforeIt) {
  // Before TLS the server withdraws LOGIN; after TLS it offers it. A client that kept the
  // earlier list would refuse LOGIN (or trust an attacker's injected list).
  Options o = PasswordOptions(Security::kStartTls);
  o.login.mechanism = Mechanism::kCommand;
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=XOAUTH2] ready
    C: a1 STARTTLS
    S: a1 OK Begin TLS negotiation now.
    PHASE NEED_TLS
    TLS
    C: a2 CAPABILITY
    S: * CAPABILITY IMAP4rev1 AUTH=PLAIN
    S: a2 OK done
    C: a3 LOGIN "alice" "secret"
    S: a3 OK [CAPABILITY IMAP4rev1 IDLE] Logged in
    C: a4 SELECT INBOX
    S: a4 OK done
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kCommand);
  ExpectNoSecretOutsideOutput(*client);
}

TEST(ImapClientTest, StartTlsWithoutCapabilityInGreetingAsksFirst) {
  ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: * OK ready
    C: a1 CAPABILITY
    S: * CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED
    S: a1 OK done
    C: a2 STARTTLS
    S: a2 OK go
    TLS
    C: a3 CAPABILITY
    S: * CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR
    S: a3 OK done
    C: a4 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: a4 OK [CAPABILITY IMAP4rev1] Logged in
    C: a5 SELECT INBOX
    S: a5 OK done
    PHASE READY
  )");
}

TEST(ImapClientTest, StartTlsNotOfferedFailsBeforeAnyCredential) {
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(client->error()), "STARTTLS_NOT_OFFERED");
}

TEST(ImapClientTest, StartTlsRefusedIsUnavailable) {
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: * OK [CAPABILITY IMAP4rev1 STARTTLS] ready
    C: a1 STARTTLS
    S: a1 NO TLS not available
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "STARTTLS_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kServerReplyPayload), "a1 NO TLS not available");
}

TEST(ImapClientTest, DataAfterStartTlsOkIsAnInjectionAndFails) {
  // Plaintext sent after the OK would be read as if it came over TLS (CVE-2011-0411 class).
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: * OK [CAPABILITY IMAP4rev1 STARTTLS] ready
    C: a1 STARTTLS
    S: a1 OK go
    S: * CAPABILITY IMAP4rev1 AUTH=PLAIN
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");

  // The same bytes arriving in one read with the OK.
  auto one_read = NewClient(PasswordOptions(Security::kStartTls));
  one_read->OnBytes("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
  EXPECT_EQ(one_read->TakeOutput(), "a1 STARTTLS\r\n");
  one_read->OnBytes("a1 OK go\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
  EXPECT_EQ(one_read->phase(), Phase::kFailed);
  EXPECT_EQ(Reason(one_read->error()), "PROTOCOL_VIOLATION");
}

TEST(ImapClientTest, PreauthOverImplicitTlsSkipsAuthentication) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * PREAUTH [CAPABILITY IMAP4rev1 IDLE] alice logged in
    C: a1 SELECT INBOX
    S: a1 OK done
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kNone);
}

TEST(ImapClientTest, PreauthWithoutCapabilitiesAsksForThem) {
  Options o;
  o.login.security = Security::kPlain;  // no credentials: nothing is exposed
  ExpectTranscript(Factory(o), R"(
    S: * PREAUTH hello
    C: a1 CAPABILITY
    S: * CAPABILITY IMAP4rev1
    S: a1 OK done
    C: a2 SELECT INBOX
    S: a2 OK done
    PHASE READY
  )");
}

TEST(ImapClientTest, PreauthBeforeStartTlsIsRefusedAsADowngrade) {
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kStartTls)), R"(
    S: * PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(client->error()), "STARTTLS_NOT_OFFERED");
}

TEST(ImapClientTest, ByeGreetingIsServerRefused) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * BYE Too many connections
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "SERVER_REFUSED");
  EXPECT_EQ(client->info().greeting, "* BYE Too many connections");
  EXPECT_EQ(client->last_reply(), "* BYE Too many connections");
}

TEST(ImapClientTest, MalformedGreetingIsAProtocolViolation) {
  for (const char* greeting :
       {"+OK POP3 ready", "220 smtp ready", "* CAPABILITY IMAP4rev1", "*", "a1 OK"}) {
    auto client = NewClient(PasswordOptions());
    client->OnBytes(std::string(greeting) + "\r\n");
    EXPECT_EQ(client->phase(), Phase::kFailed) << greeting;
    EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION") << greeting;
    EXPECT_EQ(client->TakeOutput(), "");
  }
}

TEST(ImapClientTest, LoginCommandQuotesBackslashAndDoubleQuote) {
  Options o = PasswordOptions();
  o.login.user = R"(a"b\c)";
  o.login.password = Secret(R"(p"w\)");
  o.login.mechanism = Mechanism::kCommand;
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1] ready
    C: a1 LOGIN "a\"b\\c" "p\"w\\"
    S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), R"(LOGIN a"b\c ***)");
}

TEST(ImapClientTest, LoginCommandFailureIsRedactedAndCarriesTheReply) {
  Options o = PasswordOptions();
  o.login.mechanism = Mechanism::kCommand;
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready
    C: a1 LOGIN "alice" "secret"
    S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
    PHASE FAILED
  )");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "LOGIN alice ***");
  EXPECT_EQ(GetPayloadText(client->error(), kServerReplyPayload),
            "a1 NO [AUTHENTICATIONFAILED] Authentication failed.");
  EXPECT_TRUE(absl::StrContains(client->error().message(), "server replied"));
  EXPECT_EQ(client->last_reply(), "a1 NO [AUTHENTICATIONFAILED] Authentication failed.");
  ExpectNoSecretOutsideOutput(*client);
}

TEST(ImapClientTest, EightBitPasswordGoesAsSynchronizingLiteral) {
  Options o = PasswordOptions();
  o.login.password = Secret("pässwd");
  o.login.mechanism = Mechanism::kCommand;
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1] ready
    C: a1 LOGIN "alice" {7}
    S: + Ready for literal data
    C: pässwd
    S: a1 OK Logged in
    C: a2 CAPABILITY
    S: * CAPABILITY IMAP4rev1
    S: a2 OK done
    C: a3 SELECT INBOX
    S: a3 OK done
    PHASE READY
  )");
  ExpectNoSecretOutsideOutput(*client);
}

TEST(ImapClientTest, EightBitUserAndPasswordEachWaitForAContinuation) {
  Options o = PasswordOptions();
  o.login.user = "jürgen";
  o.login.password = Secret("pässwd");
  o.login.mechanism = Mechanism::kCommand;
  ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1] ready
    C: a1 LOGIN {7}
    S: + go on
    C: jürgen {7}
    S: + go on
    C: pässwd
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
  )");
}

TEST(ImapClientTest, EightBitCredentialsUseNonSynchronizingLiteralsWithLiteralPlus) {
  Options o = PasswordOptions();
  o.login.user = "jürgen";
  o.login.password = Secret("pässwd");
  o.login.mechanism = Mechanism::kCommand;
  ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 LITERAL+] ready
    C: a1 LOGIN {7+}
    C: jürgen {7+}
    C: pässwd
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
  )");
  // LITERAL- (RFC 7888) allows the same for literals up to 4096 bytes.
  ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 LITERAL-] ready
    C: a1 LOGIN {7+}
    C: jürgen {7+}
    C: pässwd
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
  )");
}

TEST(ImapClientTest, LiteralRefusedByTheServerIsAnAuthenticationFailure) {
  Options o = PasswordOptions();
  o.login.password = Secret("pässwd");
  o.login.mechanism = Mechanism::kCommand;
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1] ready
    C: a1 LOGIN "alice" {7}
    S: a1 BAD literal too big
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
}

TEST(ImapClientTest, LoginDisabledLeavesOnlySaslMechanisms) {
  Options o = PasswordOptions();
  o.login.mechanism = Mechanism::kCommand;
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] ready
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "MECHANISM_NOT_OFFERED");
  // Automatic choice goes to AUTHENTICATE PLAIN.
  ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] ready
    C: a1 AUTHENTICATE PLAIN
  )");
  // Nothing left at all.
  auto none = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready
    PHASE FAILED
  )");
  EXPECT_EQ(none->error().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ImapClientTest, AuthenticateLoginAnswersBothPrompts) {
  Options o = PasswordOptions();
  o.login.mechanism = Mechanism::kLogin;
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=LOGIN] ready
    C: a1 AUTHENTICATE LOGIN
    S: + VXNlcm5hbWU6
    C: YWxpY2U=
    S: + UGFzc3dvcmQ6
    C: c2VjcmV0
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
    S: a2 OK done
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kLogin);
}

TEST(ImapClientTest, AuthenticateCramMd5AnswersTheChallenge) {
  // RFC 2195 section 2's example.
  Options o = PasswordOptions(Security::kPlain);
  o.login.allow_insecure_auth = true;  // without TLS, CRAM-MD5 comes before PLAIN
  o.login.user = "tim";
  o.login.password = Secret("tanstaaftanstaaf");
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=CRAM-MD5] ready
    C: a1 AUTHENTICATE CRAM-MD5
    S: + PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
    C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kCramMd5);
}

// The RFC 7677 example exchange carried by IMAP AUTHENTICATE (without and with SASL-IR).
TEST(ImapClientTest, ScramSha256IsPreferredAndChecksTheServerSignature) {
  Options o = PasswordOptions();
  o.login.user = "user";
  o.login.password = Secret("pencil");
  wire::SetScramNonceForTesting("rOprNGfwEbeRWgbNEkqO");
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=CRAM-MD5 AUTH=SCRAM-SHA-1 AUTH=SCRAM-SHA-256] ready
    C: a1 AUTHENTICATE SCRAM-SHA-256
    S: +
    C: biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=
    S: + cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=
    C: Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSWxqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6N0FuZFZRPQ==
    S: + dj02cnJpVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ==
    C:
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kScramSha256);
  auto with_ir = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=SCRAM-SHA-256] ready
    C: a1 AUTHENTICATE SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=
    S: + cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=
    C: Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSWxqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6N0FuZFZRPQ==
    S: + dj02cnJpVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ==
    C:
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
  )");
  wire::SetScramNonceForTesting("");
}

TEST(ImapClientTest, ScramServerWithTheWrongSignatureOrNoneIsRefused) {
  Options o = PasswordOptions();
  o.login.user = "user";
  o.login.password = Secret("pencil");
  wire::SetScramNonceForTesting("rOprNGfwEbeRWgbNEkqO");
  auto wrong = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=SCRAM-SHA-256] ready
    C: a1 AUTHENTICATE SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=
    S: + cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=
    C: Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSWxqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6N0FuZFZRPQ==
    S: + dj1BQUFBVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ==
    PHASE FAILED
  )");
  EXPECT_EQ(wrong->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(GetPayloadText(wrong->error(), kReasonPayload).value_or(""),
            "SERVER_SIGNATURE_MISMATCH");
  auto none = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=SCRAM-SHA-256] ready
    C: a1 AUTHENTICATE SCRAM-SHA-256 biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=
    S: + cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRiRrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=
    C: Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSWxqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6N0FuZFZRPQ==
    S: a1 OK Logged in
    PHASE FAILED
  )");
  EXPECT_EQ(none->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(GetPayloadText(none->error(), kReasonPayload).value_or(""), "SERVER_SIGNATURE_MISSING");
  wire::SetScramNonceForTesting("");
}

TEST(ImapClientTest, MalformedCramMd5ChallengeIsAProtocolViolation) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] ready
    C: a1 AUTHENTICATE CRAM-MD5
    S: + not base64!
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

TEST(ImapClientTest, UnexpectedChallengeAfterPlainIsCancelled) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: + more please
    C: *
    S: a1 BAD Authentication cancelled
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "AUTHENTICATE PLAIN ***");
}

TEST(ImapClientTest, Xoauth2WithSaslIr) {
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kXoauth2)), std::string(R"(
    S: )") + kDovecotGreeting + R"(
    C: a1 AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2stOWYzZQEB
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
    S: a2 OK done
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kXoauth2);
}

TEST(ImapClientTest, Xoauth2WithoutSaslIrWaitsForTheContinuation) {
  ExpectTranscript(Factory(TokenOptions(Mechanism::kXoauth2)), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready
    C: a1 AUTHENTICATE XOAUTH2
    S: +
    C: dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2stOWYzZQEB
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
  )");
}

TEST(ImapClientTest, Xoauth2FailureAnswersTheErrorChallengeWithAnEmptyLine) {
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kXoauth2)), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready
    C: a1 AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2stOWYzZQEB
    S: + eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=
    C:
    S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "AUTHENTICATE XOAUTH2 ***");
  EXPECT_TRUE(absl::StrContains(client->error().message(), R"("status":"401")")) << client->error();
  ExpectNoSecretOutsideOutput(*client);
}

TEST(ImapClientTest, Xoauth2FailureWithoutSaslIr) {
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kXoauth2)), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready
    C: a1 AUTHENTICATE XOAUTH2
    S: +
    C: dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2stOWYzZQEB
    S: + eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=
    C:
    S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
    PHASE FAILED
  )");
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
}

TEST(ImapClientTest, OauthbearerCarriesHostAndPort) {
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kAuto)), std::string(R"(
    S: )") + kDovecotGreeting + R"(
    C: a1 AUTHENTICATE OAUTHBEARER bixhPWFsaWNlLAFob3N0PWltYXAuZXhhbXBsZS5jb20BcG9ydD05OTMBYXV0aD1CZWFyZXIgdG9rLTlmM2UBAQ==
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT INBOX
    S: a2 OK done
    PHASE READY
  )");
  EXPECT_EQ(client->info().mechanism, Mechanism::kOauthbearer);
}

TEST(ImapClientTest, OauthbearerFailureAnswersTheErrorChallengeWithControlA) {
  // RFC 7628 section 3.2.3: "the client MUST then send a response consisting of a single
  // %x01 (control A) character" -- base64 "AQ==".
  auto client = ExpectTranscript(Factory(TokenOptions(Mechanism::kOauthbearer)), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER] ready
    C: a1 AUTHENTICATE OAUTHBEARER bixhPWFsaWNlLAFob3N0PWltYXAuZXhhbXBsZS5jb20BcG9ydD05OTMBYXV0aD1CZWFyZXIgdG9rLTlmM2UBAQ==
    S: + eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=
    C: AQ==
    S: a1 NO [AUTHENTICATIONFAILED] Authentication failed.
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "AUTHENTICATE OAUTHBEARER ***");
}

TEST(ImapClientTest, TemporaryAuthenticationFailureIsUnavailable) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: a1 NO [UNAVAILABLE] Temporary authentication failure.
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "AUTH_UNAVAILABLE");
}

TEST(ImapClientTest, CredentialsOverPlaintextNeedTheOptIn) {
  auto client = ExpectTranscript(Factory(PasswordOptions(Security::kPlain)), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(client->error()), "INSECURE_AUTH_REFUSED");

  Options allowed = PasswordOptions(Security::kPlain);
  allowed.login.allow_insecure_auth = true;
  allowed.login.mechanism = Mechanism::kCommand;
  ExpectTranscript(Factory(allowed), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready
    C: a1 LOGIN "alice" "secret"
  )");
}

TEST(ImapClientTest, NoCredentialsAndNoPreauthIsAnInvalidArgument) {
  Options o;
  o.login.security = Security::kImplicitTls;
  o.login.user = "alice";
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ImapClientTest, FieldsWithLineBreaksFailBeforeAnythingIsWritten) {
  std::vector<Options> bad(6, PasswordOptions());
  bad[0].login.user = "alice\r\na2 DELETE INBOX";
  bad[1].login.password = Secret("x\ny");
  bad[2].login.user = std::string("a\0b", 3);
  bad[3].initial_folder = "INBOX\r\na3 LOGOUT";
  bad[4].login.oauth2_token = Secret("t\r");
  bad[5].initial_folder = "\xff\xfe";  // not UTF-8
  for (const Options& o : bad) {
    auto client = NewClient(o);
    EXPECT_EQ(client->phase(), Phase::kFailed);
    EXPECT_EQ(client->error().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Reason(client->error()), "INVALID_FIELD");
    client->OnBytes("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n");
    EXPECT_EQ(client->TakeOutput(), "");
    EXPECT_EQ(client->phase(), Phase::kFailed);
  }
}

TEST(ImapClientTest, SelectRefusedIsFolderNotFound) {
  Options o = PasswordOptions();
  o.initial_folder = "Archive";
  auto client = ExpectTranscript(Factory(o), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: a1 OK [CAPABILITY IMAP4rev1] Logged in
    C: a2 SELECT Archive
    S: a2 NO [NONEXISTENT] Mailbox doesn't exist: Archive
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Reason(client->error()), "FOLDER_NOT_FOUND");
  EXPECT_EQ(GetPayloadText(client->error(), kServerReplyPayload),
            "a2 NO [NONEXISTENT] Mailbox doesn't exist: Archive");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "SELECT Archive");
}

TEST(ImapClientTest, FolderNamesAreQuotedAndEncodedInModifiedUtf7) {
  struct Case {
    const char* folder;
    const char* wire;
  };
  for (const Case& c :
       {Case{"", "INBOX"}, Case{"inbox", "INBOX"}, Case{"Sent Items", R"("Sent Items")"},
        Case{R"(a"b\c)", R"("a\"b\\c")"}, Case{"Entwürfe", "Entw&APw-rfe"}, Case{"R&D", "R&-D"},
        Case{"[Gmail]/Sent Mail", R"("[Gmail]/Sent Mail")"}, Case{"50%", R"("50%")"},
        Case{"Lists/imap]", "Lists/imap]"}}) {
    Options o = PasswordOptions();
    o.initial_folder = c.folder;
    ExpectTranscript(Factory(o), std::string(R"(
      S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
      C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
      S: a1 OK [CAPABILITY IMAP4rev1] Logged in
      C: a2 SELECT )") + c.wire + R"(
      S: a2 OK done
      PHASE READY
    )");
  }
}

// Shared prefix: logged in, SELECT in flight.
constexpr char kUpToSelect[] = R"(
  S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
  C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
  S: a1 OK [CAPABILITY IMAP4rev1] Logged in
  C: a2 SELECT INBOX
)";

TEST(ImapClientTest, LiteralsInUntaggedResponsesAreSkippedByByteCount) {
  // The literal holds a CRLF and text that looks like the tagged reply; only counting
  // bytes tells it apart.
  auto client = ExpectTranscript(Factory(PasswordOptions()), std::string(kUpToSelect) + R"(
    S: * 1 FETCH (UID 7 BODY[HEADER] {12}
    S: a2 OK fake
    S:  BODY[TEXT] {0}
    S:  FLAGS (\Seen))
    S: * 2 FETCH (BODY[] {5}
    S+ ab
    S+ c
    S: de)
    S: * OK [UIDVALIDITY 42] ok
    S: a2 OK [READ-WRITE] done
    PHASE READY
    !noop
    C: a3 NOOP
    S: * 3 FETCH (BODY[] {12}
    S: * BYE fake
    S: )
    S: a3 OK NOOP completed
    PHASE READY
  )");
  EXPECT_TRUE(client->error().ok()) << client->error();
  EXPECT_EQ(client->last_reply(), "a3 OK NOOP completed");
}

TEST(ImapClientTest, UnknownUntaggedResponsesAreIgnored) {
  ExpectTranscript(Factory(PasswordOptions()), std::string(kUpToSelect) + R"(
    S: * LIST (\HasNoChildren) "/" INBOX
    S: * ID ("name" "Dovecot")
    S: * ENABLED CONDSTORE
    S: * NO [ALERT] disk almost full
    S: * BAD something odd
    S: * XWEIRD
    S: * 12 XANYTHING
    S: * OK [UIDVALIDITY notanumber] hm
    S: a2 OK done
    PHASE READY
  )");
}

TEST(ImapClientTest, UnsolicitedByeWhenReadyClosesTheSession) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), std::string(kUpToSelect) + R"(
    S: a2 OK done
    PHASE READY
    S: * BYE Disconnected for inactivity.
    PHASE CLOSED
  )");
  EXPECT_EQ(client->last_reply(), "* BYE Disconnected for inactivity.");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "SERVER_CLOSED");
}

TEST(ImapClientTest, ByeDuringNoopClosesTheSession) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), std::string(kUpToSelect) + R"(
    S: a2 OK done
    !noop
    C: a3 NOOP
    S: * BYE Server shutting down.
    PHASE CLOSED
  )");
  EXPECT_EQ(client->last_reply(), "* BYE Server shutting down.");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload), "NOOP");
}

TEST(ImapClientTest, ByeDuringLoginFails) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), std::string(kUpToSelect) + R"(
    S: * BYE Internal error
    PHASE FAILED
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "SERVER_CLOSED");
  EXPECT_EQ(client->last_reply(), "* BYE Internal error");
}

TEST(ImapClientTest, NoopRefusalIsReportedAndLeavesTheSessionReady) {
  auto client = ExpectTranscript(Factory(PasswordOptions()), std::string(kUpToSelect) + R"(
    S: a2 OK done
    !noop
    C: a3 NOOP
    S: a3 NO not now
    PHASE READY
  )");
  EXPECT_EQ(client->error().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(client->error()), "COMMAND_REFUSED");
  EXPECT_EQ(GetPayloadText(client->error(), kServerReplyPayload), "a3 NO not now");
  client->StartNoop();
  EXPECT_EQ(client->TakeOutput(), "a4 NOOP\r\n");
  client->OnBytes("a4 OK fine\r\n");
  EXPECT_TRUE(client->error().ok());
}

TEST(ImapClientTest, CommandsOutsideReadyAreRefusedWithoutWriting) {
  auto client = NewClient(PasswordOptions());
  client->StartNoop();
  client->StartLogout();
  EXPECT_EQ(client->TakeOutput(), "");
  EXPECT_EQ(client->phase(), Phase::kLoggingIn);
  EXPECT_EQ(client->error().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ImapClientTest, ResponsesThatDoNotFitAreProtocolViolations) {
  for (const char* bad : {"a9 OK wrong tag", "a2 MAYBE", "a2", "garbage"}) {
    auto client = NewClient(PasswordOptions());
    ASSERT_TRUE(RunTranscript(*client, kUpToSelect, false));
    client->OnBytes(std::string(bad) + "\r\n");
    EXPECT_EQ(client->phase(), Phase::kFailed) << bad;
    EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION") << bad;
  }
  // A tagged reply with no command in flight.
  auto idle = NewClient(PasswordOptions());
  ASSERT_TRUE(RunTranscript(*idle, std::string(kUpToSelect) + "S: a2 OK done\n", false));
  idle->OnBytes("a2 OK again\r\n");
  EXPECT_EQ(idle->phase(), Phase::kFailed);
}

// Options with the small limits the hostile-input tests run against.
Options SmallLimits() {
  Options o = PasswordOptions();
  o.limits.max_line = 64 * 1024;
  o.limits.max_response_text = 256 * 1024;
  return o;
}

TEST(ImapClientTest, OverlongLineFailsWithoutUnboundedGrowth) {
  auto client = NewClient(SmallLimits());
  std::string chunk(4096, 'x');
  client->OnBytes("* OK ready\r\n");
  client->TakeOutput();
  for (int i = 0; i < 64 && client->phase() != Phase::kFailed; ++i) client->OnBytes(chunk);
  EXPECT_EQ(client->phase(), Phase::kFailed);
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

TEST(ImapClientTest, EndlessResponseOfEmptyLiteralsFails) {
  auto client = NewClient(SmallLimits());
  ASSERT_TRUE(RunTranscript(*client, kUpToSelect, false));
  client->OnBytes("* 1 FETCH (X {0}\r\n");
  std::string more;
  for (int i = 0; i < 1000; ++i) more += std::string(300, 'y') + " {0}\r\n";
  for (int i = 0; i < 10 && client->phase() != Phase::kFailed; ++i) client->OnBytes(more);
  EXPECT_EQ(client->phase(), Phase::kFailed);
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
}

TEST(ImapClientTest, HugeLiteralIsSkippedWithoutBufferingIt) {
  auto client = NewClient(PasswordOptions());
  ASSERT_TRUE(RunTranscript(*client, kUpToSelect, false));
  client->OnBytes("* 1 FETCH (BODY[] {10000000}\r\n");
  std::string chunk(1 << 16, 'z');
  size_t left = 10000000;
  while (left > 0) {
    size_t n = std::min(left, chunk.size());
    client->OnBytes(absl::string_view(chunk).substr(0, n));
    left -= n;
  }
  client->OnBytes(")\r\na2 OK done\r\n");
  EXPECT_EQ(client->phase(), Phase::kReady) << client->error();
}

TEST(ImapClientTest, RandomServerBytesNeverCrash) {
  // A small deterministic fuzz: fragments of IMAP syntax glued at random, cut at random.
  const std::vector<std::string> pieces = {"* ",         "a1 ",
                                           "a2 ",        "+ ",
                                           "OK ",        "NO ",
                                           "BAD ",       "BYE ",
                                           "PREAUTH ",   "[CAPABILITY ",
                                           "IMAP4rev1 ", "AUTH=PLAIN ",
                                           "SASL-IR ",   "STARTTLS ",
                                           "LITERAL+ ",  "]",
                                           "{3}\r\n",    "{99999999999}\r\n",
                                           "{",          "}",
                                           "\r\n",       "\n",
                                           "\r",         "EXISTS",
                                           "FLAGS (",    ")",
                                           "42 ",        std::string(1, '\0'),
                                           "\xff",       "AQ==",
                                           "+\r\n",      "CAPABILITY "};
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    Options o = PasswordOptions(seed % 3 == 0 ? Security::kStartTls : Security::kImplicitTls);
    if (seed % 5 == 0) o.login.mechanism = Mechanism::kCommand;
    auto client = NewClient(o);
    std::string data;
    for (int i = 0; i < 200; ++i) data += pieces[rng() % pieces.size()];
    size_t pos = 0;
    while (pos < data.size()) {
      size_t n = 1 + rng() % 17;
      client->OnBytes(absl::string_view(data).substr(pos, n));
      client->TakeOutput();
      if (client->phase() == Phase::kNeedTls) client->OnTlsEstablished();
      if (client->phase() == Phase::kReady) client->StartNoop();
      pos += n;
    }
    ExpectNoSecretOutsideOutput(*client);
  }
}

}  // namespace
}  // namespace mailpool::imap
