// Refreshable OAuth2 credentials (issue 18) against real components: the OAuth2 test server
// (tools/oauth2-mock: oauth2-mock-server over HTTPS, access tokens of
// MAILPOOL_TEST_OAUTH2_TTL_SECONDS, 5 s) and the test Dovecot, whose oauth2 passdb checks
// every token by introspection at that server; Postfix's SASL goes through that Dovecot.
// A session opened with a refresh token keeps working across several token lifetimes and
// Dovecot restarts (each re-login with a new token), a token the server stops accepting is
// replaced once, a revoked refresh token ends in OAUTH2_REFRESH_FAILED, and no refresh
// token, client secret or access token reaches the daemon's log.
//
// Dovecot restarts drop every test's connections: this binary runs alone (RUN_SERIAL).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "gtest/gtest.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

class OAuth2Test : public DaemonTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    options.oauth2_ca_file = Env("MAILPOOL_TEST_CA");
    std::string secret_file = outbox_dir_ + "/client-secret";
    std::ofstream(secret_file) << Env("MAILPOOL_TEST_OAUTH2_CLIENT_SECRET") << "\n";
    options.oauth2_providers_file = outbox_dir_ + "/providers";
    std::ofstream(options.oauth2_providers_file)
        << "# the OAuth2 test server\n[test]\ntoken_endpoint = "
        << Env("MAILPOOL_TEST_OAUTH2_TOKEN_ENDPOINT")
        << "\nclient_id = " << Env("MAILPOOL_TEST_OAUTH2_CLIENT_ID")
        << "\nclient_secret_file = " << secret_file << "\n";
  }

  void SetUp() override {
    // Everything the daemon logs while the test runs, at debug level, for the secrets check.
    log_path_ = absl::StrCat("/tmp/mailpool-oauth2-itest-", getpid(), ".log");
    fflush(stderr);
    // Close-on-exec: the Dovecot that a restart starts must not inherit ctest's pipe (ctest
    // would wait for it to close long after the test ended).
    saved_stderr_ = fcntl(2, F_DUPFD_CLOEXEC, 3);
    int fd = open(log_path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    dup2(fd, 2);
    close(fd);
    SetLogLevel(LogLevel::kDebug);
    DaemonTest::SetUp();
    mailbox_ = v1::MailboxService::NewStub(channel_);
    ttl_ = std::chrono::seconds(std::stoi(Env("MAILPOOL_TEST_OAUTH2_TTL_SECONDS")));
    for (const char* result : {"ok", "refused", "unavailable"}) {
      before_[result] = RefreshesSoFar(result);
    }
  }

  void TearDown() override {
    DaemonTest::TearDown();
    SetLogLevel(LogLevel::kInfo);
    fflush(stderr);
    dup2(saved_stderr_, 2);
    close(saved_stderr_);
    std::string log = ReadFile(log_path_);
    unlink(log_path_.c_str());
    EXPECT_FALSE(log.empty()) << "the daemon logged nothing: the check below would be empty";
    for (const char* name :
         {"MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN", "MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN2",
          "MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN3", "MAILPOOL_TEST_OAUTH2_CLIENT_SECRET"}) {
      EXPECT_FALSE(absl::StrContains(log, Env(name))) << name << " in the daemon's log";
    }
    // The test server's access tokens are JWTs: base64url of '{"' begins every one.
    EXPECT_FALSE(absl::StrContains(log, "eyJ")) << "an access token in the daemon's log";
  }

  v1::Credentials Refresh(const std::string& user, const std::string& refresh_token) const {
    v1::Credentials c;
    c.set_user(user);
    v1::OAuth2Refresh* r = c.mutable_oauth2_refresh();
    r->set_refresh_token(refresh_token);
    r->set_token_endpoint(Env("MAILPOOL_TEST_OAUTH2_TOKEN_ENDPOINT"));
    r->set_client_id(Env("MAILPOOL_TEST_OAUTH2_CLIENT_ID"));
    r->set_client_secret(Env("MAILPOOL_TEST_OAUTH2_CLIENT_SECRET"));
    return c;
  }
  v1::Credentials Alice() const {
    return Refresh(Env("MAILPOOL_TEST_USER"), Env("MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN"));
  }

  v1::StartSessionRequest Imap(const v1::Credentials& credentials) const {
    v1::StartSessionRequest r;
    *r.mutable_imap()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_IMAP_PORT"), v1::SECURITY_STARTTLS);
    *r.mutable_imap()->mutable_credentials() = credentials;
    return r;
  }

  grpc::Status Status(const std::string& session, v1::ErrorDetail* detail = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::GetMailboxStatusRequest request;
    request.set_session(session);
    request.set_folder("INBOX");
    v1::GetMailboxStatusResponse response;
    grpc::Status status = mailbox_->GetMailboxStatus(&context, request, &response);
    if (detail != nullptr) *detail = ErrorDetailOf(context);
    return status;
  }

  v1::Session Get(const std::string& session) {
    grpc::ClientContext context;
    v1::GetSessionRequest request;
    request.set_session(session);
    v1::GetSessionResponse response;
    EXPECT_TRUE(sessions_->GetSession(&context, request, &response).ok());
    return response.session();
  }

  // Refreshes by this test (the metrics registry is the process's: earlier tests count too).
  double Refreshes(const std::string& result) { return RefreshesSoFar(result) - before_[result]; }
  double RefreshesSoFar(const std::string& result) {
    return MetricValue(ScrapeMetrics(),
                       absl::StrCat("mailpool_oauth2_refreshes_total{result=\"", result, "\"}"));
  }

  // POSTs a control request to the OAuth2 test server (curl; its answer is not needed).
  void Control(const std::string& path, const std::string& token = "") {
    std::string command =
        absl::StrCat("curl -sf -o /dev/null --cacert ", Env("MAILPOOL_TEST_CA"), " -X POST ",
                     token.empty() ? "" : absl::StrCat("-d token=", token, " "),
                     "https://127.0.0.1:", Env("MAILPOOL_TEST_OAUTH2_PORT"), path);
    ASSERT_EQ(std::system(command.c_str()), 0) << path;
  }

  // Past the lifetime of every access token issued so far.
  void OutliveTokens() { std::this_thread::sleep_for(ttl_ + std::chrono::seconds(1)); }

  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::chrono::seconds ttl_{5};
  std::map<std::string, double> before_;
  std::string log_path_;
  int saved_stderr_ = -1;
};

