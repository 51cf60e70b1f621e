#include "tests/fakes/misbehaving_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mailpool::testing {
namespace {

constexpr char kCaps[] = "IMAP4rev1 LITERAL+ IDLE";

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads one CRLF line (without it) into *line; false when the peer closed.
bool ReadLine(int fd, std::string* buffer, std::string* line) {
  for (;;) {
    size_t nl = buffer->find("\r\n");
    if (nl != std::string::npos) {
      *line = buffer->substr(0, nl);
      buffer->erase(0, nl + 2);
      return true;
    }
    char chunk[4096];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer->append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<MisbehavingImapServer>> MisbehavingImapServer::Start() {
  std::unique_ptr<MisbehavingImapServer> s(new MisbehavingImapServer());
  s->listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s->listen_fd_ < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(s->listen_fd_, 64) != 0 ||
      ::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError("bind/listen failed");
  }
  s->port_ = ntohs(addr.sin_port);
  s->acceptor_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  return s;
}

MisbehavingImapServer::~MisbehavingImapServer() {
  stopping_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(connections_);
  }
  for (std::thread& t : threads) t.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : fds_) ::close(fd);
}

void MisbehavingImapServer::Arm(const std::string& verb, Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  armed_verb_ = absl::AsciiStrToUpper(verb);
  armed_ = fault;
}

MisbehavingImapServer::Fault MisbehavingImapServer::Take(const std::string& verb) {
  std::lock_guard<std::mutex> lock(mu_);
  if (armed_ == Fault::kNone || armed_verb_ != verb) return Fault::kNone;
  Fault f = armed_;
  armed_ = Fault::kNone;
  ++faults_served_;
  return f;
}

void MisbehavingImapServer::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    ++accepted_;
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    connections_.emplace_back([this, fd] { Serve(fd); });
  }
}

void MisbehavingImapServer::Serve(int fd) {
  std::string buffer, line;
  if (!SendAll(fd, absl::StrCat("* OK [CAPABILITY ", kCaps, "] misbehaving server ready\r\n")))
    return;
  const std::string unsolicited =
      "* 4 EXISTS\r\n* 1 RECENT\r\n* 1 FETCH (FLAGS (\\Seen))\r\n* 2 EXPUNGE\r\n"
      "* OK [ALERT] unsolicited alert\r\n";
  while (!stopping_ && ReadLine(fd, &buffer, &line)) {
    size_t sp = line.find(' ');
    std::string tag = line.substr(0, sp);
    std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
    std::string verb = absl::AsciiStrToUpper(rest.substr(0, rest.find(' ')));
    Fault fault = Take(verb);
    std::string reply;
    switch (fault) {
      case Fault::kNone:
      case Fault::kUnsolicited:
        break;
      case Fault::kStall:
        continue;  // never answered; the next commands (if any) are read and ignored too
      case Fault::kCloseMidResponse:
        SendAll(fd, "* LIST (\\HasNoChildren) \".\" IN");
        ::shutdown(fd, SHUT_RDWR);
        return;
      case Fault::kInvalidUtf8:
        reply = "* LIST () \".\" \"Caf\xe9 \xff\xfe\"\r\n";
        break;
      case Fault::kOversizeLiteral:
        SendAll(fd, "* LIST () \".\" {100000000000}\r\n");
        continue;
      case Fault::kOversizeLine: {
        SendAll(fd, "* LIST () \".\" \"" + std::string(9 << 20, 'a'));
        continue;
      }
    }
    const std::string extra = fault == Fault::kUnsolicited ? unsolicited : "";
    if (verb == "CAPABILITY") {
      reply += absl::StrCat("* CAPABILITY ", kCaps, "\r\n", tag, " OK done\r\n");
    } else if (verb == "LOGIN") {
      reply += absl::StrCat(tag, " OK [CAPABILITY ", kCaps, "] logged in\r\n");
    } else if (verb == "SELECT" || verb == "EXAMINE") {
      reply += absl::StrCat("* 3 EXISTS\r\n* 0 RECENT\r\n", extra,
                            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
                            "* OK [UIDVALIDITY 42] v\r\n* OK [UIDNEXT 4] n\r\n",
                            tag, " OK [READ-WRITE] selected\r\n");
    } else if (verb == "LIST" || verb == "LSUB") {
      reply += absl::StrCat("* ", verb, " (\\HasNoChildren) \".\" INBOX\r\n", extra, "* ", verb,
                            " (\\HasNoChildren) \".\" Archive\r\n", tag, " OK done\r\n");
    } else if (verb == "STATUS") {
      reply += absl::StrCat(extra, "* STATUS INBOX (MESSAGES 3 UNSEEN 1 RECENT 0 UIDNEXT 4 "
                            "UIDVALIDITY 42)\r\n", tag, " OK done\r\n");
    } else if (verb == "LOGOUT") {
      SendAll(fd, absl::StrCat("* BYE bye\r\n", tag, " OK done\r\n"));
      return;
    } else {
      // NOOP, ENABLE, ID, ...: nothing to say but OK.
      reply += absl::StrCat(extra, tag, " OK done\r\n");
    }
    if (!SendAll(fd, reply)) return;
  }
}

}  // namespace mailpool::testing
