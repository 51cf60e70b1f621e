// The C++ client against an in-process fake mailpool server: calls the daemon does not
// implement yet (paging, streams, cancellation), the session header, the error detail
// payload, and the Range / helper types. Needs no daemon and no mail servers.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mailpool/client.h"

namespace {

namespace v1 = mailpool::v1;
const std::string kSid = "msfake_" + std::string(32, 'a');

std::string Header(grpc::ServerContext* ctx) {
  auto it = ctx->client_metadata().find(mailpool::kSessionHeader);
  return it == ctx->client_metadata().end() ? ""
                                            : std::string(it->second.data(), it->second.size());
}

class FakeSessions final : public v1::SessionService::Service {
 public:
  std::atomic<int> closes{0};
  grpc::Status StartSession(grpc::ServerContext* ctx, const v1::StartSessionRequest* req,
                            v1::StartSessionResponse* resp) override {
    if (req->imap().credentials().password() == "wrong") {
      v1::ErrorDetail d;
      d.set_reason("AUTH_FAILED");
      d.set_server_reply("a1 NO nope");
      ctx->AddTrailingMetadata(mailpool::kErrorDetailTrailer, d.SerializeAsString());
      google::rpc::Status rpc;
      rpc.set_code(grpc::StatusCode::UNAUTHENTICATED);
      google::rpc::ErrorInfo info;
      info.set_reason("AUTH_FAILED");
      info.set_domain("mailpool.dev");
      (*info.mutable_metadata())["server_reply"] = "a1 NO nope";
      rpc.add_details()->PackFrom(info);
      google::rpc::RetryInfo retry;
      retry.mutable_retry_delay()->set_seconds(3);
      rpc.add_details()->PackFrom(retry);
      google::rpc::BadRequest bad;
      bad.add_field_violations()->set_field("imap.credentials.password");
      rpc.add_details()->PackFrom(bad);
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "IMAP: a1 NO nope",
                          rpc.SerializeAsString());
    }
    resp->mutable_session()->set_id(kSid);
    resp->mutable_session()->set_protocol(v1::PROTOCOL_IMAP);
    return grpc::Status::OK;
  }
  grpc::Status CloseSession(grpc::ServerContext*, const v1::CloseSessionRequest* req,
                            v1::CloseSessionResponse* resp) override {
    ++closes;
    resp->set_server_reply("* BYE");
    return grpc::Status::OK;
  }
};

class FakeMailbox final : public v1::MailboxService::Service {
 public:
  std::atomic<int> watch_cancelled{0};
  grpc::Status ListMessages(grpc::ServerContext* ctx, const v1::ListMessagesRequest* req,
                            v1::ListMessagesResponse* resp) override {
    if (req->session() != kSid || Header(ctx) != kSid) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "session missing");
    }
    int start = req->page_token().empty() ? 0 : std::stoi(req->page_token());
    int size = req->page_size() ? req->page_size() : 50;
    for (int i = start; i < 7 && i < start + size; ++i) {
      resp->add_messages()->set_id(absl::StrCat("m", i));
    }
    if (start + size < 7) resp->set_next_page_token(std::to_string(start + size));
    if (start >= 6 && req->folder() == "fail-late") {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "link dropped");
    }
    return grpc::Status::OK;
  }
  grpc::Status StreamMessage(grpc::ServerContext* ctx, const v1::StreamMessageRequest* req,
                             grpc::ServerWriter<v1::StreamMessageResponse>* w) override {
    if (Header(ctx) != kSid) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no header");
    for (char c : std::string("abc")) {
      v1::StreamMessageResponse r;
      r.set_data(std::string(1, c));
      w->Write(r);
    }
    return grpc::Status::OK;
  }
  grpc::Status WatchMailbox(grpc::ServerContext* ctx, const v1::WatchMailboxRequest*,
                            grpc::ServerWriter<v1::WatchMailboxResponse>* w) override {
    v1::WatchMailboxResponse r;
    r.set_type(v1::MAILBOX_EVENT_TYPE_READY);
    w->Write(r);
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ++watch_cancelled;
    return grpc::Status::CANCELLED;
  }
};

class FakeServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sessions_ = new FakeSessions;
    mailbox_ = new FakeMailbox;
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(sessions_);
    b.RegisterService(mailbox_);
    server_ = b.BuildAndStart().release();
  }
  static void TearDownTestSuite() {
    server_->Shutdown();
    delete server_;
    delete sessions_;
    delete mailbox_;
  }
  mailpool::Session Start() {
    mailpool::StartOptions o;
    o.host = "h";
    o.user = "u";
    o.password = "p";
    absl::StatusOr<mailpool::Session> s = client_.StartImap(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return *std::move(s);
  }

  static inline int port_ = 0;
  static inline grpc::Server* server_ = nullptr;
  static inline FakeSessions* sessions_ = nullptr;
  static inline FakeMailbox* mailbox_ = nullptr;
  mailpool::Client client_{absl::StrCat("127.0.0.1:", port_)};
};

