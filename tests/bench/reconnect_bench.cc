// Measures the pool's reconnect behaviour when the mail server restarts under many open
// sessions: N IMAP sessions (STARTTLS, real Dovecot) are opened, Dovecot is restarted
// (scripts/testservers.sh restart-dovecot), then every session gets one call at once (a
// NOOP, as the next caller's request would), and the bench prints:
//  - how long until every session noticed the drop (BROKEN) after the restart began,
//  - how long until every call succeeded after they were issued (time to recover all),
//  - reconnect attempts (successful and failed), calls that failed,
//  - the peak of logins in flight (the HandshakeGate limit, --max_handshakes_in_flight).
// Needs the MAILPOOL_TEST_* environment (scripts/bench.sh) and restarts that Dovecot.
//
// Usage: reconnect_bench [SESSIONS] [MAX_HANDSHAKES]   (defaults 500 and 32)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "net/event_loop.h"
#include "pool/pool.h"

namespace {

using namespace mailpool;  // NOLINT: a small program
using Steady = std::chrono::steady_clock;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    fprintf(stderr, "%s is not set; run scripts/bench.sh\n", name);
    std::exit(2);
  }
  return v;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double Ms(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  int sessions = argc > 1 ? std::atoi(argv[1]) : 500;
  int max_handshakes = argc > 2 ? std::atoi(argv[2]) : 32;
  int port = std::atoi(Env("MAILPOOL_TEST_IMAP_PORT").c_str());
  std::string ca = ReadFile(Env("MAILPOOL_TEST_CA"));

  net::EventLoop loop;
  loop.Start();
  pool::PoolOptions options;
  options.max_handshakes_in_flight = max_handshakes;
  options.tick_interval = absl::ZeroDuration();
  options.idle_timeout = absl::ZeroDuration();
  std::unique_ptr<pool::Pool> pool;
  loop.RunSync([&] { pool = std::make_unique<pool::Pool>(loop, options); });

  // Open the sessions, all at once (the gate spreads the logins).
  std::vector<std::string> ids(sessions);
  auto opened = std::make_shared<std::promise<void>>();
  auto remaining = std::make_shared<int>(sessions);
  int start_failures = 0;
  auto t0 = Steady::now();
  loop.RunSync([&] {
    for (int i = 0; i < sessions; ++i) {
      session::LinkSpec spec;
      spec.protocol = session::Protocol::kImap;
      spec.endpoint.host = "127.0.0.1";
      spec.endpoint.port = static_cast<uint16_t>(port);
      spec.tls.ca_pem = ca;
      spec.login.security = wire::Security::kStartTls;
      spec.login.user = Env("MAILPOOL_TEST_USER5");
      spec.login.password = Secret(Env("MAILPOOL_TEST_PASSWORD5"));
      session::SessionSpec s;
      s.kind = session::Kind::kImap;
      s.links.push_back(std::move(spec));
      pool->Start("bench", std::move(s),
                  [&, i, opened, remaining](absl::StatusOr<session::SessionSnapshot> r) {
                    if (r.ok()) {
                      ids[i] = r->id;
                    } else {
                      ++start_failures;
                      if (start_failures == 1)
                        fprintf(stderr, "start: %s\n", r.status().ToString().c_str());
                    }
                    if (--*remaining == 0) opened->set_value();
                  });
    }
  });
  opened->get_future().wait();
  auto t_open = Steady::now() - t0;
  pool::PoolStats st;
  loop.RunSync([&] { st = pool->stats(); });
  printf("opened %d IMAP STARTTLS sessions in %.0f ms (%d failed), peak logins in flight %d\n",
         sessions - start_failures, Ms(t_open), start_failures, st.peak_handshakes_in_flight);

  // Restart Dovecot; wait (polling) until every session noticed.
  auto t_restart = Steady::now();
  std::string command = absl::StrCat(
      MAILPOOL_SOURCE_DIR, "/scripts/testservers.sh restart-dovecot ", Env("MAILPOOL_TEST_DIR"));
  if (std::system(command.c_str()) != 0) {
    fprintf(stderr, "restart failed\n");
    return 1;
  }
  auto restart_took = Steady::now() - t_restart;
  int broken = 0;
  for (;;) {
    loop.RunSync([&] {
      broken = 0;
      for (const std::string& id : ids) {
        if (id.empty()) continue;
        auto s = pool->Get("bench", id);
        if (s.ok() && s->state == session::State::kBroken) ++broken;
      }
    });
    if (broken == sessions - start_failures) break;
    if (Steady::now() - t_restart > std::chrono::seconds(60)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto noticed = Steady::now() - t_restart;
  printf(
      "Dovecot restart took %.0f ms; %d of %d sessions saw the drop within %.0f ms of its "
      "start\n",
      Ms(restart_took), broken, sessions - start_failures, Ms(noticed));

  // One call per session, all at once.
  loop.RunSync([&] { pool->gate().ResetPeak(); });
  auto recovered = std::make_shared<std::promise<void>>();
  auto left = std::make_shared<int>(sessions - start_failures);
  int failed_calls = 0;
  std::vector<double> latencies;
  auto t_calls = Steady::now();
  loop.RunSync([&] {
    for (const std::string& id : ids) {
      if (id.empty()) continue;
      auto s = pool->Use("bench", id);
      if (!s.ok()) {
        ++failed_calls;
        if (--*left == 0) recovered->set_value();
        continue;
      }
      (*s)->links().front()->Noop([&, recovered, left](absl::Status status) {
        if (!status.ok()) {
          if (failed_calls++ == 0) fprintf(stderr, "call: %s\n", status.ToString().c_str());
        }
        latencies.push_back(Ms(Steady::now() - t_calls));
        if (--*left == 0) recovered->set_value();
      });
    }
  });
  recovered->get_future().wait();
  auto all = Steady::now() - t_calls;
  loop.RunSync([&] { st = pool->stats(); });
  std::sort(latencies.begin(), latencies.end());
  double median = latencies.empty() ? 0 : latencies[latencies.size() / 2];
  printf("recovered %d of %d sessions in %.0f ms (median call %.0f ms); calls failed: %d\n",
         sessions - start_failures - failed_calls, sessions - start_failures, Ms(all), median,
         failed_calls);
  printf(
      "reconnects: %llu successful, %llu failed attempts; peak logins in flight %d "
      "(limit %d)\n",
      static_cast<unsigned long long>(st.reconnects),
      static_cast<unsigned long long>(st.failed_reconnects), st.peak_handshakes_in_flight,
      max_handshakes);
  loop.RunSync([&] { pool.reset(); });
  loop.Stop();
  return failed_calls == 0 ? 0 : 1;
}
