#include "net/connection.h"
#include "net/descriptors.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "metrics/metrics.h"
#include "net/asio_access.h"
#include "net/tls_context.h"

namespace mailpool::net {
namespace {

constexpr absl::string_view kConnectionLost = "CONNECTION_LOST";

// One read buffer per loop thread: a read callback consumes the bytes before the next
// read can run, so connections need no buffers of their own while idle.
char* ReadBuffer(size_t* size) {
  static thread_local char buffer[64 * 1024];
  *size = sizeof(buffer);
  return buffer;
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

bool IsIpLiteral(const std::string& host) {
  asio::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Byte counters by protocol, looked up once per connection.
struct Traffic {
  metrics::Counter* read;
  metrics::Counter* written;
};

Traffic TrafficFor(const std::string& protocol) {
  static metrics::CounterFamily& read = metrics::Registry::Default().Counter(
      "mailpool_bytes_read_total",
      "Bytes received from mail servers (after TLS decryption), by protocol.", {"protocol"});
  static metrics::CounterFamily& written = metrics::Registry::Default().Counter(
      "mailpool_bytes_written_total",
      "Bytes sent to mail servers (before TLS encryption), by protocol.", {"protocol"});
  absl::string_view label = protocol.empty() ? absl::string_view("other") : protocol;
  return {&read.WithLabels({label}), &written.WithLabels({label})};
}

// The state behind a Connection; handlers hold it alive until they have run.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(asio::ip::tcp::socket socket, std::string host, Traffic traffic)
      : socket_(std::move(socket)), host_(std::move(host)), traffic_(traffic) {}
  ~Core() { Close(); }

  void StartTls(const TlsOptions& options, Connection::DoneCallback done);
  void Write(std::string data, Connection::DoneCallback done);
  void Read(Connection::ReadCallback done);
  void Close();
  TlsInfo tls_info() const { return tls_info_; }
  bool closed() const { return closed_; }

 private:
  enum class Op { kRead, kWrite, kHandshake };

  void PumpRead();
  void PumpWrite();
  void PumpHandshake();
  // Waits until the socket is ready in the direction OpenSSL (or the kernel) asked for,
  // then runs the op's pump again.
  void Wait(Op op, asio::socket_base::wait_type direction);
  void Fail(absl::Status status);
  absl::Status TlsError(int ret, absl::string_view what);

  asio::ip::tcp::socket socket_;
  std::string host_;
  Traffic traffic_;
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_{nullptr, SSL_free};
  SslCtxPtr ctx_;
  TlsInfo tls_info_;
  bool verify_ = true;
  bool closed_ = false;
  absl::Status broken_;

  Connection::ReadCallback read_done_;
  bool read_waiting_ = false;
  // Pending writes; a vector because an empty std::deque allocates ~600 bytes, and an
  // idle connection should hold nothing.
  std::vector<std::pair<std::string, Connection::DoneCallback>> writes_;
  size_t write_offset_ = 0;
  bool write_waiting_ = false;
  Connection::DoneCallback handshake_done_;
  bool handshake_waiting_ = false;
};

void Core::Close() {
  if (closed_) return;
  closed_ = true;
  read_done_ = nullptr;
  writes_.clear();
  handshake_done_ = nullptr;
  asio::error_code ignored;
  socket_.cancel(ignored);
  socket_.close(ignored);
  ssl_.reset();
}

void Core::Fail(absl::Status status) {
  if (broken_.ok()) broken_ = status;
  if (auto cb = std::move(read_done_)) {
    read_done_ = nullptr;
    cb(status, {});
  }
  if (closed_) return;
  if (auto cb = std::move(handshake_done_)) {
    handshake_done_ = nullptr;
    cb(status);
  }
  if (closed_) return;
  auto writes = std::move(writes_);
  writes_.clear();
  for (auto& [data, cb] : writes) {
    if (closed_) return;
    if (cb) cb(status);
  }
}

void Core::Wait(Op op, asio::socket_base::wait_type direction) {
  bool* waiting = op == Op::kRead    ? &read_waiting_
                  : op == Op::kWrite ? &write_waiting_
                                     : &handshake_waiting_;
  if (*waiting) return;
  *waiting = true;
  socket_.async_wait(direction,
                     [self = shared_from_this(), op, waiting](const asio::error_code& ec) {
                       *waiting = false;
                       if (self->closed_) return;
                       if (ec) {
                         self->Fail(MailServerError(absl::StatusCode::kUnavailable, kConnectionLost,
                                                    absl::StrCat("socket error: ", ec.message())));
                         return;
                       }
                       switch (op) {
                         case Op::kRead:
                           self->PumpRead();
                           break;
                         case Op::kWrite:
                           self->PumpWrite();
                           break;
                         case Op::kHandshake:
                           self->PumpHandshake();
                           break;
                       }
                     });
}

absl::Status Core::TlsError(int ret, absl::string_view what) {
  // A plaintext server answers a ClientHello with its greeting ("* OK", "+OK", "220"),
  // which OpenSSL reads as a record of an unknown version: the classic wrong choice of
  // implicit TLS for a STARTTLS or plaintext port. Said plainly, and not retried (the
  // same choice fails the same way).
  bool plaintext_peer = false;
  if (what == "handshake") {
    unsigned long first = ERR_peek_error();
    int reason = ERR_GET_REASON(first);
    plaintext_peer = first != 0 && (reason == SSL_R_WRONG_VERSION_NUMBER ||
                                    reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                                    reason == SSL_R_HTTP_REQUEST);
  }
  std::string detail = OpenSslErrors();
  if (plaintext_peer) {
    return MailServerError(
        absl::StatusCode::kFailedPrecondition, "WRONG_SECURITY",
        absl::StrCat("the server ", host_,
                     " answered the TLS handshake in plaintext: this port does not use implicit "
                     "TLS; choose SECURITY_STARTTLS (or SECURITY_PLAIN) for it, or the "
                     "implicit-TLS port (IMAP 993, POP3 995, SMTP 465) (TLS ",
                     what, " failed: ", detail, ")"));
  }
  if (detail.empty() && ret <= 0) detail = errno != 0 ? strerror(errno) : "unexpected EOF";
  return MailServerError(absl::StatusCode::kUnavailable,
                         what == "handshake" ? "TLS_FAILED" : kConnectionLost,
                         absl::StrCat("TLS ", what, " failed: ", detail));
}

void Core::StartTls(const TlsOptions& options, Connection::DoneCallback done) {
  verify_ = !options.dangerously_skip_verification;
  auto ctx = ClientContext(options.ca_pem, verify_);
  if (!ctx.ok()) {
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), s = ctx.status(), done = std::move(done)]() mutable {
                 if (!self->closed_) done(s);
               });
    return;
  }
  ctx_ = *ctx;
  ssl_.reset(SSL_new(ctx_.get()));
  SSL_set_fd(ssl_.get(), socket_.native_handle());
  const std::string& name = options.server_name.empty() ? host_ : options.server_name;
  if (IsIpLiteral(name)) {
    if (verify_) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_.get(), name.c_str());
    if (verify_) SSL_set1_host(ssl_.get(), name.c_str());
  }
  handshake_done_ = std::move(done);
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (!self->closed_) self->PumpHandshake();
  });
}

