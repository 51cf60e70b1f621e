// Mail transactions of smtp::Client (StartSend, StartProbe), as transcripts.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "smtp/client.h"
#include "tests/fakes/transcript.h"

namespace mailpool::smtp {
namespace {

using ::mailpool::testing::Actions;
using ::mailpool::testing::ExpectTranscript;
using ::testing::HasSubstr;
using wire::LoginOptions;
using wire::Security;

LoginOptions Plain() {
  LoginOptions options;
  options.security = Security::kPlain;
  options.ehlo_name = "client.example.test";
  options.host = "smtp.example.test";
  options.port = 25;
  return options;
}

std::unique_ptr<wire::ClientProtocol> New() { return NewClient(Plain()); }

constexpr absl::string_view kLoginPipelining = R"(
  S: 220 mx.example.test ESMTP
  C: EHLO client.example.test
  S: 250-mx.example.test
  S: 250-PIPELINING
  S: 250-SIZE 10240000
  S: 250-8BITMIME
  S: 250 ENHANCEDSTATUSCODES
  PHASE READY
)";

constexpr absl::string_view kLoginBare = R"(
  S: 220 mx.example.test ESMTP
  C: EHLO client.example.test
  S: 250 mx.example.test
  PHASE READY
)";

struct SendRun {
  SendResult result;
  bool called = false;
  bool before_data = false;  // SendOptions::before_data ran
  absl::Status status;
};

Actions SendAction(std::shared_ptr<SendRun> run, Envelope envelope, std::string source,
                   bool require_all = false) {
  return Actions{
      {"send",
       [=](wire::ClientProtocol& c) {
         *run = SendRun();
         SendOptions send_options;
         send_options.require_all_recipients = require_all;
         send_options.before_data = [run] { run->before_data = true; };
         static_cast<Client&>(c).StartSend(envelope, source, std::move(send_options),
                                           [run](SendResult r) {
                                             run->result = std::move(r);
                                             run->called = true;
                                           });
       }},
      {"status", [=](wire::ClientProtocol& c) { run->status = c.error(); }},
  };
}

Envelope Env(std::vector<std::string> rcpts) {
  return Envelope{"alice@example.test", std::move(rcpts), false};
}

TEST(SmtpSendTest, PipelinesMailAndRcptsInOneWrite) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginPipelining, R"(
    !send
    C: MAIL FROM:<alice@example.test> SIZE=22
    C: RCPT TO:<bob@example.test>
    C: RCPT TO:<carol@example.test>
    PHASE BUSY
    S: 250 2.1.0 Ok
    S: 250 2.1.5 Ok
    S: 250 2.1.5 Ok
    C: DATA
    S: 354 End data with <CR><LF>.<CR><LF>
    C: Subject: hi
    C:
    C: hello
    C: .
    S: 250 2.0.0 Ok: queued as 4Xz
    PHASE READY
    !status
  )");
  ExpectTranscript(
      New, script,
      SendAction(run, Env({"bob@example.test", "carol@example.test"}), "Subject: hi\n\nhello"));
  EXPECT_TRUE(run->called);
  EXPECT_TRUE(run->status.ok()) << run->status;
  ASSERT_EQ(run->result.recipients.size(), 2u);
  EXPECT_TRUE(run->result.recipients[0].accepted);
  EXPECT_EQ(run->result.recipients[1].code, 250);
  EXPECT_EQ(run->result.data_reply, "250 2.0.0 Ok: queued as 4Xz");
  EXPECT_EQ(run->result.size, 22u);
}

TEST(SmtpSendTest, WithoutPipeliningWaitsForEachReply) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    C: MAIL FROM:<alice@example.test>
    S: 250 Ok
    C: RCPT TO:<bob@example.test>
    S: 250 Ok
    C: RCPT TO:<carol@example.test>
    S: 250 Ok
    C: DATA
    S: 354 go
    C: a
    C: .
    S: 250 queued
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script,
                   SendAction(run, Env({"bob@example.test", "carol@example.test"}), "a\r\n"));
  EXPECT_TRUE(run->status.ok()) << run->status;
}

