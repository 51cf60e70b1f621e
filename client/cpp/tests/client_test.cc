// mailpool C++ client against a live mailpoold (started here, stopped with SIGTERM) and the
// real test mail servers (the MAILPOOL_TEST_* environment; missing -> the run fails).
#include "mailpool/client.h"

#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace {

namespace v1 = mailpool::v1;

const char* const kRequired[] = {"MAILPOOLD",
                                 "MAILPOOL_TEST_HOST",
                                 "MAILPOOL_TEST_IMAP_PORT",
                                 "MAILPOOL_TEST_IMAPS_PORT",
                                 "MAILPOOL_TEST_POP3S_PORT",
                                 "MAILPOOL_TEST_SMTP_PORT",
                                 "MAILPOOL_TEST_SMTPS_PORT",
                                 "MAILPOOL_TEST_USER",
                                 "MAILPOOL_TEST_PASSWORD",
                                 "MAILPOOL_TEST_CA"};

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A private mailpoold: Start() spawns it with `extra` flags and waits for its port;
// Stop() sends SIGTERM and returns its exit code.
struct Daemon {
  pid_t pid = -1;
  std::string log;
  int port = 0;

  bool Start(const std::string& listen = "127.0.0.1:0", std::vector<std::string> extra = {}) {
    char tmpl[] = "/tmp/mailpoold-cpp-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return false;
    close(fd);
    log = tmpl;
    std::string daemon = Env("MAILPOOLD");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> args = {daemon,        "--listen",   listen, "--metrics_listen",
                                     "127.0.0.1:0", "--instance", "test"};
    for (auto& a : extra) args.push_back(std::move(a));
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawn(&pid, daemon.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      std::cerr << "cannot start " << daemon << "\n";
      return false;
    }
    std::regex port_re("event=\"mailpoold listening\".* port=([0-9]+)");
    for (int i = 0; i < 300; ++i) {
      std::smatch m;
      std::string text = ReadFile(log);
      if (std::regex_search(text, m, port_re)) {
        port = std::stoi(m[1].str());
        return true;
      }
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        std::cerr << "mailpoold exited early:\n" << text;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::cerr << "mailpoold did not report its port:\n" << ReadFile(log);
    kill(pid, SIGKILL);
    return false;
  }

  int Stop() {
    kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 400; ++i) {
      if (waitpid(pid, &status, WNOHANG) == pid) {
        unlink(log.c_str());
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 137;
  }
};

Daemon g_daemon;
std::string g_address;

std::string Unique(const std::string& prefix) {
  static int n = 0;
  return absl::StrCat(prefix, "-", getpid(), "-", ++n);
}

class ClientTest : public ::testing::Test {
 protected:
  mailpool::Client client_{g_address};

  mailpool::StartOptions Options(const char* port_var, v1::Security security) {
    mailpool::StartOptions o;
    o.host = Env("MAILPOOL_TEST_HOST");
    o.port = static_cast<uint32_t>(std::stoi(Env(port_var)));
    o.security = security;
    o.user = Env("MAILPOOL_TEST_USER");
    o.password = Env("MAILPOOL_TEST_PASSWORD");
    o.ca_pem = ReadFile(Env("MAILPOOL_TEST_CA"));
    return o;
  }
  mailpool::StartOptions Imaps() {
    return Options("MAILPOOL_TEST_IMAPS_PORT", v1::SECURITY_IMPLICIT_TLS);
  }
  mailpool::StartOptions Pop3s() {
    return Options("MAILPOOL_TEST_POP3S_PORT", v1::SECURITY_IMPLICIT_TLS);
  }
  mailpool::StartOptions Smtp() {
    return Options("MAILPOOL_TEST_SMTP_PORT", v1::SECURITY_STARTTLS);
  }
};

TEST_F(ClientTest, ImapStartInfoClose) {
  mailpool::StartOptions o = Imaps();
  o.name = Unique("cpp-imap");
  absl::StatusOr<mailpool::Session> s = client_.StartImap(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(absl::StartsWith(s->id(), "mstest_")) << s->id();
  EXPECT_EQ(s->protocol(), v1::PROTOCOL_IMAP);
  absl::StatusOr<v1::Session> info = s->Info();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state(), v1::SESSION_STATE_READY);
  EXPECT_EQ(info->user(), Env("MAILPOOL_TEST_USER"));
  EXPECT_EQ(info->current_folder(), "INBOX");
  ASSERT_EQ(info->connections_size(), 1);
  EXPECT_TRUE(absl::StartsWith(info->connections(0).tls_version(), "TLS"));
  EXPECT_TRUE(info->connections(0).tls_verified());
  absl::StatusOr<v1::Session> by_name = client_.GetSession(o.name);
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ(by_name->id(), s->id());
  std::string id = s->id();
  absl::StatusOr<std::string> reply = s->Close();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(s->closed());
  EXPECT_EQ(s->Close().value_or("x"), "");  // a second close is a no-op
  EXPECT_TRUE(absl::IsNotFound(client_.GetSession(id).status()));
}

TEST_F(ClientTest, ImapStarttls) {
  absl::StatusOr<mailpool::Session> s =
      client_.StartImap(Options("MAILPOOL_TEST_IMAP_PORT", v1::SECURITY_STARTTLS));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->last_info().connections(0).security(), v1::SECURITY_STARTTLS);
}

TEST_F(ClientTest, DestructorClosesTheSession) {
  std::string id;
  {
    absl::StatusOr<mailpool::Session> s = client_.StartPop3(Pop3s());
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->protocol(), v1::PROTOCOL_POP3);
    id = s->id();
    mailpool::Session moved = *std::move(s);  // ownership moves; only `moved` closes
    ASSERT_TRUE(client_.GetSession(id).ok());
  }
  EXPECT_TRUE(absl::IsNotFound(client_.GetSession(id).status()));
}

