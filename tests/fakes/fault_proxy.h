// FaultProxy: a TCP proxy for tests that sits between the daemon and a real mail server
// and injects faults: drop every connection, stall (forward nothing, keep sockets open),
// slow (a few bytes at a time), truncate or reset the server's stream after N bytes,
// refuse new connections.
//
//   auto proxy = FaultProxy::Start("127.0.0.1", dovecot_pop3_port);
//   // start a session against 127.0.0.1:(*proxy)->port() ...
//   (*proxy)->DropAll();                  // the daemon sees the server vanish
//   (*proxy)->SetStall(true);             // the server goes silent (sockets stay open)
//   (*proxy)->ResetAfter(100);            // new connections: RST after 100 server bytes
//
// One thread with poll(); every method is thread-safe. TLS passes through untouched (the
// proxy sees only bytes), so TLS sessions work through it too.
#ifndef MAILPOOL_TESTS_FAKES_FAULT_PROXY_H_
#define MAILPOOL_TESTS_FAKES_FAULT_PROXY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mailpool::testing {

class FaultProxy {
 public:
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(const std::string& target_host,
                                                           uint16_t target_port);
  ~FaultProxy();

  uint16_t port() const { return port_; }

  // Closes every open connection at once, with RST (both sides).
  void DropAll();
  // Stops forwarding in both directions (also on new connections) while set.
  void SetStall(bool stall);
  // Closes new connections at once (the server looks down).
  void SetRefuse(bool refuse);
  // New connections: after `bytes` bytes from the server, forward nothing more and close
  // with RST (reset) or FIN (truncate). 0: off.
  void ResetAfter(uint64_t bytes);
  void TruncateAfter(uint64_t bytes);
  // Forward at most `bytes` per `every`, each direction; 0 bytes: full speed.
  void SetSlow(uint64_t bytes, absl::Duration every);

  int accepted() const { return accepted_.load(); }
  // Bytes received from the server so far, over every connection.
  uint64_t server_bytes() const { return server_bytes_.load(); }
  int open() const;

 private:
  struct Pair;
  FaultProxy() = default;
  void Loop();
  void Wake();
  void Close(Pair& pair, bool reset);

  std::string target_host_;
  uint16_t target_port_ = 0;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<uint64_t> server_bytes_{0};

  mutable std::mutex mu_;
  bool stall_ = false;
  bool refuse_ = false;
  bool drop_ = false;
  uint64_t reset_after_ = 0;
  uint64_t truncate_after_ = 0;
  uint64_t slow_bytes_ = 0;
  absl::Duration slow_every_;
  std::vector<std::unique_ptr<Pair>> pairs_;  // loop thread only
  int open_ = 0;                              // guarded by mu_
};

}  // namespace mailpool::testing

#endif  // MAILPOOL_TESTS_FAKES_FAULT_PROXY_H_
