#include "tests/fakes/fault_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace mailpool::testing {

struct FaultProxy::Pair {
  int fd[2] = {-1, -1};    // 0: the client (daemon), 1: the server
  std::string pending[2];  // bytes read from side i, to be written to the other side
  bool eof[2] = {false, false};
  uint64_t from_server = 0;
  uint64_t reset_after = 0;
  uint64_t truncate_after = 0;
  // Slow mode: bytes still allowed in the current window, and when it ends.
  uint64_t budget[2] = {0, 0};
  absl::Time window_end[2] = {absl::InfinitePast(), absl::InfinitePast()};
  bool closed = false;
};

namespace {

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void HardClose(int fd, bool reset) {
  if (fd < 0) return;
  if (reset) {
    struct linger l = {1, 0};  // close() sends RST
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  close(fd);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& target_host,
                                                              uint16_t target_port) {
  std::unique_ptr<FaultProxy> p(new FaultProxy());
  p->target_host_ = target_host;
  p->target_port_ = target_port;
  p->listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(p->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(p->listen_fd_, 1024) != 0) {
    return absl::UnavailableError(absl::StrCat("fault proxy: ", strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  p->port_ = ntohs(addr.sin_port);
  SetNonBlocking(p->listen_fd_);
  if (pipe(p->wake_) != 0) return absl::UnavailableError("fault proxy: pipe");
  SetNonBlocking(p->wake_[0]);
  SetNonBlocking(p->wake_[1]);
  p->thread_ = std::thread([raw = p.get()] { raw->Loop(); });
  return p;
}

FaultProxy::~FaultProxy() {
  stop_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
  for (auto& pair : pairs_) Close(*pair, false);
  HardClose(listen_fd_, false);
  HardClose(wake_[0], false);
  HardClose(wake_[1], false);
}

void FaultProxy::Wake() {
  char c = 1;
  (void)!write(wake_[1], &c, 1);
}

void FaultProxy::DropAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    drop_ = true;
  }
  Wake();
}

void FaultProxy::SetStall(bool stall) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stall_ = stall;
  }
  Wake();
}

void FaultProxy::SetRefuse(bool refuse) {
  std::lock_guard<std::mutex> lock(mu_);
  refuse_ = refuse;
}

void FaultProxy::ResetAfter(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  reset_after_ = bytes;
}

void FaultProxy::TruncateAfter(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  truncate_after_ = bytes;
}

void FaultProxy::SetSlow(uint64_t bytes, absl::Duration every) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    slow_bytes_ = bytes;
    slow_every_ = every;
  }
  Wake();
}

int FaultProxy::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

void FaultProxy::Close(Pair& pair, bool reset) {
  if (pair.closed) return;
  pair.closed = true;
  HardClose(pair.fd[0], reset);
  HardClose(pair.fd[1], reset);
  std::lock_guard<std::mutex> lock(mu_);
  --open_;
}

