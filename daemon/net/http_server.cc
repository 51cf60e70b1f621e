#include "net/http_server.h"

#include <array>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include <asio/ssl.hpp>

#include "net/asio_access.h"

namespace mailpool::net {
namespace {

constexpr size_t kMaxRequestHead = 8 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr size_t kMaxConnections = 16;

absl::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    default:
      return "Error";
  }
}

std::string Serialize(const HttpResponse& response, bool head_only) {
  std::string out = absl::StrCat(
      "HTTP/1.1 ", response.status, " ", Reason(response.status),
      "\r\nContent-Type: ", response.content_type, "\r\nContent-Length: ", response.body.size(),
      response.status == 405 ? "\r\nAllow: GET, HEAD" : "", "\r\nConnection: close\r\n\r\n");
  if (!head_only) out += response.body;
  return out;
}

HttpResponse Plain(int status, absl::string_view text) {
  return {status, "text/plain; charset=utf-8", absl::StrCat(text, "\n")};
}

}  // namespace

struct HttpServer::State : std::enable_shared_from_this<HttpServer::State> {
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(asio::ip::tcp::socket s, std::shared_ptr<State> owner)
        : socket(std::move(s)), timer(socket.get_executor()), state(std::move(owner)) {}
    asio::ip::tcp::socket socket;
    std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls;  // HTTPS only
    asio::steady_timer timer;
    std::weak_ptr<State> state;
    std::string request;
    std::string response;
    bool answering = false;  // the request head is in; the answer is being written
    bool done = false;
  };

  State(asio::io_context& io, Handler h)
      : acceptor(io), retry(io), handler(std::move(h)) {}

  void Accept() {
    acceptor.async_accept(
        [self = shared_from_this()](const asio::error_code& ec, asio::ip::tcp::socket socket) {
          if (self->stopped) return;
          if (!ec) {
            self->Serve(std::move(socket));
            return self->Accept();
          }
          // Out of descriptors (or another accept error): try again shortly, not in a
          // tight loop, and never stop accepting.
          self->retry.expires_after(std::chrono::milliseconds(100));
          self->retry.async_wait([self](const asio::error_code& wait) {
            if (!wait && !self->stopped) self->Accept();
          });
        });
  }

  void Serve(asio::ip::tcp::socket socket) {
    // Forget connections that have finished.
    std::erase_if(conns, [](const std::weak_ptr<Conn>& c) { return c.expired(); });
    if (conns.size() >= kMaxConnections) {
      // Full: the oldest connection still sending its request head makes room, so idle
      // connections cannot keep a scrape out; when all are answering, the new one waits
      // its turn by being closed.
      for (auto& weak : conns) {
        auto old = weak.lock();
        if (old && !old->answering && !old->done) {
          Close(*old);
          break;
        }
      }
      std::erase_if(conns, [](const std::weak_ptr<Conn>& c) {
        auto conn = c.lock();
        return !conn || conn->done;
      });
      if (conns.size() >= kMaxConnections) return;  // the socket closes going out of scope
    }
    auto conn = std::make_shared<Conn>(std::move(socket), shared_from_this());
    conns.push_back(conn);
    conn->timer.expires_after(kRequestTimeout);
    conn->timer.async_wait([conn](const asio::error_code& ec) {
      if (!ec) Close(*conn);
    });
    if (!ssl) return Read(conn);
    conn->tls = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(conn->socket, *ssl);
    conn->tls->async_handshake(asio::ssl::stream_base::server,
                               [conn](const asio::error_code& ec) {
                                 if (conn->done) return;
                                 if (ec) return Close(*conn);
                                 Read(conn);
                               });
  }

  static void Read(const std::shared_ptr<Conn>& conn) {
    auto buffer = std::make_shared<std::array<char, 1024>>();
    auto on_read = [conn, buffer](const asio::error_code& ec, size_t n) {
          if (conn->done) return;
          if (ec) return Close(*conn);
          conn->request.append(buffer->data(), n);
          size_t end = conn->request.find("\r\n\r\n");
          if (end == std::string::npos) {
            if (conn->request.size() > kMaxRequestHead) {
              return Respond(conn, Plain(400, "request head too large"), false);
            }
            return Read(conn);
          }
          if (end > kMaxRequestHead)
            return Respond(conn, Plain(400, "request head too large"), false);
          auto state = conn->state.lock();
          if (!state) return Close(*conn);
          conn->answering = true;
          state->Handle(conn, absl::string_view(conn->request).substr(0, end));
    };
    if (conn->tls) {
      conn->tls->async_read_some(asio::buffer(*buffer), std::move(on_read));
    } else {
      conn->socket.async_read_some(asio::buffer(*buffer), std::move(on_read));
    }
  }

  void Handle(const std::shared_ptr<Conn>& conn, absl::string_view head) {
    absl::string_view request_line = head.substr(0, head.find("\r\n"));
    std::vector<absl::string_view> parts = absl::StrSplit(request_line, ' ');
    if (parts.size() != 3 || parts[1].empty() || parts[1][0] != '/' ||
        !absl::StartsWith(parts[2], "HTTP/1.")) {
      return Respond(conn, Plain(400, "bad request"), false);
    }
    bool head_only = parts[0] == "HEAD";
    if (parts[0] != "GET" && !head_only) {
      return Respond(conn, Plain(405, "only GET"), false);
    }
    absl::string_view path = parts[1].substr(0, parts[1].find('?'));
    Respond(conn, handler(path), head_only);
  }

  static void Respond(const std::shared_ptr<Conn>& conn, const HttpResponse& response,
                      bool head_only) {
    conn->response = Serialize(response, head_only);
    conn->request.clear();
    auto written = [conn](const asio::error_code&, size_t) { Close(*conn); };
    if (conn->tls) {
      asio::async_write(*conn->tls, asio::buffer(conn->response), std::move(written));
    } else {
      asio::async_write(conn->socket, asio::buffer(conn->response), std::move(written));
    }
  }

  static void Close(Conn& conn) {
    if (conn.done) return;
    conn.done = true;
    asio::error_code ignored;
    conn.timer.cancel();
    conn.socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    conn.socket.close(ignored);
  }

  asio::ip::tcp::acceptor acceptor;
  std::unique_ptr<asio::ssl::context> ssl;  // set: HTTPS
  asio::steady_timer retry;
  Handler handler;
  std::vector<std::weak_ptr<Conn>> conns;
  bool stopped = false;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Listen(EventLoop& loop,
                                                               const std::string& address,
                                                               Handler handler, const Tls* tls) {
  size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad listen address \"", address, "\": want host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  asio::error_code ec;
  asio::ip::address ip = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad listen address \"", address, "\": the host must be an IP address"));
  }
  auto state = std::make_shared<State>(IoContext(loop), std::move(handler));
  if (tls != nullptr) {
    state->ssl = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    state->ssl->set_options(asio::ssl::context::default_workarounds |
                            asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                            asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    state->ssl->use_certificate_chain(asio::buffer(tls->cert_pem), ec);
    if (!ec) state->ssl->use_private_key(asio::buffer(tls->key_pem), asio::ssl::context::pem, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics TLS: the certificate or key is not usable: ", ec.message()));
    }
  }
  asio::ip::tcp::endpoint endpoint(ip, static_cast<uint16_t>(port));
  state->acceptor.open(endpoint.protocol(), ec);
  if (!ec) state->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(endpoint, ec);
  if (!ec) state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", ec.message()));
  }
  int bound = state->acceptor.local_endpoint().port();
  state->Accept();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state), bound));
}

HttpServer::~HttpServer() {
  state_->stopped = true;
  asio::error_code ignored;
  state_->acceptor.close(ignored);
  state_->retry.cancel();
  for (auto& weak : state_->conns) {
    if (auto conn = weak.lock()) State::Close(*conn);
  }
}

}  // namespace mailpool::net