void Core::PumpHandshake() {
  if (closed_ || !handshake_done_) return;
  ERR_clear_error();
  errno = 0;
  int ret = SSL_connect(ssl_.get());
  if (ret == 1) {
    tls_info_.active = true;
    tls_info_.version = SSL_get_version(ssl_.get());
    tls_info_.cipher = SSL_get_cipher_name(ssl_.get());
    tls_info_.verified = verify_ && SSL_get_verify_result(ssl_.get()) == X509_V_OK;
    auto cb = std::move(handshake_done_);
    handshake_done_ = nullptr;
    cb(absl::OkStatus());
    return;
  }
  int err = SSL_get_error(ssl_.get(), ret);
  if (err == SSL_ERROR_WANT_READ) return Wait(Op::kHandshake, asio::socket_base::wait_read);
  if (err == SSL_ERROR_WANT_WRITE) return Wait(Op::kHandshake, asio::socket_base::wait_write);
  long verify_result = SSL_get_verify_result(ssl_.get());
  if (verify_ && verify_result != X509_V_OK) {
    ERR_clear_error();
    return Fail(MailServerError(absl::StatusCode::kUnavailable, "TLS_CERTIFICATE_REJECTED",
                                absl::StrCat("TLS certificate verification failed for ", host_,
                                             ": ", X509_verify_cert_error_string(verify_result))));
  }
  Fail(TlsError(ret, "handshake"));
}

