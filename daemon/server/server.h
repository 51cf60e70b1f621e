// Server: the composition root — event loop, pool, gRPC services, health and reflection —
// and the ordered shutdown.
//
//   server::Server server(options);
//   MP_RETURN_IF_ERROR(server.Start());   // listening
//   ... wait for SIGTERM ...
//   server.Shutdown();                     // stop calls, LOGOUT/QUIT every session, stop loop
//
// Start and Shutdown are called from one control thread.
#ifndef MAILPOOL_SERVER_SERVER_H_
#define MAILPOOL_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "callers/callers.h"
#include "pool/pool.h"
#include "send/outbox_sender.h"

namespace mailpool::server {

struct ServerOptions {
  // gRPC listen addresses, comma-separated: `host:port` (TCP) or `unix:PATH` (a Unix
  // socket, mode 0600; 0660 with listen_group). The default listens on loopback only.
  std::string listen = "127.0.0.1:50551";
  std::string listen_group;
  // TCP listeners serve TLS with these PEM files when set (reloaded by Reload()); with a
  // client CA, callers must present a certificate it signed (identity cert:<CN>).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Caller identities and per-caller limits (tokens file, calls in flight, start rate).
  callers::CallersOptions callers;
  // Start even when a TCP listener is not on loopback and callers do not authenticate.
  bool allow_unauthenticated_network = false;
  pool::PoolOptions pool;
  // OAuth2 providers for refreshable credentials (see oauth2::ParseProvidersFile); empty:
  // none, requests name the token endpoint themselves.
  std::string oauth2_providers_file;
  // PEM CA bundle trusted for token endpoints instead of the system store (tests).
  std::string oauth2_ca_file;
  // How long Shutdown() lets running calls and polite LOGOUT/QUITs take.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Address of the Prometheus `GET /metrics` endpoint (host:port, port 0 picks one);
  // empty: no endpoint. mailpoold's --metrics_listen defaults to 127.0.0.1:9551.
  std::string metrics_listen;
  // PEM files for an HTTPS-only metrics endpoint (may be the gRPC TLS files); both or none.
  std::string metrics_tls_cert;
  std::string metrics_tls_key;
  // The outbox database of asynchronous sends. Empty: outbox::DefaultPath().
  std::string outbox_path;
  // Asynchronous sends committed together (one fsync) at most; 1 turns group commit off.
  int outbox_max_batch = 256;
  sender::SenderOptions sender;
};

// Sends what gRPC and protobuf log (e.g. "[libprotobuf ERROR …]" for a request that does
// not parse) through common/log as key=value lines (event="grpc log" / "protobuf log"), so
// the daemon's log stays one format. Process-wide; call once at start.
void RouteLibraryLogs();

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  absl::Status Start();
  // SIGHUP: re-reads the caller tokens file and the TLS files. A bad file is an error and
  // leaves what is in use unchanged. Thread-safe against calls.
  absl::Status Reload();
  // The first TCP listener's bound port (useful with port 0); 0 with only a Unix socket.
  int port() const { return port_; }
  // The bound metrics port, 0 without a metrics endpoint.
  int metrics_port() const { return metrics_port_; }
  void Shutdown();

 private:
  struct State;
  absl::Status StartMetrics();

  ServerOptions options_;
  std::unique_ptr<State> state_;
  int port_ = 0;
  int metrics_port_ = 0;
};

}  // namespace mailpool::server

#endif  // MAILPOOL_SERVER_SERVER_H_
