// Callers (issue 13): identities from bearer tokens, Unix peer credentials and client
// certificates; each caller reaches only its own sessions, sends and watches; admins see
// everyone's; the per-caller limits. A real in-process daemon and the real Dovecot and
// Postfix of scripts/testservers.sh.
#include <arpa/inet.h>
#include <grp.h>
#include <grpcpp/create_channel_posix.h>
#include <grpcpp/generic/generic_stub.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "callers/callers.h"
#include "gmock/gmock.h"
#include "mailpool/v1/message.grpc.pb.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr char kAliceToken[] = "alice-caller-token-0123456789abcdef";
constexpr char kBobToken[] = "bob-caller-token-fedcba9876543210";
constexpr char kOpsToken[] = "ops-caller-token-admin-55555555";

// A TCP listener that only counts the connections it accepts: the "mail server" of calls
// that must never reach one.
class CountingListener {
 public:
  CountingListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 16);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        if (stop_) {
          close(c);
          return;
        }
        ++accepted_;
        close(c);
      }
    });
  }
  ~CountingListener() {
    stop_ = true;
    // Wake the accept with one last connection.
    int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    close(c);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

class CallersTest : public DaemonTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    tokens_path_ = outbox_dir_ + "/tokens";
    WriteTokens(absl::StrCat("# test callers\n", "alice ", callers::Sha256Hex(kAliceToken),
                             "\n", "bob   ", callers::Sha256Hex(kBobToken), "  # a comment\n",
                             "ops ", callers::Sha256Hex(kOpsToken), " admin\n"));
    options.callers.tokens_file = tokens_path_;
    // Its own directory that other users may traverse (the socket's mode guards it).
    char dir[] = "/tmp/mailpool-callers-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    socket_dir_ = dir;
    chmod(dir, 0711);
    socket_path_ = socket_dir_ + "/mailpoold.sock";
    options.listen = absl::StrCat("127.0.0.1:0,unix:", socket_path_);
    options.listen_group = "nogroup";
    options.callers.start_rate_per_caller = 0;
    More(options);
  }
  virtual void More(server::ServerOptions& options) {}
  void SetUp() override {
    DaemonTest::SetUp();
    send_ = v1::SendService::NewStub(channel_);
  }
  void TearDown() override {
    for (const auto& [token, id] : open_) {
      v1::CloseSessionRequest request;
      request.set_session(id);
      v1::CloseSessionResponse response;
      sessions_->CloseSession(As(token).get(), request, &response);
    }
    send_.reset();
    DaemonTest::TearDown();
    unlink(tokens_path_.c_str());
    rmdir(outbox_dir_.c_str());
    rmdir(socket_dir_.c_str());
  }

  void WriteTokens(const std::string& text) {
    std::ofstream(tokens_path_, std::ios::trunc) << text;
  }

  static std::unique_ptr<grpc::ClientContext> As(const std::string& token, int seconds = 30) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    return ctx;
  }

  v1::StartSessionRequest Imap(const std::string& name) const {
    v1::StartSessionRequest request;
    request.set_name(name);
    *request.mutable_imap()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_IMAP_PORT"), v1::SECURITY_STARTTLS);
    *request.mutable_imap()->mutable_credentials() = Password();
    return request;
  }

  grpc::Status StartAs(v1::SessionService::Stub& stub, const std::string& token,
                       const v1::StartSessionRequest& request, v1::Session* session) {
    v1::StartSessionResponse response;
    grpc::Status status = stub.StartSession(As(token, 60).get(), request, &response);
    if (status.ok()) {
      *session = response.session();
      open_.emplace_back(token, session->id());
    }
    return status;
  }
  grpc::Status StartAs(const std::string& token, const v1::StartSessionRequest& request,
                       v1::Session* session) {
    return StartAs(*sessions_, token, request, session);
  }

  std::vector<std::string> ListAs(v1::SessionService::Stub& stub, const std::string& token,
                                  bool all = false, grpc::Status* out = nullptr) {
    v1::ListSessionsRequest request;
    request.set_all_callers(all);
    v1::ListSessionsResponse response;
    grpc::Status status = stub.ListSessions(As(token).get(), request, &response);
    if (out != nullptr) *out = status;
    std::vector<std::string> ids;
    for (const auto& s : response.sessions()) ids.push_back(s.id());
    return ids;
  }
  std::vector<std::string> ListAs(const std::string& token, bool all = false,
                                  grpc::Status* out = nullptr) {
    return ListAs(*sessions_, token, all, out);
  }

  grpc::Status GetAs(const std::string& token, const std::string& ref, v1::Session* out = nullptr) {
    v1::GetSessionRequest request;
    request.set_session(ref);
    v1::GetSessionResponse response;
    grpc::Status status = sessions_->GetSession(As(token).get(), request, &response);
    if (out != nullptr) *out = response.session();
    return status;
  }

  grpc::Status CloseAs(const std::string& token, const std::string& ref) {
    v1::CloseSessionRequest request;
    request.set_session(ref);
    v1::CloseSessionResponse response;
    grpc::Status status = sessions_->CloseSession(As(token).get(), request, &response);
    if (status.ok()) {
      open_.erase(std::remove_if(open_.begin(), open_.end(),
                                 [&](const auto& p) { return p.second == ref; }),
                  open_.end());
    }
    return status;
  }

  std::string tokens_path_;
  std::string socket_dir_;
  std::string socket_path_;
  std::unique_ptr<v1::SendService::Stub> send_;
  std::vector<std::pair<std::string, std::string>> open_;  // token, session ID
};

