// Fixture of the recovery suites (recovery_itest, restart_itest): a daemon with quick
// reconnect backoff, sessions of erin (MAILPOOL_TEST_USER5) against Dovecot/Postfix or a
// FaultProxy in front of them, and polling helpers (no sleeps).
#ifndef MAILPOOL_TESTS_INTEGRATION_RECOVERY_FIXTURE_H_
#define MAILPOOL_TESTS_INTEGRATION_RECOVERY_FIXTURE_H_

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {

class RecoveryTest : public DaemonTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    options.pool.link.backoff.initial = absl::Milliseconds(20);
    options.pool.link.backoff.max = absl::Milliseconds(200);
  }
  void SetUp() override {
    DaemonTest::SetUp();
    mailbox_ = v1::MailboxService::NewStub(channel_);
    send_ = v1::SendService::NewStub(channel_);
  }
  void TearDown() override {
    for (const std::string& s : open_) Close(s);
    mailbox_.reset();
    send_.reset();
    DaemonTest::TearDown();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 60) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ctx;
  }

  v1::Credentials Erin() const {
    v1::Credentials c;
    c.set_user(Env("MAILPOOL_TEST_USER5"));
    c.set_password(Env("MAILPOOL_TEST_PASSWORD5"));
    return c;
  }

  // POP3 or SMTP session of erin over STARTTLS to 127.0.0.1:`port`.
  std::string StartErin(bool pop3, int port) {
    v1::StartSessionRequest request;
    auto* p =
        pop3 ? request.mutable_pop3()->mutable_server() : request.mutable_smtp()->mutable_server();
    *p = Endpoint(port, v1::SECURITY_STARTTLS);
    *(pop3 ? request.mutable_pop3()->mutable_credentials()
           : request.mutable_smtp()->mutable_credentials()) = Erin();
    v1::Session session;
    grpc::Status status = Start(request, &session);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (status.ok()) open_.push_back(session.id());
    return session.id();
  }

  v1::Session Get(const std::string& id) {
    v1::GetSessionRequest request;
    request.set_session(id);
    v1::GetSessionResponse response;
    grpc::Status status = sessions_->GetSession(Ctx().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.session();
  }

  // Polls GetSession until the session is in `state` (true) or 30 s passed (false).
  bool WaitState(const std::string& id, v1::SessionState state) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
      if (Get(id).state() == state) return true;
      std::this_thread::yield();
    }
    return false;
  }

  grpc::Status MailboxStatus(const std::string& id, v1::GetMailboxStatusResponse* out = nullptr) {
    v1::GetMailboxStatusRequest request;
    request.set_session(id);
    v1::GetMailboxStatusResponse response;
    grpc::Status status = mailbox_->GetMailboxStatus(Ctx().get(), request, &response);
    if (out) *out = response;
    return status;
  }

  v1::SendMessageRequest Mail(const std::string& session, const std::string& subject) {
    v1::SendMessageRequest request;
    request.set_session(session);
    v1::EmailMessage* m = request.mutable_message();
    m->mutable_from()->set_address(Env("MAILPOOL_TEST_USER5"));
    m->add_to()->set_address(Env("MAILPOOL_TEST_USER5"));
    m->set_subject(subject);
    m->set_text_body("recovery test\r\n");
    return request;
  }

  grpc::Status Send(const std::string& session, const std::string& subject,
                    grpc::ClientContext* ctx = nullptr) {
    v1::SendMessageResponse response;
    return send_->SendMessage(ctx ? ctx : Ctx().get(), Mail(session, subject), &response);
  }

  // A subject marker unique to this test run.
  std::string Tag() const {
    return absl::StrCat("recovery-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "-",
                        std::chrono::steady_clock::now().time_since_epoch().count());
  }

  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::unique_ptr<v1::SendService::Stub> send_;
  std::vector<std::string> open_;
};

}  // namespace mailpool::testing

#endif  // MAILPOOL_TESTS_INTEGRATION_RECOVERY_FIXTURE_H_
