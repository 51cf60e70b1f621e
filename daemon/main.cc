// mailpoold: the mail session daemon. Runs with no configuration at all (listens on
// loopback); see --help for the flags.
#include <grpc/grpc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/session_id.h"
#include "metrics/process.h"
#include "net/descriptors.h"
#include "server/server.h"

#ifdef NDEBUG
constexpr bool kDebugBuild = false;
#else
constexpr bool kDebugBuild = true;
#endif
ABSL_FLAG(bool, mutex_deadlock_detection, kDebugBuild,
          "Abseil's lock-order (deadlock) detection on every mutex: on in debug builds, off "
          "in release builds (Debian's abseil enables it by default; it costs a graph "
          "update per lock).");
ABSL_FLAG(std::string, listen, "127.0.0.1:50551",
          "gRPC listen addresses, comma-separated: host:port (TCP) or unix:PATH (a Unix "
          "socket, mode 0600, callers identified as uid:N). Loopback only by default. A "
          "non-loopback TCP address needs --caller_tokens_file or --tls_client_ca (or "
          "--allow_unauthenticated_network).");
ABSL_FLAG(std::string, listen_group, "",
          "Group of the Unix socket; with it the socket is mode 0660 so that the group's "
          "members may connect.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain for TCP listeners (TLS); reloaded on SIGHUP.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert; reloaded on SIGHUP.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: TCP callers must present a client certificate it signed (mutual "
          "TLS); identity cert:<subject CN> (or the URI SAN).");
ABSL_FLAG(std::string, caller_tokens_file, "",
          "Caller tokens: one `NAME SHA256-HEX-OF-TOKEN [admin]` per line, # comments. "
          "Callers send `authorization: Bearer <token>`; identity NAME. Re-read on SIGHUP.");
ABSL_FLAG(bool, allow_unauthenticated_network, false,
          "Start even when a TCP listener is not on loopback and callers do not "
          "authenticate (anyone who reaches it can use every session).");
ABSL_FLAG(int64_t, max_inflight_message_bytes, int64_t{256} << 20,
          "Message bytes that calls in flight may hold, daemon-wide (SendMessage, "
          "AppendMessage, BuildSource, ParseSource count twice their request); beyond it "
          "RESOURCE_EXHAUSTED MEMORY_BUDGET with a retry hint. 0 = no limit.");
ABSL_FLAG(int, reserved_descriptors, -1,
          "File descriptors kept free for the gRPC listener and callers: a mail connection "
          "that would use them is RESOURCE_EXHAUSTED. -1 = max(64, limit/8); 0 = none. The "
          "soft RLIMIT_NOFILE is raised to the hard limit at start.");
ABSL_FLAG(int, max_calls_per_caller, 256,
          "Calls in flight per caller identity (streams included); more are "
          "RESOURCE_EXHAUSTED. 0 = no limit.");
ABSL_FLAG(double, start_rate_per_caller, 10,
          "StartSession calls per second per caller identity (token bucket); 0 = no limit.");
ABSL_FLAG(int, start_burst_per_caller, 50, "StartSession burst per caller identity.");
ABSL_FLAG(std::string, instance, "0",
          "Instance tag put in every session ID so a proxy can route calls (e.g. the pod "
          "ordinal). Letters, digits and '-', at most 32 bytes.");
ABSL_FLAG(absl::Duration, default_timeout, absl::Minutes(10),
          "Default server-silence timeout (the seed's EmailSetTimeOut default: 10m).");
ABSL_FLAG(int, max_sessions_per_caller, 1000, "Most sessions one caller may hold; 0 = no limit.");
ABSL_FLAG(int, max_connections_per_server, 0,
          "Most connections to one mail server (host:port) across all sessions; 0 = no limit.");
ABSL_FLAG(absl::Duration, session_idle_timeout, absl::Hours(1),
          "A session not used for this long is closed (LOGOUT/QUIT) and forgotten; 0 = never.");
ABSL_FLAG(absl::Duration, session_max_lifetime, absl::ZeroDuration(),
          "A session older than this is closed and forgotten; 0 = never.");
ABSL_FLAG(absl::Duration, keepalive_imap, absl::Minutes(10),
          "IMAP NOOP after this much quiet (servers log out after 30 min); 0 = none.");
ABSL_FLAG(absl::Duration, keepalive_pop3, absl::Minutes(4),
          "POP3 NOOP after this much quiet (servers log out after 10 min); 0 = none.");
ABSL_FLAG(absl::Duration, keepalive_smtp, absl::ZeroDuration(),
          "SMTP NOOP after this much quiet (servers hang up after 5 min); 0 = none: the next "
          "send reconnects.");
ABSL_FLAG(int, max_handshakes_in_flight, 32,
          "Logins (connect + TLS + authentication) in flight at once, daemon-wide; 0 = no "
          "limit. Spreads the reconnects after a server restart; one mail server gets at most "
          "three quarters of the slots.");