TEST_F(OAuth2Test, SessionKeepsWorkingAcrossTokenLifetimesAndDovecotRestarts) {
  v1::Session session;
  grpc::Status started = Start(Imap(Alice()), &session);
  ASSERT_TRUE(started.ok()) << started.error_message();
  ASSERT_EQ(session.connections_size(), 1);
  EXPECT_TRUE(session.connections(0).mechanism() == v1::AUTH_MECHANISM_OAUTHBEARER ||
              session.connections(0).mechanism() == v1::AUTH_MECHANISM_XOAUTH2);
  EXPECT_EQ(Refreshes("ok"), 1);
  // A warm connection needs no token: nothing is refreshed while it stays up.
  ASSERT_TRUE(Status(session.id()).ok());
  EXPECT_EQ(Refreshes("ok"), 1);

  // Three times: every token issued so far has expired, Dovecot restarts (the connection
  // drops), and the next call logs in again with a new token.
  for (int round = 1; round <= 3; ++round) {
    OutliveTokens();
    RestartTestServer("restart-dovecot");
    grpc::Status s = Status(session.id());
    ASSERT_TRUE(s.ok()) << "round " << round << ": " << s.error_message();
    EXPECT_EQ(Refreshes("ok"), 1 + round) << round;
  }
  v1::Session after = Get(session.id());
  EXPECT_EQ(after.state(), v1::SESSION_STATE_READY);
  EXPECT_EQ(after.reconnect_count(), 3u);
  EXPECT_EQ(Refreshes("refused"), 0);
  EXPECT_TRUE(Close(session.id()).ok());
}

TEST_F(OAuth2Test, BothLinksOfAPop3SmtpSessionShareOneRefreshAndPostfixAcceptsTheToken) {
  v1::StartSessionRequest r;
  r.mutable_pop3_smtp()->set_ehlo_name("client.example.test");
  *r.mutable_pop3_smtp()->mutable_pop3() =
      Endpoint(EnvPort("MAILPOOL_TEST_POP3_PORT"), v1::SECURITY_STARTTLS);
  *r.mutable_pop3_smtp()->mutable_smtp() =
      Endpoint(EnvPort("MAILPOOL_TEST_SMTP_PORT"), v1::SECURITY_STARTTLS);
  *r.mutable_pop3_smtp()->mutable_credentials() = Alice();
  v1::Session session;
  grpc::Status started = Start(r, &session);
  ASSERT_TRUE(started.ok()) << started.error_message();
  ASSERT_EQ(session.connections_size(), 2);
  EXPECT_EQ(Refreshes("ok"), 1) << "one refresh token, one access token for both links";
  EXPECT_TRUE(Close(session.id()).ok());
}

TEST_F(OAuth2Test, TokenTheServerStopsAcceptingIsReplacedOnce) {
  v1::Session session;
  ASSERT_TRUE(Start(Imap(Alice()), &session).ok());
  EXPECT_EQ(Refreshes("ok"), 1);
  // The provider invalidates every access token (as after a password change) while the
  // daemon's own still has most of its lifetime: the re-login is refused, the daemon asks
  // for a new token and logs in with it within the same call.
  Control("/forget");
  RestartTestServer("restart-dovecot");
  grpc::Status s = Status(session.id());
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Refreshes("ok"), 2);
  EXPECT_EQ(Get(session.id()).state(), v1::SESSION_STATE_READY);
  EXPECT_TRUE(Close(session.id()).ok());
}