void Core::Read(Connection::ReadCallback done) {
  read_done_ = std::move(done);
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (!self->closed_) self->PumpRead();
  });
}

void Core::PumpRead() {
  if (closed_ || !read_done_) return;
  if (!broken_.ok()) return Fail(broken_);
  size_t size = 0;
  char* buffer = ReadBuffer(&size);
  if (ssl_) {
    ERR_clear_error();
    errno = 0;
    int ret = SSL_read(ssl_.get(), buffer, static_cast<int>(size));
    if (ret <= 0) {
      int err = SSL_get_error(ssl_.get(), ret);
      if (err == SSL_ERROR_WANT_READ) return Wait(Op::kRead, asio::socket_base::wait_read);
      if (err == SSL_ERROR_WANT_WRITE) return Wait(Op::kRead, asio::socket_base::wait_write);
      if (err == SSL_ERROR_ZERO_RETURN ||
          (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)) {
        return Fail(MailServerError(absl::StatusCode::kUnavailable, kConnectionLost,
                                    "connection closed by the server"));
      }
      return Fail(TlsError(ret, "read"));
    }
    traffic_.read->Increment(static_cast<uint64_t>(ret));
    auto cb = std::move(read_done_);
    read_done_ = nullptr;
    cb(absl::OkStatus(), absl::string_view(buffer, static_cast<size_t>(ret)));
    return;
  }
  ssize_t n = ::recv(socket_.native_handle(), buffer, size, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    return Wait(Op::kRead, asio::socket_base::wait_read);
  }
  if (n <= 0) {
    return Fail(MailServerError(absl::StatusCode::kUnavailable, kConnectionLost,
                                n == 0 ? std::string("connection closed by the server")
                                       : absl::StrCat("read failed: ", strerror(errno))));
  }
  traffic_.read->Increment(static_cast<uint64_t>(n));
  auto cb = std::move(read_done_);
  read_done_ = nullptr;
  cb(absl::OkStatus(), absl::string_view(buffer, static_cast<size_t>(n)));
}

void Core::Write(std::string data, Connection::DoneCallback done) {
  writes_.emplace_back(std::move(data), std::move(done));
  if (writes_.size() == 1) {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (!self->closed_) self->PumpWrite();
    });
  }
}

void Core::PumpWrite() {
  while (!closed_ && !writes_.empty()) {
    if (!broken_.ok()) return Fail(broken_);
    std::string& data = writes_.front().first;
    if (write_offset_ < data.size()) {
      const char* p = data.data() + write_offset_;
      size_t left = data.size() - write_offset_;
      if (ssl_) {
        ERR_clear_error();
        errno = 0;
        int ret = SSL_write(ssl_.get(), p, static_cast<int>(std::min<size_t>(left, 1 << 30)));
        if (ret <= 0) {
          int err = SSL_get_error(ssl_.get(), ret);
          if (err == SSL_ERROR_WANT_WRITE) return Wait(Op::kWrite, asio::socket_base::wait_write);
          if (err == SSL_ERROR_WANT_READ) return Wait(Op::kWrite, asio::socket_base::wait_read);
          return Fail(TlsError(ret, "write"));
        }
        write_offset_ += static_cast<size_t>(ret);
        traffic_.written->Increment(static_cast<uint64_t>(ret));
      } else {
        ssize_t n = ::send(socket_.native_handle(), p, left, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
          return Wait(Op::kWrite, asio::socket_base::wait_write);
        }
        if (n < 0) {
          return Fail(MailServerError(absl::StatusCode::kUnavailable, kConnectionLost,
                                      absl::StrCat("write failed: ", strerror(errno))));
        }
        write_offset_ += static_cast<size_t>(n);
        traffic_.written->Increment(static_cast<uint64_t>(n));
      }
      continue;
    }
    auto cb = std::move(writes_.front().second);
    writes_.erase(writes_.begin());
    if (writes_.empty()) writes_.shrink_to_fit();
    write_offset_ = 0;
    if (cb) cb(absl::OkStatus());
  }
}

