// SendService through gRPC against the real Postfix submission port (STARTTLS + AUTH as
// MAILPOOL_TEST_USER), reading what was sent back from bob's (MAILPOOL_TEST_USER2) Dovecot
// mailbox over a POP3 session through the daemon's MailboxService. Each test marks its
// subjects with its own random tag, so tests may run in parallel.
#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::HasSubstr;

std::string RandomTag() {
  std::random_device rd;
  return absl::StrCat(absl::Hex(rd()), absl::Hex(rd()));
}

class SendTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    send_ = v1::SendService::NewStub(channel_);
    mailbox_ = v1::MailboxService::NewStub(channel_);
    tag_ = RandomTag();
  }
  void TearDown() override {
    for (const std::string& s : open_) Close(s);
    send_.reset();
    mailbox_.reset();
    DaemonTest::TearDown();
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return ctx;
  }

  // An SMTP session on the submission port: STARTTLS, AUTH as alice.
  std::string StartSmtp(bool asynchronous = false) {
    v1::StartSessionRequest request;
    *request.mutable_smtp()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_SMTP_PORT"), v1::SECURITY_STARTTLS);
    *request.mutable_smtp()->mutable_credentials() = Password();
    request.mutable_smtp()->set_asynchronous(asynchronous);
    v1::Session session;
    grpc::Status status = Start(request, &session);
    EXPECT_TRUE(status.ok()) << status.error_message();
    open_.push_back(session.id());
    return session.id();
  }

  std::string StartBobPop3() {
    v1::StartSessionRequest request;
    *request.mutable_pop3()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_POP3S_PORT"), v1::SECURITY_IMPLICIT_TLS);
    v1::Credentials c;
    c.set_user(Env("MAILPOOL_TEST_USER2"));
    c.set_password(Env("MAILPOOL_TEST_PASSWORD2"));
    *request.mutable_pop3()->mutable_credentials() = c;
    v1::Session session;
    grpc::Status status = Start(request, &session);
    EXPECT_TRUE(status.ok()) << status.error_message();
    open_.push_back(session.id());
    return session.id();
  }

  // This test's messages (by the subject marker), oldest first.
  std::vector<v1::EmailMessage> Mine(const std::string& session) {
    return FindBySubject(*mailbox_, session, tag_);
  }

  // Refreshes until `count` of this test's messages are visible (bounded).
  std::vector<v1::EmailMessage> WaitForMine(const std::string& session, size_t count) {
    return WaitForSubject(*mailbox_, session, tag_, count, std::chrono::seconds(30));
  }

  v1::EmailMessage Full(const std::string& session, const std::string& id) {
    v1::GetMessageRequest request;
    request.set_session(session);
    request.set_id(id);
    request.set_view(v1::MESSAGE_VIEW_FULL);
    v1::GetMessageResponse response;
    grpc::Status status = mailbox_->GetMessage(Ctx().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.message();
  }

  void CleanUp(const std::string& session) {
    std::vector<v1::EmailMessage> mine = Mine(session);
    if (mine.empty()) return;
    v1::DeleteMessagesRequest request;
    request.set_session(session);
    for (const auto& m : mine) request.add_ids(m.id());
    v1::DeleteMessagesResponse response;
    EXPECT_TRUE(mailbox_->DeleteMessages(Ctx().get(), request, &response).ok());
    v1::RefreshRequest refresh;
    refresh.set_session(session);
    v1::RefreshResponse r;
    EXPECT_TRUE(mailbox_->Refresh(Ctx().get(), refresh, &r).ok());
  }

  v1::EmailMessage Structured(const std::string& subject) {
    v1::EmailMessage m;
    m.mutable_from()->set_name("Alice Émile");
    m.mutable_from()->set_address(Env("MAILPOOL_TEST_USER"));
    v1::Address* to = m.add_to();
    to->set_name("Bob Ødegård");
    to->set_address(Env("MAILPOOL_TEST_USER2"));
    m.set_subject(subject);
    return m;
  }

  std::unique_ptr<v1::SendService::Stub> send_;
  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::string tag_;
  std::vector<std::string> open_;
};

