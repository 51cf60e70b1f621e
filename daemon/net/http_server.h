// HttpServer: a minimal HTTP/1.1 responder on the event loop, for `GET /metrics`.
//
//   auto http = net::HttpServer::Listen(loop, "127.0.0.1:9551",
//       [](absl::string_view path) -> net::HttpResponse {
//         if (path != "/metrics") return {404, "text/plain", "not found\n"};
//         return {200, "text/plain; version=0.0.4", Render()};
//       });
//   int port = (*http)->port();
//
// Each connection gets one answer and is closed: the request head is read with a bounded
// size (8 KiB) and time (5 s), a malformed or oversized one is 400, a method other than
// GET or HEAD is 405; the handler answers the rest. At most 16 connections at once: a new
// one closes the oldest that is still sending its request head, so idle connections
// cannot keep a scrape out. Accept errors (out of descriptors) are retried every 100 ms.
// No request body, no keep-alive. With Tls, HTTPS only (the handshake counts against the
// same 5 s); without it, bind it to loopback or a private network.
//
// Loop-confined: Listen, the handler and destruction run on the loop (use RunSync).
#ifndef MAILPOOL_NET_HTTP_SERVER_H_
#define MAILPOOL_NET_HTTP_SERVER_H_

#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "net/event_loop.h"

namespace mailpool::net {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // Gets the request path without its query string.
  using Handler = absl::AnyInvocable<HttpResponse(absl::string_view path)>;

  // PEM certificate chain and key: the endpoint speaks HTTPS only.
  struct Tls {
    std::string cert_pem;
    std::string key_pem;
  };

  // Listens on "host:port" ("[v6]:port" for IPv6; port 0 picks one). INVALID_ARGUMENT
  // for a malformed address or unusable TLS files, UNAVAILABLE when it cannot bind.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Listen(EventLoop& loop,
                                                            const std::string& address,
                                                            Handler handler,
                                                            const Tls* tls = nullptr);
  // Stops listening and closes open connections.
  ~HttpServer();

  int port() const { return port_; }

 private:
  struct State;
  explicit HttpServer(std::shared_ptr<State> state, int port)
      : state_(std::move(state)), port_(port) {}

  std::shared_ptr<State> state_;
  int port_;
};

}  // namespace mailpool::net

#endif  // MAILPOOL_NET_HTTP_SERVER_H_
