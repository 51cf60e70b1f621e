// IMAP mailbox through gRPC against Dovecot, each figure beside a baseline measured in the
// same run by a raw socket speaking IMAP to the same server (the floor any client pays):
//  1. one small GetMessage (RAW, ~4 KiB) on a warm session vs raw UID FETCH BODY.PEEK[];
//  2. listing 2,000 messages' headers (ListMessages HEADERS, 2 pages of 1,000) vs raw
//     UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE BODY.PEEK[HEADER]);
//  3. streaming a 20 MB message (StreamMessage, 1 MiB chunks) vs raw UID FETCH BODY.PEEK[].
// Both sides use plain IMAP on loopback (no TLS) so that the ratio is the daemon's cost.
// Seeds carol's mailbox (MAILPOOL_TEST_USER3) in a folder of its own, removed at the end.
//
//   set -a; . /tmp/mp/env; set +a; imap_mailbox_bench [MESSAGES] [REPEATS]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/session.grpc.pb.h"
#include "server/server.h"
#include "tests/integration/imap_seed.h"

namespace {

using mailpool::testing::LargeMessage;
using mailpool::testing::Quoted;
using mailpool::testing::RawImap;
namespace v1 = mailpool::v1;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) {
    std::cerr << "missing " << name << " (source the testservers env)\n";
    std::exit(2);
  }
  return v;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string Body4k(int i) {
  std::string body;
  while (body.size() < 4000) absl::StrAppend(&body, "Line ", i, " of a benchmark message.\r\n");
  return body;
}

