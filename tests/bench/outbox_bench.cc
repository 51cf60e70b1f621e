// Asynchronous SendMessage acceptance: how many sends per second a mailpoold process answers
// QUEUED (each committed and fsynced to its SQLite outbox first), with 1 and with 32
// concurrent callers on one asynchronous session to Postfix's smtp-sink. Two daemon
// processes run side by side and differ in one flag: --outbox_max_batch=1 (every send its
// own transaction and fsync: the baseline, as before group commit) and the default (group
// commit). Rounds alternate between the two so that machine noise hits both alike. While the
// callers queue, each daemon also delivers its outbox to smtp-sink in the background, as in
// production. Prints per-round figures, medians, ranges, the daemon's CPU per send and the
// ratios. Not a test: it asserts nothing about speed.
// Usage: outbox_bench [SENDS_PER_ROUND] [ROUNDS]   (MAILPOOL_TEST_* environment: scripts/bench.sh)
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
#include "mailpool/v1/send.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace {

namespace v1 = mailpool::v1;
using Clock = std::chrono::steady_clock;

struct Daemon {
  std::string label;
  std::string flag;
  pid_t pid = -1;
  std::string db;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::SessionService::Stub> sessions;
  std::unique_ptr<v1::SendService::Stub> send;
  std::string session;
  std::vector<double> rates[2], cpu_us[2];  // [0]: 1 caller, [1]: 32 callers
};

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

void Launch(Daemon& d) {
  int port = mailpool::testing::FreePort();
  d.db = absl::StrCat("/tmp/mailpool-outbox-bench-", getpid(), "-", port, ".db");
  d.pid = fork();
  if (d.pid == 0) {
    std::string listen = absl::StrCat("--listen=127.0.0.1:", port);
    std::string outbox = absl::StrCat("--outbox_path=", d.db);
    execl(MAILPOOLD_PATH, MAILPOOLD_PATH, listen.c_str(), d.flag.c_str(),
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
  d.sessions = v1::SessionService::NewStub(d.channel);
  d.send = v1::SendService::NewStub(d.channel);
  v1::StartSessionRequest r;
  auto* s = r.mutable_smtp()->mutable_server();
  s->set_host("127.0.0.1");
  s->set_port(mailpool::testing::EnvPort("MAILPOOL_TEST_SMTP_SINK_PORT"));
  s->set_security(v1::SECURITY_PLAIN);
  r.mutable_smtp()->set_asynchronous(true);
  grpc::ClientContext ctx;
  v1::StartSessionResponse response;
  grpc::Status status = d.sessions->StartSession(&ctx, r, &response);
  if (!status.ok()) {
    fprintf(stderr, "%s: StartSession: %s\n", d.label.c_str(), status.error_message().c_str());
    std::exit(1);
  }
  d.session = response.session().id();
}

// One round: `sends` SendMessage calls spread over `callers` threads; records sends/s.
void Round(Daemon& d, int callers, int sends, bool record) {
  std::atomic<int> next{0}, failed{0};
  double cpu_before = CpuSeconds(d.pid);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&] {
      v1::SendMessageRequest r;
      r.set_session(d.session);
      for (int i; (i = next.fetch_add(1)) < sends;) {
        r.set_source(
            absl::StrCat("From: <a@example.test>\r\nTo: <b@example.test>\r\n"
                         "Subject: outbox bench ",
                         i, "\r\n\r\nA short benchmark message.\r\n"));
        grpc::ClientContext ctx;
        v1::SendMessageResponse response;
        grpc::Status status = d.send->SendMessage(&ctx, r, &response);
        if (!status.ok() || response.state() != v1::SEND_STATE_QUEUED) ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  double cpu = CpuSeconds(d.pid) - cpu_before;
  if (failed > 0) {
    fprintf(stderr, "%s: %d sends failed\n", d.label.c_str(), failed.load());
    std::exit(1);
  }
  if (!record) return;
  int k = callers == 1 ? 0 : 1;
  d.rates[k].push_back(sends / seconds);
  d.cpu_us[k].push_back(cpu * 1e6 / sends);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int sends = argc > 1 ? std::atoi(argv[1]) : 1000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  if (sends < 1 || rounds < 1) {
    fprintf(stderr, "usage: outbox_bench [SENDS_PER_ROUND] [ROUNDS]\n");
    return 2;
  }
  Daemon base{"batch of 1 (baseline)", "--outbox_max_batch=1"};
  Daemon group{"group commit (default)", "--outbox_max_batch=256"};
  Launch(base);
  Launch(group);
  const int kCallers[2] = {1, 32};
  for (Daemon* d : {&base, &group}) Round(*d, 32, std::max(1, sends / 10), false);  // warm-up
  for (int r = 0; r < rounds; ++r) {
    for (int k : {0, 1}) {
      // The baseline at 1 caller is slow: fewer sends keep the round short.
      int n = k == 0 ? std::max(1, sends / 4) : sends;
      Round(base, kCallers[k], n, true);
      Round(group, kCallers[k], n, true);
    }
  }
  printf(
      "outbox_bench: asynchronous SendMessage answered QUEUED (committed + fsynced), "
      "%d rounds, %d sends per 32-caller round (%d per 1-caller round)\n",
      rounds, sends, std::max(1, sends / 4));
  for (int k : {0, 1}) {
    for (Daemon* d : {&base, &group}) {
      std::vector<double>& v = d->rates[k];
      printf(
          "  %2d caller(s), %-24s median %7.0f sends/s  range %7.0f..%-7.0f  daemon CPU "
          "%6.0f us/send\n",
          kCallers[k], d->label.c_str(), Median(v), *std::min_element(v.begin(), v.end()),
          *std::max_element(v.begin(), v.end()), Median(d->cpu_us[k]));
    }
    printf("  %2d caller(s), ratio group commit / baseline: %.2f\n", kCallers[k],
           Median(group.rates[k]) / Median(base.rates[k]));
  }
  for (Daemon* d : {&base, &group}) {
    kill(d->pid, SIGTERM);
    waitpid(d->pid, nullptr, 0);
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((d->db + suffix).c_str());
  }
  return 0;
}
