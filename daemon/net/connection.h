// Connection: one TCP connection to a mail server, optionally upgraded to TLS.
//
// TLS is OpenSSL driven directly on the non-blocking socket (no asio::ssl stream) with
// SSL_MODE_RELEASE_BUFFERS, so an idle TLS connection holds no record buffers. Certificate
// chain and host name are verified unless TlsOptions::dangerously_skip_verification.
//
//   net::Connection::Connect(loop, {"imap.example.org", 993, absl::Seconds(30)},
//       [](absl::StatusOr<std::unique_ptr<net::Connection>> c) {
//         (*c)->StartTls(tls, [](absl::Status s) { ... });
//       });
//
// Loop-confined. Callbacks run on the loop, never inside the call that registered them,
// and never after Close() or destruction. Errors: UNAVAILABLE with reason
// CONNECT_FAILED / TLS_FAILED / CONNECTION_LOST, DEADLINE_EXCEEDED for the connect
// timeout.
#ifndef MAILPOOL_NET_CONNECTION_H_
#define MAILPOOL_NET_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "net/event_loop.h"

namespace mailpool::net {

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  absl::Duration connect_timeout = absl::Seconds(30);
  // Labels this connection's bytes in the mailpool_bytes_{read,written}_total metrics
  // ("imap", "pop3", "smtp"); empty counts as "other".
  std::string protocol;
};

struct TlsOptions {
  // Name for SNI and host-name verification; empty: the endpoint host.
  std::string server_name;
  // Extra trusted CA certificates (PEM), added to the system store.
  std::string ca_pem;
  // Accept any certificate. For tests against self-signed servers only.
  bool dangerously_skip_verification = false;
};

struct TlsInfo {
  bool active = false;
  std::string version;  // "TLSv1.3"
  std::string cipher;
  bool verified = false;
};

class Connection {
 public:
  using DoneCallback = absl::AnyInvocable<void(absl::Status)>;
  // `data` is valid only during the call.
  using ReadCallback = absl::AnyInvocable<void(absl::Status, absl::string_view data)>;
  using ConnectCallback = absl::AnyInvocable<void(absl::StatusOr<std::unique_ptr<Connection>>)>;

  // Resolves and connects within endpoint.connect_timeout.
  static void Connect(EventLoop& loop, const Endpoint& endpoint, ConnectCallback done);

  virtual ~Connection() = default;

  // Runs the TLS client handshake (implicit TLS, or after STARTTLS was accepted). Reads
  // and writes must be idle. Errors: UNAVAILABLE TLS_FAILED, TLS_CERTIFICATE_REJECTED;
  // FAILED_PRECONDITION WRONG_SECURITY when the server answered in plaintext (a STARTTLS
  // or plaintext port spoken to with implicit TLS), with a hint at the other mode.
  virtual void StartTls(const TlsOptions& options, DoneCallback done) = 0;
  // Queues `data`; `done` runs once all of it has been handed to the kernel.
  virtual void Write(std::string data, DoneCallback done) = 0;
  // Delivers the next bytes (at least one) or an error; the peer closing is
  // UNAVAILABLE "connection closed by the server". One read at a time.
  virtual void Read(ReadCallback done) = 0;
  // Closes the socket at once; no callback runs afterwards. Idempotent.
  virtual void Close() = 0;
  virtual TlsInfo tls_info() const = 0;
  virtual bool closed() const = 0;
};

}  // namespace mailpool::net

#endif  // MAILPOOL_NET_CONNECTION_H_