void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "bench: " << what << " failed\n";
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int count = argc > 1 ? std::atoi(argv[1]) : 2000;
  int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  int port = std::atoi(Env("MAILPOOL_TEST_IMAP_PORT").c_str());
  std::string user = Env("MAILPOOL_TEST_USER3"), password = Env("MAILPOOL_TEST_PASSWORD3");
  std::random_device rd;
  std::string folder = absl::StrCat("bench-", rd() % 1000000);

  // Seed over raw IMAP (pipelined APPENDs).
  RawImap raw;
  Check(raw.Connect(port) && raw.Login(user, password), "raw login");
  Check(RawImap::Ok(raw.Command(absl::StrCat("CREATE ", Quoted(folder)))), "CREATE");
  std::vector<std::string> messages;
  for (int i = 0; i < count; ++i) {
    messages.push_back(mailpool::testing::SmallMessage(absl::StrCat("bench ", i), Body4k(i)));
  }
  double t0 = Now();
  Check(raw.AppendMany(folder, messages) == messages.size(), "seeding");
  std::string large = LargeMessage(folder, 15'000'000).source;
  Check(RawImap::Ok(raw.Append(folder, large)), "seeding the large message");
  std::printf("seeded %d messages of ~4 KiB and one of %.1f MB in %.2f s\n", count,
              large.size() / 1e6, Now() - t0);
  Check(RawImap::Ok(raw.Command(absl::StrCat("EXAMINE ", Quoted(folder)))), "EXAMINE");
  uint32_t small_uid = 1, large_uid = static_cast<uint32_t>(count) + 1;

  // The daemon, in process, with one warm plain IMAP session.
  mailpool::server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  mailpool::server::Server server(options);
  Check(server.Start().ok(), "daemon start");
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                     grpc::InsecureChannelCredentials());
  grpc::ChannelArguments args;
  auto sessions = v1::SessionService::NewStub(channel);
  auto mailbox = v1::MailboxService::NewStub(channel);
  v1::StartSessionRequest start;
  auto* imap = start.mutable_imap();
  imap->mutable_server()->set_host("127.0.0.1");
  imap->mutable_server()->set_port(port);
  imap->mutable_server()->set_security(v1::SECURITY_PLAIN);
  imap->mutable_credentials()->set_user(user);
  imap->mutable_credentials()->set_password(password);
  imap->mutable_credentials()->set_allow_insecure_auth(true);
  imap->set_initial_folder(folder);
  v1::StartSessionResponse started;
  {
    grpc::ClientContext ctx;
    grpc::Status s = sessions->StartSession(&ctx, start, &started);
    if (!s.ok()) std::cerr << s.error_message() << "\n";
    Check(s.ok(), "StartSession");
  }
  const std::string session = started.session().id();

  // Message IDs from a BASIC listing.
  std::string small_id, large_id;
  {
    v1::ListMessagesRequest list;
    list.set_session(session);
    list.set_view(v1::MESSAGE_VIEW_BASIC);
    list.set_order(v1::MESSAGE_ORDER_OLDEST_FIRST);
    list.set_page_size(1);
    v1::ListMessagesResponse page;
    grpc::ClientContext ctx;
    Check(mailbox->ListMessages(&ctx, list, &page).ok() && page.messages_size() == 1, "list");
    small_id = page.messages(0).id();
    list.set_order(v1::MESSAGE_ORDER_NEWEST_FIRST);
    grpc::ClientContext ctx2;
    Check(mailbox->ListMessages(&ctx2, list, &page).ok() && page.messages_size() == 1, "list");
    large_id = page.messages(0).id();
    Check(page.messages(0).uid() == large_uid, "large message UID");
  }

  // 1. One small message, warm.
  constexpr int kReads = 300;
  std::vector<double> daemon_read, raw_read;
  for (int i = 0; i < kReads; ++i) {
    v1::GetMessageRequest get;
    get.set_session(session);
    get.set_id(small_id);
    get.set_view(v1::MESSAGE_VIEW_RAW);
    v1::GetMessageResponse got;
    grpc::ClientContext ctx;
    double a = Now();
    Check(mailbox->GetMessage(&ctx, get, &got).ok(), "GetMessage");
    daemon_read.push_back(Now() - a);
    a = Now();
    std::string answer = raw.Exchange(
        absl::StrCat("f", i, " UID FETCH ", small_uid, " (BODY.PEEK[])\r\n"), absl::StrCat("f", i));
    raw_read.push_back(Now() - a);
    Check(RawImap::Ok(answer), "raw FETCH");
  }
  double dr = Median(daemon_read) * 1e6, rr = Median(raw_read) * 1e6;
  std::printf(
      "GetMessage RAW ~4 KiB, warm: median %.0f us; raw IMAP UID FETCH %.0f us; ratio "
      "%.2fx\n",
      dr, rr, dr / rr);

  // 2. 2,000 messages' headers.
  std::vector<double> daemon_list, raw_list;
  for (int r = 0; r < repeats; ++r) {
    double a = Now();
    v1::ListMessagesRequest list;
    list.set_session(session);
    list.set_view(v1::MESSAGE_VIEW_HEADERS);
    list.set_order(v1::MESSAGE_ORDER_OLDEST_FIRST);
    list.set_page_size(1000);
    size_t got = 0;
    for (;;) {
      v1::ListMessagesResponse page;
      grpc::ClientContext ctx;
      Check(mailbox->ListMessages(&ctx, list, &page).ok(), "ListMessages");
      got += page.messages_size();
      if (page.next_page_token().empty()) break;
      list.set_page_token(page.next_page_token());
    }
    daemon_list.push_back(Now() - a);
    Check(got == static_cast<size_t>(count) + 1, "listed count");
    a = Now();
    std::string answer =
        raw.Exchange(absl::StrCat("l", r,
                                  " UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE "
                                  "BODY.PEEK[HEADER])\r\n"),
                     absl::StrCat("l", r));
    raw_list.push_back(Now() - a);
    Check(RawImap::Ok(answer), "raw list");
  }
  double dl = Median(daemon_list) * 1e3, rl = Median(raw_list) * 1e3;
  std::printf(
      "ListMessages HEADERS of %d messages: median %.1f ms (%.0f msg/s); raw IMAP FETCH "
      "(unparsed) %.1f ms; ratio %.2fx\n",
      count + 1, dl, (count + 1) / (dl / 1e3), rl, dl / rl);

  // 3. A 20 MB message.
  std::vector<double> daemon_stream, raw_stream;
  for (int r = 0; r < repeats; ++r) {
    v1::StreamMessageRequest req;
    req.set_session(session);
    req.set_id(large_id);
    req.set_chunk_size(1 << 20);
    grpc::ClientContext ctx;
    double a = Now();
    auto reader = mailbox->StreamMessage(&ctx, req);
    v1::StreamMessageResponse piece;
    size_t bytes = 0;
    while (reader->Read(&piece)) bytes += piece.data().size();
    Check(reader->Finish().ok() && bytes == large.size(), "StreamMessage");
    daemon_stream.push_back(Now() - a);
    a = Now();
    std::string answer = raw.Exchange(
        absl::StrCat("s", r, " UID FETCH ", large_uid, " (BODY.PEEK[])\r\n"), absl::StrCat("s", r));
    raw_stream.push_back(Now() - a);
    Check(RawImap::Ok(answer) && answer.size() > large.size(), "raw stream");
  }
  double ds = large.size() / Median(daemon_stream) / 1e6;
  double rs = large.size() / Median(raw_stream) / 1e6;
  std::printf("StreamMessage %.1f MB: median %.0f MB/s; raw IMAP FETCH %.0f MB/s; %.0f%% of raw\n",
              large.size() / 1e6, ds, rs, 100 * ds / rs);

  {
    v1::CloseSessionRequest close;
    close.set_session(session);
    v1::CloseSessionResponse closed;
    grpc::ClientContext ctx;
    (void)sessions->CloseSession(&ctx, close, &closed);
  }
  raw.Command("CLOSE");
  raw.Command(absl::StrCat("DELETE ", Quoted(folder)));
  server.Shutdown();
  return 0;
}
