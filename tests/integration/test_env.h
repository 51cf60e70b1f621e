// Shared fixture for integration tests: the real test mail servers (from the environment
// that scripts/testservers.sh writes) and an in-process mailpoold reached over gRPC.
#ifndef MAILPOOL_TESTS_INTEGRATION_TEST_ENV_H_
#define MAILPOOL_TESTS_INTEGRATION_TEST_ENV_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mailpool/v1/errors.pb.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "server/server.h"

namespace mailpool::testing {

// Values from the MAILPOOL_TEST_* environment; a missing one fails the test.
std::string Env(const char* name);
int EnvPort(const char* name);
std::string ReadFile(const std::string& path);

// Which implementation serves MAILPOOL_TEST_IMAP_PORT / MAILPOOL_TEST_SMTP_PORT: "dovecot"
// and "postfix" (scripts/testservers.sh), or the second implementations that
// scripts/second-servers.sh starts and names in MAILPOOL_TEST_IMAP_SERVER /
// MAILPOOL_TEST_SMTP_SERVER ("imap4d": GNU Mailutils; "aiosmtpd"). The same tests run
// against each; where a server legitimately differs (a hierarchy delimiter, an extension
// it does not offer), a test asks these and checks that server's documented behaviour.
std::string ImapServer();
std::string SmtpServer();
// The hierarchy delimiter of the IMAP test server's personal namespace.
std::string ImapDelimiter();

// A loopback TCP port nobody listens on right now (the kernel's pick), for a server the
// test starts itself; and whether something accepts connections on one.
int FreePort();
bool Accepts(int port);

// The mailpool.v1.ErrorDetail trailer of a failed call, if any.
v1::ErrorDetail ErrorDetailOf(const grpc::ClientContext& context);

// Messages of a POP3 session whose subject contains `marker`, oldest first.
std::vector<v1::EmailMessage> FindBySubject(v1::MailboxService::Stub& mailbox,
                                            const std::string& session, const std::string& marker);
// Refreshes the POP3 session (QUIT + login: a new snapshot) until at least `count` such
// messages are visible or `patience` has passed; no sleeps: each Refresh is a round trip.
std::vector<v1::EmailMessage> WaitForSubject(v1::MailboxService::Stub& mailbox,
                                             const std::string& session, const std::string& marker,
                                             size_t count, std::chrono::seconds patience);

// GET http://127.0.0.1:port/path; the whole answer (status line, headers, body), or
// empty when the connection fails.
std::string HttpGet(int port, const std::string& path);
// The value of one series (`name{labels}` exactly as the exposition writes it) in a
// /metrics page; 0 when absent (counters and histograms start at zero).
double MetricValue(const std::string& page, const std::string& series);

// Changes the password of MAILPOOL_TEST_USER5 (erin) in the test Dovecot's passwd-file for
// the life of the object; construction and destruction return once Dovecot's POP3 login
// refuses / accepts the old password again. Tests that use it must run alone (RUN_SERIAL).
class PasswordChange {
 public:
  explicit PasswordChange(const std::string& new_password);
  ~PasswordChange();

 private:
  void Write(const std::string& text);
  std::string path_;
  std::string original_;
};

// Runs scripts/testservers.sh restart-dovecot / restart-postfix on the servers of
// MAILPOOL_TEST_DIR; fails the test if the restart fails.
void RestartTestServer(const char* which);

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Lets a suite change the daemon's options before it starts.
  virtual void Configure(server::ServerOptions& options) {}

  // Fills `server` for localhost:`port` with the test CA.
  v1::ServerEndpoint Endpoint(int port, v1::Security security) const;
  v1::Credentials Password(const std::string& password = "") const;
  v1::Credentials Token(const std::string& token = "") const;

  grpc::Status Start(const v1::StartSessionRequest& request, v1::Session* session,
                     grpc::ClientContext* context = nullptr);
  grpc::Status Close(const std::string& session, std::string* reply = nullptr);
  // The daemon's /metrics page (body only); every DaemonTest serves metrics on a free port.
  std::string ScrapeMetrics();

  std::unique_ptr<server::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::SessionService::Stub> sessions_;
  std::string ca_pem_;
  std::string outbox_dir_;  // this test's outbox database lives here
};

}  // namespace mailpool::testing

#endif  // MAILPOOL_TESTS_INTEGRATION_TEST_ENV_H_
