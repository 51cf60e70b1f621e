// Trivial-RPC throughput of a mailpoold process: GetSession on one warm IMAP session from
// 32 concurrent callers, against two daemon processes started side by side that differ in
// one flag (default: --mutex_deadlock_detection=false, the release default, against =true,
// what Debian's abseil does unless told otherwise). Rounds alternate between the two so
// that machine noise hits both alike; prints calls/s, the daemon's CPU time per call
// (utime + stime from /proc), each round's figures, medians and the ratio.
// Usage: rpc_bench [CALLS_PER_ROUND] [ROUNDS]   (MAILPOOL_TEST_* environment: scripts/bench.sh)
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace {

namespace v1 = mailpool::v1;
using Clock = std::chrono::steady_clock;
constexpr int kCallers = 32;

struct Daemon {
  std::string label;
  pid_t pid = -1;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::SessionService::Stub> stub;
  std::string session;
  std::vector<double> rates, cpu_us;
};

// The daemon's user + system CPU time in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::atof(field.c_str());
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void Launch(Daemon& d, const std::string& flag) {
  int port = mailpool::testing::FreePort();
  d.pid = fork();
  if (d.pid == 0) {
    std::string listen = absl::StrCat("--listen=127.0.0.1:", port);
    std::string outbox = absl::StrCat("--outbox_path=/tmp/mailpool-rpc-bench-", getpid(), ".db");
    execl(MAILPOOLD_PATH, MAILPOOLD_PATH, listen.c_str(), flag.c_str(),
          "--metrics_listen=", outbox.c_str(), "--log_level=warning", "--start_rate_per_caller=0",
          "--max_calls_per_caller=0", static_cast<char*>(nullptr));
    _exit(127);
  }
  d.channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  if (!d.channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    fprintf(stderr, "%s: daemon did not start\n", d.label.c_str());
    std::exit(1);
  }
  d.stub = v1::SessionService::NewStub(d.channel);
  v1::StartSessionRequest r;
  auto* s = r.mutable_imap()->mutable_server();
  s->set_host("127.0.0.1");
  s->set_port(mailpool::testing::EnvPort("MAILPOOL_TEST_IMAP_PORT"));
  s->set_security(v1::SECURITY_STARTTLS);
  s->mutable_tls()->set_ca_pem(
      mailpool::testing::ReadFile(mailpool::testing::Env("MAILPOOL_TEST_CA")));
  r.mutable_imap()->mutable_credentials()->set_user(mailpool::testing::Env("MAILPOOL_TEST_USER"));
  r.mutable_imap()->mutable_credentials()->set_password(
      mailpool::testing::Env("MAILPOOL_TEST_PASSWORD"));
  grpc::ClientContext ctx;
  v1::StartSessionResponse response;
  grpc::Status status = d.stub->StartSession(&ctx, r, &response);
  if (!status.ok()) {
    fprintf(stderr, "%s: StartSession: %s\n", d.label.c_str(), status.error_message().c_str());
    std::exit(1);
  }
  d.session = response.session().id();
}

// One round: `calls` GetSession calls spread over kCallers threads.
void Round(Daemon& d, int calls) {
  std::atomic<int> next{0}, failed{0};
  double cpu_before = CpuSeconds(d.pid);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kCallers; ++t) {
    threads.emplace_back([&] {
      v1::GetSessionRequest r;
      r.set_session(d.session);
      while (next.fetch_add(1) < calls) {
        grpc::ClientContext ctx;
        v1::GetSessionResponse response;
        if (!d.stub->GetSession(&ctx, r, &response).ok()) ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  double cpu = CpuSeconds(d.pid) - cpu_before;
  if (failed > 0) {
    fprintf(stderr, "%s: %d calls failed\n", d.label.c_str(), failed.load());
    std::exit(1);
  }
  d.rates.push_back(calls / seconds);
  d.cpu_us.push_back(cpu * 1e6 / calls);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int calls = argc > 1 ? std::atoi(argv[1]) : 20000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  Daemon off{"--mutex_deadlock_detection=false"}, on{"--mutex_deadlock_detection=true"};
  Launch(off, off.label);
  Launch(on, on.label);
  Round(off, calls / 10);  // warm-up, not counted
  Round(on, calls / 10);
  off.rates.clear(), off.cpu_us.clear(), on.rates.clear(), on.cpu_us.clear();
  for (int r = 0; r < rounds; ++r) {
    Round(off, calls);
    Round(on, calls);
  }
  for (Daemon* d : {&off, &on}) {
    printf("GetSession, %d callers, %s: median %.0f calls/s (rounds:", kCallers, d->label.c_str(),
           Median(d->rates));
    for (double x : d->rates) printf(" %.0f", x);
    printf("), daemon CPU median %.1f us/call\n", Median(d->cpu_us));
  }
  printf(
      "GetSession throughput ratio, detection off / on: %.2f; daemon CPU per call on / off: "
      "%.2f\n",
      Median(off.rates) / Median(on.rates), Median(on.cpu_us) / Median(off.cpu_us));
  for (Daemon* d : {&off, &on}) {
    kill(d->pid, SIGTERM);
    waitpid(d->pid, nullptr, 0);
    for (const char* suffix : {".db", ".db-wal", ".db-shm"}) {
      unlink(absl::StrCat("/tmp/mailpool-rpc-bench-", d->pid, suffix).c_str());
    }
  }
  return 0;
}