TEST_F(ClientTest, ReleaseKeepsTheSessionAndAttachTakesItBack) {
  std::string id;
  {
    absl::StatusOr<mailpool::Session> s = client_.StartPop3(Pop3s());
    ASSERT_TRUE(s.ok()) << s.status();
    id = s->Release();
  }
  {
    absl::StatusOr<mailpool::Session> again = client_.Attach(id);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->last_info().state(), v1::SESSION_STATE_READY);
  }
  EXPECT_TRUE(absl::IsNotFound(client_.GetSession(id).status()));
}

TEST_F(ClientTest, Smtp) {
  mailpool::StartOptions o = Smtp();
  o.ehlo_name = "client.test";
  absl::StatusOr<mailpool::Session> s = client_.StartSmtp(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->protocol(), v1::PROTOCOL_SMTP);
  EXPECT_TRUE(absl::StartsWith(s->last_info().connections(0).greeting(), "220"));
}

TEST_F(ClientTest, Pop3Smtp) {
  mailpool::StartOptions o = Pop3s();
  o.smtp_port = static_cast<uint32_t>(std::stoi(Env("MAILPOOL_TEST_SMTPS_PORT")));
  absl::StatusOr<mailpool::Session> s = client_.StartPop3Smtp(o);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->last_info().connections_size(), 2);
  EXPECT_EQ(s->last_info().connections(0).protocol(), v1::PROTOCOL_POP3);
  EXPECT_EQ(s->last_info().connections(1).protocol(), v1::PROTOCOL_SMTP);
}

TEST_F(ClientTest, ListSessionsPageByPage) {
  std::vector<mailpool::Session> started;
  std::set<std::string> names;
  for (int i = 0; i < 3; ++i) {
    mailpool::StartOptions o = Pop3s();
    o.name = Unique("cpp-list");
    names.insert(o.name);
    absl::StatusOr<mailpool::Session> s = client_.StartPop3(o);
    ASSERT_TRUE(s.ok()) << s.status();
    started.push_back(*std::move(s));
  }
  std::set<std::string> seen;
  for (const absl::StatusOr<v1::Session>& s : client_.ListSessions(/*page_size=*/1)) {
    ASSERT_TRUE(s.ok()) << s.status();
    if (names.count(s->name())) seen.insert(s->name());
  }
  EXPECT_EQ(seen, names);
  started.clear();  // closes all three
  for (const absl::StatusOr<v1::Session>& s : client_.ListSessions()) {
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(names.count(s->name()), 0u) << s->name();
  }
}