class TcpConnection : public Connection {
 public:
  explicit TcpConnection(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~TcpConnection() override { core_->Close(); }

  void StartTls(const TlsOptions& options, DoneCallback done) override {
    core_->StartTls(options, std::move(done));
  }
  void Write(std::string data, DoneCallback done) override {
    core_->Write(std::move(data), std::move(done));
  }
  void Read(ReadCallback done) override { core_->Read(std::move(done)); }
  void Close() override { core_->Close(); }
  TlsInfo tls_info() const override { return core_->tls_info(); }
  bool closed() const override { return core_->closed(); }

 private:
  std::shared_ptr<Core> core_;
};

// Resolve + connect with one deadline over both.
struct ConnectOp : std::enable_shared_from_this<ConnectOp> {
  ConnectOp(asio::io_context& io, Endpoint endpoint, Connection::ConnectCallback done)
      : resolver(io), socket(io), timer(io), endpoint(std::move(endpoint)), done(std::move(done)) {}

  void Start() {
    timer.expires_after(absl::ToChronoNanoseconds(endpoint.connect_timeout));
    timer.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (ec || self->finished) return;
      self->Finish(MailServerError(
          absl::StatusCode::kDeadlineExceeded, "CONNECT_TIMEOUT",
          absl::StrCat("connecting to ", self->endpoint.host, ":", self->endpoint.port,
                       " timed out after ", absl::FormatDuration(self->endpoint.connect_timeout))));
    });
    resolver.async_resolve(
        endpoint.host, std::to_string(endpoint.port), asio::ip::resolver_base::numeric_service,
        [self = shared_from_this()](const asio::error_code& ec,
                                    asio::ip::tcp::resolver::results_type results) {
          if (self->finished) return;
          if (ec) {
            return self->Finish(MailServerError(
                absl::StatusCode::kUnavailable, "CONNECT_FAILED",
                absl::StrCat("cannot resolve ", self->endpoint.host, ": ", ec.message())));
          }
          asio::async_connect(self->socket, results,
                              [self](const asio::error_code& ec, const asio::ip::tcp::endpoint&) {
                                if (self->finished) return;
                                if (ec) {
                                  return self->Finish(MailServerError(
                                      absl::StatusCode::kUnavailable, "CONNECT_FAILED",
                                      absl::StrCat("cannot connect to ", self->endpoint.host, ":",
                                                   self->endpoint.port, ": ", ec.message())));
                                }
                                self->Finish(absl::OkStatus());
                              });
        });
  }

  void Finish(absl::Status status) {
    finished = true;
    timer.cancel();
    resolver.cancel();
    auto cb = std::move(done);
    if (!status.ok()) {
      asio::error_code ignored;
      socket.close(ignored);
      cb(status);
      return;
    }
    asio::error_code ec;
    socket.non_blocking(true, ec);
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    socket.set_option(asio::socket_base::keep_alive(true), ec);
    auto core =
        std::make_shared<Core>(std::move(socket), endpoint.host, TrafficFor(endpoint.protocol));
    cb(std::unique_ptr<Connection>(new TcpConnection(std::move(core))));
  }

  asio::ip::tcp::resolver resolver;
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  Endpoint endpoint;
  Connection::ConnectCallback done;
  bool finished = false;
};

}  // namespace

void Connection::Connect(EventLoop& loop, const Endpoint& endpoint, ConnectCallback done) {
  // Never into the descriptors kept for the gRPC listener and callers.
  if (absl::Status budget = CheckDescriptorBudget(); !budget.ok()) {
    asio::post(IoContext(loop), [done = std::move(done), budget]() mutable { done(budget); });
    return;
  }
  auto op = std::make_shared<ConnectOp>(IoContext(loop), endpoint, std::move(done));
  asio::post(IoContext(loop), [op] { op->Start(); });
}

}  // namespace mailpool::net