TEST_F(FakeServerTest, ListMessagesFollowsPages) {
  mailpool::Session s = Start();
  v1::ListMessagesRequest req;
  req.set_page_size(3);
  std::vector<std::string> ids;
  for (const auto& m : s.ListMessages(req)) {
    ASSERT_TRUE(m.ok()) << m.status();
    ids.push_back(m->id());
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5", "m6"}));
}

TEST_F(FakeServerTest, AnErrorOnALaterPageEndsTheRange) {
  mailpool::Session s = Start();
  v1::ListMessagesRequest req;
  req.set_page_size(3);
  req.set_folder("fail-late");
  int ok = 0;
  absl::Status last;
  for (const auto& m : s.ListMessages(req)) {
    if (m.ok())
      ++ok;
    else
      last = m.status();
  }
  EXPECT_EQ(ok, 6);
  EXPECT_TRUE(absl::IsUnavailable(last)) << last;
}

TEST_F(FakeServerTest, StreamMessageJoinsChunks) {
  mailpool::Session s = Start();
  v1::StreamMessageRequest req;
  req.set_id("m1");
  std::string data;
  for (const auto& chunk : s.StreamMessage(req)) {
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    data += chunk->data();
  }
  EXPECT_EQ(data, "abc");
}

TEST_F(FakeServerTest, LeavingAWatchLoopCancelsTheStream) {
  mailpool::Session s = Start();
  {
    mailpool::Range<v1::WatchMailboxResponse> events = s.WatchMailbox();
    for (const auto& e : events) {
      ASSERT_TRUE(e.ok()) << e.status();
      EXPECT_EQ(e->type(), v1::MAILBOX_EVENT_TYPE_READY);
      break;
    }
  }
  for (int i = 0; i < 200 && mailbox_->watch_cancelled == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(mailbox_->watch_cancelled, 1);
}

TEST_F(FakeServerTest, ErrorDetailComesFromTheTrailer) {
  mailpool::StartOptions o;
  o.host = "h";
  o.password = "wrong";
  absl::Status st = client_.StartImap(o).status();
  ASSERT_TRUE(absl::IsUnauthenticated(st)) << st;
  EXPECT_EQ(st.message(), "IMAP: a1 NO nope");
  EXPECT_EQ(mailpool::ServerReply(st), "a1 NO nope");
  EXPECT_EQ(mailpool::ErrorDetailOf(st)->reason(), "AUTH_FAILED");
  // The standard details from grpc-status-details-bin.
  ASSERT_TRUE(mailpool::ErrorInfoOf(st).has_value());
  EXPECT_EQ(mailpool::ErrorInfoOf(st)->domain(), "mailpool.dev");
  EXPECT_EQ(mailpool::RetryDelayOf(st), absl::Seconds(3));
  ASSERT_EQ(mailpool::FieldViolationsOf(st).size(), 1u);
  EXPECT_EQ(mailpool::FieldViolationsOf(st)[0].field(), "imap.credentials.password");
  EXPECT_FALSE(mailpool::RetryDelayOf(absl::UnavailableError("x")).has_value());
}

TEST_F(FakeServerTest, SessionClosesOnDestructionOnlyOnce) {
  int before = sessions_->closes;
  {
    mailpool::Session a = Start();
    mailpool::Session b = std::move(a);
    mailpool::Session c = Start();
    c = std::move(b);  // closes c's first session, takes over b's
  }
  EXPECT_EQ(sessions_->closes - before, 2);
}

TEST_F(FakeServerTest, UnimplementedServiceIsUnimplemented) {
  EXPECT_TRUE(absl::IsUnimplemented(client_.ParseSource("Subject: x\r\n\r\n").status()));
  mailpool::Session s = Start();
  EXPECT_TRUE(absl::IsUnimplemented(s.Refresh().status()));
}

TEST(RangeTest, StopsAfterTheFirstError) {
  int calls = 0;
  mailpool::Range<int> r([&calls]() -> std::optional<absl::StatusOr<int>> {
    ++calls;
    if (calls <= 2) return absl::StatusOr<int>(calls);
    if (calls == 3) return absl::StatusOr<int>(absl::UnavailableError("gone"));
    return absl::StatusOr<int>(99);  // never reached
  });
  std::vector<std::string> seen;
  for (const absl::StatusOr<int>& x : r) {
    seen.push_back(x.ok() ? std::to_string(*x) : std::string(x.status().message()));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"1", "2", "gone"}));
  EXPECT_EQ(calls, 3);
}

TEST(RangeTest, EmptyRange) {
  mailpool::Range<int> r([]() -> std::optional<absl::StatusOr<int>> { return std::nullopt; });
  EXPECT_TRUE(r.begin() == r.end());
}

TEST(HelpersTest, MakeAddress) {
  v1::Address a = mailpool::MakeAddress("\"Martin, Alice\" <alice@x.test>");
  EXPECT_EQ(a.name(), "Martin, Alice");
  EXPECT_EQ(a.address(), "alice@x.test");
  EXPECT_EQ(mailpool::MakeAddress(" bob@x.test ").address(), "bob@x.test");
}

TEST(HelpersTest, StatusWithoutDetail) {
  EXPECT_FALSE(mailpool::ErrorDetailOf(absl::InternalError("x")).has_value());
  EXPECT_EQ(mailpool::ServerReply(absl::OkStatus()), "");
}

}  // namespace