TEST(SmtpSendTest, ReportsRefusedRecipientAndSendsToTheOthers) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginPipelining, R"(
    !send
    C: MAIL FROM:<alice@example.test> SIZE=3
    C: RCPT TO:<nobody@example.test>
    C: RCPT TO:<bob@example.test>
    S: 250 2.1.0 Ok
    S: 550 5.1.1 <nobody@example.test>: Recipient address rejected
    S: 250 2.1.5 Ok
    C: DATA
    S: 354 go
    C: a
    C: .
    S: 250 2.0.0 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script,
                   SendAction(run, Env({"nobody@example.test", "bob@example.test"}), "a"));
  EXPECT_TRUE(run->status.ok()) << run->status;
  ASSERT_EQ(run->result.recipients.size(), 2u);
  EXPECT_FALSE(run->result.recipients[0].accepted);
  EXPECT_EQ(run->result.recipients[0].code, 550);
  EXPECT_THAT(run->result.recipients[0].reply, HasSubstr("5.1.1"));
  EXPECT_TRUE(run->result.recipients[1].accepted);
}

TEST(SmtpSendTest, RequireAllRecipientsAbortsWithRset) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginPipelining, R"(
    !send
    C: MAIL FROM:<alice@example.test> SIZE=3
    C: RCPT TO:<nobody@example.test>
    C: RCPT TO:<bob@example.test>
    S: 250 2.1.0 Ok
    S: 550 5.1.1 no such user
    S: 250 2.1.5 Ok
    C: RSET
    S: 250 2.0.0 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(
      New, script,
      SendAction(run, Env({"nobody@example.test", "bob@example.test"}), "a", /*require_all=*/true));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run->status.message(), HasSubstr("550 5.1.1"));
}

TEST(SmtpSendTest, NoRecipientAcceptedFailsAfterRset) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    C: MAIL FROM:<alice@example.test>
    S: 250 Ok
    C: RCPT TO:<nobody@example.test>
    S: 550 5.1.1 no such user
    C: RSET
    S: 250 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"nobody@example.test"}), "a"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run->status.message(), HasSubstr("no recipient was accepted"));
  // The refusal keeps what the caller's ErrorDetail shows: reason, command, reply.
  EXPECT_EQ(GetPayloadText(run->status, kReasonPayload), "SERVER_REJECTED");
  EXPECT_EQ(GetPayloadText(run->status, kCommandPayload), "RCPT TO:<nobody@example.test>");
  EXPECT_EQ(GetPayloadText(run->status, kServerReplyPayload), "550 5.1.1 no such user");
}

TEST(SmtpSendTest, PermanentMailRefusalIsFailedPreconditionAndSessionStaysUsable) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginPipelining, R"(
    !send
    C: MAIL FROM:<alice@example.test> SIZE=3
    C: RCPT TO:<bob@example.test>
    S: 550 5.7.1 sender refused
    S: 503 5.5.1 need MAIL first
    C: RSET
    S: 250 Ok
    PHASE READY
    !status
    !noop
    C: NOOP
    S: 250 Ok
    PHASE READY
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), "a"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run->status.message(), HasSubstr("550 5.7.1 sender refused"));
  EXPECT_FALSE(run->result.recipients[0].accepted);
}

TEST(SmtpSendTest, Mail553IsInvalidArgument) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    C: MAIL FROM:<alice@example.test>
    S: 553 5.1.7 bad sender address syntax
    C: RSET
    S: 250 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), "a"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(SmtpSendTest, TransientFailureAtEndOfDataIsUnavailableThenRset) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    C: MAIL FROM:<alice@example.test>
    S: 250 Ok
    C: RCPT TO:<bob@example.test>
    S: 250 Ok
    C: DATA
    S: 354 go
    C: a
    C: .
    S: 451 4.3.0 try again later
    C: RSET
    S: 250 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), "a"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(run->status.message(), HasSubstr("451 4.3.0"));
}

TEST(SmtpSendTest, TransientRefusalOfDataIsUnavailableThenRset) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    C: MAIL FROM:<alice@example.test>
    S: 250 Ok
    C: RCPT TO:<bob@example.test>
    S: 250 Ok
    C: DATA
    S: 452 4.3.1 insufficient storage
    C: RSET
    S: 250 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), "a"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kUnavailable);
}

TEST(SmtpSendTest, DotStuffsLinesStartingWithAPeriodAndNormalizesLineEnds) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    C: MAIL FROM:<alice@example.test>
    S: 250 Ok
    C: RCPT TO:<bob@example.test>
    S: 250 Ok
    C: DATA
    S: 354 go
    C: ..
    C: ..hidden
    C: a.b
    C: ...
    C: x
    C: .
    S: 250 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script,
                   SendAction(run, Env({"bob@example.test"}), ".\n.hidden\r\na.b\r..\r\nx"));
  EXPECT_TRUE(run->status.ok()) << run->status;
}