TEST_F(ClientTest, Timeouts) {
  absl::StatusOr<absl::Duration> before = client_.GetDefaultTimeout();
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(client_.SetDefaultTimeout(absl::Minutes(5)).value_or(absl::ZeroDuration()),
            absl::Minutes(5));
  EXPECT_EQ(client_.GetDefaultTimeout().value_or(absl::ZeroDuration()), absl::Minutes(5));
  ASSERT_TRUE(client_.SetDefaultTimeout(*before).ok());

  mailpool::StartOptions o = Imaps();
  o.session_timeout = absl::Seconds(90);
  absl::StatusOr<mailpool::Session> s = client_.StartImap(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->last_info().timeout().seconds(), 90);
  EXPECT_TRUE(s->last_info().timeout_overridden());
  absl::StatusOr<v1::Session> updated = s->SetTimeout(absl::Seconds(120));
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->timeout().seconds(), 120);
  EXPECT_FALSE(s->SetTimeout(absl::ZeroDuration())->timeout_overridden());
}

TEST_F(ClientTest, UpdateCredentialsKeepsAHealthySessionAndChecksTheFields) {
  absl::StatusOr<mailpool::Session> s = client_.StartImap(Imaps());
  ASSERT_TRUE(s.ok()) << s.status();
  mailpool::CredentialsUpdate same;
  same.password = Env("MAILPOOL_TEST_PASSWORD");
  absl::StatusOr<v1::Session> updated = s->UpdateCredentials(same);
  ASSERT_TRUE(updated.ok()) << updated.status();
  // A healthy session keeps its connection: no login, no reconnect.
  EXPECT_EQ(updated->state(), v1::SESSION_STATE_READY);
  EXPECT_EQ(updated->reconnect_count(), 0u);
  mailpool::CredentialsUpdate other = same;
  other.user = "someone-else";
  EXPECT_TRUE(absl::IsInvalidArgument(s->UpdateCredentials(other).status()));
  mailpool::CredentialsUpdate injected;
  injected.password = "hunter2\r\nxyz";
  absl::Status bad = s->UpdateCredentials(injected).status();
  EXPECT_TRUE(absl::IsInvalidArgument(bad)) << bad;
  EXPECT_FALSE(absl::StrContains(bad.message(), "hunter2"));
  EXPECT_TRUE(s->Status().ok());
}

