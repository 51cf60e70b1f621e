#include "tests/integration/test_env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mailpool::testing {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    ADD_FAILURE() << name
                  << " is not set: start the test servers with scripts/testservers.sh and "
                     "source their env file (scripts/test.sh does both)";
    return "";
  }
  return value;
}

int EnvPort(const char* name) { return std::atoi(Env(name).c_str()); }

namespace {
std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value == nullptr || *value == '\0' ? fallback : value;
}
}  // namespace

std::string ImapServer() { return EnvOr("MAILPOOL_TEST_IMAP_SERVER", "dovecot"); }
std::string SmtpServer() { return EnvOr("MAILPOOL_TEST_SMTP_SERVER", "postfix"); }
std::string ImapDelimiter() { return ImapServer() == "imap4d" ? "/" : "."; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

v1::ErrorDetail ErrorDetailOf(const grpc::ClientContext& context) {
  v1::ErrorDetail detail;
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find("mailpool-error-bin");
  if (it != trailers.end()) {
    detail.ParseFromString(std::string(it->second.data(), it->second.size()));
  }
  return detail;
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size())) {
      char buf[16384];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

double MetricValue(const std::string& page, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (line.size() > series.size() && absl::StartsWith(line, series) &&
        line[series.size()] == ' ') {
      double value = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &value)) return value;
    }
  }
  return 0;
}

namespace {

std::unique_ptr<grpc::ClientContext> CallContext() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return ctx;
}

}  // namespace

std::vector<v1::EmailMessage> FindBySubject(v1::MailboxService::Stub& mailbox,
                                            const std::string& session, const std::string& marker) {
  v1::SearchMessagesRequest request;
  request.set_session(session);
  request.mutable_criteria()->set_subject(marker);
  request.set_order(v1::MESSAGE_ORDER_OLDEST_FIRST);
  request.set_page_size(1000);
  v1::SearchMessagesResponse response;
  grpc::Status status = mailbox.SearchMessages(CallContext().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return {response.messages().begin(), response.messages().end()};
}

std::vector<v1::EmailMessage> WaitForSubject(v1::MailboxService::Stub& mailbox,
                                             const std::string& session, const std::string& marker,
                                             size_t count, std::chrono::seconds patience) {
  auto deadline = std::chrono::steady_clock::now() + patience;
  for (;;) {
    std::vector<v1::EmailMessage> found = FindBySubject(mailbox, session, marker);
    if (found.size() >= count || std::chrono::steady_clock::now() > deadline) return found;
    v1::RefreshRequest refresh;
    refresh.set_session(session);
    v1::RefreshResponse response;
    grpc::Status status = mailbox.Refresh(CallContext().get(), refresh, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
}

namespace {

// USER/PASS against the test Dovecot's POP3 port over a plain socket: "+OK" (true) or
// "-ERR" (false); nullopt if the exchange itself failed.
std::optional<bool> Pop3Login(const std::string& user, const std::string& password) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(EnvPort("MAILPOOL_TEST_POP3_PORT")));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::optional<bool> result;
  auto line = [&]() {
    std::string out;
    char c;
    while (out.size() < 512 && recv(fd, &c, 1, 0) == 1 && c != '\n') out += c;
    return out;
  };
  auto say = [&](const std::string& text) {
    std::string l = text + "\r\n";
    return send(fd, l.data(), l.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(l.size());
  };
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      absl::StartsWith(line(), "+OK") && say("USER " + user) && absl::StartsWith(line(), "+OK") &&
      say("PASS " + password)) {
    std::string reply = line();
    if (absl::StartsWith(reply, "+OK")) result = true;
    if (absl::StartsWith(reply, "-ERR")) result = false;
    say("QUIT");
  }
  close(fd);
  return result;
}

// Dovecot re-reads its passwd-file at most once a second: polls (one login per round
// trip) until `password` is accepted (or refused), for up to 30 s.
void WaitForLogin(const std::string& password, bool accepted) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (Pop3Login(Env("MAILPOOL_TEST_USER5"), password) != accepted) {
    ASSERT_LT(std::chrono::steady_clock::now(), until)
        << "Dovecot did not pick up the password change";
  }
}

}  // namespace