TEST_F(OAuth2Test, RevokedRefreshTokenEndsInOAuth2RefreshFailedUntilUpdated) {
  const std::string user = Env("MAILPOOL_TEST_USER3");
  const std::string refresh_token = Env("MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN3");
  v1::Session session;
  ASSERT_TRUE(Start(Imap(Refresh(user, refresh_token)), &session).ok());
  Control("/revoke", refresh_token);
  Control("/forget");
  RestartTestServer("restart-dovecot");

  v1::ErrorDetail detail;
  grpc::Status s = Status(session.id(), &detail);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_EQ(detail.reason(), "OAUTH2_REFRESH_FAILED");
  EXPECT_TRUE(absl::StrContains(detail.server_reply(), "invalid_grant")) << detail.server_reply();
  EXPECT_FALSE(absl::StrContains(s.error_message(), refresh_token));
  v1::Session broken = Get(session.id());
  EXPECT_EQ(broken.state(), v1::SESSION_STATE_BROKEN);
  EXPECT_TRUE(absl::StrContains(broken.last_error(), "invalid_grant")) << broken.last_error();
  EXPECT_EQ(Refreshes("refused"), 1);
  // Permanent: the next call gets the same answer without asking the endpoint again.
  EXPECT_EQ(Status(session.id()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Refreshes("refused"), 1);
  // A new session with it is refused at the start.
  grpc::ClientContext start_context;
  grpc::Status refused = Start(Imap(Refresh(user, refresh_token)), nullptr, &start_context);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED) << refused.error_message();
  EXPECT_EQ(ErrorDetailOf(start_context).reason(), "OAUTH2_REFRESH_FAILED");

  // The user grants access again; UpdateSession with the refresh token revives the session.
  Control("/restore", refresh_token);
  grpc::ClientContext update_context;
  v1::UpdateSessionRequest update;
  update.set_session(session.id());
  *update.mutable_credentials() = Refresh(user, refresh_token);
  v1::UpdateSessionResponse updated;
  grpc::Status u = sessions_->UpdateSession(&update_context, update, &updated);
  ASSERT_TRUE(u.ok()) << u.error_message();
  EXPECT_EQ(updated.session().state(), v1::SESSION_STATE_READY);
  EXPECT_TRUE(Status(session.id()).ok());
  EXPECT_TRUE(Close(session.id()).ok());
}

TEST_F(OAuth2Test, NamedProviderAndEndpointFailures) {
  // The provider of --oauth2_providers_file (its client secret read from a file).
  v1::Credentials named;
  named.set_user(Env("MAILPOOL_TEST_USER2"));
  named.mutable_oauth2_refresh()->set_refresh_token(Env("MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN2"));
  named.mutable_oauth2_refresh()->set_provider("test");
  v1::Session session;
  grpc::Status started = Start(Imap(named), &session);
  ASSERT_TRUE(started.ok()) << started.error_message();
  EXPECT_TRUE(Close(session.id()).ok());

  auto start_fails = [&](const v1::Credentials& c, grpc::StatusCode code, const char* reason) {
    grpc::ClientContext context;
    grpc::Status s = Start(Imap(c), nullptr, &context);
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_EQ(ErrorDetailOf(context).reason(), reason) << s.error_message();
    EXPECT_FALSE(absl::StrContains(s.error_message(), Env("MAILPOOL_TEST_OAUTH2_CLIENT_SECRET")));
    EXPECT_FALSE(absl::StrContains(s.error_message(), Env("MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN")));
  };
  v1::Credentials unknown = named;
  unknown.mutable_oauth2_refresh()->set_provider("nope");
  start_fails(unknown, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_FIELD");
  v1::Credentials both = named;
  both.mutable_oauth2_refresh()->set_client_id("x");
  start_fails(both, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_FIELD");
  v1::Credentials clear = Alice();
  clear.mutable_oauth2_refresh()->set_token_endpoint("http://oauth2.example.test/token");
  start_fails(clear, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_FIELD");
  v1::Credentials empty = Alice();
  empty.mutable_oauth2_refresh()->clear_refresh_token();
  start_fails(empty, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_FIELD");
  v1::Credentials password_mechanism = Alice();
  password_mechanism.set_mechanism(v1::AUTH_MECHANISM_PLAIN);
  start_fails(password_mechanism, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_FIELD");
  // The endpoint refuses the client: UNAUTHENTICATED (new credentials are needed).
  v1::Credentials wrong_client = Alice();
  wrong_client.mutable_oauth2_refresh()->set_client_secret("not-the-client-secret");
  start_fails(wrong_client, grpc::StatusCode::UNAUTHENTICATED, "OAUTH2_REFRESH_FAILED");
  // Nobody answers at the endpoint: UNAVAILABLE (worth retrying).
  v1::Credentials down = Alice();
  down.mutable_oauth2_refresh()->set_token_endpoint(
      absl::StrCat("https://127.0.0.1:", Env("MAILPOOL_TEST_CLOSED_PORT"), "/token"));
  start_fails(down, grpc::StatusCode::UNAVAILABLE, "OAUTH2_REFRESH_FAILED");
  EXPECT_EQ(Refreshes("unavailable"), 1);
}

}  // namespace
}  // namespace mailpool::testing