void FaultProxy::Loop() {
  char buf[16 * 1024];
  while (!stop_) {
    bool stall, refuse, drop;
    uint64_t slow_bytes, reset_after, truncate_after;
    absl::Duration slow_every;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stall = stall_;
      refuse = refuse_;
      drop = drop_;
      drop_ = false;
      slow_bytes = slow_bytes_;
      slow_every = slow_every_;
      reset_after = reset_after_;
      truncate_after = truncate_after_;
    }
    if (drop) {
      for (auto& pair : pairs_) Close(*pair, true);
    }
    pairs_.erase(std::remove_if(pairs_.begin(), pairs_.end(), [](auto& p) { return p->closed; }),
                 pairs_.end());

    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    absl::Time now = absl::Now();
    int timeout_ms = 1000;
    for (auto& pair : pairs_) {
      for (int side = 0; side < 2; ++side) {
        short events = 0;
        bool may_read = !stall && !pair->eof[side] && pair->pending[side].size() < sizeof(buf);
        if (may_read && slow_bytes > 0) {
          if (now >= pair->window_end[side]) {
            pair->budget[side] = slow_bytes;
            pair->window_end[side] = now + slow_every;
          }
          if (pair->budget[side] == 0) {
            may_read = false;
            timeout_ms = std::min<int>(
                timeout_ms,
                std::max<int64_t>(1, absl::ToInt64Milliseconds(pair->window_end[side] - now)));
          }
        }
        if (may_read) events |= POLLIN;
        if (!stall && !pair->pending[1 - side].empty()) events |= POLLOUT;
        fds.push_back({pair->fd[side], events, 0});
      }
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) {
      while (read(wake_[0], buf, sizeof(buf)) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int client = accept(listen_fd_, nullptr, nullptr);
        if (client < 0) break;
        ++accepted_;
        {
          // The settings as they are now, not as they were when poll() started.
          std::lock_guard<std::mutex> lock(mu_);
          refuse = refuse_;
          reset_after = reset_after_;
          truncate_after = truncate_after_;
        }
        if (refuse) {
          HardClose(client, true);
          continue;
        }
        int server = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(target_port_);
        inet_pton(AF_INET, target_host_.c_str(), &addr.sin_addr);
        if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
          HardClose(server, false);
          HardClose(client, true);
          continue;
        }
        SetNonBlocking(client);
        SetNonBlocking(server);
        int one = 1;
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        auto pair = std::make_unique<Pair>();
        pair->fd[0] = client;
        pair->fd[1] = server;
        pair->reset_after = reset_after;
        pair->truncate_after = truncate_after;
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++open_;
        }
        pairs_.push_back(std::move(pair));
      }
    }
    size_t i = 2;
    size_t polled = (fds.size() - 2) / 2;
    for (size_t k = 0; k < polled; ++k) {
      Pair& pair = *pairs_[k];
      for (int side = 0; side < 2; ++side, ++i) {
        short re = fds[i].revents;
        if (pair.closed) continue;
        if (re & (POLLIN | POLLHUP | POLLERR)) {
          size_t want = sizeof(buf) - pair.pending[side].size();
          if (slow_bytes > 0) want = std::min<uint64_t>(want, pair.budget[side]);
          if (want > 0 && (fds[i].events & POLLIN)) {
            ssize_t n = recv(pair.fd[side], buf, want, 0);
            if (n > 0) {
              if (slow_bytes > 0) pair.budget[side] -= static_cast<uint64_t>(n);
              size_t keep = static_cast<size_t>(n);
              if (side == 1) {
                server_bytes_ += static_cast<uint64_t>(n);
                uint64_t limit = pair.reset_after ? pair.reset_after : pair.truncate_after;
                if (limit > 0 && pair.from_server + keep >= limit) {
                  keep = static_cast<size_t>(limit - pair.from_server);
                  pair.pending[1].append(buf, keep);
                  // Flush what is allowed, then cut the stream.
                  send(pair.fd[0], pair.pending[1].data(), pair.pending[1].size(), MSG_NOSIGNAL);
                  Close(pair, pair.reset_after > 0);
                  continue;
                }
                pair.from_server += keep;
              }
              pair.pending[side].append(buf, keep);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
              // One side hung up: pass the hang-up on (after what is pending) by closing.
              if (pair.pending[side].empty()) {
                Close(pair, n != 0);
                continue;
              }
              pair.eof[side] = true;
            }
          } else if (re & (POLLHUP | POLLERR)) {
            Close(pair, true);
            continue;
          }
        }
        int other = 1 - side;
        if ((re & POLLOUT) && !pair.pending[other].empty()) {
          ssize_t n = send(pair.fd[side], pair.pending[other].data(), pair.pending[other].size(),
                           MSG_NOSIGNAL);
          if (n > 0) {
            pair.pending[other].erase(0, static_cast<size_t>(n));
          } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            Close(pair, true);
            continue;
          }
          if (pair.pending[other].empty() && pair.eof[other]) Close(pair, false);
        }
      }
    }
  }
}

}  // namespace mailpool::testing
