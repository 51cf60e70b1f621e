// SCRAM against the test Dovecot (and Postfix, whose SASL goes through Dovecot): the user
// whose password is stored only as SCRAM-SHA-256 keys logs in with an explicit
// SCRAM-SHA-256 on IMAP, POP3 and SMTP submission; a wrong password is UNAUTHENTICATED
// (AUTH_FAILED, the password in no message); a SCRAM mechanism the server does not offer
// is FAILED_PRECONDITION (MECHANISM_NOT_OFFERED).
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

struct Where {
  v1::Protocol protocol;
  const char* port_env;
};

class ScramTest : public DaemonTest {
 protected:
  v1::Credentials Scram(const std::string& password = "") const {
    v1::Credentials c;
    c.set_user(Env("MAILPOOL_TEST_SCRAM_USER"));
    c.set_password(password.empty() ? Env("MAILPOOL_TEST_SCRAM_PASSWORD") : password);
    c.set_mechanism(v1::AUTH_MECHANISM_SCRAM_SHA_256);
    return c;
  }

  v1::StartSessionRequest Request(Where w, v1::Security security,
                                  const v1::Credentials& credentials) const {
    v1::StartSessionRequest r;
    v1::ServerEndpoint server = Endpoint(EnvPort(w.port_env), security);
    v1::Credentials* c = nullptr;
    if (w.protocol == v1::PROTOCOL_IMAP) {
      *r.mutable_imap()->mutable_server() = server;
      c = r.mutable_imap()->mutable_credentials();
    } else if (w.protocol == v1::PROTOCOL_POP3) {
      *r.mutable_pop3()->mutable_server() = server;
      c = r.mutable_pop3()->mutable_credentials();
    } else {
      *r.mutable_smtp()->mutable_server() = server;
      c = r.mutable_smtp()->mutable_credentials();
    }
    *c = credentials;
    return r;
  }
};

TEST_F(ScramTest, ExplicitScramSha256LogsInOnEveryProtocolAndRefusesAWrongPassword) {
  for (Where w : {Where{v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT"},
                  Where{v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT"},
                  Where{v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_PORT"}}) {
    v1::Session session;
    grpc::Status status = Start(Request(w, v1::SECURITY_STARTTLS, Scram()), &session);
    ASSERT_TRUE(status.ok()) << w.port_env << ": " << status.error_message();
    ASSERT_EQ(session.connections_size(), 1);
    EXPECT_EQ(session.connections(0).mechanism(), v1::AUTH_MECHANISM_SCRAM_SHA_256) << w.port_env;
    EXPECT_TRUE(Close(session.id()).ok());

    grpc::ClientContext context;
    grpc::Status refused =
        Start(Request(w, v1::SECURITY_STARTTLS, Scram("wrong-scram-pw-9")), nullptr, &context);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED) << w.port_env;
    EXPECT_EQ(ErrorDetailOf(context).reason(), "AUTH_FAILED") << w.port_env;
    EXPECT_FALSE(absl::StrContains(refused.error_message(), "wrong-scram-pw-9"));
    EXPECT_FALSE(absl::StrContains(refused.error_message(), Env("MAILPOOL_TEST_SCRAM_PASSWORD")));
  }
}

TEST_F(ScramTest, ScramTheServerDoesNotOfferIsFailedPrecondition) {
  // Postfix's injection port offers no AUTH at all.
  v1::Credentials c = Scram();
  c.set_allow_insecure_auth(true);
  grpc::ClientContext context;
  grpc::Status status = Start(
      Request(Where{v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_INJECT_PORT"}, v1::SECURITY_PLAIN, c),
      nullptr, &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_EQ(ErrorDetailOf(context).reason(), "MECHANISM_NOT_OFFERED");
}

}  // namespace
}  // namespace mailpool::testing
