// mailpool against the wire floor, measured side by side in one run against the same
// Dovecot/Postfix (plain protocols on loopback, so the ratio is the daemon's cost):
//  - the gRPC floor: one GetSession call on a warm session;
//  - warm GetMessage RAW of a ~4 KiB message on IMAP vs a raw socket's UID FETCH BODY.PEEK[];
//  - warm GetMessage RAW on POP3 vs a raw socket's RETR;
//  - synchronous SendMessage into Postfix's smtp-sink with 1 and 4 sessions vs Postfix's
//    smtp-source (-d: warm sessions) with as many sessions (when smtp-source is installed).
// The raw clients are plain C++ on POSIX sockets, one socket each, here below. mailpool is
// a mailpoold process (MAILPOOLD_PATH). Rounds alternate raw and mailpool so that machine
// noise hits both alike; each figure is the median over the rounds with the range (each
// round's mean), and the ratios the targets are stated in. Not a test.
//
// Usage: floor_bench [OPS_PER_ROUND] [ROUNDS] [SMTP_MESSAGES]   (default 200 5 2000)
//        (MAILPOOL_TEST_* environment: scripts/bench.sh; seeds one message in a folder of
//        carol's (removed at the end) and one in the fifth user's INBOX (deleted at the end))
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace {

namespace v1 = mailpool::v1;
using mailpool::testing::Env;
using mailpool::testing::EnvPort;
using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "floor_bench: %s\n", what.c_str());
  std::exit(1);
}

// One blocking TCP connection with a read buffer: the raw client.
class RawSocket {
 public:
  explicit RawSocket(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      Die(absl::StrCat("cannot connect to port ", port));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawSocket() { close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  void Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = write(fd_, bytes.data() + off, bytes.size() - off);
      if (n <= 0) Die("write failed");
      off += static_cast<size_t>(n);
    }
  }
  // One line with its CRLF.
  std::string Line() {
    while (true) {
      size_t eol = buf_.find("\r\n", pos_);
      if (eol != std::string::npos) {
        std::string line = buf_.substr(pos_, eol + 2 - pos_);
        pos_ = eol + 2;
        return line;
      }
      Fill();
    }
  }
  std::string Bytes(size_t n) {
    while (buf_.size() - pos_ < n) Fill();
    std::string out = buf_.substr(pos_, n);
    pos_ += n;
    return out;
  }

 private:
  void Fill() {
    if (pos_ > 0 && pos_ == buf_.size()) buf_.clear(), pos_ = 0;
    if (pos_ > 65536) buf_.erase(0, pos_), pos_ = 0;
    char chunk[65536];
    ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n <= 0) Die("connection closed by the server");
    buf_.append(chunk, static_cast<size_t>(n));
  }
  int fd_;
  std::string buf_;
  size_t pos_ = 0;
};

// IMAP on a RawSocket: tagged commands, literals read by their length.
class RawImap {
 public:
  explicit RawImap(int port) : s_(port) { s_.Line(); }
  // Sends `command` with a fresh tag; returns everything up to and with the tagged line.
  std::string Run(const std::string& command) {
    std::string tag = absl::StrCat("a", ++tag_);
    s_.Send(absl::StrCat(tag, " ", command, "\r\n"));
    return Read(tag);
  }
  std::string Read(const std::string& tag) {
    std::string out;
    while (true) {
      std::string line = s_.Line();
      out += line;
      // A literal: "{N}\r\n" at the end of the line, then N bytes.
      if (line.size() > 3 && line[line.size() - 3] == '}') {
        size_t open = line.rfind('{');
        uint64_t n = 0;
        if (open != std::string::npos &&
            absl::SimpleAtoi(line.substr(open + 1, line.size() - open - 4), &n)) {
          out += s_.Bytes(n);
          continue;
        }
      }
      if (absl::StartsWith(line, tag + " ")) {
        if (!absl::StartsWith(line, tag + " OK")) Die(absl::StrCat("IMAP said: ", line));
        return out;
      }
    }
  }
  // APPEND with a synchronizing literal; returns the new message's UID (APPENDUID).
  uint64_t Append(const std::string& folder, const std::string& message) {
    std::string tag = absl::StrCat("a", ++tag_);
    s_.Send(absl::StrCat(tag, " APPEND \"", folder, "\" {", message.size(), "}\r\n"));
    std::string cont = s_.Line();
    if (!absl::StartsWith(cont, "+")) Die(absl::StrCat("APPEND refused: ", cont));
    s_.Send(message + "\r\n");
    std::string answer = Read(tag);
    size_t at = answer.find("[APPENDUID ");
    uint64_t uid = 0;
    if (at == std::string::npos) Die("no APPENDUID");
    size_t space = answer.find(' ', at + 11);
    size_t end = answer.find(']', space);
    if (!absl::SimpleAtoi(answer.substr(space + 1, end - space - 1), &uid)) Die("bad APPENDUID");
    return uid;
  }