PasswordChange::PasswordChange(const std::string& new_password)
    : path_(Env("MAILPOOL_TEST_DIR") + "/dovecot/users") {
  original_ = ReadFile(path_);
  std::string user = Env("MAILPOOL_TEST_USER5");
  std::string old_entry = absl::StrCat(user, ":{PLAIN}", Env("MAILPOOL_TEST_PASSWORD5"), ":");
  std::string changed = original_;
  size_t at = changed.find(old_entry);
  EXPECT_NE(at, std::string::npos) << user << " not found in " << path_;
  if (at == std::string::npos) return;
  changed.replace(at, old_entry.size(), absl::StrCat(user, ":{PLAIN}", new_password, ":"));
  Write(changed);
  WaitForLogin(Env("MAILPOOL_TEST_PASSWORD5"), /*accepted=*/false);
}

PasswordChange::~PasswordChange() {
  if (original_.empty()) return;
  Write(original_);
  WaitForLogin(Env("MAILPOOL_TEST_PASSWORD5"), /*accepted=*/true);
}

void PasswordChange::Write(const std::string& text) {
  std::ofstream out(path_, std::ios::trunc);  // keeps the file's owner and mode
  out << text;
  EXPECT_TRUE(out.good()) << "cannot write " << path_;
}

void RestartTestServer(const char* which) {
  std::string command = absl::StrCat(MAILPOOL_SOURCE_DIR, "/scripts/testservers.sh ", which, " ",
                                     Env("MAILPOOL_TEST_DIR"));
  int rc = std::system(command.c_str());
  ASSERT_EQ(rc, 0) << command;
}

void DaemonTest::SetUp() {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.shutdown_grace = absl::Seconds(5);
  options.metrics_listen = "127.0.0.1:0";  // every itest also exercises the endpoint
  // Each test its own outbox database, so parallel tests never share queued mail.
  char dir[] = "/tmp/mailpool-itest-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  outbox_dir_ = dir;
  options.outbox_path = outbox_dir_ + "/outbox.db";
  // Tests start sessions in bursts; the per-caller start rate has tests of its own.
  options.callers.start_rate_per_caller = 0;
  Configure(options);
  server_ = std::make_unique<server::Server>(options);
  ASSERT_TRUE(server_->Start().ok());
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                 grpc::InsecureChannelCredentials());
  sessions_ = v1::SessionService::NewStub(channel_);
  ca_pem_ = ReadFile(Env("MAILPOOL_TEST_CA"));
  ASSERT_FALSE(ca_pem_.empty()) << "cannot read the test CA";
}

void DaemonTest::TearDown() {
  sessions_.reset();
  channel_.reset();
  if (server_) server_->Shutdown();
  server_.reset();
  if (!outbox_dir_.empty()) {
    for (const char* suffix : {"/outbox.db", "/outbox.db-wal", "/outbox.db-shm"}) {
      unlink((outbox_dir_ + suffix).c_str());
    }
    rmdir(outbox_dir_.c_str());
  }
}

v1::ServerEndpoint DaemonTest::Endpoint(int port, v1::Security security) const {
  v1::ServerEndpoint endpoint;
  endpoint.set_host("127.0.0.1");
  endpoint.set_port(port);
  endpoint.set_security(security);
  endpoint.mutable_tls()->set_ca_pem(ca_pem_);
  return endpoint;
}

v1::Credentials DaemonTest::Password(const std::string& password) const {
  v1::Credentials c;
  c.set_user(Env("MAILPOOL_TEST_USER"));
  c.set_password(password.empty() ? Env("MAILPOOL_TEST_PASSWORD") : password);
  return c;
}

v1::Credentials DaemonTest::Token(const std::string& token) const {
  v1::Credentials c;
  c.set_user(Env("MAILPOOL_TEST_USER"));
  c.set_oauth2_token(token.empty() ? Env("MAILPOOL_TEST_TOKEN") : token);
  return c;
}

grpc::Status DaemonTest::Start(const v1::StartSessionRequest& request, v1::Session* session,
                               grpc::ClientContext* context) {
  grpc::ClientContext local;
  grpc::ClientContext* ctx = context ? context : &local;
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::StartSessionResponse response;
  grpc::Status status = sessions_->StartSession(ctx, request, &response);
  if (session) *session = response.session();
  return status;
}

std::string DaemonTest::ScrapeMetrics() {
  std::string reply = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 200 OK\r\n")) << reply;
  size_t body = reply.find("\r\n\r\n");
  return body == std::string::npos ? "" : reply.substr(body + 4);
}

grpc::Status DaemonTest::Close(const std::string& session, std::string* reply) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::CloseSessionRequest request;
  request.set_session(session);
  v1::CloseSessionResponse response;
  grpc::Status status = sessions_->CloseSession(&ctx, request, &response);
  if (reply) *reply = response.server_reply();
  return status;
}

}  // namespace mailpool::testing
