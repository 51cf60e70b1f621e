// ScriptedServer: a loopback TCP server for tests whose behaviour is a function, for mail
// servers that misbehave in ways a real one will not (malformed or oversize responses,
// TLS bytes on a plaintext port, a hang-up while idle).
//
//   auto server = ScriptedServer::Start([](ScriptedConnection& c) {
//     c.Send("* OK ready\r\n");
//     while (std::optional<std::string> line = c.ReadLine()) { ... c.Send(...); }
//   });
//   // connect to 127.0.0.1:(*server)->port() ...
//
// Each accepted connection runs the handler on a thread of its own; the connection closes
// when the handler returns. Thread-safe; the destructor closes every socket and joins.
#ifndef MAILPOOL_TESTS_FAKES_SCRIPTED_SERVER_H_
#define MAILPOOL_TESTS_FAKES_SCRIPTED_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mailpool::testing {

class ScriptedConnection {
 public:
  ScriptedConnection(int fd, int index) : fd_(fd), index_(index) {}
  // Writes all of `bytes`; false when the peer is gone.
  bool Send(absl::string_view bytes);
  // The next line from the client without its CRLF; nullopt when the client closed or
  // nothing came within `timeout`.
  std::optional<std::string> ReadLine(absl::Duration timeout = absl::Seconds(30));
  // Waits until the client closes (or `timeout`); true when it did.
  bool WaitClosed(absl::Duration timeout = absl::Seconds(30));
  // 0 for the first connection the server accepted, 1 for the next, ...
  int index() const { return index_; }

 private:
  int fd_;
  int index_;
  std::string buffer_;
};

class ScriptedServer {
 public:
  using Handler = std::function<void(ScriptedConnection&)>;
  static absl::StatusOr<std::unique_ptr<ScriptedServer>> Start(Handler handler);
  ~ScriptedServer();

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  ScriptedServer() = default;
  void AcceptLoop();

  Handler handler_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> workers_;
};

}  // namespace mailpool::testing

#endif  // MAILPOOL_TESTS_FAKES_SCRIPTED_SERVER_H_
