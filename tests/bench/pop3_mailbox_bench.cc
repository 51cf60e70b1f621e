// POP3 mailbox through gRPC: seeds N messages (default 2,000, ~4 KiB each) into bob's
// mailbox through Postfix's injection port, then on one warm POP3 session measures
// listing them (BASIC and HEADERS views, pages of 1,000), downloading them all (GetMessage
// RAW and StreamMessage), and deletes them again.
//
//   set -a; . /tmp/mp/env; set +a; pop3_mailbox_bench [N] [plain|tls]
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "server/server.h"

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    std::cerr << "missing " << name << " (source the testservers env)\n";
    std::exit(2);
  }
  return v;
}

class Smtp {
 public:
  explicit Smtp(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) std::exit(3);
    Reply();
    Cmd("EHLO bench.test");
  }
  ~Smtp() {
    Cmd("QUIT");
    close(fd_);
  }
  std::string Cmd(const std::string& line) {
    Send(line + "\r\n");
    return Reply();
  }
  void Send(const std::string& d) {
    for (size_t off = 0; off < d.size();) {
      ssize_t n = write(fd_, d.data() + off, d.size() - off);
      if (n <= 0) std::exit(3);
      off += static_cast<size_t>(n);
    }
  }
  std::string Reply() {
    for (;;) {
      size_t lf = buf_.find('\n');
      if (lf == std::string::npos) {
        char c[4096];
        ssize_t n = read(fd_, c, sizeof(c));
        if (n <= 0) return "EOF";
        buf_.append(c, static_cast<size_t>(n));
        continue;
      }
      std::string line = buf_.substr(0, lf);
      buf_.erase(0, lf + 1);
      if (line.size() >= 4 && line[3] == '-') continue;
      return line;
    }
  }

 private:
  int fd_;
  std::string buf_;
};

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

}  // namespace