TEST_F(SendTest, SendsStructuredNonAsciiMessageWithAttachmentAndReadsItBack) {
  std::string smtp = StartSmtp();
  {
    // Postfix offers CHUNKING: this message goes in one BDAT chunk, not DATA (the line
    // starting with '.' below is then sent as is, not dot-stuffed). aiosmtpd does not: it
    // goes through DATA, dot-stuffed.
    v1::GetSessionRequest get;
    get.set_session(smtp);
    v1::GetSessionResponse info;
    ASSERT_TRUE(sessions_->GetSession(Ctx().get(), get, &info).ok());
    ASSERT_EQ(info.session().connections_size(), 1);
    if (SmtpServer() == "postfix") {
      EXPECT_THAT(info.session().connections(0).capabilities(), ::testing::Contains("CHUNKING"));
    } else {
      EXPECT_THAT(info.session().connections(0).capabilities(),
                  ::testing::Not(::testing::Contains("CHUNKING")));
    }
  }
  std::string subject = absl::StrCat("mp-send ", tag_, " Grüße, 東京 ☃");
  v1::EmailMessage m = Structured(subject);
  const std::string body = "Bonjour Bob,\r\nvoilà le fichier.\r\n.une ligne avec un point\r\n";
  m.set_text_body(body);
  v1::Attachment* a = m.add_attachments();
  a->set_file_name("résumé.bin");
  a->set_content_type("application/octet-stream");
  std::string content;
  for (int i = 0; i < 70000; ++i) content.push_back(static_cast<char>(i * 7 % 256));
  a->set_content(content);

  v1::SendMessageRequest request;
  request.set_session(smtp);
  *request.mutable_message() = m;
  v1::SendMessageResponse response;
  grpc::Status status = send_->SendMessage(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.state(), v1::SEND_STATE_SENT);
  ASSERT_EQ(response.recipients_size(), 1);
  EXPECT_TRUE(response.recipients(0).accepted());
  EXPECT_EQ(response.recipients(0).reply_code(), 250u);
  EXPECT_THAT(response.server_reply(), HasSubstr("250"));
  EXPECT_FALSE(response.message_id().empty());
  EXPECT_GT(response.size(), content.size());

  std::string pop = StartBobPop3();
  std::vector<v1::EmailMessage> mine = WaitForMine(pop, 1);
  ASSERT_EQ(mine.size(), 1u);
  v1::EmailMessage got = Full(pop, mine[0].id());
  EXPECT_EQ(got.subject(), subject);
  EXPECT_EQ(got.text_body(), body);
  EXPECT_EQ(got.message_id(), response.message_id());
  EXPECT_EQ(got.from().name(), "Alice Émile");
  ASSERT_EQ(got.attachments_size(), 1);
  EXPECT_EQ(got.attachments(0).file_name(), "résumé.bin");
  EXPECT_EQ(got.attachments(0).content(), content);
  CleanUp(pop);
}

