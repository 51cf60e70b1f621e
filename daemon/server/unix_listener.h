// UnixListener: the daemon's Unix-domain socket, whose callers are identified by their
// Unix user.
//
// gRPC's own `unix:` listener does not tell a call who connected, so the daemon accepts
// on the socket itself: it reads each connection's peer credentials (SO_PEERCRED: the
// connecting process's uid), records them with callers::Callers::NoteUnixPeer under the
// descriptor number, and hands the descriptor to the running grpc::Server
// (grpc::AddInsecureChannelFromFd). gRPC names that connection's peer "fd:<N>", which is
// how a call finds its uid again; the number cannot be reused while a call of that
// connection is alive, because gRPC closes the descriptor only after its last call.
//
// The socket is created with mode 0600 (0660 and the given group with `group`), set
// before bind() so that no other user can connect in between; a stale socket file left by
// a killed daemon is replaced, a live one is an error. Accepting never stops: when the
// process is out of descriptors it waits and tries again.
//
//   auto listener = UnixListener::Open("/run/mailpool/mailpoold.sock", "");
//   (*listener)->Start(grpc_server, callers);   // an accept thread
//   (*listener)->Stop();                        // joins it, removes the socket file
//
// Open/Start/Stop from one control thread.
#ifndef MAILPOOL_SERVER_UNIX_LISTENER_H_
#define MAILPOOL_SERVER_UNIX_LISTENER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace mailpool::callers {
class Callers;
}  // namespace mailpool::callers

namespace mailpool::server {

class UnixListener {
 public:
  static absl::StatusOr<std::unique_ptr<UnixListener>> Open(const std::string& path,
                                                            const std::string& group);
  ~UnixListener();

  void Start(grpc::Server* server, callers::Callers* callers);
  void Stop();
  const std::string& path() const { return path_; }

 private:
  UnixListener(std::string path, int fd, int wake_read, int wake_write);
  void Run();

  std::string path_;
  int fd_;
  int wake_read_;
  int wake_write_;
  grpc::Server* server_ = nullptr;
  callers::Callers* callers_ = nullptr;
  std::thread thread_;
};

}  // namespace mailpool::server

#endif  // MAILPOOL_SERVER_UNIX_LISTENER_H_
