// Restarts of the real Dovecot and Postfix mid-session (scripts/testservers.sh
// restart-dovecot / restart-postfix): the next call reconnects and succeeds; credentials
// refused after the restart are not retried. Runs alone (RUN_SERIAL): every session of
// every suite sees the restart.
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

}  // namespace
}  // namespace mailpool::testing
