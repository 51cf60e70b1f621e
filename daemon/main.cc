// mailpoold: the mail session daemon. Runs with no configuration at all (listens on
// loopback); see --help for the flags.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/session_id.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50551",
          "gRPC listen address (host:port). Loopback only by default; use 0.0.0.0:PORT "
          "to accept remote callers.");
ABSL_FLAG(std::string, instance, "0",
          "Instance tag put in every session ID so a proxy can route calls (e.g. the pod "
          "ordinal). Letters, digits and '-', at most 32 bytes.");
ABSL_FLAG(absl::Duration, default_timeout, absl::Minutes(10),
          "Default server-silence timeout (the seed's EmailSetTimeOut default: 10m).");
ABSL_FLAG(int, max_sessions_per_caller, 1000, "Most sessions one caller may hold; 0 = no limit.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT: time for running calls and polite LOGOUT/QUIT.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9551",
          "Address (IP:port) of the Prometheus GET /metrics endpoint; empty disables it.");

namespace {

// Secrets live in this process's memory: keep them out of core dumps.
void DisableCoreDumps() {
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("mailpoold: keeps POP3, SMTP and IMAP sessions for gRPC callers");
  absl::ParseCommandLine(argc, argv);
  DisableCoreDumps();

  mailpool::LogLevel level;
  if (!mailpool::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    fprintf(stderr, "mailpoold: --log_level must be debug, info, warning or error\n");
    return 2;
  }
  mailpool::SetLogLevel(level);
  if (!mailpool::IsValidInstanceTag(absl::GetFlag(FLAGS_instance))) {
    fprintf(stderr, "mailpoold: --instance must be 1-32 letters, digits or '-'\n");
    return 2;
  }
  absl::Duration timeout = absl::GetFlag(FLAGS_default_timeout);
  if (timeout < absl::Seconds(1) || timeout > absl::Hours(24)) {
    fprintf(stderr, "mailpoold: --default_timeout must be between 1s and 24h\n");
    return 2;
  }

  // Handle SIGTERM/SIGINT synchronously in main; every other thread has them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  mailpool::server::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.pool.instance_tag = absl::GetFlag(FLAGS_instance);
  options.pool.default_timeout = timeout;
  options.pool.max_sessions_per_owner = absl::GetFlag(FLAGS_max_sessions_per_caller);
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);

  mailpool::server::Server server(options);
  absl::Status status = server.Start();
  if (!status.ok()) {
    fprintf(stderr, "mailpoold: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  int received = 0;
  sigwait(&signals, &received);
  mailpool::Log(mailpool::LogLevel::kInfo, "shutting down",
                {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  server.Shutdown();
  return 0;
}