TEST_F(ClientTest, WrongPasswordIsUnauthenticatedWithTheServerReply) {
  mailpool::StartOptions o = Imaps();
  o.password = "wrong";
  absl::StatusOr<mailpool::Session> s = client_.StartImap(o);
  ASSERT_TRUE(absl::IsUnauthenticated(s.status())) << s.status();
  std::optional<v1::ErrorDetail> detail = mailpool::ErrorDetailOf(s.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_FALSE(detail->reason().empty());
  std::string reply = mailpool::ServerReply(s.status());
  EXPECT_FALSE(reply.empty());
  EXPECT_TRUE(absl::StrContains(s.status().message(), reply)) << s.status();
  EXPECT_FALSE(absl::StrContains(detail->command(), "wrong"));  // redacted

  mailpool::StartOptions p = Pop3s();
  p.password = "wrong";
  absl::StatusOr<mailpool::Session> pop = client_.StartPop3(p);
  ASSERT_TRUE(absl::IsUnauthenticated(pop.status())) << pop.status();
  EXPECT_TRUE(absl::StartsWith(mailpool::ServerReply(pop.status()), "-ERR"));

  // The same in the standard place (grpc-status-details-bin): google.rpc.ErrorInfo.
  std::optional<google::rpc::ErrorInfo> info = mailpool::ErrorInfoOf(s.status());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), detail->reason());
  EXPECT_EQ(info->domain(), "mailpool.dev");
  EXPECT_EQ(info->metadata().at("server_reply"), reply);
  EXPECT_FALSE(mailpool::RetryDelayOf(s.status()).has_value()) << "a refused login: no retry";
  std::optional<google::rpc::Status> rpc = mailpool::RpcStatusOf(s.status());
  ASSERT_TRUE(rpc.has_value());
  EXPECT_EQ(rpc->code(), static_cast<int>(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(rpc->message(), s.status().message());
}

TEST_F(ClientTest, StandardErrorDetailsOfRealRefusals) {
  // A bad field: BadRequest names it.
  mailpool::StartOptions o = Imaps();
  o.host.clear();
  absl::Status bad = client_.StartImap(o).status();
  ASSERT_TRUE(absl::IsInvalidArgument(bad)) << bad;
  std::vector<google::rpc::BadRequest::FieldViolation> v = mailpool::FieldViolationsOf(bad);
  ASSERT_EQ(v.size(), 1u) << bad;
  EXPECT_EQ(v[0].field(), "server.host");
  EXPECT_FALSE(v[0].description().empty());
  EXPECT_EQ(mailpool::ErrorInfoOf(bad)->reason(), "INVALID_FIELD");
  // A mail server that cannot be reached: UNAVAILABLE, worth a retry later.
  std::string closed = Env("MAILPOOL_TEST_CLOSED_PORT");
  o = Imaps();
  o.port = closed.empty() ? 9 : static_cast<uint32_t>(std::stoi(closed));
  absl::Status down = client_.StartImap(o).status();
  ASSERT_TRUE(absl::IsUnavailable(down)) << down;
  ASSERT_TRUE(mailpool::RetryDelayOf(down).has_value()) << down;
  EXPECT_GT(*mailpool::RetryDelayOf(down), absl::ZeroDuration());
  EXPECT_TRUE(mailpool::FieldViolationsOf(down).empty());
  // An unknown session: NOT_FOUND, ErrorInfo only.
  absl::Status missing = client_.GetSession("no-such-session").status();
  ASSERT_TRUE(absl::IsNotFound(missing)) << missing;
  ASSERT_TRUE(mailpool::ErrorInfoOf(missing).has_value());
  EXPECT_FALSE(mailpool::RetryDelayOf(missing).has_value());
}

TEST_F(ClientTest, CrlfInUserIsInvalidArgument) {
  mailpool::StartOptions o = Imaps();
  o.user = "alice\r\nA1 LOGOUT";
  absl::StatusOr<mailpool::Session> s = client_.StartImap(o);
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
}

TEST_F(ClientTest, UnknownSessionIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(client_.CloseSession("mstest_" + std::string(32, '0')).status()));
  EXPECT_TRUE(absl::IsNotFound(client_.Attach("no-such-name").status()));
}

TEST_F(ClientTest, UntrustedCertificateIsUnavailable) {
  mailpool::StartOptions o = Imaps();
  o.ca_pem.clear();
  EXPECT_TRUE(absl::IsUnavailable(client_.StartImap(o).status()));
}

TEST_F(ClientTest, UnreachableDaemonIsUnavailable) {
  mailpool::ClientOptions opts;
  opts.timeout = absl::Seconds(5);
  std::string closed = Env("MAILPOOL_TEST_CLOSED_PORT");
  mailpool::Client c(absl::StrCat("127.0.0.1:", closed.empty() ? "9" : closed), opts);
  EXPECT_TRUE(absl::IsUnavailable(c.GetDefaultTimeout().status()));
}

