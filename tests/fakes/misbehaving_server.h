// MisbehavingImapServer: a scripted IMAP server on loopback for tests of how the daemon
// survives hostile servers. It speaks just enough IMAP4rev1 to log in (LOGIN), SELECT,
// LIST/LSUB two folders, STATUS and NOOP, and misbehaves once on the next command with a
// chosen verb:
//
//   auto server = MisbehavingImapServer::Start();
//   // StartSession against 127.0.0.1:(*server)->port(), SECURITY_PLAIN ...
//   (*server)->Arm("LIST", MisbehavingImapServer::Fault::kCloseMidResponse);
//   // ListFolders fails; the next ListFolders (a new connection) works.
//
// Faults: kStall (answers nothing, keeps the connection open), kCloseMidResponse (half a
// LIST line, then FIN), kInvalidUtf8 (a folder name with bytes that are no UTF-8),
// kOversizeLiteral (announces a 100 GB literal), kOversizeLine (a 9 MiB line without CRLF,
// past the client's 8 MiB bound), kUnsolicited (EXISTS, RECENT, FETCH FLAGS, EXPUNGE and an
// [ALERT] between the command's own responses, as RFC 3501 section 7 allows).
//
// One accept thread plus one thread per connection, blocking sockets; Arm() and the
// counters are thread-safe. The destructor closes every connection and joins.
#ifndef MAILPOOL_TESTS_FAKES_MISBEHAVING_SERVER_H_
#define MAILPOOL_TESTS_FAKES_MISBEHAVING_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace mailpool::testing {

class MisbehavingImapServer {
 public:
  enum class Fault { kNone, kStall, kCloseMidResponse, kInvalidUtf8, kOversizeLiteral,
                     kOversizeLine, kUnsolicited };

  static absl::StatusOr<std::unique_ptr<MisbehavingImapServer>> Start();
  ~MisbehavingImapServer();

  uint16_t port() const { return port_; }
  // The next command whose verb is `verb` ("LIST", "SELECT", "UID", ...) gets `fault`;
  // later ones are answered normally.
  void Arm(const std::string& verb, Fault fault);
  // Connections accepted so far (a reconnect shows as one more).
  int accepted() const { return accepted_.load(); }
  // Commands that got a fault so far.
  int faults_served() const { return faults_served_.load(); }

 private:
  MisbehavingImapServer() = default;
  void AcceptLoop();
  void Serve(int fd);
  Fault Take(const std::string& verb);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> faults_served_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::string armed_verb_;       // guarded by mu_
  Fault armed_ = Fault::kNone;   // guarded by mu_
  std::vector<int> fds_;         // guarded by mu_
  std::vector<std::thread> connections_;  // guarded by mu_
};

}  // namespace mailpool::testing

#endif  // MAILPOOL_TESTS_FAKES_MISBEHAVING_SERVER_H_