int main(int argc, char** argv) {
  using namespace mailpool;
  int count = argc > 1 ? std::atoi(argv[1]) : 2000;
  bool tls = argc > 2 && std::string(argv[2]) == "tls";
  std::string rcpt = Env("MAILPOOL_TEST_USER2");
  std::string tag = absl::StrCat("bench", absl::ToUnixMicros(absl::Now()));

  // Seed.
  absl::Time t0 = absl::Now();
  {
    Smtp smtp(std::atoi(Env("MAILPOOL_TEST_SMTP_INJECT_PORT").c_str()));
    std::string body;
    while (body.size() < 3800) body += "The quick brown fox jumps over the lazy dog 0123456789\r\n";
    for (int i = 0; i < count; ++i) {
      smtp.Cmd("MAIL FROM:<bench@example.test>");
      smtp.Cmd(absl::StrCat("RCPT TO:<", rcpt, ">"));
      smtp.Cmd("DATA");
      smtp.Send(absl::StrCat("From: Bench <bench@example.test>\r\nTo: ", rcpt, "\r\nSubject: ", tag,
                             " ", i, "\r\nMessage-ID: <", tag, ".", i, "@example.test>\r\n\r\n",
                             body, ".\r\n"));
      if (smtp.Reply().rfind("250", 0) != 0) return 3;
    }
  }
  std::printf("seeded %d messages in %.0f ms\n", count, Ms(absl::Now() - t0));

  std::stringstream ca;
  ca << std::ifstream(Env("MAILPOOL_TEST_CA")).rdbuf();
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  server::Server server(options);
  if (!server.Start().ok()) return 4;
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                     grpc::InsecureChannelCredentials());
  auto sessions = v1::SessionService::NewStub(channel);
  auto mailbox = v1::MailboxService::NewStub(channel);

  v1::StartSessionRequest start;
  auto* pop3 = start.mutable_pop3();
  pop3->mutable_server()->set_host("127.0.0.1");
  pop3->mutable_server()->set_port(
      std::atoi(Env(tls ? "MAILPOOL_TEST_POP3S_PORT" : "MAILPOOL_TEST_POP3_PORT").c_str()));
  pop3->mutable_server()->set_security(tls ? v1::SECURITY_IMPLICIT_TLS : v1::SECURITY_PLAIN);
  pop3->mutable_server()->mutable_tls()->set_ca_pem(ca.str());
  pop3->mutable_credentials()->set_user(rcpt);
  pop3->mutable_credentials()->set_password(Env("MAILPOOL_TEST_PASSWORD2"));
  pop3->mutable_credentials()->set_allow_insecure_auth(true);
  v1::StartSessionResponse started;
  {
    grpc::ClientContext ctx;
    grpc::Status s = sessions->StartSession(&ctx, start, &started);
    if (!s.ok()) {
      std::cerr << s.error_message() << "\n";
      return 5;
    }
  }
  const std::string id = started.session().id();

  // Wait until every seeded message is in the snapshot.
  v1::SearchMessagesRequest search;
  search.set_session(id);
  // By size only, so that no header is fetched (and cached) before the measurements.
  search.mutable_criteria()->set_larger(3500);
  search.mutable_criteria()->set_smaller(8000);
  search.set_view(v1::MESSAGE_VIEW_BASIC);
  search.set_order(v1::MESSAGE_ORDER_OLDEST_FIRST);
  search.set_page_size(1000);
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext ctx;
    v1::SearchMessagesResponse r;
    grpc::Status s = mailbox->SearchMessages(&ctx, search, &r);
    if (!s.ok()) {
      std::cerr << s.error_message() << "\n";
      return 6;
    }
    if (static_cast<int>(r.total_count()) >= count) break;
    if (attempt > 600) return 7;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    grpc::ClientContext rctx;
    v1::RefreshRequest refresh;
    refresh.set_session(id);
    v1::RefreshResponse rr;
    mailbox->Refresh(&rctx, refresh, &rr);
  }

  auto list_all = [&](v1::MessageView view, std::vector<std::string>* ids) {
    std::string token;
    size_t n = 0;
    do {
      v1::ListMessagesRequest req;
      req.set_session(id);
      req.set_view(view);
      req.set_page_size(1000);
      req.set_order(v1::MESSAGE_ORDER_OLDEST_FIRST);
      req.set_page_token(token);
      v1::ListMessagesResponse resp;
      grpc::ClientContext ctx;
      grpc::Status s = mailbox->ListMessages(&ctx, req, &resp);
      if (!s.ok()) {
        std::cerr << s.error_message() << "\n";
        std::exit(8);
      }
      for (const auto& m : resp.messages()) {
        if (ids && m.subject().rfind(tag, 0) == 0) ids->push_back(m.id());
        ++n;
      }
      token = resp.next_page_token();
    } while (!token.empty());
    return n;
  };

  absl::Time t = absl::Now();
  size_t listed = list_all(v1::MESSAGE_VIEW_BASIC, nullptr);
  std::printf("ListMessages BASIC   %zu messages: %.1f ms\n", listed, Ms(absl::Now() - t));
  std::vector<std::string> ids;
  t = absl::Now();
  listed = list_all(v1::MESSAGE_VIEW_HEADERS, &ids);
  std::printf("ListMessages HEADERS %zu messages (TOP n 0 + parse): %.1f ms\n", listed,
              Ms(absl::Now() - t));
  t = absl::Now();
  list_all(v1::MESSAGE_VIEW_HEADERS, nullptr);
  std::printf("ListMessages HEADERS again (cached headers): %.1f ms\n", Ms(absl::Now() - t));

  for (v1::MessageView view : {v1::MESSAGE_VIEW_BASIC, v1::MESSAGE_VIEW_HEADERS}) {
    t = absl::Now();
    for (const std::string& m : ids) {
      v1::GetMessageRequest req;
      req.set_session(id);
      req.set_id(m);
      req.set_view(view);
      v1::GetMessageResponse resp;
      grpc::ClientContext ctx;
      if (!mailbox->GetMessage(&ctx, req, &resp).ok()) return 9;
    }
    std::printf("GetMessage %s x%zu (no server command): %.0f us/msg\n",
                view == v1::MESSAGE_VIEW_BASIC ? "BASIC" : "HEADERS (cached)", ids.size(),
                absl::ToDoubleMicroseconds(absl::Now() - t) / ids.size());
  }

  t = absl::Now();
  uint64_t bytes = 0;
  for (const std::string& m : ids) {
    v1::GetMessageRequest req;
    req.set_session(id);
    req.set_id(m);
    req.set_view(v1::MESSAGE_VIEW_RAW);
    v1::GetMessageResponse resp;
    grpc::ClientContext ctx;
    if (!mailbox->GetMessage(&ctx, req, &resp).ok()) return 9;
    bytes += resp.message().source().size();
  }
  absl::Duration d = absl::Now() - t;
  std::printf("GetMessage RAW x%zu: %.1f ms (%.0f us/msg, %.1f MB/s)\n", ids.size(), Ms(d),
              absl::ToDoubleMicroseconds(d) / ids.size(), bytes / absl::ToDoubleSeconds(d) / 1e6);

  t = absl::Now();
  bytes = 0;
  for (const std::string& m : ids) {
    v1::StreamMessageRequest req;
    req.set_session(id);
    req.set_id(m);
    grpc::ClientContext ctx;
    auto reader = mailbox->StreamMessage(&ctx, req);
    v1::StreamMessageResponse r;
    while (reader->Read(&r)) bytes += r.data().size();
    if (!reader->Finish().ok()) return 10;
  }
  d = absl::Now() - t;
  std::printf("StreamMessage x%zu: %.1f ms (%.0f us/msg, %.1f MB/s)\n", ids.size(), Ms(d),
              absl::ToDoubleMicroseconds(d) / ids.size(), bytes / absl::ToDoubleSeconds(d) / 1e6);

  // Clean up: delete the seeded messages and commit.
  t = absl::Now();
  for (size_t i = 0; i < ids.size(); i += 5000) {
    v1::DeleteMessagesRequest del;
    del.set_session(id);
    for (size_t j = i; j < ids.size() && j < i + 5000; ++j) del.add_ids(ids[j]);
    v1::DeleteMessagesResponse resp;
    grpc::ClientContext ctx;
    if (!mailbox->DeleteMessages(&ctx, del, &resp).ok()) return 11;
  }
  {
    v1::RefreshRequest refresh;
    refresh.set_session(id);
    v1::RefreshResponse rr;
    grpc::ClientContext ctx;
    mailbox->Refresh(&ctx, refresh, &rr);
    std::printf("DeleteMessages + Refresh (%u committed): %.1f ms\n", rr.committed_deletions(),
                Ms(absl::Now() - t));
  }
  grpc::ClientContext cctx;
  v1::CloseSessionRequest close;
  close.set_session(id);
  v1::CloseSessionResponse closed;
  sessions->CloseSession(&cctx, close, &closed);
  server.Shutdown();
  return 0;
}