TEST_F(ClientTest, UnknownMethodIsUnimplemented) {
  // A method no daemon serves, through the generic stub: FromGrpc keeps the code.
  auto channel = grpc::CreateChannel(g_address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer request, response;
  auto call = stub.PrepareUnaryCall(&ctx, "/mailpool.v1.SessionService/NoSuchCall", request, &cq);
  call->StartCall();
  grpc::Status st;
  call->Finish(&response, &st, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  absl::Status status = mailpool::FromGrpc(st, ctx);
  EXPECT_TRUE(absl::IsUnimplemented(status)) << status;
  EXPECT_FALSE(mailpool::ErrorDetailOf(status).has_value());
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

// The daemon may not implement these yet: each must work or fail with UNIMPLEMENTED.
void ExpectOkOrUnimplemented(const absl::Status& s) {
  EXPECT_TRUE(s.ok() || absl::IsUnimplemented(s)) << s;
  if (absl::IsUnimplemented(s)) {
    EXPECT_FALSE(s.message().empty());
  }
}

TEST_F(ClientTest, MailboxCallsWorkOrAreUnimplemented) {
  absl::StatusOr<mailpool::Session> s = client_.StartImap(Imaps());
  ASSERT_TRUE(s.ok()) << s.status();
  ExpectOkOrUnimplemented(s->Status().status());
  v1::ListMessagesRequest list;
  list.set_page_size(5);
  int n = 0;
  for (const auto& m : s->ListMessages(list)) {
    ExpectOkOrUnimplemented(m.status());
    if (!m.ok() || ++n == 5) break;
  }
  ExpectOkOrUnimplemented(s->ListFolders().status());
  v1::SearchMessagesRequest search;
  search.mutable_criteria()->set_subject("no such subject");
  for (const auto& m : s->SearchMessages(search)) {
    ExpectOkOrUnimplemented(m.status());
    if (!m.ok()) break;
  }
  absl::StatusOr<mailpool::Session> pop = client_.StartPop3(Pop3s());
  ASSERT_TRUE(pop.ok()) << pop.status();
  ExpectOkOrUnimplemented(pop->Status().status());
}

TEST_F(ClientTest, SendAndMessageCallsWorkOrAreUnimplemented) {
  v1::EmailMessage msg;
  *msg.mutable_from() = mailpool::MakeAddress(Env("MAILPOOL_TEST_USER"));
  *msg.add_to() = mailpool::MakeAddress(Env("MAILPOOL_TEST_USER"));
  msg.set_subject(Unique("cpp client test"));
  msg.set_text_body("hello\n");
  absl::StatusOr<v1::BuildSourceResponse> built = client_.BuildSource(msg);
  ExpectOkOrUnimplemented(built.status());
  if (built.ok()) {
    EXPECT_TRUE(absl::StrContains(built->source(), "Subject: cpp client test"));
    absl::StatusOr<v1::ParseSourceResponse> parsed = client_.ParseSource(built->source());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->message().subject(), msg.subject());
  }
  absl::StatusOr<mailpool::Session> smtp = client_.StartSmtp(Smtp());
  ASSERT_TRUE(smtp.ok()) << smtp.status();
  absl::StatusOr<v1::SendMessageResponse> sent = smtp->Send(msg);
  ExpectOkOrUnimplemented(sent.status());
  if (sent.ok()) {
    EXPECT_TRUE(absl::StartsWith(sent->server_reply(), "250"));
  }
  ExpectOkOrUnimplemented(client_.CheckAddress("a@example.test").status());
}

TEST_F(ClientTest, ExampleRuns) {
  std::string example = Env("MAILPOOL_CLIENT_EXAMPLE");
  ASSERT_FALSE(example.empty()) << "MAILPOOL_CLIENT_EXAMPLE not set";
  std::string cmd = absl::StrCat("MAILPOOL_ADDR=", g_address, " '", example, "' 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = pclose(p);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "example finished")) << out;
}

// ---- a daemon that authenticates its callers ----------------------------------------------

// Two daemons: caller tokens over TLS plus a Unix socket, and mutual TLS. The test CA and
// certificates are made with openssl here.
class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/mailpool-cppauth-XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl));
    std::string script = absl::StrCat(
        "set -e; cd ", *dir_, "; exec >setup.log 2>&1\n",
        "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n",
        "openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=mailpool-test-ca\n",
        "openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost\n",
        "echo subjectAltName=DNS:localhost,IP:127.0.0.1 > server.ext\n",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial",
        " -out server.pem -days 2 -extfile server.ext\n",
        "openssl req $ec -keyout client.key -out client.csr -subj /CN=alice-app\n",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial",
        " -out client.pem -days 2\n",
        "echo \"alice $(printf %s alice-token-1 | sha256sum | cut -d' ' -f1)\" > tokens\n",
        "echo \"bob $(printf %s bob-token-2 | sha256sum | cut -d' ' -f1) admin\" >> tokens\n",
        "printf 'alice-token-1\\n' > alice.token\n");
    std::ofstream(Path("setup.sh")) << script;
    ASSERT_EQ(std::system(("bash " + Path("setup.sh")).c_str()), 0) << ReadFile(Path("setup.log"));
    const char* state = std::getenv("XDG_STATE_HOME");
    std::string saved = state ? state : "";
    setenv("XDG_STATE_HOME", dir_->c_str(), 1);  // the daemons' outboxes
    std::vector<std::string> tls = {"--tls_cert", Path("server.pem"), "--tls_key",
                                    Path("server.key")};
    std::vector<std::string> token_args = tls;
    token_args.insert(token_args.end(), {"--caller_tokens_file", Path("tokens")});
    tokens_ = new Daemon;
    bool ok = tokens_->Start(absl::StrCat("127.0.0.1:0,unix:", Path("d.sock")), token_args);
    std::vector<std::string> mtls_args = tls;
    mtls_args.insert(mtls_args.end(), {"--tls_client_ca", Path("ca.pem")});
    mtls_ = new Daemon;
    ok = mtls_->Start("127.0.0.1:0", mtls_args) && ok;
    if (state)
      setenv("XDG_STATE_HOME", saved.c_str(), 1);
    else
      unsetenv("XDG_STATE_HOME");
    ASSERT_TRUE(ok);
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(tokens_->Stop(), 0);
    EXPECT_EQ(mtls_->Stop(), 0);
    delete tokens_;
    delete mtls_;
    std::system(("rm -rf " + *dir_).c_str());
    delete dir_;
  }
  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }

  // A client of the token daemon over TLS (the test CA), with `connect` added.
  static mailpool::Client TokenClient(mailpool::ConnectOptions connect) {
    connect.ca_file = Path("ca.pem");
    connect.token_from_environment = false;
    mailpool::ClientOptions o;
    o.connect = std::move(connect);
    return mailpool::Client(absl::StrCat("localhost:", tokens_->port), o);
  }
  static mailpool::StartOptions Imaps(const std::string& name) {
    mailpool::StartOptions o;
    o.host = Env("MAILPOOL_TEST_HOST");
    o.port = static_cast<uint32_t>(std::stoi(Env("MAILPOOL_TEST_IMAPS_PORT")));
    o.security = v1::SECURITY_IMPLICIT_TLS;
    o.user = Env("MAILPOOL_TEST_USER");
    o.password = Env("MAILPOOL_TEST_PASSWORD");
    o.ca_pem = ReadFile(Env("MAILPOOL_TEST_CA"));
    o.name = name;
    return o;
  }
  static std::vector<v1::Session> All(mailpool::Range<v1::Session> range, absl::Status* error) {
    std::vector<v1::Session> out;
    for (const absl::StatusOr<v1::Session>& s : range) {
      if (!s.ok()) {
        *error = s.status();
        break;
      }
      out.push_back(*s);
    }
    return out;
  }

  static inline std::string* dir_ = nullptr;
  static inline Daemon* tokens_ = nullptr;
  static inline Daemon* mtls_ = nullptr;
};

