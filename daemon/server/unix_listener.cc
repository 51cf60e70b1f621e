#include "server/unix_listener.h"

#include <fcntl.h>
#include <grp.h>
#include <grpcpp/server.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "callers/callers.h"
#include "common/log.h"

namespace mailpool::server {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Open(const std::string& path,
                                                                 const std::string& group) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat("--listen=unix:PATH: the path must be 1 to ",
                                                   sizeof addr.sun_path - 1, " bytes"));
  }
  memcpy(addr.sun_path, path.data(), path.size());
  gid_t gid = static_cast<gid_t>(-1);
  if (!group.empty()) {
    struct group* g = getgrnam(group.c_str());
    if (g == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--listen_group: no group named ", group));
    }
    gid = g->gr_gid;
  }
  mode_t mode = group.empty() ? 0600 : 0660;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("cannot create a socket for", path);
  // A socket file that nobody accepts on is a leftover of a killed daemon.
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a socket; not replacing it"));
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) close(probe);
    if (live) {
      close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat(path, " is in use by another daemon"));
    }
    unlink(path.c_str());
  }
  // The mode is set on the socket before bind(): the file is created with it (less the
  // umask), so nobody else can connect before the chmod below.
  if (fchmod(fd, mode) != 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    absl::Status status = Errno("cannot bind", path);
    close(fd);
    return status;
  }
  if ((gid != static_cast<gid_t>(-1) && chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0) ||
      chmod(path.c_str(), mode) != 0 || listen(fd, 128) != 0) {
    absl::Status status = Errno("cannot set up", path);
    close(fd);
    unlink(path.c_str());
    return status;
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    absl::Status status = Errno("cannot create a wake-up pipe for", path);
    close(fd);
    unlink(path.c_str());
    return status;
  }
  return std::unique_ptr<UnixListener>(new UnixListener(path, fd, wake[0], wake[1]));
}

UnixListener::UnixListener(std::string path, int fd, int wake_read, int wake_write)
    : path_(std::move(path)), fd_(fd), wake_read_(wake_read), wake_write_(wake_write) {}

UnixListener::~UnixListener() { Stop(); }

void UnixListener::Start(grpc::Server* server, callers::Callers* callers) {
  server_ = server;
  callers_ = callers;
  thread_ = std::thread([this] { Run(); });
}

void UnixListener::Stop() {
  if (fd_ < 0) return;
  if (thread_.joinable()) {
    char byte = 0;
    (void)!write(wake_write_, &byte, 1);
    thread_.join();
  }
  close(fd_);
  close(wake_read_);
  close(wake_write_);
  fd_ = -1;
  unlink(path_.c_str());
}

void UnixListener::Run() {
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "unix socket poll failed", {{"error", strerror(errno)}});
      poll(nullptr, 0, 100);
      continue;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: the connection waits in the backlog until some are freed.
        Log(LogLevel::kWarning, "unix socket accept failed, retrying",
            {{"error", strerror(errno)}});
        poll(nullptr, 0, 200);
      }
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      close(conn);
      continue;
    }
    callers_->NoteUnixPeer(conn, cred.uid);
    grpc::AddInsecureChannelFromFd(server_, conn);
  }
}

}  // namespace mailpool::server