TEST(SmtpSendTest, EightBitContentUsesBody8BitMime) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginPipelining, R"(
    !send
    C: MAIL FROM:<alice@example.test> SIZE=24 BODY=8BITMIME
    C: RCPT TO:<bob@example.test>
    S: 250 Ok
    S: 250 Ok
    C: DATA
    S: 354 go
    C: Subject: menu
    C: 
    C: caf\xc3\xa9
    C: .
    S: 250 Ok
    PHASE READY
    !status
  )");
  // The transcript compares bytes; write the expected é through the source instead.
  absl::StrReplaceAll({{"caf\\xc3\\xa9", "caf\xc3\xa9"}}, &script);
  ExpectTranscript(New, script,
                   SendAction(run, Env({"bob@example.test"}), "Subject: menu\r\n\r\ncaf\xc3\xa9"));
  EXPECT_TRUE(run->status.ok()) << run->status;
}

// RFC 6532 header fields travel only with SMTPUTF8 (RFC 6531 section 3.4).
TEST(SmtpSendTest, Utf8HeaderFieldsSendSmtpUtf8) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(R"(
    S: 220 mx.example.test ESMTP
    C: EHLO client.example.test
    S: 250-mx.example.test
    S: 250-8BITMIME
    S: 250 SMTPUTF8
    PHASE READY
    !send
    C: MAIL FROM:<alice@example.test> BODY=8BITMIME SMTPUTF8
    S: 250 Ok
    C: RCPT TO:<bob@example.test>
    S: 250 Ok
    C: DATA
    S: 354 go
    C: Subject: caf\xc3\xa9
    C: 
    C: menu
    C: .
    S: 250 Ok
    PHASE READY
    !status
  )");
  absl::StrReplaceAll({{"caf\\xc3\\xa9", "caf\xc3\xa9"}}, &script);
  ExpectTranscript(New, script,
                   SendAction(run, Env({"bob@example.test"}), "Subject: caf\xc3\xa9\r\n\r\nmenu"));
  EXPECT_TRUE(run->status.ok()) << run->status;
}

TEST(SmtpSendTest, Utf8HeaderFieldsWithoutSmtpUtf8AreRefusedBeforeWriting) {
  for (std::string source : {"Subject: caf\xc3\xa9\r\n\r\nmenu", "Subject: caf\xc3\xa9"}) {
    auto run = std::make_shared<SendRun>();
    std::string script = absl::StrCat(kLoginPipelining, R"(
      !send
      PHASE READY
      !status
    )");
    ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), source));
    EXPECT_EQ(run->status.code(), absl::StatusCode::kFailedPrecondition) << source;
    EXPECT_EQ(GetPayloadText(run->status, kReasonPayload), "EXTENSION_NOT_OFFERED");
    EXPECT_THAT(run->status.message(), HasSubstr("SMTPUTF8"));
  }
}

TEST(SmtpSendTest, EightBitContentWithout8BitMimeIsRefusedBeforeWriting) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script,
                   SendAction(run, Env({"bob@example.test"}), "Subject: menu\r\n\r\ncaf\xc3\xa9"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run->status.message(), HasSubstr("8BITMIME"));
}

TEST(SmtpSendTest, NonAsciiAddressWithoutSmtpUtf8IsRefused) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginPipelining, R"(
    !send
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"j\xc3\xb6rg@example.test"}), "a"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run->status.message(), HasSubstr("SMTPUTF8"));
}

TEST(SmtpSendTest, MessageOverServerSizeIsRefusedBeforeWriting) {
  auto run = std::make_shared<SendRun>();
  std::string script = R"(
    S: 220 mx.example.test ESMTP
    C: EHLO client.example.test
    S: 250-mx.example.test
    S: 250 SIZE 10
    !send
    PHASE READY
    !status
  )";
  ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), "0123456789ab"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kResourceExhausted);
}

TEST(SmtpSendTest, InvalidAddressesAreRefusedBeforeWriting) {
  for (std::string bad : {std::string("bob@example.test>\r\nRSET"), std::string("bob"),
                          std::string("<bob@example.test>"), std::string("bob@"),
                          std::string(65, 'a') + "@example.test", std::string("b\0b@x.y", 7)}) {
    auto run = std::make_shared<SendRun>();
    std::string script = absl::StrCat(kLoginBare, R"(
      !send
      PHASE READY
      !status
    )");
    ExpectTranscript(New, script, SendAction(run, Env({bad}), "a"));
    EXPECT_EQ(run->status.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(SmtpSendTest, ServerClosingDuringTransactionFailsTheClient) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    C: MAIL FROM:<alice@example.test>
    S: 421 4.3.2 shutting down
    PHASE FAILED
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), "a"));
  EXPECT_TRUE(run->called);
}