TEST_F(AuthTest, NoTokenOrAWrongTokenIsUnauthenticated) {
  absl::Status st = TokenClient({}).GetDefaultTimeout().status();
  EXPECT_TRUE(absl::IsUnauthenticated(st)) << st;
  mailpool::ConnectOptions wrong;
  wrong.token = "not-a-known-token-77";
  st = TokenClient(wrong).GetDefaultTimeout().status();
  EXPECT_TRUE(absl::IsUnauthenticated(st)) << st;
  EXPECT_FALSE(absl::StrContains(st.message(), "not-a-known-token-77"));
  EXPECT_FALSE(absl::StrContains(ReadFile(tokens_->log), "not-a-known-token-77"));
}

TEST_F(AuthTest, SessionsBelongToTheirCallerAndAnAdminListsAll) {
  mailpool::ConnectOptions a;
  a.token_file = Path("alice.token");
  mailpool::Client alice = TokenClient(a);
  mailpool::ConnectOptions b;
  b.token = "bob-token-2";
  mailpool::Client bob = TokenClient(b);
  absl::StatusOr<mailpool::Session> s = alice.StartImap(Imaps("alice-inbox"));
  ASSERT_TRUE(s.ok()) << s.status();
  absl::Status error;
  auto find = [&](const std::vector<v1::Session>& list) -> std::string {
    for (const auto& x : list) {
      if (x.id() == s->id()) return x.owner();
    }
    return "<absent>";
  };
  EXPECT_EQ(find(All(alice.ListSessions(), &error)), "alice");
  EXPECT_TRUE(error.ok()) << error;
  EXPECT_EQ(find(All(bob.ListSessions(), &error)), "<absent>");
  EXPECT_TRUE(absl::IsNotFound(bob.GetSession(s->id()).status()));
  EXPECT_EQ(find(All(bob.ListSessions(0, /*all_callers=*/true), &error)), "alice");
  EXPECT_TRUE(error.ok()) << error;
  All(alice.ListSessions(0, /*all_callers=*/true), &error);
  EXPECT_TRUE(absl::IsPermissionDenied(error)) << error;
  EXPECT_TRUE(s->Close().ok());
}

