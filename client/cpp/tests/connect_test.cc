// The C++ client's connection options against in-process gRPC servers: the caller token
// sent as `authorization: Bearer`, token files and $MAILPOOL_TOKEN, Unix socket addresses,
// TLS with a CA file and mutual TLS with a client certificate (a test CA made with openssl
// here). Needs no daemon; the real daemon's checks are in client_test.cc.
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "mailpool/client.h"

namespace {

namespace v1 = mailpool::v1;

// Records what the last call carried.
class RecordingSessions final : public v1::SessionService::Service {
 public:
  grpc::Status GetDefaultTimeout(grpc::ServerContext* ctx, const v1::GetDefaultTimeoutRequest*,
                                 v1::GetDefaultTimeoutResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = ctx->client_metadata().find("authorization");
    authorization_ = it == ctx->client_metadata().end()
                         ? "<none>"
                         : std::string(it->second.data(), it->second.size());
    peer_cn_.clear();
    for (const auto& cn : ctx->auth_context()->FindPropertyValues("x509_common_name")) {
      peer_cn_ = std::string(cn.data(), cn.size());
    }
    resp->mutable_timeout()->set_seconds(42);
    return grpc::Status::OK;
  }
  std::string authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorization_;
  }
  std::string peer_cn() {
    std::lock_guard<std::mutex> lock(mu_);
    return peer_cn_;
  }

 private:
  std::mutex mu_;
  std::string authorization_;
  std::string peer_cn_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class ConnectTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/mailpool-connect-XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl));
    const std::string& d = *dir_;
    // A test CA, a server certificate for localhost/127.0.0.1 and a client certificate.
    std::string script = absl::StrCat(
        "set -e; cd ", d,
        "; exec >openssl.log 2>&1"
        "; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
        "ca.key -out ca.pem -days 2"
        " -subj /CN=mailpool-test-ca"
        "; openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key "
        "-out server.csr"
        " -subj /CN=localhost"
        "; echo subjectAltName=DNS:localhost,IP:127.0.0.1 > server.ext"
        "; openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out server.pem -days 2 -extfile server.ext"
        "; openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout client.key "
        "-out client.csr"
        " -subj /CN=alice-app"
        "; openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
        " -out client.pem -days 2"
        // A CA that signed nothing here: the daemon's certificate must not verify with it.
        "; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
        "other.key -out other.pem -days 2"
        " -subj /CN=other-ca");
    WriteFile(d + "/make-certs.sh", script);
    ASSERT_EQ(std::system(("bash " + d + "/make-certs.sh").c_str()), 0)
        << ReadAll(d + "/openssl.log");

    service_ = new RecordingSessions;
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &plain_port_);
    b.AddListeningPort("unix:" + d + "/mailpool.sock", grpc::InsecureServerCredentials());
    grpc::SslServerCredentialsOptions tls;
    tls.pem_key_cert_pairs.push_back({ReadAll(d + "/server.key"), ReadAll(d + "/server.pem")});
    b.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(tls), &tls_port_);
    grpc::SslServerCredentialsOptions mtls(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    mtls.pem_root_certs = ReadAll(d + "/ca.pem");
    mtls.pem_key_cert_pairs = tls.pem_key_cert_pairs;
    b.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(mtls), &mtls_port_);
    b.RegisterService(service_);
    server_ = b.BuildAndStart().release();
    ASSERT_NE(server_, nullptr);
  }
  static void TearDownTestSuite() {
    server_->Shutdown();
    delete server_;
    delete service_;
    std::system(("rm -rf " + *dir_).c_str());
    delete dir_;
  }
  void SetUp() override {
    unsetenv("MAILPOOL_TOKEN");
    unsetenv("MAILPOOL_TOKEN_FILE");
  }

  static mailpool::ClientOptions Options(mailpool::ConnectOptions connect) {
    mailpool::ClientOptions o;
    o.timeout = absl::Seconds(20);
    o.connect = std::move(connect);
    return o;
  }
  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }

  static inline std::string* dir_ = nullptr;
  static inline int plain_port_ = 0, tls_port_ = 0, mtls_port_ = 0;
  static inline grpc::Server* server_ = nullptr;
  static inline RecordingSessions* service_ = nullptr;
};

TEST_F(ConnectTest, TokenIsSentAsBearerOnEveryCall) {
  mailpool::ConnectOptions c;
  c.token = "tok-Alice_1.2~+/=";
  mailpool::Client client(absl::StrCat("127.0.0.1:", plain_port_), Options(c));
  ASSERT_TRUE(client.GetDefaultTimeout().ok());
  EXPECT_EQ(service_->authorization(), "Bearer tok-Alice_1.2~+/=");
}

TEST_F(ConnectTest, NoTokenSendsNoAuthorization) {
  mailpool::Client client(absl::StrCat("127.0.0.1:", plain_port_), Options({}));
  ASSERT_TRUE(client.GetDefaultTimeout().ok());
  EXPECT_EQ(service_->authorization(), "<none>");
}

TEST_F(ConnectTest, TokenFileIsReadAndStripped) {
  WriteFile(Path("token"), "  file-token-77\n");
  mailpool::ConnectOptions c;
  c.token_file = Path("token");
  absl::StatusOr<mailpool::Client> client =
      mailpool::Client::Create(absl::StrCat("127.0.0.1:", plain_port_), Options(c));
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(client->GetDefaultTimeout().ok());
  EXPECT_EQ(service_->authorization(), "Bearer file-token-77");
}