TEST_F(CallersTest, EachTokenCallerSeesOnlyItsOwnSessionsAndAnAdminSeesAll) {
  v1::Session a, b;
  ASSERT_TRUE(StartAs(kAliceToken, Imap("inbox"), &a).ok());
  // Names are unique per caller, not globally: bob may use the same one.
  grpc::Status bob_start = StartAs(kBobToken, Imap("inbox"), &b);
  ASSERT_TRUE(bob_start.ok()) << bob_start.error_message();
  EXPECT_EQ(a.owner(), "alice");
  EXPECT_EQ(b.owner(), "bob");
  v1::Session again;
  EXPECT_EQ(StartAs(kAliceToken, Imap("inbox"), &again).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  EXPECT_THAT(ListAs(kAliceToken), UnorderedElementsAre(a.id()));
  EXPECT_THAT(ListAs(kBobToken), UnorderedElementsAre(b.id()));
  // The other's ID or name is NOT_FOUND, exactly like an unknown one.
  grpc::Status foreign = GetAs(kBobToken, a.id());
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(foreign.error_message(), HasSubstr("no session with ID"));
  v1::Session named;
  ASSERT_TRUE(GetAs(kBobToken, "inbox", &named).ok());
  EXPECT_EQ(named.id(), b.id());
  EXPECT_EQ(CloseAs(kBobToken, a.id()).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(GetAs(kAliceToken, a.id()).ok()) << "bob's close must not touch alice's session";

  // Mailbox calls on another's session are NOT_FOUND too.
  auto mailbox = v1::MailboxService::NewStub(channel_);
  v1::GetMailboxStatusRequest status_request;
  status_request.set_session(a.id());
  v1::GetMailboxStatusResponse status_response;
  EXPECT_EQ(mailbox->GetMailboxStatus(As(kBobToken).get(), status_request, &status_response)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(
      mailbox->GetMailboxStatus(As(kAliceToken).get(), status_request, &status_response).ok());

  // all_callers: admins only.
  grpc::Status denied;
  ListAs(kAliceToken, true, &denied);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(ListAs(kOpsToken, true), UnorderedElementsAre(a.id(), b.id()));
  EXPECT_TRUE(ListAs(kOpsToken).empty()) << "without all_callers an admin lists its own";
  // An admin closes another caller's session by its ID.
  ASSERT_TRUE(CloseAs(kOpsToken, b.id()).ok());
  EXPECT_EQ(GetAs(kBobToken, b.id()).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(CallersTest, NoTokenOrAWrongOneIsUnauthenticatedAndReachesNoMailServer) {
  CountingListener server;
  v1::StartSessionRequest request;
  *request.mutable_smtp()->mutable_server() = Endpoint(server.port(), v1::SECURITY_PLAIN);
  for (const std::string& token : {std::string(), std::string("not-a-known-token")}) {
    v1::Session s;
    grpc::Status status = StartAs(token, request, &s);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    // The error never echoes what was sent.
    if (!token.empty()) EXPECT_THAT(status.error_message(), Not(HasSubstr(token)));
    grpc::Status list;
    ListAs(token, false, &list);
    EXPECT_EQ(list.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // A malformed authorization header.
  auto ctx = As("");
  ctx->AddMetadata("authorization", absl::StrCat("Basic ", kAliceToken));
  v1::ListSessionsResponse response;
  EXPECT_EQ(sessions_->ListSessions(ctx.get(), {}, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Every service checks, the stateless MessageService too.
  auto message = v1::MessageService::NewStub(channel_);
  v1::ParseSourceRequest parse;
  parse.set_source("Subject: x\r\n\r\nhi\r\n");
  v1::ParseSourceResponse parsed;
  EXPECT_EQ(message->ParseSource(As("").get(), parse, &parsed).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(message->ParseSource(As(kAliceToken).get(), parse, &parsed).ok());
  v1::ListOutboxRequest outbox;
  v1::ListOutboxResponse outbox_response;
  EXPECT_EQ(send_->ListOutbox(As("").get(), outbox, &outbox_response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // With a valid token the same start does reach the server (so the count above means
  // something).
  v1::Session s;
  StartAs(kAliceToken, request, &s);
  EXPECT_GT(server.accepted(), 0);
}

TEST_F(CallersTest, OutboxSendsAndWatchesBelongToTheirCaller) {
  v1::StartSessionRequest request;
  *request.mutable_smtp()->mutable_server() =
      Endpoint(EnvPort("MAILPOOL_TEST_SMTP_PORT"), v1::SECURITY_STARTTLS);
  *request.mutable_smtp()->mutable_credentials() = Password();
  request.mutable_smtp()->set_asynchronous(true);
  v1::Session smtp;
  ASSERT_TRUE(StartAs(kAliceToken, request, &smtp).ok());
  v1::SendMessageRequest send;
  send.set_session(smtp.id());
  send.set_idempotency_key("callers-itest-1");
  send.set_source(absl::StrCat("From: <", Env("MAILPOOL_TEST_USER"), ">\r\nTo: <",
                               Env("MAILPOOL_TEST_USER"),
                               ">\r\nSubject: callers itest\r\n\r\nhello\r\n"));
  v1::SendMessageResponse queued;
  grpc::Status sent = send_->SendMessage(As(kAliceToken).get(), send, &queued);
  ASSERT_TRUE(sent.ok()) << sent.error_message();
  ASSERT_FALSE(queued.send_id().empty());

  v1::GetSendStatusRequest get;
  get.set_send_id(queued.send_id());
  v1::GetSendStatusResponse got;
  EXPECT_TRUE(send_->GetSendStatus(As(kAliceToken).get(), get, &got).ok());
  EXPECT_EQ(send_->GetSendStatus(As(kBobToken).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CancelSendRequest cancel;
  cancel.set_send_id(queued.send_id());
  v1::CancelSendResponse cancelled;
  EXPECT_EQ(send_->CancelSend(As(kBobToken).get(), cancel, &cancelled).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::ListOutboxResponse listed;
  ASSERT_TRUE(send_->ListOutbox(As(kBobToken).get(), {}, &listed).ok());
  EXPECT_EQ(listed.sends_size(), 0);
  ASSERT_TRUE(send_->ListOutbox(As(kAliceToken).get(), {}, &listed).ok());
  ASSERT_EQ(listed.sends_size(), 1);
  EXPECT_EQ(listed.sends(0).send_id(), queued.send_id());

  // The same idempotency key from another caller is another send, not alice's.
  v1::StartSessionRequest bob_request = request;
  v1::Session bob_smtp;
  ASSERT_TRUE(StartAs(kBobToken, bob_request, &bob_smtp).ok());
  send.set_session(bob_smtp.id());
  v1::SendMessageResponse bob_queued;
  ASSERT_TRUE(send_->SendMessage(As(kBobToken).get(), send, &bob_queued).ok());
  EXPECT_NE(bob_queued.send_id(), queued.send_id());

  // Watching another caller's send is NOT_FOUND; a watch of everything sees only one's own.
  v1::WatchSendStatusRequest watch;
  watch.add_send_ids(queued.send_id());
  watch.set_include_current(true);
  {
    auto ctx = As(kBobToken);
    auto reader = send_->WatchSendStatus(ctx.get(), watch);
    v1::WatchSendStatusResponse event;
    while (reader->Read(&event)) ADD_FAILURE() << "bob saw " << event.ShortDebugString();
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    v1::WatchSendStatusRequest all;
    all.set_include_current(true);
    auto ctx = As(kBobToken, 5);
    auto reader = send_->WatchSendStatus(ctx.get(), all);
    v1::WatchSendStatusResponse event;
    while (reader->Read(&event)) {
      EXPECT_EQ(event.send().send_id(), bob_queued.send_id()) << "only bob's own send";
    }
    reader->Finish();  // ends at the deadline
  }
}

TEST_F(CallersTest, TokenFileReloadAddsAndRevokesCallers) {
  constexpr char kCarol[] = "carol-caller-token-1111111111111";
  grpc::Status status;
  ListAs(kCarol, false, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  WriteTokens(absl::StrCat("carol ", callers::Sha256Hex(kCarol), "\n"));
  ASSERT_TRUE(server_->Reload().ok());
  ListAs(kCarol, false, &status);
  EXPECT_TRUE(status.ok()) << status.error_message();
  ListAs(kAliceToken, false, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "alice was removed";
  // A malformed file is refused and the tokens in use stay.
  WriteTokens("carol not-hex\n");
  absl::Status bad = server_->Reload();
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.message()), HasSubstr(":1:"));
  ListAs(kCarol, false, &status);
  EXPECT_TRUE(status.ok());
}

// A connection to the daemon's Unix socket made as another Unix user. Only the calling
// thread changes its effective IDs (raw syscalls; glibc's setresuid would change every
// thread's), connects, and changes back; the kernel records the IDs of connect() as the
// peer credentials. Needs root.
std::shared_ptr<grpc::Channel> ConnectAs(const std::string& path, uid_t uid, gid_t gid,
                                         int* error) {
  std::shared_ptr<grpc::Channel> channel;
  std::thread([&] {
    *error = 0;
    if (syscall(SYS_setresgid, -1, gid, -1) != 0 || syscall(SYS_setresuid, -1, uid, -1) != 0) {
      *error = errno;
      return;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc != 0) *error = errno;
    syscall(SYS_setresuid, -1, 0, -1);
    syscall(SYS_setresgid, -1, 0, -1);
    if (rc != 0) {
      close(fd);
      return;
    }
    channel = grpc::CreateInsecureChannelFromFd("unix", fd);
  }).join();
  return channel;
}

TEST_F(CallersTest, TwoUnixUsersThroughTheSocketEachSeeOnlyTheirOwn) {
  ASSERT_EQ(geteuid(), 0u) << "this test acts as other Unix users and must run as root";
  struct group* nogroup = getgrnam("nogroup");
  ASSERT_NE(nogroup, nullptr);
  gid_t gid = nogroup->gr_gid;
  int error = 0;
  auto first = ConnectAs(socket_path_, 65501, gid, &error);
  ASSERT_NE(first, nullptr) << strerror(error);
  auto second = ConnectAs(socket_path_, 65502, gid, &error);
  ASSERT_NE(second, nullptr) << strerror(error);
  // Not in the socket's group: the kernel refuses the connection (mode 0660).
  EXPECT_EQ(ConnectAs(socket_path_, 65503, 65503, &error), nullptr);
  EXPECT_EQ(error, EACCES);

  auto one = v1::SessionService::NewStub(first);
  auto two = v1::SessionService::NewStub(second);
  v1::Session a, b;
  grpc::Status started = StartAs(*one, "", Imap("mine"), &a);
  ASSERT_TRUE(started.ok()) << started.error_message();
  ASSERT_TRUE(StartAs(*two, "", Imap("mine"), &b).ok());
  EXPECT_EQ(a.owner(), "uid:65501");
  EXPECT_EQ(b.owner(), "uid:65502");
  EXPECT_THAT(ListAs(*one, ""), UnorderedElementsAre(a.id()));
  EXPECT_THAT(ListAs(*two, ""), UnorderedElementsAre(b.id()));
  v1::GetSessionRequest get;
  get.set_session(a.id());
  v1::GetSessionResponse got;
  EXPECT_EQ(two->GetSession(As("").get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::Status denied;
  ListAs(*one, "", true, &denied);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // A token on the socket names its caller instead of the Unix user.
  EXPECT_TRUE(ListAs(*one, kAliceToken).empty());
  // Root on the socket is an admin: it sees both, and the token callers' none.
  auto root = grpc::CreateChannel("unix:" + socket_path_, grpc::InsecureChannelCredentials());
  auto admin = v1::SessionService::NewStub(root);
  EXPECT_THAT(ListAs(*admin, "", true), UnorderedElementsAre(a.id(), b.id()));
  for (auto* stub : {one.get(), two.get()}) {
    for (const auto& [token, id] : open_) {
      v1::CloseSessionRequest close;
      close.set_session(id);
      v1::CloseSessionResponse closed;
      stub->CloseSession(As("").get(), close, &closed);
    }
  }
  open_.clear();
  EXPECT_TRUE(ListAs(*admin, "", true).empty());
}

TEST_F(CallersTest, UnknownMethodNamesDoNotGrowTheMetricsLabelSet) {
  grpc::GenericStub generic(channel_);
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1), response;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, absl::StrCat("/mailpool.v1.Bogus", i, "/Method", i),
                      grpc::StubOptions(), &request, &response,
                      [&done](grpc::Status status) { done.set_value(status); });
    EXPECT_EQ(done.get_future().get().error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  std::string page = ScrapeMetrics();
  EXPECT_THAT(page, Not(HasSubstr("Bogus")));
  EXPECT_GE(MetricValue(page, "mailpool_grpc_calls_total{service=\"unknown\",method=\"unknown\","
                              "code=\"UNIMPLEMENTED\"}"),
            50);
}

TEST_F(CallersTest, IdleConnectionsCannotStarveAMetricsScrape) {
  // Twice the endpoint's connection limit, all silent.
  std::vector<int> idle;
  for (int i = 0; i < 32; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server_->metrics_port());
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    idle.push_back(fd);
  }
  std::string page = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_THAT(page, HasSubstr("200 OK"));
  EXPECT_THAT(page, HasSubstr("mailpool_sessions"));
  for (int fd : idle) close(fd);
}

class CallerLimitsTest : public CallersTest {
 protected:
  void More(server::ServerOptions& options) override {
    options.callers.start_rate_per_caller = 0.001;  // one start per 1000 s after the burst
    options.callers.start_burst_per_caller = 2;
    options.callers.max_calls_per_caller = 2;
  }
};

TEST_F(CallerLimitsTest, StartRateIsPerCallerWithARetryHint) {
  int closed_port = FreePort();  // nothing listens: starts fail fast, but count
  v1::StartSessionRequest request;
  *request.mutable_smtp()->mutable_server() = Endpoint(closed_port, v1::SECURITY_PLAIN);
  v1::Session s;
  for (int i = 0; i < 2; ++i) {
    EXPECT_NE(StartAs(kAliceToken, request, &s).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kAliceToken));
  v1::StartSessionResponse response;
  grpc::Status limited = sessions_->StartSession(&ctx, request, &response);
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ErrorDetailOf(ctx).reason(), "START_RATE_EXCEEDED");
  // Bob's bucket is his own.
  EXPECT_NE(StartAs(kBobToken, request, &s).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(CallerLimitsTest, CallsInFlightAreBoundedPerCaller) {
  // Two open watch streams are alice's two calls in flight.
  v1::WatchSendStatusRequest all;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchSendStatusResponse>>> streams;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(As(kAliceToken, 120));
    streams.push_back(send_->WatchSendStatus(contexts.back().get(), all));
  }
  // Until the daemon counts both, a third call may still get in: wait for the refusal.
  grpc::Status third;
  auto patience = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    ListAs(kAliceToken, false, &third);
  } while (third.ok() && std::chrono::steady_clock::now() < patience);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  grpc::Status bob;
  ListAs(kBobToken, false, &bob);
  EXPECT_TRUE(bob.ok()) << "bob's calls are counted apart";
  for (auto& c : contexts) c->TryCancel();
  for (auto& r : streams) r->Finish();
  grpc::Status after;
  patience = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    ListAs(kAliceToken, false, &after);
  } while (!after.ok() && std::chrono::steady_clock::now() < patience);
  EXPECT_TRUE(after.ok()) << after.error_message();
}

}  // namespace
}  // namespace mailpool::testing