TEST_F(AuthTest, UnixSocketIdentifiesTheUnixUser) {
  mailpool::Client c("unix:" + Path("d.sock"));
  absl::StatusOr<mailpool::Session> s = c.StartImap(Imaps("over-unix"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->last_info().owner(), absl::StrCat("uid:", getuid()));
}

TEST_F(AuthTest, MutualTlsIdentifiesTheCertificate) {
  mailpool::ClientOptions o;
  o.connect.ca_file = Path("ca.pem");
  o.connect.cert_file = Path("client.pem");
  o.connect.key_file = Path("client.key");
  std::string address = absl::StrCat("localhost:", mtls_->port);
  mailpool::Client c(address, o);
  absl::StatusOr<mailpool::Session> s = c.StartImap(Imaps("over-mtls"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->last_info().owner(), "cert:alice-app");
  o.connect.cert_file.clear();
  o.connect.key_file.clear();
  o.timeout = absl::Seconds(10);
  EXPECT_FALSE(mailpool::Client(address, o).GetDefaultTimeout().ok());
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::vector<std::string> missing;
  for (const char* k : kRequired) {
    if (Env(k).empty()) missing.push_back(k);
  }
  if (!missing.empty()) {
    std::cerr << "FAIL: missing environment";
    for (const auto& m : missing) std::cerr << " " << m;
    std::cerr << ": start the test servers (scripts/testservers.sh) and set MAILPOOLD\n";
    return 1;
  }
  if (!g_daemon.Start()) return 1;
  g_address = absl::StrCat("127.0.0.1:", g_daemon.port);
  int rc = RUN_ALL_TESTS();
  int code = g_daemon.Stop();
  if (code != 0) {
    std::cerr << "FAIL: mailpoold exit code " << code << " after SIGTERM\n";
    return 1;
  }
  return rc;
}