TEST_F(ConnectTest, EnvironmentTokenAndTokenFile) {
  setenv("MAILPOOL_TOKEN", "env-token-1", 1);
  mailpool::Client a(absl::StrCat("127.0.0.1:", plain_port_), Options({}));
  ASSERT_TRUE(a.GetDefaultTimeout().ok());
  EXPECT_EQ(service_->authorization(), "Bearer env-token-1");
  unsetenv("MAILPOOL_TOKEN");
  WriteFile(Path("env-token"), "env-file-token\n");
  setenv("MAILPOOL_TOKEN_FILE", Path("env-token").c_str(), 1);
  mailpool::Client b(absl::StrCat("127.0.0.1:", plain_port_), Options({}));
  ASSERT_TRUE(b.GetDefaultTimeout().ok());
  EXPECT_EQ(service_->authorization(), "Bearer env-file-token");
  mailpool::ConnectOptions off;
  off.token_from_environment = false;
  mailpool::Client c(absl::StrCat("127.0.0.1:", plain_port_), Options(off));
  ASSERT_TRUE(c.GetDefaultTimeout().ok());
  EXPECT_EQ(service_->authorization(), "<none>");
}

TEST_F(ConnectTest, BadTokenFailsWithoutShowingIt) {
  WriteFile(Path("bad-token"), "secret part\x01tail\n");
  mailpool::ConnectOptions c;
  c.token_file = Path("bad-token");
  absl::StatusOr<mailpool::Client> created =
      mailpool::Client::Create(absl::StrCat("127.0.0.1:", plain_port_), Options(c));
  ASSERT_FALSE(created.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(created.status()));
  EXPECT_FALSE(absl::StrContains(created.status().message(), "secret")) << created.status();
  EXPECT_TRUE(absl::StrContains(created.status().message(), "bad-token")) << created.status();
  // The constructor form: every call fails with the same error.
  mailpool::Client client(absl::StrCat("127.0.0.1:", plain_port_), Options(c));
  EXPECT_EQ(client.GetDefaultTimeout().status(), created.status());
  int items = 0;
  for (const auto& s : client.ListSessions()) {
    EXPECT_EQ(s.status(), created.status());
    ++items;
  }
  EXPECT_EQ(items, 1);
  c.token_file = Path("missing-token");
  EXPECT_TRUE(absl::StrContains(
      mailpool::Client::Create("127.0.0.1:1", Options(c)).status().message(), "cannot read"));
  WriteFile(Path("empty-token"), " \n");
  c.token_file = Path("empty-token");
  EXPECT_FALSE(mailpool::Client::Create("127.0.0.1:1", Options(c)).ok());
}

TEST_F(ConnectTest, UnixSocketAddress) {
  mailpool::ConnectOptions c;
  c.token = "unix-token";
  mailpool::Client client("unix:" + Path("mailpool.sock"), Options(c));
  absl::StatusOr<absl::Duration> t = client.GetDefaultTimeout();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, absl::Seconds(42));
  EXPECT_EQ(service_->authorization(), "Bearer unix-token");
}

TEST_F(ConnectTest, TlsWithCaFileAndTokenOverTls) {
  mailpool::ConnectOptions c;
  c.ca_file = Path("ca.pem");
  c.token = "tls-token";
  mailpool::Client client(absl::StrCat("localhost:", tls_port_), Options(c));
  absl::StatusOr<absl::Duration> t = client.GetDefaultTimeout();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(service_->authorization(), "Bearer tls-token");
  // The name checked can be set apart from the address.
  c.tls_server_name = "localhost";
  mailpool::Client by_ip(absl::StrCat("127.0.0.1:", tls_port_), Options(c));
  EXPECT_TRUE(by_ip.GetDefaultTimeout().ok());
}

TEST_F(ConnectTest, TlsRefusesADaemonCertificateFromAnotherCa) {
  mailpool::ConnectOptions c;
  c.ca_file = Path("other.pem");
  mailpool::ClientOptions o = Options(c);
  o.timeout = absl::Seconds(5);
  mailpool::Client client(absl::StrCat("localhost:", tls_port_), o);
  absl::Status st = client.GetDefaultTimeout().status();
  EXPECT_TRUE(absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) << st;
}

TEST_F(ConnectTest, MutualTlsSendsTheClientCertificate) {
  mailpool::ConnectOptions c;
  c.ca_file = Path("ca.pem");
  c.cert_file = Path("client.pem");
  c.key_file = Path("client.key");
  mailpool::Client client(absl::StrCat("localhost:", mtls_port_), Options(c));
  absl::StatusOr<absl::Duration> t = client.GetDefaultTimeout();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(service_->peer_cn(), "alice-app");
  // Without a certificate the server refuses the handshake.
  c.cert_file.clear();
  c.key_file.clear();
  mailpool::ClientOptions o = Options(c);
  o.timeout = absl::Seconds(5);
  mailpool::Client anonymous(absl::StrCat("localhost:", mtls_port_), o);
  EXPECT_FALSE(anonymous.GetDefaultTimeout().ok());
}

TEST_F(ConnectTest, CertificateNeedsItsKey) {
  mailpool::ConnectOptions c;
  c.cert_file = Path("client.pem");
  absl::Status st = mailpool::CreateChannel("localhost:1", c).status();
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  c.cert_file.clear();
  c.ca_file = Path("nope.pem");
  EXPECT_TRUE(
      absl::StrContains(mailpool::CreateChannel("localhost:1", c).status().message(), "CA file"));
}

}  // namespace
