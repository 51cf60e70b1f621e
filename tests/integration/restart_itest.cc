// Restarts of the real Dovecot and Postfix mid-session (scripts/testservers.sh
// restart-dovecot / restart-postfix): the next call reconnects and succeeds; credentials
// refused after the restart are not retried, until UpdateSession gives new ones. Runs alone
// (RUN_SERIAL): every session of every suite sees the restart.
#include "absl/strings/match.h"
#include "tests/integration/recovery_fixture.h"

namespace mailpool::testing {
namespace {

TEST_F(RecoveryTest, DovecotRestartMidSession) {
  std::string id = StartErin(/*pop3=*/true, EnvPort("MAILPOOL_TEST_POP3_PORT"));
  ASSERT_TRUE(MailboxStatus(id).ok());
  RestartTestServer("restart-dovecot");
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BROKEN));
  grpc::Status status = MailboxStatus(id);
  EXPECT_TRUE(status.ok()) << status.error_message();
  v1::Session s = Get(id);
  EXPECT_EQ(s.state(), v1::SESSION_STATE_READY);
  EXPECT_EQ(s.reconnect_count(), 1u);
}

TEST_F(RecoveryTest, PostfixRestartMidSession) {
  std::string id = StartErin(/*pop3=*/false, EnvPort("MAILPOOL_TEST_SMTP_PORT"));
  std::string tag = Tag();
  ASSERT_TRUE(Send(id, tag).ok());
  RestartTestServer("restart-postfix");
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BROKEN));
  grpc::Status status = Send(id, tag);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Get(id).reconnect_count(), 1u);
}

TEST_F(RecoveryTest, CredentialsRefusedAfterARestartAreNotRetried) {
  std::string id = StartErin(/*pop3=*/true, EnvPort("MAILPOOL_TEST_POP3_PORT"));
  ASSERT_TRUE(MailboxStatus(id).ok());
  {
    PasswordChange change("changed-by-restart-itest");
    RestartTestServer("restart-dovecot");
    ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BROKEN));
    for (int i = 0; i < 3; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::GetMailboxStatusRequest request;
      request.set_session(id);
      v1::GetMailboxStatusResponse response;
      grpc::Status status = mailbox_->GetMailboxStatus(&ctx, request, &response);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
      EXPECT_FALSE(absl::StrContains(status.error_message(), Env("MAILPOOL_TEST_PASSWORD5")));
    }
    v1::Session s = Get(id);
    EXPECT_EQ(s.state(), v1::SESSION_STATE_BROKEN);
    EXPECT_EQ(s.reconnect_count(), 0u);
    EXPECT_FALSE(s.last_error().empty());
  }
  // Restarting the session (with the right password) is the way out.
  EXPECT_TRUE(MailboxStatus(StartErin(/*pop3=*/true, EnvPort("MAILPOOL_TEST_POP3_PORT"))).ok());
}

// The way out of a refusal without restarting the session: UpdateSession with the new
// password logs in at once.
TEST_F(RecoveryTest, NewCredentialsEndARefusalWithinTheUpdate) {
  const std::string changed = "changed-by-restart-itest-update";
  const std::string wrong = "wrong-by-restart-itest-update";
  std::string id = StartErin(/*pop3=*/true, EnvPort("MAILPOOL_TEST_POP3_PORT"));
  ASSERT_TRUE(MailboxStatus(id).ok());
  auto update = [&](const std::string& password, v1::Session* out) {
    v1::UpdateSessionRequest request;
    request.set_session(id);
    *request.mutable_credentials() = Erin();
    request.mutable_credentials()->set_password(password);
    v1::UpdateSessionResponse response;
    grpc::Status status = sessions_->UpdateSession(Ctx(30).get(), request, &response);
    if (out != nullptr) *out = response.session();
    return status;
  };
  auto no_secret = [&](const std::string& text) {
    for (const std::string& secret : {Env("MAILPOOL_TEST_PASSWORD5"), changed, wrong}) {
      EXPECT_FALSE(absl::StrContains(text, secret)) << text;
    }
  };
  {
    PasswordChange change(changed);
    RestartTestServer("restart-dovecot");
    ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BROKEN));
    grpc::Status refused = MailboxStatus(id);
    ASSERT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED) << refused.error_message();

    // A wrong password is tried at once (within the call) and refused: still BROKEN.
    grpc::Status again = update(wrong, nullptr);
    EXPECT_EQ(again.error_code(), grpc::StatusCode::UNAUTHENTICATED) << again.error_message();
    no_secret(again.error_message());
    v1::Session broken = Get(id);
    EXPECT_EQ(broken.state(), v1::SESSION_STATE_BROKEN);
    EXPECT_FALSE(broken.last_error().empty());
    no_secret(broken.last_error());
    EXPECT_EQ(MailboxStatus(id).error_code(), grpc::StatusCode::UNAUTHENTICATED);

    // The new password: logged in within the call, READY, and the mailbox answers.
    v1::Session updated;
    grpc::Status ok = update(changed, &updated);
    ASSERT_TRUE(ok.ok()) << ok.error_message();
    EXPECT_EQ(updated.state(), v1::SESSION_STATE_READY);
    EXPECT_EQ(updated.reconnect_count(), 1u);
    no_secret(updated.last_error());
    no_secret(updated.SerializeAsString());
    grpc::Status status = MailboxStatus(id);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(Get(id).state(), v1::SESSION_STATE_READY);
  }
  // The connection logged in with the new password stays (no login, no reconnect) after
  // the password was changed back.
  EXPECT_TRUE(MailboxStatus(id).ok());
  EXPECT_EQ(Get(id).reconnect_count(), 1u);
}

}  // namespace
}  // namespace mailpool::testing