TEST(SmtpSendTest, ProbeSendsNullSenderRcptAndRset) {
  auto reply = std::make_shared<Reply>();
  Actions actions{{"probe", [=](wire::ClientProtocol& c) {
                     static_cast<Client&>(c).StartProbe("nobody@example.test",
                                                        [=](Reply r) { *reply = r; });
                   }}};
  std::string script = absl::StrCat(kLoginPipelining, R"(
    !probe
    C: MAIL FROM:<>
    C: RCPT TO:<nobody@example.test>
    S: 250 Ok
    S: 550 5.1.1 unknown
    C: RSET
    S: 250 Ok
    PHASE READY
  )");
  ExpectTranscript(New, script, actions);
  EXPECT_EQ(reply->code, 550);
}

TEST(SmtpSendTest, ChunkingSendsOneBdatLastWithoutDotStuffing) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(R"(
    S: 220 mx.example.test ESMTP
    C: EHLO client.example.test
    S: 250-mx.example.test
    S: 250-PIPELINING
    S: 250 CHUNKING
    PHASE READY
    !send
    C: MAIL FROM:<alice@example.test>
    C: RCPT TO:<bob@example.test>
    S: 250 2.1.0 Ok
    S: 250 2.1.5 Ok
    C: BDAT 23 LAST
    C: Subject: hi
    C:
    C: .hello
    S: 250 2.0.0 Ok: queued as 7Q
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script,
                   SendAction(run, Env({"bob@example.test"}), "Subject: hi\n\n.hello"));
  EXPECT_TRUE(run->status.ok()) << run->status;
  EXPECT_TRUE(run->before_data);
  EXPECT_EQ(run->result.data_reply, "250 2.0.0 Ok: queued as 7Q");
  EXPECT_EQ(run->result.size, 23u);
}

TEST(SmtpSendTest, RefusedBdatIsResetAndReported) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(R"(
    S: 220 mx.example.test ESMTP
    C: EHLO client.example.test
    S: 250-mx.example.test
    S: 250 CHUNKING
    PHASE READY
    !send
    C: MAIL FROM:<alice@example.test>
    S: 250 Ok
    C: RCPT TO:<bob@example.test>
    S: 250 Ok
    C: BDAT 3 LAST
    C: a
    S: 554 5.7.1 rejected by policy
    C: RSET
    S: 250 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), "a"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(run->status.message(), HasSubstr("554 5.7.1 rejected by policy"));
}

TEST(SmtpSendTest, BeforeDataRunsOnlyOnceTheServerTakesData) {
  auto run = std::make_shared<SendRun>();
  std::string script = absl::StrCat(kLoginBare, R"(
    !send
    C: MAIL FROM:<alice@example.test>
    S: 250 Ok
    C: RCPT TO:<bob@example.test>
    S: 250 Ok
    C: DATA
    S: 451 4.3.0 not now
    C: RSET
    S: 250 Ok
    PHASE READY
    !status
  )");
  ExpectTranscript(New, script, SendAction(run, Env({"bob@example.test"}), "a"));
  EXPECT_EQ(run->status.code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(run->before_data);  // nothing went out: certainly not delivered
}

TEST(SmtpSendTest, VerifyReturnsTheServersReply) {
  for (const char* reply : {"250 2.1.5 <dave@example.test>", "252 2.0.0 dave@example.test",
                            "550 5.1.1 unknown", "502 5.5.1 VRFY disabled"}) {
    auto got = std::make_shared<Reply>();
    Actions actions{{"vrfy", [=](wire::ClientProtocol& c) {
                       static_cast<Client&>(c).StartVerify("dave@example.test",
                                                           [=](Reply r) { *got = r; });
                     }}};
    std::string script = absl::StrCat(kLoginPipelining, R"(
      !vrfy
      C: VRFY dave@example.test
      S: )",
                                      reply, R"(
      PHASE READY
    )");
    ExpectTranscript(New, script, actions);
    EXPECT_EQ(got->Raw(), reply);
  }
}

TEST(SmtpSendTest, VerifyRefusesInjectionBeforeWriting) {
  auto got = std::make_shared<Reply>();
  Actions actions{{"vrfy", [=](wire::ClientProtocol& c) {
                     static_cast<Client&>(c).StartVerify("a@b\r\nRSET", [=](Reply r) { *got = r; });
                     EXPECT_EQ(c.error().code(), absl::StatusCode::kInvalidArgument);
                   }}};
  std::string script = absl::StrCat(kLoginPipelining, R"(
    !vrfy
    PHASE READY
  )");
  ExpectTranscript(New, script, actions);
  EXPECT_EQ(got->code, 0);
}

}  // namespace
}  // namespace mailpool::smtp