 private:
  RawSocket s_;
  int tag_ = 0;
};

// POP3 on a RawSocket.
class RawPop3 {
 public:
  explicit RawPop3(int port) : s_(port) { s_.Line(); }
  std::string Run(const std::string& command) {
    s_.Send(command + "\r\n");
    std::string line = s_.Line();
    if (!absl::StartsWith(line, "+OK")) Die(absl::StrCat("POP3 said: ", line));
    return line;
  }
  // A multi-line answer (RETR): up to the lone ".".
  std::string RunMulti(const std::string& command) {
    std::string out = Run(command);
    while (true) {
      std::string line = s_.Line();
      if (line == ".\r\n") return out;
      out += line;
    }
  }

 private:
  RawSocket s_;
};

struct Series {
  std::vector<double> values;  // one per round
  void Add(double v) { values.push_back(v); }
  double Median() const {
    std::vector<double> v = values;
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
  double Min() const { return *std::min_element(values.begin(), values.end()); }
  double Max() const { return *std::max_element(values.begin(), values.end()); }
};

// Mean microseconds per call of `op` over `n` calls.
double MicrosPer(int n, const std::function<void()>& op) {
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) op();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / n;
}

void Print(const char* what, const Series& s, const char* unit) {
  printf("  %-44s median %9.1f %s  range %.1f..%.1f\n", what, s.Median(), unit, s.Min(), s.Max());
}

std::string Message(const std::string& tag, size_t body_bytes) {
  std::string m = absl::StrCat("From: <a@example.test>\r\nTo: <b@example.test>\r\nSubject: ", tag,
                               "\r\nMessage-ID: <", tag, "@example.test>\r\n\r\n");
  while (m.size() < body_bytes)
    m += "A line of a four KiB benchmark message, 64 bytes long ....\r\n";
  return m;
}

class Daemon {
 public:
  Daemon() {
    int port = mailpool::testing::FreePort();
    db_ = absl::StrCat("/tmp/mailpool-floor-bench-", getpid(), ".db");
    pid_ = fork();
    if (pid_ == 0) {
      std::string listen = absl::StrCat("--listen=127.0.0.1:", port);
      std::string outbox = absl::StrCat("--outbox_path=", db_);
      execl(MAILPOOLD_PATH, MAILPOOLD_PATH, listen.c_str(), "--metrics_listen=", outbox.c_str(),
            "--log_level=warning", "--start_rate_per_caller=0", "--max_calls_per_caller=0",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
      Die("mailpoold did not start");
    }
    sessions = v1::SessionService::NewStub(channel_);
    mailbox = v1::MailboxService::NewStub(channel_);
    send = v1::SendService::NewStub(channel_);
  }
  ~Daemon() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((db_ + suffix).c_str());
  }
  std::string Start(const v1::StartSessionRequest& request) {
    grpc::ClientContext ctx;
    v1::StartSessionResponse response;
    grpc::Status status = sessions->StartSession(&ctx, request, &response);
    if (!status.ok()) Die(absl::StrCat("StartSession: ", status.error_message()));
    return response.session().id();
  }
  void Close(const std::string& session) {
    grpc::ClientContext ctx;
    v1::CloseSessionRequest request;
    request.set_session(session);
    v1::CloseSessionResponse response;
    sessions->CloseSession(&ctx, request, &response);
  }
  std::string Find(const std::string& session, const std::string& subject) {
    grpc::ClientContext ctx;
    v1::SearchMessagesRequest request;
    request.set_session(session);
    request.mutable_criteria()->set_subject(subject);
    request.set_page_size(10);
    v1::SearchMessagesResponse response;
    grpc::Status status = mailbox->SearchMessages(&ctx, request, &response);
    if (!status.ok() || response.messages_size() != 1) {
      Die(absl::StrCat("SearchMessages: ", status.error_message(), " found ",
                       response.messages_size()));
    }
    return response.messages(0).id();
  }
  size_t GetRaw(const std::string& session, const std::string& id) {
    grpc::ClientContext ctx;
    v1::GetMessageRequest request;
    request.set_session(session);
    request.set_id(id);
    request.set_view(v1::MESSAGE_VIEW_RAW);
    v1::GetMessageResponse response;
    grpc::Status status = mailbox->GetMessage(&ctx, request, &response);
    if (!status.ok()) Die(absl::StrCat("GetMessage: ", status.error_message()));
    return response.message().source().size();
  }
  void GetSession(const std::string& session) {
    grpc::ClientContext ctx;
    v1::GetSessionRequest request;
    request.set_session(session);
    v1::GetSessionResponse response;
    if (!sessions->GetSession(&ctx, request, &response).ok()) Die("GetSession failed");
  }

