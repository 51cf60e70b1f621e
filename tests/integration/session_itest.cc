// StartSession / CloseSession and the rest of SessionService, through gRPC, against the
// real Dovecot (IMAP, POP3) and Postfix (SMTP) started by scripts/testservers.sh.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::HasSubstr;

enum class Secret { kPassword, kToken, kNone };

struct Case {
  const char* name;
  v1::Protocol protocol;
  const char* port_env;
  v1::Security security;
  Secret secret;
  v1::AuthMechanism mechanism;
  v1::AuthMechanism expected;  // what the session reports
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

constexpr auto kPlain = v1::SECURITY_PLAIN;
constexpr auto kStartTls = v1::SECURITY_STARTTLS;
constexpr auto kTls = v1::SECURITY_IMPLICIT_TLS;
constexpr auto kAuto = v1::AUTH_MECHANISM_UNSPECIFIED;

const Case kCases[] = {
    // IMAP: every mechanism, every security mode.
    {"ImapPlainLoginCommand", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT", kPlain,
     Secret::kPassword, v1::AUTH_MECHANISM_COMMAND, v1::AUTH_MECHANISM_COMMAND},
    {"ImapStartTlsLoginCommand", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_COMMAND, v1::AUTH_MECHANISM_COMMAND},
    {"ImapStartTlsPlain", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_PLAIN, v1::AUTH_MECHANISM_PLAIN},
    {"ImapStartTlsSaslLogin", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_LOGIN, v1::AUTH_MECHANISM_LOGIN},
    {"ImapStartTlsXoauth2", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT", kStartTls, Secret::kToken,
     v1::AUTH_MECHANISM_XOAUTH2, v1::AUTH_MECHANISM_XOAUTH2},
    {"ImapStartTlsOauthbearer", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT", kStartTls,
     Secret::kToken, v1::AUTH_MECHANISM_OAUTHBEARER, v1::AUTH_MECHANISM_OAUTHBEARER},
    {"ImapTlsDefaultPassword", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAPS_PORT", kTls,
     Secret::kPassword, kAuto, v1::AUTH_MECHANISM_SCRAM_SHA_256},
    {"ImapStartTlsScramSha1", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_SCRAM_SHA_1, v1::AUTH_MECHANISM_SCRAM_SHA_1},
    {"ImapStartTlsCramMd5", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_CRAM_MD5, v1::AUTH_MECHANISM_CRAM_MD5},
    {"ImapTlsDefaultToken", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAPS_PORT", kTls, Secret::kToken,
     kAuto, v1::AUTH_MECHANISM_OAUTHBEARER},
    {"ImapTlsPlain", v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAPS_PORT", kTls, Secret::kPassword,
     v1::AUTH_MECHANISM_PLAIN, v1::AUTH_MECHANISM_PLAIN},
    // POP3.
    {"Pop3PlainUserPass", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT", kPlain, Secret::kPassword,
     v1::AUTH_MECHANISM_COMMAND, v1::AUTH_MECHANISM_COMMAND},
    {"Pop3PlainApop", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT", kPlain, Secret::kPassword,
     v1::AUTH_MECHANISM_APOP, v1::AUTH_MECHANISM_APOP},
    {"Pop3StartTlsUserPass", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_COMMAND, v1::AUTH_MECHANISM_COMMAND},
    {"Pop3StartTlsPlain", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_PLAIN, v1::AUTH_MECHANISM_PLAIN},
    {"Pop3StartTlsApop", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT", kStartTls, Secret::kPassword,
     v1::AUTH_MECHANISM_APOP, v1::AUTH_MECHANISM_APOP},
    {"Pop3StartTlsXoauth2", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT", kStartTls, Secret::kToken,
     v1::AUTH_MECHANISM_XOAUTH2, v1::AUTH_MECHANISM_XOAUTH2},
    {"Pop3TlsOauthbearer", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3S_PORT", kTls, Secret::kToken,
     v1::AUTH_MECHANISM_OAUTHBEARER, v1::AUTH_MECHANISM_OAUTHBEARER},
    {"Pop3TlsDefaultPassword", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3S_PORT", kTls,
     Secret::kPassword, kAuto, v1::AUTH_MECHANISM_SCRAM_SHA_256},
    {"Pop3StartTlsScramSha1", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_SCRAM_SHA_1, v1::AUTH_MECHANISM_SCRAM_SHA_1},
    {"Pop3StartTlsCramMd5", v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_CRAM_MD5, v1::AUTH_MECHANISM_CRAM_MD5},
    // SMTP.
    {"SmtpStartTlsPlain", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_PLAIN, v1::AUTH_MECHANISM_PLAIN},
    {"SmtpStartTlsLogin", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_LOGIN, v1::AUTH_MECHANISM_LOGIN},
    {"SmtpStartTlsCramMd5", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_CRAM_MD5, v1::AUTH_MECHANISM_CRAM_MD5},
    {"SmtpStartTlsXoauth2", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_PORT", kStartTls, Secret::kToken,
     v1::AUTH_MECHANISM_XOAUTH2, v1::AUTH_MECHANISM_XOAUTH2},
    {"SmtpStartTlsOauthbearer", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_PORT", kStartTls,
     Secret::kToken, v1::AUTH_MECHANISM_OAUTHBEARER, v1::AUTH_MECHANISM_OAUTHBEARER},
    {"SmtpStartTlsNoAuth", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_PORT", kStartTls, Secret::kNone,
     kAuto, v1::AUTH_MECHANISM_NONE},
    {"SmtpTlsDefaultPassword", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTPS_PORT", kTls,
     Secret::kPassword, kAuto, v1::AUTH_MECHANISM_SCRAM_SHA_256},
    {"SmtpStartTlsScramSha1", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_PORT", kStartTls,
     Secret::kPassword, v1::AUTH_MECHANISM_SCRAM_SHA_1, v1::AUTH_MECHANISM_SCRAM_SHA_1},
    {"SmtpTlsDefaultToken", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTPS_PORT", kTls, Secret::kToken,
     kAuto, v1::AUTH_MECHANISM_OAUTHBEARER},
    {"SmtpPlainNoAuth", v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTP_INJECT_PORT", kPlain, Secret::kNone,
     kAuto, v1::AUTH_MECHANISM_NONE},
};

class SessionMatrixTest : public DaemonTest, public ::testing::WithParamInterface<Case> {};

TEST_P(SessionMatrixTest, StartsAuthenticatesAndCloses) {
  const Case& c = GetParam();
  v1::Credentials credentials;
  if (c.secret == Secret::kPassword) credentials = Password();
  if (c.secret == Secret::kToken) credentials = Token();
  credentials.set_mechanism(c.mechanism);
  credentials.set_allow_insecure_auth(c.security == kPlain);
  v1::ServerEndpoint server = Endpoint(EnvPort(c.port_env), c.security);

  v1::StartSessionRequest request;
  switch (c.protocol) {
    case v1::PROTOCOL_IMAP:
      *request.mutable_imap()->mutable_server() = server;
      *request.mutable_imap()->mutable_credentials() = credentials;
      break;
    case v1::PROTOCOL_POP3:
      *request.mutable_pop3()->mutable_server() = server;
      *request.mutable_pop3()->mutable_credentials() = credentials;
      break;
    default:
      *request.mutable_smtp()->mutable_server() = server;
      *request.mutable_smtp()->mutable_credentials() = credentials;
      break;
  }
  v1::Session session;
  grpc::Status status = Start(request, &session);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(session.protocol(), c.protocol);
  EXPECT_EQ(session.state(), v1::SESSION_STATE_READY);
  ASSERT_EQ(session.connections_size(), 1);
  const v1::Connection& conn = session.connections(0);
  EXPECT_EQ(conn.mechanism(), c.expected);
  EXPECT_FALSE(conn.greeting().empty());
  EXPECT_FALSE(conn.capabilities().empty());
  if (c.security == kPlain) {
    EXPECT_TRUE(conn.tls_version().empty());
  } else {
    EXPECT_THAT(conn.tls_version(), HasSubstr("TLS"));
    EXPECT_TRUE(conn.tls_verified());
  }
  // Secrets never come back.
  std::string wire = session.SerializeAsString();
  EXPECT_FALSE(absl::StrContains(wire, Env("MAILPOOL_TEST_PASSWORD")));
  EXPECT_FALSE(absl::StrContains(wire, Env("MAILPOOL_TEST_TOKEN")));

  std::string reply;
  grpc::Status closed = Close(session.id(), &reply);
  EXPECT_TRUE(closed.ok()) << closed.error_message();
  EXPECT_FALSE(reply.empty());
}

// A user whose password Dovecot keeps only as SCRAM-SHA-256 keys (salted, 4096 rounds):
// every protocol logs in with SCRAM by default; CRAM-MD5 (which needs the password in the
// clear) and a wrong password are refused.
TEST_F(DaemonTest, ScramStoredPasswordLogsInWithScramOnEveryProtocol) {
  v1::Credentials scram;
  scram.set_user(Env("MAILPOOL_TEST_SCRAM_USER"));
  scram.set_password(Env("MAILPOOL_TEST_SCRAM_PASSWORD"));
  struct Where {
    v1::Protocol protocol;
    const char* port_env;
  };
  for (Where w : {Where{v1::PROTOCOL_IMAP, "MAILPOOL_TEST_IMAPS_PORT"},
                  Where{v1::PROTOCOL_POP3, "MAILPOOL_TEST_POP3S_PORT"},
                  Where{v1::PROTOCOL_SMTP, "MAILPOOL_TEST_SMTPS_PORT"}}) {
    auto request = [&](const v1::Credentials& credentials) {
      v1::StartSessionRequest r;
      v1::ServerEndpoint server = Endpoint(EnvPort(w.port_env), v1::SECURITY_IMPLICIT_TLS);
      if (w.protocol == v1::PROTOCOL_IMAP) {
        *r.mutable_imap()->mutable_server() = server;
        *r.mutable_imap()->mutable_credentials() = credentials;
      } else if (w.protocol == v1::PROTOCOL_POP3) {
        *r.mutable_pop3()->mutable_server() = server;
        *r.mutable_pop3()->mutable_credentials() = credentials;
      } else {
        *r.mutable_smtp()->mutable_server() = server;
        *r.mutable_smtp()->mutable_credentials() = credentials;
      }
      return r;
    };
    v1::Session session;
    grpc::Status status = Start(request(scram), &session);
    ASSERT_TRUE(status.ok()) << w.port_env << ": " << status.error_message();
    ASSERT_EQ(session.connections_size(), 1);
    EXPECT_EQ(session.connections(0).mechanism(), v1::AUTH_MECHANISM_SCRAM_SHA_256) << w.port_env;
    EXPECT_TRUE(Close(session.id(), nullptr).ok());

    v1::Credentials wrong = scram;
    wrong.set_password("not-the-scram-password");
    grpc::Status refused = Start(request(wrong), nullptr);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED) << w.port_env;
    EXPECT_THAT(refused.error_message(), ::testing::Not(HasSubstr("not-the-scram-password")));

    v1::Credentials cram = scram;
    cram.set_mechanism(v1::AUTH_MECHANISM_CRAM_MD5);
    EXPECT_EQ(Start(request(cram), nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << w.port_env;
  }
}

INSTANTIATE_TEST_SUITE_P(AllProtocols, SessionMatrixTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

class SessionServiceTest : public DaemonTest {
 protected:
  v1::StartSessionRequest Imap(v1::Credentials credentials) {
    v1::StartSessionRequest request;
    *request.mutable_imap()->mutable_server() = Endpoint(EnvPort("MAILPOOL_TEST_IMAPS_PORT"), kTls);
    *request.mutable_imap()->mutable_credentials() = credentials;
    return request;
  }
};

TEST_F(SessionServiceTest, WrongPasswordIsUnauthenticatedWithServerText) {
  grpc::ClientContext context;
  v1::StartSessionRequest request = Imap(Password("not-the-password"));
  request.mutable_imap()->mutable_credentials()->set_mechanism(v1::AUTH_MECHANISM_PLAIN);
  grpc::Status status = Start(request, nullptr, &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("server replied"));
  EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr("not-the-password")));
  v1::ErrorDetail detail = ErrorDetailOf(context);
  EXPECT_EQ(detail.reason(), "AUTH_FAILED");
  EXPECT_THAT(detail.server_reply(), HasSubstr("NO"));
  EXPECT_EQ(detail.protocol(), v1::PROTOCOL_IMAP);
}

TEST_F(SessionServiceTest, WrongTokenCompletesSaslExchangeAndIsUnauthenticated) {
  for (auto mechanism : {v1::AUTH_MECHANISM_XOAUTH2, v1::AUTH_MECHANISM_OAUTHBEARER}) {
    grpc::ClientContext context;
    v1::StartSessionRequest request = Imap(Token("wrong-token"));
    request.mutable_imap()->mutable_credentials()->set_mechanism(mechanism);
    grpc::Status status = Start(request, nullptr, &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
    EXPECT_EQ(ErrorDetailOf(context).reason(), "AUTH_FAILED");
  }
}

TEST_F(SessionServiceTest, WrongPasswordOnSmtpAndPop3IsUnauthenticated) {
  v1::StartSessionRequest smtp;
  *smtp.mutable_smtp()->mutable_server() = Endpoint(EnvPort("MAILPOOL_TEST_SMTPS_PORT"), kTls);
  *smtp.mutable_smtp()->mutable_credentials() = Password("nope");
  EXPECT_EQ(Start(smtp, nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::StartSessionRequest pop3;
  *pop3.mutable_pop3()->mutable_server() = Endpoint(EnvPort("MAILPOOL_TEST_POP3S_PORT"), kTls);
  *pop3.mutable_pop3()->mutable_credentials() = Password("nope");
  EXPECT_EQ(Start(pop3, nullptr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(SessionServiceTest, ClosedPortIsUnavailablePromptly) {
  v1::StartSessionRequest request = Imap(Password());
  request.mutable_imap()->mutable_server()->set_port(EnvPort("MAILPOOL_TEST_CLOSED_PORT"));
  auto begin = std::chrono::steady_clock::now();
  grpc::Status status = Start(request, nullptr);
  auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("cannot connect"));
  // "Promptly": a refused connection must not wait for any timeout.
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST_F(SessionServiceTest, CertificateWithoutCaIsRefused) {
  v1::StartSessionRequest request = Imap(Password());
  request.mutable_imap()->mutable_server()->mutable_tls()->clear_ca_pem();
  grpc::ClientContext context;
  grpc::Status status = Start(request, nullptr, &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("certificate"));
  EXPECT_EQ(ErrorDetailOf(context).reason(), "TLS_CERTIFICATE_REJECTED");
}

TEST_F(SessionServiceTest, WrongHostNameIsRefusedEvenWithCa) {
  v1::StartSessionRequest request = Imap(Password());
  request.mutable_imap()->mutable_server()->mutable_tls()->set_server_name("mail.other.test");
  grpc::Status status = Start(request, nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SessionServiceTest, VerificationOptOutAcceptsUnknownCertificate) {
  v1::StartSessionRequest request = Imap(Password());
  auto* tls = request.mutable_imap()->mutable_server()->mutable_tls();
  tls->clear_ca_pem();
  tls->set_dangerously_skip_verification(true);
  v1::Session session;
  grpc::Status status = Start(request, &session);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(session.connections(0).tls_verified());
  EXPECT_TRUE(Close(session.id()).ok());
}

TEST_F(SessionServiceTest, StartTlsRequiredButNotOfferedIsFailedPrecondition) {
  v1::StartSessionRequest request;
  *request.mutable_smtp()->mutable_server() =
      Endpoint(EnvPort("MAILPOOL_TEST_NOTLS_SMTP_PORT"), kStartTls);
  grpc::ClientContext context;
  grpc::Status status = Start(request, nullptr, &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_EQ(ErrorDetailOf(context).reason(), "STARTTLS_NOT_OFFERED");
}

TEST_F(SessionServiceTest, PasswordOverPlainLinkNeedsExplicitOptIn) {
  v1::StartSessionRequest request;
  *request.mutable_imap()->mutable_server() = Endpoint(EnvPort("MAILPOOL_TEST_IMAP_PORT"), kPlain);
  *request.mutable_imap()->mutable_credentials() = Password();
  grpc::ClientContext context;
  grpc::Status status = Start(request, nullptr, &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ErrorDetailOf(context).reason(), "INSECURE_AUTH_REFUSED");
}

// A listener the test owns, to prove that nothing reached "the server".
class CountingListener {
 public:
  CountingListener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 8);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~CountingListener() { close(fd_); }
  // One pending connection (blocking mode for the caller), or -1 if none is waiting.
  int AcceptOne() {
    int c = accept(fd_, nullptr, nullptr);
    if (c >= 0) {
      int flags = fcntl(c, F_GETFL);
      fcntl(c, F_SETFL, flags & ~O_NONBLOCK);
    }
    return c;
  }
  int port() const { return port_; }
  // Connections waiting in the backlog (accepted without blocking).
  int Connections() {
    int count = 0;
    for (;;) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return count;
      close(c);
      ++count;
    }
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST_F(SessionServiceTest, InjectionInAnyCommandFieldIsInvalidAndNothingIsSent) {
  CountingListener listener;
  auto base = [&] {
    v1::StartSessionRequest request;
    *request.mutable_imap()->mutable_server() = Endpoint(listener.port(), kPlain);
    *request.mutable_imap()->mutable_credentials() = Password();
    request.mutable_imap()->mutable_credentials()->set_allow_insecure_auth(true);
    return request;
  };
  std::vector<v1::StartSessionRequest> bad;
  bad.push_back(base());
  bad.back().mutable_imap()->mutable_credentials()->set_user("alice\r\na2 DELETE INBOX");
  bad.push_back(base());
  bad.back().mutable_imap()->mutable_credentials()->set_password("x\ny");
  bad.push_back(base());
  bad.back().mutable_imap()->mutable_credentials()->set_user(std::string("a\0b", 3));
  bad.push_back(base());
  bad.back().mutable_imap()->set_initial_folder("INBOX\r\na3 LOGOUT");
  bad.push_back(base());
  bad.back().mutable_imap()->mutable_server()->set_host("127.0.0.1\r\n");
  bad.push_back(base());
  bad.back().mutable_imap()->mutable_credentials()->set_user(std::string(600, 'u'));
  bad.push_back(base());
  bad.back().mutable_imap()->mutable_server()->set_security(static_cast<v1::Security>(42));
  bad.push_back(base());
  bad.back().mutable_imap()->mutable_credentials()->set_mechanism(
      static_cast<v1::AuthMechanism>(99));
  bad.push_back(base());
  bad.back().mutable_imap()->mutable_credentials()->set_mechanism(v1::AUTH_MECHANISM_APOP);
  bad.push_back(base());
  bad.back().set_name("has space");
  for (const auto& request : bad) {
    grpc::Status status = Start(request, nullptr);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << request.ShortDebugString() << " -> " << status.error_message();
  }
  v1::StartSessionRequest smtp;
  *smtp.mutable_smtp()->mutable_server() = Endpoint(listener.port(), kPlain);
  smtp.mutable_smtp()->set_ehlo_name("evil\r\nMAIL FROM:<x>");
  EXPECT_EQ(Start(smtp, nullptr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(listener.Connections(), 0) << "a rejected request reached the server";
}

// SIGTERM while a session is still connecting: the caller gets an answer and the daemon
// stops (the grace period bounds the wait), instead of hanging on an unfinished call.
TEST_F(SessionServiceTest, ShutdownAnswersCallsThatAreStillConnecting) {
  CountingListener silent;  // accepts TCP (backlog) but never sends a greeting
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.shutdown_grace = absl::Milliseconds(300);
  server::Server server(options);
  ASSERT_TRUE(server.Start().ok());
  auto stub = v1::SessionService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server.port()), grpc::InsecureChannelCredentials()));
  v1::StartSessionRequest request = Imap(Password());
  *request.mutable_imap()->mutable_server() = Endpoint(silent.port(), kPlain);
  request.mutable_imap()->mutable_credentials()->set_allow_insecure_auth(true);
  grpc::Status status;
  std::thread caller([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::StartSessionResponse response;
    status = stub->StartSession(&context, request, &response);
  });
  // Wait (bounded) until the daemon holds the connecting session.
  bool connecting = false;
  for (int i = 0; i < 500 && !connecting; ++i) {
    grpc::ClientContext context;
    v1::ListSessionsResponse list;
    stub->ListSessions(&context, {}, &list);
    connecting =
        list.sessions_size() == 1 && list.sessions(0).state() == v1::SESSION_STATE_CONNECTING;
    if (!connecting) std::this_thread::yield();
  }
  ASSERT_TRUE(connecting);
  auto begin = std::chrono::steady_clock::now();
  server.Shutdown();
  caller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(10));
  EXPECT_NE(status.error_code(), grpc::StatusCode::OK);
}

TEST_F(SessionServiceTest, ServesHealthAndReflectionOfTheWholeContract) {
  {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, {}, &response).ok());
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  namespace reflection = grpc::reflection::v1alpha;
  auto stub = reflection::ServerReflection::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  reflection::ServerReflectionRequest request;
  request.set_list_services("*");
  ASSERT_TRUE(stream->Write(request));
  reflection::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names,
              ::testing::IsSupersetOf({"mailpool.v1.SessionService", "mailpool.v1.MailboxService",
                                       "mailpool.v1.SendService", "mailpool.v1.MessageService",
                                       "grpc.health.v1.Health"}));
  // A client can fetch the contract's descriptors.
  request.set_file_containing_symbol("mailpool.v1.SendService");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_GT(response.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// grpc.reflection.v1 (the daemon's own, beside gRPC's v1alpha): the same services, the
// contract's files with their dependencies once per stream, NOT_FOUND inside the stream.
TEST_F(SessionServiceTest, ServesReflectionV1) {
  namespace reflection = grpc::reflection::v1;
  auto stub = reflection::ServerReflection::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  reflection::ServerReflectionRequest request;
  request.set_list_services("*");
  ASSERT_TRUE(stream->Write(request));
  reflection::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names, ::testing::IsSupersetOf(
                         {"mailpool.v1.SessionService", "mailpool.v1.MailboxService",
                          "mailpool.v1.SendService", "mailpool.v1.MessageService",
                          "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                          "grpc.reflection.v1alpha.ServerReflection"}));
  request.set_file_containing_symbol("mailpool.v1.SendService.SendMessage");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_file_descriptor_response());
  std::vector<std::string> files;
  for (const auto& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto file;
    ASSERT_TRUE(file.ParseFromString(bytes));
    files.push_back(file.name());
  }
  ASSERT_FALSE(files.empty());
  EXPECT_EQ(files[0], "mailpool/v1/send.proto");
  EXPECT_THAT(files, ::testing::Contains("mailpool/v1/message.proto"));  // a dependency
  // Asked again: the file itself, not the dependencies already sent.
  request.set_file_by_filename("mailpool/v1/send.proto");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.file_descriptor_response().file_descriptor_proto_size(), 1);
  request.set_file_containing_symbol("mailpool.v1.NoSuchService");
  ASSERT_TRUE(stream->Write(request));
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.error_response().error_code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(response.original_request().file_containing_symbol(), "mailpool.v1.NoSuchService");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// A scripted one-connection IMAP server (blocking socket, own thread): logs the client in,
// then says BYE on its own when told to. For the pool's reaction to a server hanging up.
class ByeServer {
 public:
  ByeServer() {
    thread_ = std::thread([this] { Serve(); });
  }
  ~ByeServer() {
    SayBye();
    thread_.join();
  }
  int port() const { return listener_.port(); }
  void SayBye() {
    std::lock_guard<std::mutex> lock(mu_);
    bye_ = true;
    cv_.notify_all();
  }

 private:
  std::string ReadLine(int fd) {
    std::string line;
    char c;
    while (recv(fd, &c, 1, 0) == 1) {
      line += c;
      if (c == '\n') break;
    }
    return line;
  }
  void Send(int fd, const std::string& s) { send(fd, s.data(), s.size(), MSG_NOSIGNAL); }
  void Serve() {
    int fd = -1;
    for (int i = 0; i < 20000 && fd < 0; ++i) {
      fd = listener_.AcceptOne();
      if (fd < 0) std::this_thread::yield();
      std::lock_guard<std::mutex> lock(mu_);
      if (bye_) break;
    }
    if (fd < 0) return;
    Send(fd, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] scripted\r\n");
    std::string login = ReadLine(fd);  // a1 AUTHENTICATE PLAIN ...
    Send(fd, login.substr(0, login.find(' ')) + " OK [CAPABILITY IMAP4rev1] in\r\n");
    std::string select = ReadLine(fd);  // a2 SELECT INBOX
    Send(fd, "* 0 EXISTS\r\n" + select.substr(0, select.find(' ')) + " OK [READ-WRITE] ok\r\n");
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return bye_; });
    Send(fd, "* BYE Autologout; idle for too long\r\n");
    close(fd);
  }

  CountingListener listener_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool bye_ = false;
  std::thread thread_;
};

TEST_F(SessionServiceTest, ServerHangingUpMarksTheSessionBrokenWithItsReason) {
  ByeServer server;
  v1::StartSessionRequest request = Imap(Password());
  *request.mutable_imap()->mutable_server() = Endpoint(server.port(), kPlain);
  request.mutable_imap()->mutable_credentials()->set_allow_insecure_auth(true);
  v1::Session session;
  grpc::Status status = Start(request, &session);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(session.state(), v1::SESSION_STATE_READY);
  server.SayBye();
  v1::Session seen;
  for (int i = 0; i < 2000; ++i) {
    grpc::ClientContext context;
    v1::GetSessionRequest get;
    get.set_session(session.id());
    v1::GetSessionResponse response;
    ASSERT_TRUE(sessions_->GetSession(&context, get, &response).ok());
    seen = response.session();
    if (seen.state() == v1::SESSION_STATE_BROKEN) break;
    std::this_thread::yield();
  }
  EXPECT_EQ(seen.state(), v1::SESSION_STATE_BROKEN);
  EXPECT_THAT(seen.last_error(), HasSubstr("Autologout"));
  EXPECT_TRUE(Close(session.id()).ok());  // closing a broken session still works
}

TEST_F(SessionServiceTest, CloseThenUseIsNotFound) {
  v1::Session session;
  ASSERT_TRUE(Start(Imap(Password()), &session).ok());
  ASSERT_TRUE(Close(session.id()).ok());
  grpc::ClientContext context;
  v1::GetSessionRequest get;
  get.set_session(session.id());
  v1::GetSessionResponse response;
  EXPECT_EQ(sessions_->GetSession(&context, get, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Close(session.id()).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SessionServiceTest, SessionsAreAddressedByIdNameOrHeaderAndListed) {
  v1::StartSessionRequest request = Imap(Password());
  request.set_name("alice-inbox");
  request.mutable_imap()->set_initial_folder("INBOX");
  v1::Session session;
  ASSERT_TRUE(Start(request, &session).ok());
  EXPECT_EQ(session.name(), "alice-inbox");
  EXPECT_EQ(session.current_folder(), "INBOX");
  EXPECT_TRUE(absl::StartsWith(session.id(), "ms0_"));

  // A second session with the same name is refused.
  EXPECT_EQ(Start(request, nullptr).error_code(), grpc::StatusCode::ALREADY_EXISTS);

  {  // By name.
    grpc::ClientContext context;
    v1::GetSessionRequest get;
    get.set_session("alice-inbox");
    v1::GetSessionResponse response;
    ASSERT_TRUE(sessions_->GetSession(&context, get, &response).ok());
    EXPECT_EQ(response.session().id(), session.id());
  }
  {  // By routing header only.
    grpc::ClientContext context;
    context.AddMetadata("x-mailpool-session", session.id());
    v1::GetSessionRequest get;
    v1::GetSessionResponse response;
    ASSERT_TRUE(sessions_->GetSession(&context, get, &response).ok());
    EXPECT_EQ(response.session().name(), "alice-inbox");
  }
  {  // Header and body disagree.
    grpc::ClientContext context;
    context.AddMetadata("x-mailpool-session", "someone-else");
    v1::GetSessionRequest get;
    get.set_session(session.id());
    v1::GetSessionResponse response;
    EXPECT_EQ(sessions_->GetSession(&context, get, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  v1::Session second;
  ASSERT_TRUE(Start(Imap(Token()), &second).ok());
  {
    grpc::ClientContext context;
    v1::ListSessionsRequest list;
    list.set_page_size(1);
    v1::ListSessionsResponse page1;
    ASSERT_TRUE(sessions_->ListSessions(&context, list, &page1).ok());
    ASSERT_EQ(page1.sessions_size(), 1);
    EXPECT_EQ(page1.sessions(0).id(), session.id());
    grpc::ClientContext context2;
    list.set_page_token(page1.next_page_token());
    v1::ListSessionsResponse page2;
    ASSERT_TRUE(sessions_->ListSessions(&context2, list, &page2).ok());
    ASSERT_EQ(page2.sessions_size(), 1);
    EXPECT_EQ(page2.sessions(0).id(), second.id());
    EXPECT_TRUE(page2.next_page_token().empty());
  }
  {
    // AIP-158: a page size above the maximum is lowered to it; a negative one is refused.
    grpc::ClientContext context;
    v1::ListSessionsRequest list;
    list.set_page_size(5000);
    v1::ListSessionsResponse all;
    ASSERT_TRUE(sessions_->ListSessions(&context, list, &all).ok());
    EXPECT_EQ(all.sessions_size(), 2);
    grpc::ClientContext context2;
    list.set_page_size(-1);
    EXPECT_EQ(sessions_->ListSessions(&context2, list, &all).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_TRUE(Close("alice-inbox").ok());
  EXPECT_TRUE(Close(second.id()).ok());
}

TEST_F(SessionServiceTest, TimeoutsDefaultToTenMinutesAndCanBeChanged) {
  {
    grpc::ClientContext context;
    v1::GetDefaultTimeoutResponse response;
    ASSERT_TRUE(sessions_->GetDefaultTimeout(&context, {}, &response).ok());
    EXPECT_EQ(response.timeout().seconds(), 600);
  }
  v1::Session session;
  ASSERT_TRUE(Start(Imap(Password()), &session).ok());
  EXPECT_EQ(session.timeout().seconds(), 600);
  EXPECT_FALSE(session.timeout_overridden());
  {
    grpc::ClientContext context;
    v1::SetDefaultTimeoutRequest set;
    set.mutable_timeout()->set_seconds(120);
    v1::SetDefaultTimeoutResponse response;
    ASSERT_TRUE(sessions_->SetDefaultTimeout(&context, set, &response).ok());
  }
  {
    grpc::ClientContext context;
    v1::UpdateSessionRequest update;
    update.set_session(session.id());
    update.mutable_timeout()->set_seconds(45);
    v1::UpdateSessionResponse response;
    ASSERT_TRUE(sessions_->UpdateSession(&context, update, &response).ok());
    EXPECT_EQ(response.session().timeout().seconds(), 45);
    EXPECT_TRUE(response.session().timeout_overridden());
  }
  {
    grpc::ClientContext context;
    v1::UpdateSessionRequest update;
    update.set_session(session.id());
    update.mutable_timeout()->set_seconds(0);  // back to the default, now 120 s
    v1::UpdateSessionResponse response;
    ASSERT_TRUE(sessions_->UpdateSession(&context, update, &response).ok());
    EXPECT_EQ(response.session().timeout().seconds(), 120);
    EXPECT_FALSE(response.session().timeout_overridden());
  }
  {
    grpc::ClientContext context;
    v1::SetDefaultTimeoutRequest set;
    set.mutable_timeout()->set_seconds(0);
    v1::SetDefaultTimeoutResponse response;
    EXPECT_EQ(sessions_->SetDefaultTimeout(&context, set, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_TRUE(Close(session.id()).ok());
}

TEST_F(SessionServiceTest, UpdateSessionChecksCredentialsLikeStartSessionAndKeepsHealthyLinks) {
  v1::Session session;
  ASSERT_TRUE(Start(Imap(Password()), &session).ok());
  auto update = [&](const v1::Credentials& credentials, int timeout_seconds,
                    v1::Session* out = nullptr) {
    grpc::ClientContext context;
    v1::UpdateSessionRequest request;
    request.set_session(session.id());
    *request.mutable_credentials() = credentials;
    if (timeout_seconds >= 0) request.mutable_timeout()->set_seconds(timeout_seconds);
    v1::UpdateSessionResponse response;
    grpc::Status status = sessions_->UpdateSession(&context, request, &response);
    if (out != nullptr) *out = response.session();
    return status;
  };
  std::vector<std::pair<std::string, v1::Credentials>> bad;
  bad.emplace_back("another user", Password());
  bad.back().second.set_user("someone-else@example.test");
  bad.emplace_back("CR LF in the password", Password("hunter2\r\na9 LOGOUT"));
  bad.emplace_back("NUL in the password", Password(std::string("hunter2\0x", 9)));
  bad.emplace_back("no secret", Password());
  bad.back().second.clear_password();
  bad.emplace_back("a password too long", Password(std::string(1025, 'p')));
  bad.emplace_back("a mechanism IMAP lacks", Password());
  bad.back().second.set_mechanism(v1::AUTH_MECHANISM_APOP);
  bad.emplace_back("an unknown mechanism", Password());
  bad.back().second.set_mechanism(static_cast<v1::AuthMechanism>(99));
  for (const auto& [what, credentials] : bad) {
    // The valid timeout in the same request is not applied either: nothing changes.
    grpc::Status status = update(credentials, 45);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << what << ": " << status.error_message();
    EXPECT_FALSE(absl::StrContains(status.error_message(), "hunter2")) << status.error_message();
  }
  // A bad timeout with valid credentials: nothing changes either.
  EXPECT_EQ(update(Password(), 25 * 3600).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  {
    grpc::ClientContext context;
    v1::GetSessionRequest get;
    get.set_session(session.id());
    v1::GetSessionResponse got;
    ASSERT_TRUE(sessions_->GetSession(&context, get, &got).ok());
    EXPECT_FALSE(got.session().timeout_overridden());
    EXPECT_EQ(got.session().state(), v1::SESSION_STATE_READY);
  }
  // A healthy session takes new credentials (and the timeout) without a new login.
  v1::Session updated;
  v1::Credentials same = Password();
  same.set_mechanism(v1::AUTH_MECHANISM_PLAIN);
  grpc::Status ok = update(same, 45, &updated);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(updated.state(), v1::SESSION_STATE_READY);
  EXPECT_EQ(updated.reconnect_count(), session.reconnect_count());
  EXPECT_EQ(updated.timeout().seconds(), 45);
  ASSERT_EQ(updated.connections_size(), 1);
  EXPECT_EQ(updated.connections(0).greeting(), session.connections(0).greeting());
  EXPECT_EQ(updated.connections(0).mechanism(), session.connections(0).mechanism());
  EXPECT_FALSE(absl::StrContains(updated.SerializeAsString(), Env("MAILPOOL_TEST_PASSWORD")));
  auto mailbox = v1::MailboxService::NewStub(channel_);
  grpc::ClientContext context;
  v1::GetMailboxStatusRequest status_request;
  status_request.set_session(session.id());
  v1::GetMailboxStatusResponse status_response;
  grpc::Status status = mailbox->GetMailboxStatus(&context, status_request, &status_response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(Close(session.id()).ok());
}

TEST_F(SessionServiceTest, UpdateSessionMapsPop3OnlyMechanismsToAutomaticForSmtp) {
  v1::StartSessionRequest request;
  auto* o = request.mutable_pop3_smtp();
  *o->mutable_pop3() = Endpoint(EnvPort("MAILPOOL_TEST_POP3S_PORT"), kTls);
  o->mutable_smtp()->set_port(EnvPort("MAILPOOL_TEST_SMTPS_PORT"));
  o->mutable_smtp()->set_security(kTls);
  o->mutable_smtp()->mutable_tls()->set_ca_pem(ca_pem_);
  *o->mutable_credentials() = Password();
  v1::Session session;
  ASSERT_TRUE(Start(request, &session).ok());
  for (v1::AuthMechanism mechanism : {v1::AUTH_MECHANISM_COMMAND, v1::AUTH_MECHANISM_APOP}) {
    grpc::ClientContext context;
    v1::UpdateSessionRequest update;
    update.set_session(session.id());
    *update.mutable_credentials() = Password();
    update.mutable_credentials()->set_mechanism(mechanism);
    v1::UpdateSessionResponse response;
    grpc::Status status = sessions_->UpdateSession(&context, update, &response);
    EXPECT_TRUE(status.ok()) << v1::AuthMechanism_Name(mechanism) << ": " << status.error_message();
  }
  // NONE is SMTP-only: the POP3 link refuses it.
  grpc::ClientContext context;
  v1::UpdateSessionRequest update;
  update.set_session(session.id());
  *update.mutable_credentials() = Password();
  update.mutable_credentials()->set_mechanism(v1::AUTH_MECHANISM_NONE);
  v1::UpdateSessionResponse response;
  EXPECT_EQ(sessions_->UpdateSession(&context, update, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Close(session.id()).ok());
}

TEST_F(SessionServiceTest, LegacyCombinedPop3SmtpSession) {
  v1::StartSessionRequest request;
  auto* o = request.mutable_pop3_smtp();
  *o->mutable_pop3() = Endpoint(EnvPort("MAILPOOL_TEST_POP3S_PORT"), kTls);
  // SMTP host defaults to the POP3 host; only the port and security are given.
  o->mutable_smtp()->set_port(EnvPort("MAILPOOL_TEST_SMTPS_PORT"));
  o->mutable_smtp()->set_security(kTls);
  o->mutable_smtp()->mutable_tls()->set_ca_pem(ca_pem_);
  *o->mutable_credentials() = Password();
  o->mutable_credentials()->set_mechanism(v1::AUTH_MECHANISM_COMMAND);  // USER/PASS; SMTP auto
  v1::Session session;
  grpc::Status status = Start(request, &session);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(session.protocol(), v1::PROTOCOL_POP3_SMTP);
  ASSERT_EQ(session.connections_size(), 2);
  EXPECT_EQ(session.connections(0).protocol(), v1::PROTOCOL_POP3);
  EXPECT_EQ(session.connections(1).protocol(), v1::PROTOCOL_SMTP);
  EXPECT_EQ(session.connections(1).host(), "127.0.0.1");
  std::string reply;
  EXPECT_TRUE(Close(session.id(), &reply).ok());
  EXPECT_THAT(reply, HasSubstr("+OK"));
}

}  // namespace
}  // namespace mailpool::testing
