// Measures sending through an in-process mailpoold reached over gRPC, in one run:
//  1. synchronous sends per second on one warm session, against Postfix's smtp-sink
//     (MAILPOOL_TEST_SMTP_SINK_PORT: the daemon's and the protocol's cost) and against the
//     real Postfix submission port (STARTTLS + AUTH, delivered into dave's mailbox; the
//     messages are deleted afterwards);
//  2. asynchronous queueing: SendMessage answers per second (each one committed and
//     fsynced to the SQLite outbox before QUEUED), and how fast the background sender then
//     empties the outbox to smtp-sink;
// and prints the ratios against the synchronous baseline. Needs the MAILPOOL_TEST_*
// environment (scripts/bench.sh). The outbox lives in a temporary directory.
//
// Usage: send_bench [MESSAGES]   (default 300)
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "server/server.h"

namespace {

namespace v1 = mailpool::v1;
using Clock = std::chrono::steady_clock;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    fprintf(stderr, "%s is not set; run scripts/bench.sh\n", name);
    std::exit(2);
  }
  return v;
}

std::string ReadFile(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  std::string out;
  char buf[4096];
  size_t n;
  while (f && (n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  if (f) fclose(f);
  return out;
}

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Bench {
 public:
  explicit Bench(std::shared_ptr<grpc::Channel> channel)
      : sessions_(v1::SessionService::NewStub(channel)),
        send_(v1::SendService::NewStub(channel)),
        mailbox_(v1::MailboxService::NewStub(channel)),
        ca_(ReadFile(Env("MAILPOOL_TEST_CA"))) {}

  std::string Start(const char* port_env, v1::Security security, bool authenticate,
                    bool asynchronous, bool pop3 = false) {
    v1::StartSessionRequest request;
    v1::ServerEndpoint* server =
        pop3 ? request.mutable_pop3()->mutable_server() : request.mutable_smtp()->mutable_server();
    server->set_host("127.0.0.1");
    server->set_port(std::atoi(Env(port_env).c_str()));
    server->set_security(security);
    server->mutable_tls()->set_ca_pem(ca_);
    if (authenticate) {
      v1::Credentials* c = pop3 ? request.mutable_pop3()->mutable_credentials()
                                : request.mutable_smtp()->mutable_credentials();
      c->set_user(Env(pop3 ? "MAILPOOL_TEST_USER4" : "MAILPOOL_TEST_USER"));
      c->set_password(Env(pop3 ? "MAILPOOL_TEST_PASSWORD4" : "MAILPOOL_TEST_PASSWORD"));
    }
    if (!pop3) request.mutable_smtp()->set_asynchronous(asynchronous);
    grpc::ClientContext ctx;
    v1::StartSessionResponse response;
    grpc::Status status = sessions_->StartSession(&ctx, request, &response);
    if (!status.ok()) {
      fprintf(stderr, "StartSession: %s\n", status.error_message().c_str());
      std::exit(1);
    }
    return response.session().id();
  }

  // Sends `count` small messages on `session`; returns the seconds taken.
  double SendAll(const std::string& session, int count, const std::string& tag) {
    auto start = Clock::now();
    for (int i = 0; i < count; ++i) {
      v1::SendMessageRequest request;
      request.set_session(session);
      request.set_source(absl::StrCat("From: <", Env("MAILPOOL_TEST_USER"), ">\r\nTo: <",
                                      Env("MAILPOOL_TEST_USER4"), ">\r\nSubject: ", tag, " ", i,
                                      "\r\n\r\nA short benchmark message.\r\n"));
      grpc::ClientContext ctx;
      v1::SendMessageResponse response;
      grpc::Status status = send_->SendMessage(&ctx, request, &response);
      if (!status.ok()) {
        fprintf(stderr, "SendMessage %d: %s\n", i, status.error_message().c_str());
        std::exit(1);
      }
    }
    return Seconds(start);
  }

  // Polls ListOutbox until nothing is QUEUED or PENDING.
  void WaitDrained() {
    while (true) {
      v1::ListOutboxRequest request;
      request.add_states(v1::SEND_STATE_QUEUED);
      request.add_states(v1::SEND_STATE_PENDING);
      request.set_page_size(1);
      grpc::ClientContext ctx;
      v1::ListOutboxResponse response;
      if (send_->ListOutbox(&ctx, request, &response).ok() && response.sends_size() == 0) return;
    }
  }

  // Deletes the benchmark's messages from dave's mailbox.
  void CleanDave(const std::string& tag) {
    std::string pop = Start("MAILPOOL_TEST_POP3S_PORT", v1::SECURITY_IMPLICIT_TLS, true, false,
                            /*pop3=*/true);
    v1::SearchMessagesRequest search;
    search.set_session(pop);
    search.mutable_criteria()->set_subject(tag);
    search.set_page_size(1000);
    grpc::ClientContext ctx;
    v1::SearchMessagesResponse found;
    if (mailbox_->SearchMessages(&ctx, search, &found).ok()) {
      v1::DeleteMessagesRequest del;
      del.set_session(pop);
      for (const auto& m : found.messages()) del.add_ids(m.id());
      grpc::ClientContext ctx2;
      v1::DeleteMessagesResponse deleted;
      mailbox_->DeleteMessages(&ctx2, del, &deleted);
    }
    Close(pop);
  }

  void Close(const std::string& session) {
    grpc::ClientContext ctx;
    v1::CloseSessionRequest request;
    request.set_session(session);
    v1::CloseSessionResponse response;
    sessions_->CloseSession(&ctx, request, &response);
  }

 private:
  std::unique_ptr<v1::SessionService::Stub> sessions_;
  std::unique_ptr<v1::SendService::Stub> send_;
  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::string ca_;
};

}  // namespace

int main(int argc, char** argv) {
  int count = argc > 1 ? std::atoi(argv[1]) : 300;
  char dir[] = "/tmp/mailpool-send-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  mailpool::server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.outbox_path = std::string(dir) + "/outbox.db";
  mailpool::server::Server server(options);
  if (!server.Start().ok()) return 1;
  Bench bench(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                  grpc::InsecureChannelCredentials()));
  std::string tag = absl::StrCat("mp-bench-", getpid());

  std::string sink = bench.Start("MAILPOOL_TEST_SMTP_SINK_PORT", v1::SECURITY_PLAIN, false, false);
  bench.SendAll(sink, 10, tag);  // warm up
  double sync_sink = count / bench.SendAll(sink, count, tag);
  bench.Close(sink);

  std::string postfix = bench.Start("MAILPOOL_TEST_SMTP_PORT", v1::SECURITY_STARTTLS, true, false);
  bench.SendAll(postfix, 5, tag);
  double sync_postfix = count / bench.SendAll(postfix, count, tag);
  bench.Close(postfix);

  std::string async = bench.Start("MAILPOOL_TEST_SMTP_SINK_PORT", v1::SECURITY_PLAIN, false, true);
  auto start = Clock::now();
  double queue_seconds = bench.SendAll(async, count, tag);
  bench.WaitDrained();
  double drain_seconds = Seconds(start);
  bench.Close(async);

  printf("send_bench: %d messages per measurement, one warm session each\n", count);
  printf("  synchronous, smtp-sink:              %8.1f messages/s\n", sync_sink);
  printf("  synchronous, Postfix (STARTTLS+AUTH): %7.1f messages/s\n", sync_postfix);
  printf("  asynchronous, queued (committed):    %8.1f messages/s  (%.2fx synchronous smtp-sink)\n",
         count / queue_seconds, (count / queue_seconds) / sync_sink);
  printf("  asynchronous, queued and delivered:  %8.1f messages/s  (%.2fx synchronous smtp-sink)\n",
         count / drain_seconds, (count / drain_seconds) / sync_sink);
  bench.CleanDave(tag);
  server.Shutdown();
  for (const char* s : {"/outbox.db", "/outbox.db-wal", "/outbox.db-shm"}) {
    unlink((std::string(dir) + s).c_str());
  }
  rmdir(dir);
  return 0;
}
