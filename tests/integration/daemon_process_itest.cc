// The mailpoold binary itself (MAILPOOLD_PATH) on its network face: refusing an
// unauthenticated network listener, a bad tokens file, SIGHUP reloading the tokens, mutual
// TLS with a test CA made here, descriptor exhaustion and recovery, and no caller token in
// any log line. Sessions go to the real Dovecot and to Postfix's smtp-sink.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "callers/callers.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

constexpr char kToken[] = "process-test-token-7f3a9c0d11e2";

std::string TempDir() {
  char dir[] = "/tmp/mailpool-proc-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  return dir;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

// One mailpoold process with the given flags; stderr (the log) goes to a file.
class Daemon {
 public:
  Daemon(const std::string& dir, std::vector<std::string> flags, long nofile = 0) {
    log_ = dir + "/daemon.log";
    flags.push_back("--outbox_path=" + dir + "/outbox.db");
    if (std::none_of(flags.begin(), flags.end(),
                     [](const std::string& f) { return f.rfind("--metrics_listen=", 0) == 0; })) {
      flags.push_back("--metrics_listen=");
    }
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(fd, 1);
      dup2(fd, 2);
      if (nofile > 0) {
        rlimit limit{static_cast<rlim_t>(nofile), static_cast<rlim_t>(nofile)};
        setrlimit(RLIMIT_NOFILE, &limit);
      }
      std::vector<char*> argv = {const_cast<char*>(MAILPOOLD_PATH)};
      for (auto& f : flags) argv.push_back(f.data());
      argv.push_back(nullptr);
      execv(MAILPOOLD_PATH, argv.data());
      _exit(127);
    }
  }
  ~Daemon() { Stop(SIGKILL); }
  // Waits for the process to exit by itself (bounded); its exit code, or -1.
  int Exit(std::chrono::seconds patience = std::chrono::seconds(30)) {
    auto deadline = Clock::now() + patience;
    while (Clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling, bounded
    }
    return -1;
  }
  void Signal(int signal) { kill(pid_, signal); }
  void Stop(int signal) {
    if (pid_ <= 0) return;
    kill(pid_, signal);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  std::string Log() const { return ReadFile(log_); }
  // Waits (bounded) until the log contains `text`.
  bool WaitForLog(const std::string& text, std::chrono::seconds patience) const {
    auto deadline = Clock::now() + patience;
    while (Clock::now() < deadline) {
      if (absl::StrContains(Log(), text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling, bounded
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

// Runs a shell command; true when it exits 0.
bool Shell(const std::string& command) { return std::system(command.c_str()) == 0; }

std::unique_ptr<grpc::ClientContext> As(const std::string& token, int seconds = 30) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  return ctx;
}

grpc::Status List(v1::SessionService::Stub& stub, const std::string& token) {
  v1::ListSessionsResponse response;
  return stub.ListSessions(As(token).get(), {}, &response);
}

bool Serving(const std::shared_ptr<grpc::Channel>& channel) {
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return health->Check(&ctx, request, &response).ok() &&
         response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

// A channel to the daemon on `port`, connected when the daemon accepts it (bounded wait:
// `patience` 0 does not wait, for connections that must fail).
std::shared_ptr<grpc::Channel> Connect(int port,
                                       std::shared_ptr<grpc::ChannelCredentials> creds = nullptr,
                                       int patience = 30) {
  auto channel = grpc::CreateChannel(absl::StrCat("localhost:", port),
                                     creds ? creds : grpc::InsecureChannelCredentials());
  if (patience > 0) {
    channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(patience));
  }
  return channel;
}

TEST(DaemonProcessTest, RefusesAnUnauthenticatedNetworkListener) {
  std::string dir = TempDir();
  {
    Daemon d(dir, {absl::StrCat("--listen=0.0.0.0:", FreePort())});
    EXPECT_EQ(d.Exit(), 1);
    EXPECT_THAT(d.Log(), HasSubstr("refusing to listen on 0.0.0.0"));
    EXPECT_THAT(d.Log(), HasSubstr("--allow_unauthenticated_network"));
  }
  {
    int port = FreePort();
    Daemon d(dir, {absl::StrCat("--listen=0.0.0.0:", port), "--allow_unauthenticated_network"});
    auto channel = Connect(port);
    EXPECT_TRUE(Serving(channel));
    EXPECT_THAT(d.Log(), HasSubstr("UNAUTHENTICATED NETWORK LISTENER"));
  }
  {
    // With tokens the network listener is allowed.
    WriteFile(dir + "/tokens", absl::StrCat("app ", callers::Sha256Hex(kToken), "\n"));
    int port = FreePort();
    Daemon d(dir,
             {absl::StrCat("--listen=0.0.0.0:", port), "--caller_tokens_file=" + dir + "/tokens"});
    auto channel = Connect(port);
    EXPECT_TRUE(Serving(channel));
  }
}

TEST(DaemonProcessTest, AMalformedTokensFileStopsTheStartNamingTheLine) {
  std::string dir = TempDir();
  WriteFile(dir + "/tokens",
            absl::StrCat("app ", callers::Sha256Hex(kToken), "\nother ", kToken, "\n"));
  Daemon d(dir, {absl::StrCat("--listen=127.0.0.1:", FreePort()),
                 "--caller_tokens_file=" + dir + "/tokens"});
  EXPECT_EQ(d.Exit(), 1);
  EXPECT_THAT(d.Log(), HasSubstr(dir + "/tokens:2:"));
  EXPECT_THAT(d.Log(), Not(HasSubstr(kToken))) << "the line's text is never quoted";
}

TEST(DaemonProcessTest, SighupReloadsTheTokensAndNoTokenReachesTheLog) {
  std::string dir = TempDir();
  constexpr char kNew[] = "process-test-new-token-99aa88bb";
  WriteFile(dir + "/tokens", absl::StrCat("app ", callers::Sha256Hex(kToken), "\n"));
  int port = FreePort();
  Daemon d(dir, {absl::StrCat("--listen=127.0.0.1:", port),
                 "--caller_tokens_file=" + dir + "/tokens", "--log_level=debug"});
  auto stub = v1::SessionService::NewStub(Connect(port));
  EXPECT_TRUE(List(*stub, kToken).ok());
  EXPECT_EQ(List(*stub, kNew).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // A session through the token, so that start/close audit lines are written too.
  v1::StartSessionRequest start;
  *start.mutable_imap()->mutable_server() = [] {
    v1::ServerEndpoint e;
    e.set_host("127.0.0.1");
    e.set_port(EnvPort("MAILPOOL_TEST_IMAP_PORT"));
    e.set_security(v1::SECURITY_STARTTLS);
    e.mutable_tls()->set_ca_pem(ReadFile(Env("MAILPOOL_TEST_CA")));
    return e;
  }();
  start.mutable_imap()->mutable_credentials()->set_user(Env("MAILPOOL_TEST_USER"));
  start.mutable_imap()->mutable_credentials()->set_password(Env("MAILPOOL_TEST_PASSWORD"));
  v1::StartSessionResponse started;
  grpc::Status start_status = stub->StartSession(As(kToken, 60).get(), start, &started);
  ASSERT_TRUE(start_status.ok()) << start_status.error_message();

  WriteFile(dir + "/tokens", absl::StrCat("app2 ", callers::Sha256Hex(kNew), " admin\n"));
  d.Signal(SIGHUP);
  ASSERT_TRUE(d.WaitForLog("caller tokens reloaded", std::chrono::seconds(30)));
  EXPECT_TRUE(List(*stub, kNew).ok());
  EXPECT_EQ(List(*stub, kToken).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // A broken file on SIGHUP keeps the daemon and the tokens in use.
  WriteFile(dir + "/tokens", "garbage\n");
  d.Signal(SIGHUP);
  ASSERT_TRUE(d.WaitForLog("caller tokens not reloaded", std::chrono::seconds(30)));
  EXPECT_TRUE(List(*stub, kNew).ok());

  std::string log = d.Log();
  EXPECT_THAT(log, HasSubstr("event=\"session started\""));
  EXPECT_THAT(log, HasSubstr("caller=app"));
  EXPECT_THAT(log, Not(HasSubstr(kToken)));
  EXPECT_THAT(log, Not(HasSubstr(kNew)));
  EXPECT_THAT(log, Not(HasSubstr(Env("MAILPOOL_TEST_PASSWORD"))));
}

TEST(DaemonProcessTest, HealthAnswersPerServiceName) {
  std::string dir = TempDir();
  int port = FreePort();
  Daemon d(dir, {absl::StrCat("--listen=127.0.0.1:", port)});
  auto health = grpc::health::v1::Health::NewStub(Connect(port));
  for (const char* name : {"mailpool.v1.SessionService", "mailpool.v1.MailboxService",
                           "mailpool.v1.MessageService", "mailpool.v1.SendService"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(name);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext ctx;
    ASSERT_TRUE(health->Check(&ctx, request, &response).ok()) << name;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << name;
  }
  grpc::health::v1::HealthCheckRequest unknown;
  unknown.set_service("mailpool.v1.NoSuchService");
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext ctx;
  EXPECT_EQ(health->Check(&ctx, unknown, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(DaemonProcessTest, LibraryLogLinesStayKeyValue) {
  std::string dir = TempDir();
  int port = FreePort();
  Daemon d(dir, {absl::StrCat("--listen=127.0.0.1:", port)});
  auto channel = Connect(port);
  // A GetSessionRequest whose string field is not UTF-8: protobuf refuses and logs it.
  grpc::GenericStub generic(channel);
  const char bytes[] = {0x0a, 0x02, static_cast<char>(0xff), static_cast<char>(0xfe)};
  grpc::Slice slice(bytes, sizeof bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  std::promise<grpc::Status> done;
  generic.UnaryCall(&ctx, "/mailpool.v1.SessionService/GetSession", grpc::StubOptions(), &request,
                    &response, [&done](grpc::Status s) { done.set_value(s); });
  // The caller's bytes are at fault: INVALID_ARGUMENT, not gRPC's own INTERNAL.
  grpc::Status status = done.get_future().get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("GetSession"));
  ASSERT_TRUE(d.WaitForLog("event=\"protobuf log\"", std::chrono::seconds(10))) << d.Log();
  // A well-formed call on the same channel is answered as usual.
  std::promise<grpc::Status> again;
  grpc::Slice nothing("", 0);
  grpc::ByteBuffer empty_request(&nothing, 1), empty_response;
  grpc::ClientContext ctx2;
  ctx2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  generic.UnaryCall(&ctx2, "/mailpool.v1.SessionService/ListSessions", grpc::StubOptions(),
                    &empty_request, &empty_response,
                    [&again](grpc::Status s) { again.set_value(s); });
  grpc::Status listed = again.get_future().get();
  EXPECT_TRUE(listed.ok()) << listed.error_message();
  EXPECT_THAT(d.Log(), Not(HasSubstr("[libprotobuf")));
}

TEST(DaemonProcessTest, MutualTlsIdentifiesCallersByTheirCertificate) {
  std::string d = TempDir();
  // A CA, the daemon's certificate for localhost, and two client certificates.
  std::string make = absl::StrCat(
      "cd ", d, " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca ",
      "-keyout ca.key -out ca.pem 2>/dev/null && ", "for n in server app-one app-two; do ",
      "openssl req -newkey rsa:2048 -nodes -subj /CN=$n -keyout $n.key -out $n.csr 2>/dev/null ",
      "&& printf 'subjectAltName=DNS:localhost\\n' > $n.ext && ",
      "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 ",
      "-extfile $n.ext -out $n.pem 2>/dev/null || exit 1; done");
  ASSERT_TRUE(Shell(make)) << "openssl could not make the test certificates";
  int port = FreePort();
  int metrics_port = FreePort();
  Daemon daemon(
      d, {absl::StrCat("--listen=127.0.0.1:", port), "--tls_cert=" + d + "/server.pem",
          "--tls_key=" + d + "/server.key", "--tls_client_ca=" + d + "/ca.pem",
          absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port),
          "--metrics_tls_cert=" + d + "/server.pem", "--metrics_tls_key=" + d + "/server.key"});
  auto creds = [&](const std::string& who) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadFile(d + "/ca.pem");
    if (!who.empty()) {
      o.pem_private_key = ReadFile(d + "/" + who + ".key");
      o.pem_cert_chain = ReadFile(d + "/" + who + ".pem");
    }
    return grpc::SslCredentials(o);
  };
  auto one = v1::SessionService::NewStub(Connect(port, creds("app-one")));
  auto two = v1::SessionService::NewStub(Connect(port, creds("app-two")));
  v1::StartSessionRequest start;
  start.set_name("shared-name");
  auto* server = start.mutable_pop3()->mutable_server();
  server->set_host("127.0.0.1");
  server->set_port(EnvPort("MAILPOOL_TEST_POP3S_PORT"));
  server->set_security(v1::SECURITY_IMPLICIT_TLS);
  server->mutable_tls()->set_ca_pem(ReadFile(Env("MAILPOOL_TEST_CA")));
  start.mutable_pop3()->mutable_credentials()->set_user(Env("MAILPOOL_TEST_USER"));
  start.mutable_pop3()->mutable_credentials()->set_password(Env("MAILPOOL_TEST_PASSWORD"));
  v1::StartSessionResponse a, b;
  grpc::Status started = one->StartSession(As("", 60).get(), start, &a);
  ASSERT_TRUE(started.ok()) << started.error_message() << "\n" << daemon.Log();
  ASSERT_TRUE(two->StartSession(As("", 60).get(), start, &b).ok());
  EXPECT_EQ(a.session().owner(), "cert:app-one");
  EXPECT_EQ(b.session().owner(), "cert:app-two");
  v1::GetSessionRequest get;
  get.set_session(a.session().id());
  v1::GetSessionResponse got;
  EXPECT_EQ(two->GetSession(As("").get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(one->GetSession(As("").get(), get, &got).ok());
  // Without a client certificate, or over plaintext, nothing gets through.
  auto anonymous = v1::SessionService::NewStub(Connect(port, creds(""), 0));
  EXPECT_NE(List(*anonymous, "").error_code(), grpc::StatusCode::OK);
  auto plain = v1::SessionService::NewStub(Connect(port, nullptr, 0));
  EXPECT_NE(List(*plain, "").error_code(), grpc::StatusCode::OK);
  // The metrics endpoint takes the same files and speaks HTTPS only.
  EXPECT_TRUE(Shell(absl::StrCat("curl -sf --cacert ", d, "/ca.pem https://localhost:",
                                 metrics_port, "/metrics | grep -q '^mailpool_grpc_calls_total'")));
  EXPECT_FALSE(
      Shell(absl::StrCat("curl -sf -m 5 http://localhost:", metrics_port, "/metrics >/dev/null")));
}

TEST(DaemonProcessTest, OutOfDescriptorsRefusesMailConnectionsAndRecovers) {
  std::string dir = TempDir();
  int sink_port = FreePort();
  pid_t sink = fork();
  if (sink == 0) {
    std::vector<std::string> argv = {"smtp-sink"};
    if (geteuid() == 0) argv.insert(argv.end(), {"-u", "postfix"});
    argv.push_back(absl::StrCat("127.0.0.1:", sink_port));
    argv.push_back("512");
    std::vector<char*> c;
    for (auto& a : argv) c.push_back(a.data());
    c.push_back(nullptr);
    execvp("smtp-sink", c.data());
    _exit(127);
  }
  auto sink_deadline = Clock::now() + std::chrono::seconds(10);
  while (!Accepts(sink_port) && Clock::now() < sink_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling, bounded
  }
  ASSERT_TRUE(Accepts(sink_port));
  int port = FreePort();
  // 256 descriptors in all, 64 of them kept for gRPC: at most ~190 mail connections.
  Daemon d(dir,
           {absl::StrCat("--listen=127.0.0.1:", port), "--reserved_descriptors=64",
            "--start_rate_per_caller=0", "--keepalive_smtp=0"},
           256);
  auto channel = Connect(port);
  auto stub = v1::SessionService::NewStub(channel);
  v1::StartSessionRequest start;
  auto* server = start.mutable_smtp()->mutable_server();
  server->set_host("127.0.0.1");
  server->set_port(sink_port);
  server->set_security(v1::SECURITY_PLAIN);
  std::vector<std::string> ids;
  grpc::Status refused;
  v1::ErrorDetail detail;
  for (int i = 0; i < 400; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::StartSessionResponse response;
    grpc::Status status = stub->StartSession(&ctx, start, &response);
    if (!status.ok()) {
      refused = status;
      detail = ErrorDetailOf(ctx);
      break;
    }
    ids.push_back(response.session().id());
  }
  printf("mail sessions before the descriptor reserve: %zu (limit 256, 64 reserved)\n", ids.size());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(detail.reason(), "DESCRIPTORS_EXHAUSTED");
  EXPECT_GT(ids.size(), 100u);
  EXPECT_LT(ids.size(), 256u);
  // The daemon still answers while its mail descriptors are used up, on a new connection
  // too.
  EXPECT_TRUE(Serving(channel));
  EXPECT_TRUE(Serving(Connect(port)));
  for (const std::string& id : ids) {
    v1::CloseSessionRequest close;
    close.set_session(id);
    v1::CloseSessionResponse closed;
    EXPECT_TRUE(stub->CloseSession(As("").get(), close, &closed).ok());
  }
  EXPECT_TRUE(Serving(Connect(port)));
  grpc::ClientContext ctx;
  v1::StartSessionResponse again;
  EXPECT_TRUE(stub->StartSession(&ctx, start, &again).ok()) << "a session starts again";
  kill(sink, SIGKILL);
  waitpid(sink, nullptr, 0);
}

}  // namespace
}  // namespace mailpool::testing