ABSL_FLAG(absl::Duration, reconnect_backoff_initial, absl::Seconds(1),
          "Delay before the second reconnect attempt; doubles per failure, with jitter.");
ABSL_FLAG(absl::Duration, reconnect_backoff_max, absl::Seconds(60), "Longest reconnect delay.");
ABSL_FLAG(absl::Duration, reconnect_stable_after, absl::Seconds(60),
          "A connection that lived this long counts as stable: when it drops, the first "
          "reconnect is immediate and the backoff starts over.");
ABSL_FLAG(int, reconnect_attempts_per_call, 3,
          "Reconnect attempts one call waits for (within its deadline) before UNAVAILABLE.");
ABSL_FLAG(int, max_queued_calls_per_session, 64,
          "Calls that may wait on one session's connection; more are RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT: time for running calls and polite LOGOUT/QUIT.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9551",
          "Address (IP:port) of the Prometheus GET /metrics endpoint; empty disables it.");
ABSL_FLAG(std::string, metrics_tls_cert, "",
          "PEM certificate chain: the metrics endpoint serves HTTPS only (may be --tls_cert).");
ABSL_FLAG(std::string, metrics_tls_key, "", "PEM key of --metrics_tls_cert.");
ABSL_FLAG(std::string, outbox_path, "",
          "SQLite database of asynchronous sends. Empty: $XDG_STATE_HOME/mailpool/outbox.db, "
          "else $HOME/.local/state/mailpool/outbox.db, else ./mailpool-outbox.db.");
ABSL_FLAG(std::string, oauth2_providers_file, "",
          "OAuth2 providers that refreshable credentials may name (sections [NAME] with "
          "token_endpoint, client_id, client_secret_file, scopes, client_auth).");
ABSL_FLAG(std::string, oauth2_ca_file, "",
          "PEM CA bundle trusted for OAuth2 token endpoints instead of the system store.");
ABSL_FLAG(int, outbox_max_batch, 256,
          "Asynchronous sends committed to the outbox together (one transaction, one fsync) "
          "at most; 1 commits each send alone.");
ABSL_FLAG(int, send_max_attempts, 8,
          "Asynchronous sends: attempts (the first included) before a temporary failure "
          "(4xx, lost connection) becomes ERROR.");
ABSL_FLAG(absl::Duration, send_initial_backoff, absl::Seconds(5),
          "Asynchronous sends: wait before the second attempt; doubles per attempt (with "
          "jitter) up to --send_max_backoff.");
ABSL_FLAG(absl::Duration, send_max_backoff, absl::Minutes(10),
          "Asynchronous sends: longest wait between attempts.");

namespace {

// Secrets live in this process's memory: keep them out of core dumps.
void DisableCoreDumps() {
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("keeps POP3, SMTP and IMAP sessions for gRPC callers");
  // The flags live in this file, whatever the binary is called: --help lists them all,
  // and --version prints the project's version.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view) { return true; };
  usage.contains_helpshort_flags = [](absl::string_view) { return true; };
  usage.version_string = [] { return std::string("mailpoold " MAILPOOL_VERSION "\n"); };
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::GetFlag(FLAGS_mutex_deadlock_detection)
                                          ? absl::OnDeadlockCycle::kAbort
                                          : absl::OnDeadlockCycle::kIgnore);
  DisableCoreDumps();
  long descriptors = mailpool::net::RaiseDescriptorLimit();
  if (absl::GetFlag(FLAGS_reserved_descriptors) >= 0) {
    mailpool::net::SetReservedDescriptors(absl::GetFlag(FLAGS_reserved_descriptors));
  }

