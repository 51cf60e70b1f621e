// Measures what caller authentication and the memory budget cost (issue 13):
//  1. 10,000 GetSession calls on a warm IMAP session through a daemon with caller tokens
//     (authorization: Bearer, SHA-256 + constant-time compare per call) against the same
//     through a daemon without authentication, both in-process, in alternating rounds of
//     1,000 so that machine noise hits both alike; prints each total and the ratio.
//  2. The peak RSS (VmHWM) of a mailpoold process while four 60 MiB SendMessage calls run
//     at once to Postfix's smtp-sink, with the default --max_inflight_message_bytes
//     (256 MiB) and with no budget (0); refused calls retry after the hinted delay.
// Needs the MAILPOOL_TEST_* environment (scripts/bench.sh).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "callers/callers.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "server/server.h"
#include "tests/integration/test_env.h"

namespace {

namespace v1 = mailpool::v1;
using Clock = std::chrono::steady_clock;
constexpr char kToken[] = "bench-caller-token-0011223344556677";

struct InProcess {
  std::unique_ptr<mailpool::server::Server> server;
  std::unique_ptr<v1::SessionService::Stub> stub;
  std::string token;
  std::string session;
};

InProcess Start(const std::string& dir, bool tokens) {
  mailpool::server::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "";
  o.outbox_path = dir + (tokens ? "/a.db" : "/b.db");
  if (tokens) {
    std::ofstream(dir + "/tokens") << "bench " << mailpool::callers::Sha256Hex(kToken) << "\n";
    o.callers.tokens_file = dir + "/tokens";
  }
  InProcess p;
  p.server = std::make_unique<mailpool::server::Server>(o);
  if (!p.server->Start().ok()) std::exit(1);
  p.stub = v1::SessionService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", p.server->port()), grpc::InsecureChannelCredentials()));
  p.token = tokens ? kToken : "";
  v1::StartSessionRequest r;
  auto* s = r.mutable_imap()->mutable_server();
  s->set_host("127.0.0.1");
  s->set_port(mailpool::testing::EnvPort("MAILPOOL_TEST_IMAP_PORT"));
  s->set_security(v1::SECURITY_STARTTLS);
  s->mutable_tls()->set_ca_pem(mailpool::testing::ReadFile(mailpool::testing::Env("MAILPOOL_TEST_CA")));
  r.mutable_imap()->mutable_credentials()->set_user(mailpool::testing::Env("MAILPOOL_TEST_USER"));
  r.mutable_imap()->mutable_credentials()->set_password(
      mailpool::testing::Env("MAILPOOL_TEST_PASSWORD"));
  grpc::ClientContext ctx;
  if (tokens) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
  v1::StartSessionResponse response;
  if (!p.stub->StartSession(&ctx, r, &response).ok()) std::exit(1);
  p.session = response.session().id();
  return p;
}

double Round(InProcess& p, int calls) {
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i) {
    grpc::ClientContext ctx;
    if (!p.token.empty()) ctx.AddMetadata("authorization", absl::StrCat("Bearer ", p.token));
    v1::GetSessionRequest r;
    r.set_session(p.session);
    v1::GetSessionResponse response;
    if (!p.stub->GetSession(&ctx, r, &response).ok()) std::exit(1);
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

long PeakRssKiB(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// Four concurrent 60 MiB sends through a mailpoold process; its peak RSS in MiB.
void Sends(const char* budget, int sink_port) {
  int port = mailpool::testing::FreePort();
  pid_t pid = fork();
  if (pid == 0) {
    std::string listen = absl::StrCat("--listen=127.0.0.1:", port);
    std::string flag = absl::StrCat("--max_inflight_message_bytes=", budget);
    execl(MAILPOOLD_PATH, MAILPOOLD_PATH, listen.c_str(), flag.c_str(), "--metrics_listen=",
          "--outbox_path=/tmp/mailpool-callers-bench.db", "--log_level=warning",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto sessions = v1::SessionService::NewStub(channel);
  auto send = v1::SendService::NewStub(channel);
  std::string body(60 << 20, 'x');
  for (size_t i = 76; i < body.size(); i += 78) {
    body[i] = '\r';
    body[i + 1] = '\n';
  }
  std::vector<std::thread> threads;
  std::atomic<int> refused{0}, sent{0};
  auto start = Clock::now();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      v1::StartSessionRequest r;
      r.mutable_smtp()->mutable_server()->set_host("127.0.0.1");
      r.mutable_smtp()->mutable_server()->set_port(sink_port);
      r.mutable_smtp()->mutable_server()->set_security(v1::SECURITY_PLAIN);
      grpc::ClientContext c;
      v1::StartSessionResponse s;
      if (!sessions->StartSession(&c, r, &s).ok()) return;
      v1::SendMessageRequest m;
      m.set_session(s.session().id());
      m.set_source(absl::StrCat("From: <a@example.test>\r\nTo: <b@example.test>\r\nSubject: ", t,
                                "\r\n\r\n", body, "\r\n"));
      for (;;) {
        grpc::ClientContext ctx;
        v1::SendMessageResponse response;
        grpc::Status status = send->SendMessage(&ctx, m, &response);
        if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++refused;
          std::this_thread::sleep_for(std::chrono::seconds(1));  // the hinted retry delay
          continue;
        }
        if (status.ok()) ++sent;
        return;
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  printf("4 x 60 MiB sends, --max_inflight_message_bytes=%s: peak RSS %ld MiB, %d sent, "
         "%d refusals retried, %.1f s\n",
         budget, PeakRssKiB(pid) / 1024, sent.load(), refused.load(), seconds);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  unlink("/tmp/mailpool-callers-bench.db");
}

}  // namespace

int main() {
  char dir[] = "/tmp/mailpool-callers-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  {
    InProcess with_tokens = Start(dir, true);
    InProcess without = Start(dir, false);
    double a = 0, b = 0;
    for (int round = 0; round < 10; ++round) {
      a += Round(with_tokens, 1000);
      b += Round(without, 1000);
    }
    printf("10,000 GetSession calls: %.2f s with caller tokens, %.2f s without "
           "authentication; ratio %.3f (%.1f us per call more)\n",
           a, b, a / b, (a - b) * 1e6 / 10000);
    with_tokens.server->Shutdown();
    without.server->Shutdown();
  }
  int sink_port = mailpool::testing::FreePort();
  pid_t sink = fork();
  if (sink == 0) {
    if (geteuid() == 0) {
      execlp("smtp-sink", "smtp-sink", "-u", "postfix", absl::StrCat("127.0.0.1:", sink_port).c_str(),
             "64", static_cast<char*>(nullptr));
    }
    execlp("smtp-sink", "smtp-sink", absl::StrCat("127.0.0.1:", sink_port).c_str(), "64",
           static_cast<char*>(nullptr));
    _exit(127);
  }
  while (!mailpool::testing::Accepts(sink_port)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Sends("268435456", sink_port);
  Sends("0", sink_port);
  kill(sink, SIGKILL);
  waitpid(sink, nullptr, 0);
  return 0;
}