TEST_F(SendTest, ReportsEachRecipientWhenOneIsUnknown) {
  std::string smtp = StartSmtp();
  v1::EmailMessage m = Structured(absl::StrCat("mp-send ", tag_, " partial"));
  m.set_text_body("to two recipients\r\n");
  const std::string unknown = absl::StrCat("nobody-", tag_, "@", Env("MAILPOOL_TEST_DOMAIN"));
  m.add_cc()->set_address(unknown);
  v1::SendMessageRequest request;
  request.set_session(smtp);
  *request.mutable_message() = m;
  v1::SendMessageResponse response;
  grpc::Status status = send_->SendMessage(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.recipients_size(), 2);
  EXPECT_EQ(response.recipients(0).address(), Env("MAILPOOL_TEST_USER2"));
  EXPECT_TRUE(response.recipients(0).accepted());
  EXPECT_EQ(response.recipients(1).address(), unknown);
  EXPECT_FALSE(response.recipients(1).accepted());
  EXPECT_EQ(response.recipients(1).reply_code(), 550u);
  EXPECT_EQ(response.recipients(1).enhanced_status(), "5.1.1");

  // Every recipient refused: FAILED_PRECONDITION, and the session still sends afterwards.
  request.mutable_envelope()->add_rcpt_to(unknown);
  grpc::ClientContext ctx;
  status = send_->SendMessage(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("550"));
  {
    // send.proto: the refusal's ErrorDetail carries the server's reply and the command.
    v1::ErrorDetail detail = ErrorDetailOf(ctx);
    EXPECT_EQ(detail.reason(), "SERVER_REJECTED");
    EXPECT_EQ(detail.protocol(), v1::PROTOCOL_SMTP);
    EXPECT_EQ(detail.command(), absl::StrCat("RCPT TO:<", unknown, ">"));
    EXPECT_THAT(detail.server_reply(), ::testing::StartsWith("550 5.1.1"));
  }
  // One refused among accepted ones with require_all_recipients: the same detail.
  request.clear_envelope();
  request.set_require_all_recipients(true);
  grpc::ClientContext all_ctx;
  status = send_->SendMessage(&all_ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ErrorDetailOf(all_ctx).command(), absl::StrCat("RCPT TO:<", unknown, ">"));
  EXPECT_THAT(ErrorDetailOf(all_ctx).server_reply(), ::testing::StartsWith("550 5.1.1"));
  request.set_require_all_recipients(false);
  request.clear_envelope();
  response.Clear();
  status = send_->SendMessage(Ctx().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();

  std::string pop = StartBobPop3();
  EXPECT_EQ(WaitForMine(pop, 2).size(), 2u);
  CleanUp(pop);
}

// HEADER_ENCODING_UTF8 (RFC 6532) header fields travel with SMTPUTF8 (RFC 6531), and a
// server that does not offer it gets nothing: FAILED_PRECONDITION before any MAIL.
TEST_F(SendTest, Utf8HeaderFieldsTravelWithSmtpUtf8OrAreRefused) {
  std::string smtp = StartSmtp();
  const std::string subject = absl::StrCat("mp-send ", tag_, " Grüße aus 東京");
  v1::SendMessageRequest request;
  request.set_session(smtp);
  *request.mutable_message() = Structured(subject);
  request.mutable_message()->set_text_body("utf-8 headers\r\n");
  request.mutable_build_options()->set_header_encoding(v1::HEADER_ENCODING_UTF8);
  v1::SendMessageResponse response;
  // Postfix takes it with SMTPUTF8 (the MAIL parameter itself is checked in the transcript
  // test Utf8HeaderFieldsSendSmtpUtf8). It cannot hand it on to the test Dovecot: Dovecot
  // 2.3's LMTP does not offer SMTPUTF8, so Postfix bounces it there, as RFC 6531 asks.
  // (aiosmtpd's relay hands it on without the parameter.)
  grpc::Status status = send_->SendMessage(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.state(), v1::SEND_STATE_SENT);
  ASSERT_EQ(response.recipients_size(), 1);
  EXPECT_TRUE(response.recipients(0).accepted());

  // The same submission service without SMTPUTF8 (Postfix, smtpd_discard_ehlo_keywords).
  v1::StartSessionRequest start;
  *start.mutable_smtp()->mutable_server() =
      Endpoint(EnvPort("MAILPOOL_TEST_ASCII_SMTP_PORT"), v1::SECURITY_STARTTLS);
  *start.mutable_smtp()->mutable_credentials() = Password();
  v1::Session ascii;
  ASSERT_TRUE(Start(start, &ascii).ok());
  open_.push_back(ascii.id());
  request.set_session(ascii.id());
  grpc::ClientContext ctx;
  status = send_->SendMessage(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ErrorDetailOf(ctx).reason(), "EXTENSION_NOT_OFFERED");
  EXPECT_THAT(status.error_message(), HasSubstr("SMTPUTF8"));
  // RFC 2047 encoded words need no extension: the same message goes.
  request.mutable_build_options()->set_header_encoding(v1::HEADER_ENCODING_RFC2047);
  status = send_->SendMessage(Ctx().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // The test relay in front of aiosmtpd hands the first one on too (without SMTPUTF8).
  const size_t delivered = SmtpServer() == "postfix" ? 1 : 2;
  std::string pop = StartBobPop3();
  std::vector<v1::EmailMessage> mine = WaitForMine(pop, delivered);
  ASSERT_EQ(mine.size(), delivered);
  for (const v1::EmailMessage& m : mine) EXPECT_EQ(Full(pop, m.id()).subject(), subject);
  CleanUp(pop);
}

TEST_F(SendTest, SendsRawSourceWithBccRemoved) {
  std::string smtp = StartSmtp();
  const std::string subject = absl::StrCat("mp-send ", tag_, " raw");
  std::string source = absl::StrCat(
      "From: ", Env("MAILPOOL_TEST_USER"), "\nTo: ", Env("MAILPOOL_TEST_USER2"),
      "\nBcc: ", Env("MAILPOOL_TEST_USER2"), ",\n  hidden@example.test\nSubject: ", subject,
      "\nMessage-ID: <", tag_, ".raw@example.test>\nMIME-Version: 1.0\n",
      "Content-Type: text/plain; charset=us-ascii\n\nline one\n.dotted\n..two\n");
  v1::SendMessageRequest request;
  request.set_session(smtp);
  request.set_source(source);
  // No envelope: recipients from To/Cc/Bcc (hidden@example.test is refused, bob is not),
  // and the Bcc field, folded over two lines, leaves the bytes sent.
  v1::SendMessageResponse response;
  grpc::Status status = send_->SendMessage(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.message_id(), absl::StrCat(tag_, ".raw@example.test"));
  ASSERT_EQ(response.recipients_size(), 2);
  EXPECT_TRUE(response.recipients(0).accepted());
  EXPECT_EQ(response.recipients(1).address(), "hidden@example.test");

  std::string pop = StartBobPop3();
  std::vector<v1::EmailMessage> mine = WaitForMine(pop, 1);
  ASSERT_EQ(mine.size(), 1u);
  v1::EmailMessage got = Full(pop, mine[0].id());
  EXPECT_EQ(got.subject(), subject);
  EXPECT_EQ(got.text_body(), "line one\r\n.dotted\r\n..two\r\n");
  EXPECT_EQ(got.bcc_size(), 0);
  for (const v1::Header& h : got.headers()) EXPECT_NE(absl::AsciiStrToLower(h.name()), "bcc");
  CleanUp(pop);
}

TEST_F(SendTest, RefusesBadAddressesBeforeSending) {
  std::string smtp = StartSmtp();
  v1::SendMessageRequest request;
  request.set_session(smtp);
  request.set_source("Subject: x\r\n\r\nx\r\n");
  request.mutable_envelope()->set_mail_from(Env("MAILPOOL_TEST_USER"));
  request.mutable_envelope()->add_rcpt_to("bob@example.test>\r\nRSET");
  v1::SendMessageResponse response;
  grpc::ClientContext ctx;
  grpc::Status status = send_->SendMessage(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SendTest, CheckAddressSyntaxAndStrict) {
  struct Case {
    const char* address;
    v1::CheckMode mode;
    v1::CheckResult result;
  };
  const Case cases[] = {
      {"alice@example.com", v1::CHECK_MODE_SYNTAX, v1::CHECK_RESULT_VALID},
      {"Alice Martin <alice@example.com>", v1::CHECK_MODE_SYNTAX, v1::CHECK_RESULT_VALID},
      {"\"a b\"@example.com", v1::CHECK_MODE_SYNTAX, v1::CHECK_RESULT_VALID},
      {"alice@localhost", v1::CHECK_MODE_SYNTAX, v1::CHECK_RESULT_VALID},
      {"alice.example.com", v1::CHECK_MODE_SYNTAX, v1::CHECK_RESULT_INVALID},
      {"al..ice@example.com", v1::CHECK_MODE_SYNTAX, v1::CHECK_RESULT_INVALID},
      {"alice@", v1::CHECK_MODE_SYNTAX, v1::CHECK_RESULT_INVALID},
      {"alice@localhost", v1::CHECK_MODE_STRICT, v1::CHECK_RESULT_INVALID},
      {"Alice <alice@example.com>", v1::CHECK_MODE_STRICT, v1::CHECK_RESULT_INVALID},
      {"\"a b\"@example.com", v1::CHECK_MODE_STRICT, v1::CHECK_RESULT_INVALID},
      {"alice@-bad.example.com", v1::CHECK_MODE_STRICT, v1::CHECK_RESULT_INVALID},
      {"jörg@bücher.example", v1::CHECK_MODE_STRICT, v1::CHECK_RESULT_VALID},
      {"alice@[192.0.2.1]", v1::CHECK_MODE_STRICT, v1::CHECK_RESULT_VALID},
      {"alice+tag@mail.example.com", v1::CHECK_MODE_STRICT, v1::CHECK_RESULT_VALID},
  };
  for (const Case& c : cases) {
    v1::CheckAddressRequest request;
    request.set_address(c.address);
    request.set_mode(c.mode);
    v1::CheckAddressResponse response;
    grpc::Status status = send_->CheckAddress(Ctx().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.result(), c.result) << c.address << " " << response.reason();
  }
  v1::CheckAddressRequest request;
  request.set_address("Alice Martin <alice@example.com>");
  v1::CheckAddressResponse response;
  ASSERT_TRUE(send_->CheckAddress(Ctx().get(), request, &response).ok());
  EXPECT_EQ(response.parsed().name(), "Alice Martin");
  EXPECT_EQ(response.parsed().address(), "alice@example.com");
}

TEST_F(SendTest, CheckAddressServerAsksTheSession) {
  std::string smtp = StartSmtp();
  v1::CheckAddressRequest request;
  request.set_session(smtp);
  request.set_mode(v1::CHECK_MODE_SERVER);
  request.set_address(Env("MAILPOOL_TEST_USER2"));
  v1::CheckAddressResponse response;
  grpc::Status status = send_->CheckAddress(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.result(), v1::CHECK_RESULT_VALID) << response.server_reply();
  EXPECT_EQ(response.reply_code(), 250u);
  request.set_address(absl::StrCat("nobody-", tag_, "@", Env("MAILPOOL_TEST_DOMAIN")));
  status = send_->CheckAddress(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.result(), v1::CHECK_RESULT_INVALID);
  EXPECT_EQ(response.reply_code(), 550u);
}

TEST_F(SendTest, CheckAddressUsesVrfyOnlyWhenAsked) {
  std::string smtp = StartSmtp();
  v1::CheckAddressRequest request;
  request.set_session(smtp);
  request.set_mode(v1::CHECK_MODE_SERVER);
  request.set_address(Env("MAILPOOL_TEST_USER2"));
  request.set_allow_vrfy(true);
  v1::CheckAddressResponse response;
  grpc::Status status = send_->CheckAddress(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Postfix answers VRFY with 252 ("cannot VRFY, but will accept"); RCPT would say 250.
  EXPECT_EQ(response.reply_code(), 252u) << response.server_reply();
  EXPECT_EQ(response.result(), v1::CHECK_RESULT_UNKNOWN);
  request.set_address(absl::StrCat("nobody-", tag_, "@", Env("MAILPOOL_TEST_DOMAIN")));
  status = send_->CheckAddress(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.result(), v1::CHECK_RESULT_INVALID);
  EXPECT_EQ(response.reply_code(), 550u);
  // Not asked: the RCPT probe, never VRFY.
  request.set_allow_vrfy(false);
  request.set_address(Env("MAILPOOL_TEST_USER2"));
  status = send_->CheckAddress(Ctx().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.reply_code(), 250u);
  EXPECT_EQ(response.result(), v1::CHECK_RESULT_VALID);
}

TEST_F(SendTest, CombinedPop3SmtpSessionSendsOverItsSmtpLinkAndReadsItBack) {
  v1::StartSessionRequest combined;
  *combined.mutable_pop3_smtp()->mutable_pop3() =
      Endpoint(EnvPort("MAILPOOL_TEST_POP3S_PORT"), v1::SECURITY_IMPLICIT_TLS);
  *combined.mutable_pop3_smtp()->mutable_smtp() =
      Endpoint(EnvPort("MAILPOOL_TEST_SMTP_PORT"), v1::SECURITY_STARTTLS);
  v1::Credentials bob;
  bob.set_user(Env("MAILPOOL_TEST_USER2"));
  bob.set_password(Env("MAILPOOL_TEST_PASSWORD2"));
  *combined.mutable_pop3_smtp()->mutable_credentials() = bob;
  v1::Session session;
  grpc::Status status = Start(combined, &session);
  ASSERT_TRUE(status.ok()) << status.error_message();
  open_.push_back(session.id());

  v1::EmailMessage m;
  m.mutable_from()->set_address(Env("MAILPOOL_TEST_USER2"));
  m.add_to()->set_address(Env("MAILPOOL_TEST_USER2"));
  const std::string subject = absl::StrCat("mp-send ", tag_, " to myself");
  m.set_subject(subject);
  m.set_text_body("note to self\r\n");
  v1::SendMessageRequest request;
  // Addressed through the routing header only.
  *request.mutable_message() = m;
  auto ctx = Ctx();
  ctx->AddMetadata("x-mailpool-session", session.id());
  v1::SendMessageResponse response;
  status = send_->SendMessage(ctx.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.state(), v1::SEND_STATE_SENT);

  std::vector<v1::EmailMessage> mine = WaitForMine(session.id(), 1);
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0].subject(), subject);
  CleanUp(session.id());
}

TEST_F(SendTest, ConcurrentSendsOnOneSessionRunOneAfterAnother) {
  std::string smtp = StartSmtp();
  constexpr int kThreads = 4;
  constexpr int kEach = 5;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        v1::EmailMessage m = Structured(absl::StrCat("mp-send ", tag_, " concurrent ", t, ".", i));
        m.set_text_body("concurrent\r\n");
        v1::SendMessageRequest request;
        request.set_session(smtp);
        *request.mutable_message() = m;
        v1::SendMessageResponse response;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        grpc::Status status = send_->SendMessage(&ctx, request, &response);
        EXPECT_TRUE(status.ok()) << status.error_message();
        if (status.ok()) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  std::string pop = StartBobPop3();
  EXPECT_EQ(WaitForMine(pop, kThreads * kEach).size(), static_cast<size_t>(kThreads * kEach));
  CleanUp(pop);
}

TEST_F(SendTest, ManySendsOnOneWarmSession) {
  std::string smtp = StartSmtp();
  constexpr int kCount = 30;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCount; ++i) {
    v1::EmailMessage m = Structured(absl::StrCat("mp-send ", tag_, " bulk ", i));
    m.set_text_body("bulk\r\n");
    v1::SendMessageRequest request;
    request.set_session(smtp);
    *request.mutable_message() = m;
    v1::SendMessageResponse response;
    grpc::Status status = send_->SendMessage(Ctx().get(), request, &response);
    ASSERT_TRUE(status.ok()) << i << ": " << status.error_message();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ RATE     ] %d synchronous sends in %.2f s: %.1f messages/s\n", kCount, seconds,
              kCount / seconds);
  std::string pop = StartBobPop3();
  EXPECT_EQ(WaitForMine(pop, kCount).size(), static_cast<size_t>(kCount));
  CleanUp(pop);
}

}  // namespace
}  // namespace mailpool::testing