  mailpool::LogLevel level;
  if (!mailpool::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    fprintf(stderr, "mailpoold: --log_level must be debug, info, warning or error\n");
    return 2;
  }
  mailpool::SetLogLevel(level);
  mailpool::server::RouteLibraryLogs();
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
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  mailpool::server::ServerOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.listen_group = absl::GetFlag(FLAGS_listen_group);
  options.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key = absl::GetFlag(FLAGS_tls_key);
  options.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.allow_unauthenticated_network = absl::GetFlag(FLAGS_allow_unauthenticated_network);
  options.callers.tokens_file = absl::GetFlag(FLAGS_caller_tokens_file);
  options.callers.max_calls_per_caller = absl::GetFlag(FLAGS_max_calls_per_caller);
  options.callers.start_rate_per_caller = absl::GetFlag(FLAGS_start_rate_per_caller);
  options.callers.start_burst_per_caller = absl::GetFlag(FLAGS_start_burst_per_caller);
  if (absl::GetFlag(FLAGS_max_inflight_message_bytes) < 0) {
    fprintf(stderr, "mailpoold: --max_inflight_message_bytes must not be negative\n");
    return 2;
  }
  options.callers.max_inflight_message_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_inflight_message_bytes));
  if (options.callers.max_calls_per_caller < 0 || options.callers.start_rate_per_caller < 0 ||
      options.callers.start_burst_per_caller < 1) {
    fprintf(stderr,
            "mailpoold: --max_calls_per_caller and --start_rate_per_caller must not be "
            "negative, --start_burst_per_caller at least 1\n");
    return 2;
  }
  options.pool.instance_tag = absl::GetFlag(FLAGS_instance);
  options.pool.default_timeout = timeout;
  options.pool.max_sessions_per_owner = absl::GetFlag(FLAGS_max_sessions_per_caller);
  options.pool.max_connections_per_server = absl::GetFlag(FLAGS_max_connections_per_server);
  options.pool.idle_timeout = absl::GetFlag(FLAGS_session_idle_timeout);
  options.pool.max_lifetime = absl::GetFlag(FLAGS_session_max_lifetime);
  options.pool.keepalive_imap = absl::GetFlag(FLAGS_keepalive_imap);
  options.pool.keepalive_pop3 = absl::GetFlag(FLAGS_keepalive_pop3);
  options.pool.keepalive_smtp = absl::GetFlag(FLAGS_keepalive_smtp);
  options.pool.max_handshakes_in_flight = absl::GetFlag(FLAGS_max_handshakes_in_flight);
  options.pool.link.backoff.initial = absl::GetFlag(FLAGS_reconnect_backoff_initial);
  options.pool.link.backoff.max = absl::GetFlag(FLAGS_reconnect_backoff_max);
  options.pool.link.backoff.stable_after = absl::GetFlag(FLAGS_reconnect_stable_after);
  options.pool.link.max_attempts_per_call = absl::GetFlag(FLAGS_reconnect_attempts_per_call);
  options.pool.link.max_queue = absl::GetFlag(FLAGS_max_queued_calls_per_session);
  for (absl::Duration d :
       {options.pool.idle_timeout, options.pool.max_lifetime, options.pool.keepalive_imap,
        options.pool.keepalive_pop3, options.pool.keepalive_smtp, options.pool.link.backoff.initial,
        options.pool.link.backoff.max}) {
    if (d < absl::ZeroDuration()) {
      fprintf(stderr, "mailpoold: durations must not be negative\n");
      return 2;
    }
  }
  if (options.pool.link.max_attempts_per_call < 1 || options.pool.link.max_queue < 1) {
    fprintf(stderr,
            "mailpoold: --reconnect_attempts_per_call and --max_queued_calls_per_session "
            "must be at least 1\n");
    return 2;
  }
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.metrics_tls_cert = absl::GetFlag(FLAGS_metrics_tls_cert);
  options.metrics_tls_key = absl::GetFlag(FLAGS_metrics_tls_key);
  options.outbox_path = absl::GetFlag(FLAGS_outbox_path);
  options.outbox_max_batch = absl::GetFlag(FLAGS_outbox_max_batch);
  options.oauth2_providers_file = absl::GetFlag(FLAGS_oauth2_providers_file);
  options.oauth2_ca_file = absl::GetFlag(FLAGS_oauth2_ca_file);
  options.sender.max_attempts = absl::GetFlag(FLAGS_send_max_attempts);
  options.sender.initial_backoff = absl::GetFlag(FLAGS_send_initial_backoff);
  options.sender.max_backoff = absl::GetFlag(FLAGS_send_max_backoff);
  if (options.sender.max_attempts < 1 || options.sender.initial_backoff <= absl::ZeroDuration() ||
      options.sender.max_backoff < options.sender.initial_backoff) {
    fprintf(stderr,
            "mailpoold: --send_max_attempts must be at least 1 and 0 < --send_initial_backoff "
            "<= --send_max_backoff\n");
    return 2;
  }

  mailpool::metrics::RegisterProcessMetrics(
      mailpool::metrics::Registry::Default(),
      {{"version", MAILPOOL_VERSION}, {"grpc", grpc_version_string()}});
  mailpool::server::Server server(options);
  absl::Status status = server.Start();
  if (!status.ok()) {
    fprintf(stderr, "mailpoold: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  mailpool::Log(mailpool::LogLevel::kInfo, "descriptor limit",
                {{"nofile", std::to_string(descriptors)},
                 {"reserved", std::to_string(mailpool::net::ReservedDescriptors())}});
  int received = 0;
  for (;;) {
    sigwait(&signals, &received);
    if (received != SIGHUP) break;
    mailpool::Log(mailpool::LogLevel::kInfo, "SIGHUP: reloading caller tokens and TLS files");
    (void)server.Reload();  // logs what it could not reload
  }
  mailpool::Log(mailpool::LogLevel::kInfo, "shutting down",
                {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  server.Shutdown();
  return 0;
}