  std::unique_ptr<v1::SessionService::Stub> sessions;
  std::unique_ptr<v1::MailboxService::Stub> mailbox;
  std::unique_ptr<v1::SendService::Stub> send;

 private:
  pid_t pid_ = -1;
  std::string db_;
  std::shared_ptr<grpc::Channel> channel_;
};

v1::StartSessionRequest PlainSession(const char* protocol, const char* port_env, const char* user,
                                     const char* password, const std::string& folder = "") {
  v1::StartSessionRequest r;
  v1::ServerEndpoint* server = nullptr;
  v1::Credentials* credentials = nullptr;
  if (std::string(protocol) == "imap") {
    server = r.mutable_imap()->mutable_server();
    credentials = r.mutable_imap()->mutable_credentials();
    r.mutable_imap()->set_initial_folder(folder);
  } else if (std::string(protocol) == "pop3") {
    server = r.mutable_pop3()->mutable_server();
    credentials = r.mutable_pop3()->mutable_credentials();
  } else {
    server = r.mutable_smtp()->mutable_server();
  }
  server->set_host("127.0.0.1");
  server->set_port(EnvPort(port_env));
  server->set_security(v1::SECURITY_PLAIN);
  if (credentials != nullptr) {
    credentials->set_user(Env(user));
    credentials->set_password(Env(password));
    credentials->set_allow_insecure_auth(true);  // plain on loopback, like the raw client
  }
  return r;
}

// Seconds smtp-source takes for `messages` messages over `sessions` warm sessions, or < 0
// when it is not installed.
double SmtpSource(int sessions, int messages, int port) {
  const char* path = "/usr/sbin/smtp-source";
  if (access(path, X_OK) != 0) return -1;
  auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    std::string s = absl::StrCat(sessions), m = absl::StrCat(messages);
    std::string target = absl::StrCat("127.0.0.1:", port);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execl(path, path, "-d", "-s", s.c_str(), "-m", m.c_str(), "-l", "4096", "-f", "a@example.test",
          "-t", "b@example.test", target.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("smtp-source failed");
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Seconds mailpool takes for `messages` synchronous sends spread over `sessions` sessions
// (one caller thread each).
double MailpoolSends(Daemon& d, const std::vector<std::string>& sessions, int messages) {
  std::string source = Message("floor-bench smtp", 4096);
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < sessions.size(); ++t) {
    threads.emplace_back([&, t] {
      int mine = messages / static_cast<int>(sessions.size());
      v1::SendMessageRequest request;
      request.set_session(sessions[t]);
      request.set_source(source);
      request.mutable_envelope()->set_mail_from("a@example.test");
      request.mutable_envelope()->add_rcpt_to("b@example.test");
      for (int i = 0; i < mine; ++i) {
        grpc::ClientContext ctx;
        v1::SendMessageResponse response;
        grpc::Status status = d.send->SendMessage(&ctx, request, &response);
        if (!status.ok()) Die(absl::StrCat("SendMessage: ", status.error_message()));
      }
    });
  }
  for (auto& t : threads) t.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  int ops = argc > 1 ? std::atoi(argv[1]) : 200;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  int smtp_messages = argc > 3 ? std::atoi(argv[3]) : 2000;
  if (ops < 1 || rounds < 1 || smtp_messages < 4) {
    fprintf(stderr, "usage: floor_bench [OPS_PER_ROUND >= 1] [ROUNDS >= 1] [SMTP_MESSAGES >= 4]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  std::string tag = absl::StrCat("floor-bench-", getpid());
  std::string message = Message(tag, 4096);

  // Seed: carol's folder for IMAP, the fifth user's INBOX for POP3.
  RawImap imap(EnvPort("MAILPOOL_TEST_IMAP_PORT"));
  imap.Run(absl::StrCat("LOGIN \"", Env("MAILPOOL_TEST_USER3"), "\" \"",
                        Env("MAILPOOL_TEST_PASSWORD3"), "\""));
  imap.Run(absl::StrCat("CREATE \"", tag, "\""));
  uint64_t imap_uid = imap.Append(tag, message);
  imap.Run(absl::StrCat("EXAMINE \"", tag, "\""));
  uint64_t pop_uid = 0;
  {
    RawImap seed(EnvPort("MAILPOOL_TEST_IMAP_PORT"));
    seed.Run(absl::StrCat("LOGIN \"", Env("MAILPOOL_TEST_USER5"), "\" \"",
                          Env("MAILPOOL_TEST_PASSWORD5"), "\""));
    pop_uid = seed.Append("INBOX", message);
    seed.Run("LOGOUT");
  }
  RawPop3 pop(EnvPort("MAILPOOL_TEST_POP3_PORT"));
  pop.Run(absl::StrCat("USER ", Env("MAILPOOL_TEST_USER5")));
  pop.Run(absl::StrCat("PASS ", Env("MAILPOOL_TEST_PASSWORD5")));
  std::string stat = pop.Run("STAT");  // "+OK count size": ours is the newest, the last
  int pop_number = std::atoi(stat.c_str() + 4);
  std::string retr = absl::StrCat("RETR ", pop_number);
  if (!absl::StrContains(pop.RunMulti(retr), tag)) Die("POP3 RETR: not the seeded message");

  Daemon d;
  std::string imap_session = d.Start(PlainSession(
      "imap", "MAILPOOL_TEST_IMAP_PORT", "MAILPOOL_TEST_USER3", "MAILPOOL_TEST_PASSWORD3", tag));
  std::string pop_session = d.Start(PlainSession("pop3", "MAILPOOL_TEST_POP3_PORT",
                                                 "MAILPOOL_TEST_USER5", "MAILPOOL_TEST_PASSWORD5"));
  std::string imap_id = d.Find(imap_session, tag);
  std::string pop_id = d.Find(pop_session, tag);
  std::string fetch = absl::StrCat("UID FETCH ", imap_uid, " BODY.PEEK[]");
  if (d.GetRaw(imap_session, imap_id) != message.size()) Die("IMAP GetMessage: wrong size");

  Series grpc_floor, imap_raw, imap_mp, pop_raw, pop_mp;
  auto round = [&](int n) {
    grpc_floor.Add(MicrosPer(n, [&] { d.GetSession(imap_session); }));
    imap_raw.Add(MicrosPer(n, [&] { imap.Run(fetch); }));
    imap_mp.Add(MicrosPer(n, [&] { d.GetRaw(imap_session, imap_id); }));
    pop_raw.Add(MicrosPer(n, [&] { pop.RunMulti(retr); }));
    pop_mp.Add(MicrosPer(n, [&] { d.GetRaw(pop_session, pop_id); }));
  };
  round(std::max(1, ops / 10));  // warm-up, not counted
  for (Series* s : {&grpc_floor, &imap_raw, &imap_mp, &pop_raw, &pop_mp}) s->values.clear();
  for (int r = 0; r < rounds; ++r) round(ops);

  // SMTP into smtp-sink.
  int sink = EnvPort("MAILPOOL_TEST_SMTP_SINK_PORT");
  std::vector<std::string> smtp_sessions;
  for (int i = 0; i < 4; ++i) {
    smtp_sessions.push_back(d.Start(PlainSession("smtp", "MAILPOOL_TEST_SMTP_SINK_PORT", "", "")));
  }
  bool have_source = SmtpSource(1, 4, sink) >= 0;
  Series source_rate[2], mp_rate[2];
  const int kSessions[2] = {1, 4};
  MailpoolSends(d, smtp_sessions, 40);  // warm-up
  for (int r = 0; r < rounds; ++r) {
    for (int k : {0, 1}) {
      int n = smtp_messages / 4 * 4;
      if (have_source) source_rate[k].Add(n / SmtpSource(kSessions[k], n, sink));
      std::vector<std::string> use(smtp_sessions.begin(), smtp_sessions.begin() + kSessions[k]);
      mp_rate[k].Add(n / MailpoolSends(d, use, n));
    }
  }

  printf(
      "floor_bench: %d rounds; %d calls per round for reads; %d messages per SMTP round; "
      "plain protocols on loopback\n",
      rounds, ops, smtp_messages / 4 * 4);
  Print("gRPC floor (GetSession)", grpc_floor, "us");
  Print("IMAP raw UID FETCH BODY.PEEK[] ~4 KiB", imap_raw, "us");
  Print("IMAP mailpool GetMessage RAW ~4 KiB", imap_mp, "us");
  Print("POP3 raw RETR ~4 KiB", pop_raw, "us");
  Print("POP3 mailpool GetMessage RAW ~4 KiB", pop_mp, "us");
  double g = grpc_floor.Median();
  printf("  IMAP ratio mailpool / raw: %.2f; mailpool / (raw + gRPC floor): %.2f (target <= 1.2)\n",
         imap_mp.Median() / imap_raw.Median(), imap_mp.Median() / (imap_raw.Median() + g));
  printf("  POP3 ratio mailpool / raw: %.2f; mailpool / (raw + gRPC floor): %.2f (target <= 1.2)\n",
         pop_mp.Median() / pop_raw.Median(), pop_mp.Median() / (pop_raw.Median() + g));
  for (int k : {0, 1}) {
    std::string what = absl::StrCat("SMTP mailpool SendMessage, ", kSessions[k], " session(s)");
    Print(what.c_str(), mp_rate[k], "msg/s");
    if (have_source) {
      what = absl::StrCat("SMTP smtp-source -d, ", kSessions[k], " session(s)");
      Print(what.c_str(), source_rate[k], "msg/s");
      printf("  SMTP %d session(s) ratio mailpool / smtp-source: %.2f (target >= 0.9)\n",
             kSessions[k], mp_rate[k].Median() / source_rate[k].Median());
    }
  }
  if (!have_source) printf("  SMTP baseline skipped: /usr/sbin/smtp-source is not installed\n");

  // Clean up: the sessions, the folder, the POP3 message.
  for (const std::string& s : smtp_sessions) d.Close(s);
  d.Close(imap_session);
  d.Close(pop_session);
  pop.Run("QUIT");
  imap.Run("CLOSE");
  imap.Run(absl::StrCat("DELETE \"", tag, "\""));
  RawImap clean(EnvPort("MAILPOOL_TEST_IMAP_PORT"));
  clean.Run(absl::StrCat("LOGIN \"", Env("MAILPOOL_TEST_USER5"), "\" \"",
                         Env("MAILPOOL_TEST_PASSWORD5"), "\""));
  clean.Run("SELECT INBOX");
  clean.Run(absl::StrCat("UID STORE ", pop_uid, " +FLAGS.SILENT (\\Deleted)"));
  clean.Run(absl::StrCat("UID EXPUNGE ", pop_uid));
  clean.Run("LOGOUT");
  return 0;
}
