// The asynchronous outbox through gRPC: sends queued on asynchronous SMTP sessions and
// delivered in the background through the real Postfix (STARTTLS + AUTH as alice) into
// dave's (MAILPOOL_TEST_USER4) Dovecot mailbox, read back over POP3 through the daemon;
// and failure cases against Postfix smtp-sink processes this test starts and stops itself
// (soft errors with -r MAIL, then a sink that accepts), on a free port of its own.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

std::string RandomTag() {
  std::random_device rd;
  return absl::StrCat(absl::Hex(rd()), absl::Hex(rd()));
}

// A Postfix smtp-sink owned by the test: `args` inject failures ("-r", "MAIL": every MAIL
// gets "450 4.3.0 Error: command failed").
class Sink {
 public:
  Sink(int port, std::vector<std::string> args) : port_(port) {
    std::vector<std::string> argv = {"smtp-sink"};
    if (geteuid() == 0) argv.insert(argv.end(), {"-u", "postfix"});
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(absl::StrCat("127.0.0.1:", port));
    argv.push_back("16");
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> c;
      for (auto& a : argv) c.push_back(a.data());
      c.push_back(nullptr);
      execvp("smtp-sink", c.data());
      _exit(127);
    }
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!Accepts(port) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling, bounded
    }
    EXPECT_TRUE(Accepts(port)) << "smtp-sink did not start on " << port;
  }
  ~Sink() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Accepts(port_) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  int port_;
  pid_t pid_ = -1;
};

class OutboxTest : public DaemonTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    // Quick retries so the tests see several attempts in well under a second each.
    options.sender.initial_backoff = absl::Milliseconds(100);
    options.sender.max_backoff = absl::Milliseconds(400);
    options.sender.max_attempts = 30;
    options.sender.session_poll = absl::Milliseconds(50);
  }
  void SetUp() override {
    DaemonTest::SetUp();
    send_ = v1::SendService::NewStub(channel_);
    mailbox_ = v1::MailboxService::NewStub(channel_);
    tag_ = RandomTag();
  }
  void TearDown() override {
    for (const std::string& s : open_) Close(s);
    send_.reset();
    mailbox_.reset();
    DaemonTest::TearDown();
  }

  std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 60) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ctx;
  }

  std::string StartSession(v1::StartSessionRequest request) {
    v1::Session session;
    grpc::Status status = Start(request, &session);
    EXPECT_TRUE(status.ok()) << status.error_message();
    open_.push_back(session.id());
    return session.id();
  }
  // Alice on Postfix's submission port (STARTTLS + AUTH).
  std::string StartPostfix(bool asynchronous) {
    v1::StartSessionRequest request;
    *request.mutable_smtp()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_SMTP_PORT"), v1::SECURITY_STARTTLS);
    *request.mutable_smtp()->mutable_credentials() = Password();
    request.mutable_smtp()->set_asynchronous(asynchronous);
    return StartSession(request);
  }
  // A sink of ours: plain SMTP, no AUTH.
  std::string StartSink(int port, bool asynchronous) {
    v1::StartSessionRequest request;
    *request.mutable_smtp()->mutable_server() = Endpoint(port, v1::SECURITY_PLAIN);
    request.mutable_smtp()->set_asynchronous(asynchronous);
    return StartSession(request);
  }
  std::string StartDavePop3() {
    v1::StartSessionRequest request;
    *request.mutable_pop3()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_POP3S_PORT"), v1::SECURITY_IMPLICIT_TLS);
    v1::Credentials c;
    c.set_user(Env("MAILPOOL_TEST_USER4"));
    c.set_password(Env("MAILPOOL_TEST_PASSWORD4"));
    *request.mutable_pop3()->mutable_credentials() = c;
    return StartSession(request);
  }
  void CloseSession(const std::string& id) {
    EXPECT_TRUE(Close(id).ok());
    open_.erase(std::remove(open_.begin(), open_.end(), id), open_.end());
  }

  v1::SendMessageRequest Raw(const std::string& session, const std::string& subject,
                             const std::string& to) {
    v1::SendMessageRequest request;
    request.set_session(session);
    request.set_source(absl::StrCat("From: Alice <", Env("MAILPOOL_TEST_USER"), ">\r\nTo: <", to,
                                    ">\r\nSubject: ", subject, "\r\nMessage-ID: <", subject.size(),
                                    ".", RandomTag(), "@mailpool.test>\r\n\r\nhello\r\n"));
    return request;
  }
  v1::SendMessageResponse Queue(const v1::SendMessageRequest& request) {
    v1::SendMessageResponse response;
    grpc::Status status = send_->SendMessage(Ctx().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.state(), v1::SEND_STATE_QUEUED);
    return response;
  }
  v1::SendStatus Status(const std::string& send_id) {
    v1::GetSendStatusRequest request;
    request.set_send_id(send_id);
    v1::GetSendStatusResponse response;
    grpc::Status status = send_->GetSendStatus(Ctx().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.send();
  }
  // Polls GetSendStatus until `done` holds (bounded).
  v1::SendStatus WaitFor(const std::string& send_id,
                         const std::function<bool(const v1::SendStatus&)>& done) {
    auto deadline = Clock::now() + std::chrono::seconds(60);
    v1::SendStatus s;
    do {
      s = Status(send_id);
      if (done(s)) return s;
    } while (Clock::now() < deadline);
    ADD_FAILURE() << "send " << send_id << " never got there: " << s.ShortDebugString();
    return s;
  }
  static bool Final(const v1::SendStatus& s) {
    return s.state() == v1::SEND_STATE_SENT || s.state() == v1::SEND_STATE_ERROR ||
           s.state() == v1::SEND_STATE_CANCELLED;
  }
  // Every state change of `ids` until all are final, through WatchSendStatus.
  std::vector<v1::SendStatus> Watch(const std::vector<std::string>& ids, int seconds,
                                    grpc::Status* status) {
    v1::WatchSendStatusRequest request;
    for (const auto& id : ids) request.add_send_ids(id);
    request.set_include_current(true);
    auto ctx = Ctx(seconds);
    auto reader = send_->WatchSendStatus(ctx.get(), request);
    std::vector<v1::SendStatus> events;
    v1::WatchSendStatusResponse event;
    while (reader->Read(&event)) events.push_back(event.send());
    *status = reader->Finish();
    return events;
  }

  std::unique_ptr<v1::SendService::Stub> send_;
  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::string tag_;
  std::vector<std::string> open_;
};

TEST_F(OutboxTest, QueuesAtOnceDeliversInTheBackgroundAndReadsItBack) {
  std::string smtp = StartPostfix(/*asynchronous=*/true);
  v1::SendMessageRequest request;
  request.set_session(smtp);
  v1::EmailMessage* m = request.mutable_message();
  m->mutable_from()->set_address(Env("MAILPOOL_TEST_USER"));
  m->add_to()->set_address(Env("MAILPOOL_TEST_USER4"));
  m->set_subject(absl::StrCat("mp-outbox ", tag_, " Grüße"));
  m->set_text_body("queued, then sent\r\n.a line with a dot\r\n");
  request.set_idempotency_key(absl::StrCat("key-", tag_));
  v1::SendMessageResponse first = Queue(request);
  EXPECT_THAT(first.send_id(), StartsWith("sd0_"));
  EXPECT_TRUE(first.recipients().empty());
  EXPECT_FALSE(first.message_id().empty());

  // A client's retry with the same key gets the same send, not a second message.
  v1::SendMessageResponse retry = Queue(request);
  EXPECT_EQ(retry.send_id(), first.send_id());
  EXPECT_EQ(retry.message_id(), first.message_id());
  // The same key for a different request is refused.
  v1::SendMessageRequest other = request;
  other.mutable_message()->set_subject("something else");
  v1::SendMessageResponse refused;
  EXPECT_EQ(send_->SendMessage(Ctx().get(), other, &refused).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  grpc::Status watch;
  std::vector<v1::SendStatus> events = Watch({first.send_id()}, 60, &watch);
  EXPECT_TRUE(watch.ok()) << watch.error_message();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), v1::SEND_STATE_SENT);

  v1::SendStatus sent = Status(first.send_id());
  EXPECT_EQ(sent.state(), v1::SEND_STATE_SENT);
  EXPECT_EQ(sent.session_id(), smtp);
  EXPECT_EQ(sent.attempts(), 1u);
  EXPECT_EQ(sent.message_id(), first.message_id());
  EXPECT_EQ(sent.subject(), m->subject());
  EXPECT_THAT(sent.server_reply(), StartsWith("250"));
  EXPECT_FALSE(sent.possibly_sent_before_crash());
  ASSERT_EQ(sent.recipients_size(), 1);
  EXPECT_TRUE(sent.recipients(0).accepted());
  EXPECT_EQ(sent.recipients(0).enhanced_status(), "2.1.5");

  // ListOutbox: by session and by state.
  v1::ListOutboxRequest list;
  list.set_session(smtp);
  list.add_states(v1::SEND_STATE_SENT);
  v1::ListOutboxResponse listed;
  ASSERT_TRUE(send_->ListOutbox(Ctx().get(), list, &listed).ok());
  ASSERT_EQ(listed.sends_size(), 1);
  EXPECT_EQ(listed.sends(0).send_id(), first.send_id());
  list.clear_states();
  list.add_states(v1::SEND_STATE_QUEUED);
  ASSERT_TRUE(send_->ListOutbox(Ctx().get(), list, &listed).ok());
  EXPECT_EQ(listed.sends_size(), 0);

  // Cancelling a sent message is refused.
  v1::CancelSendRequest cancel;
  cancel.set_send_id(first.send_id());
  v1::CancelSendResponse cancelled;
  EXPECT_EQ(send_->CancelSend(Ctx().get(), cancel, &cancelled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  std::string pop = StartDavePop3();
  std::vector<v1::EmailMessage> got =
      WaitForSubject(*mailbox_, pop, tag_, 1, std::chrono::seconds(30));
  ASSERT_EQ(got.size(), 1u);  // exactly once despite the retried request
  EXPECT_EQ(got[0].message_id(), first.message_id());
  v1::GetMessageRequest get;
  get.set_session(pop);
  get.set_id(got[0].id());
  get.set_view(v1::MESSAGE_VIEW_FULL);
  v1::GetMessageResponse full;
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), get, &full).ok());
  EXPECT_EQ(full.message().subject(), m->subject());
  EXPECT_EQ(full.message().text_body(), m->text_body());
  v1::DeleteMessagesRequest del;
  del.set_session(pop);
  del.add_ids(got[0].id());
  v1::DeleteMessagesResponse deleted;
  EXPECT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
}

TEST_F(OutboxTest, PartialRecipientsAreSentAndPermanentRefusalsAreNotRetried) {
  std::string smtp = StartPostfix(/*asynchronous=*/true);
  const std::string dave = Env("MAILPOOL_TEST_USER4");
  const std::string nobody = absl::StrCat("nobody-", tag_, "@", Env("MAILPOOL_TEST_DOMAIN"));
  v1::SendMessageRequest both = Raw(smtp, absl::StrCat("mp-outbox ", tag_, " partial"), dave);
  both.mutable_envelope()->add_rcpt_to(dave);
  both.mutable_envelope()->add_rcpt_to(nobody);
  v1::SendMessageResponse partial = Queue(both);
  v1::SendMessageResponse refused =
      Queue(Raw(smtp, absl::StrCat("mp-outbox ", tag_, " refused"), nobody));

  grpc::Status watch;
  Watch({partial.send_id(), refused.send_id()}, 60, &watch);
  EXPECT_TRUE(watch.ok()) << watch.error_message();
  v1::SendStatus p = Status(partial.send_id());
  EXPECT_EQ(p.state(), v1::SEND_STATE_SENT);
  ASSERT_EQ(p.recipients_size(), 2);
  EXPECT_TRUE(p.recipients(0).accepted());
  EXPECT_FALSE(p.recipients(1).accepted());
  EXPECT_EQ(p.recipients(1).reply_code(), 550u);
  v1::SendStatus r = Status(refused.send_id());
  EXPECT_EQ(r.state(), v1::SEND_STATE_ERROR);
  EXPECT_EQ(r.attempts(), 1u);  // 5xx: never retried
  EXPECT_THAT(r.detail(), HasSubstr("550"));

  std::string pop = StartDavePop3();
  std::vector<v1::EmailMessage> got =
      WaitForSubject(*mailbox_, pop, tag_, 1, std::chrono::seconds(30));
  ASSERT_EQ(got.size(), 1u);
  v1::DeleteMessagesRequest del;
  del.set_session(pop);
  del.add_ids(got[0].id());
  v1::DeleteMessagesResponse deleted;
  EXPECT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
}

TEST_F(OutboxTest, RetriesTemporaryFailuresAndRecoversWhenTheServerDoes) {
  int port = FreePort();
  auto sink = std::make_unique<Sink>(port, std::vector<std::string>{"-r", "MAIL"});
  std::string smtp = StartSink(port, /*asynchronous=*/true);
  v1::SendMessageResponse queued =
      Queue(Raw(smtp, absl::StrCat("mp-outbox ", tag_), "dave@example.test"));
  v1::SendStatus failing = WaitFor(queued.send_id(), [](const v1::SendStatus& s) {
    return s.attempts() >= 3 && s.state() == v1::SEND_STATE_QUEUED;
  });
  EXPECT_THAT(failing.detail(), HasSubstr("450"));
  EXPECT_TRUE(failing.has_next_attempt_time());
  EXPECT_FALSE(failing.possibly_sent_before_crash());  // refused at MAIL: no data went out

  // The server recovers (a new process: the daemon also has to reconnect).
  sink->Stop();
  sink = std::make_unique<Sink>(port, std::vector<std::string>{});
  v1::SendStatus sent = WaitFor(queued.send_id(), Final);
  EXPECT_EQ(sent.state(), v1::SEND_STATE_SENT) << sent.detail();
  EXPECT_GE(sent.attempts(), 4u);
  EXPECT_THAT(sent.server_reply(), StartsWith("250"));
}

TEST_F(OutboxTest, GivesUpAfterMaxAttempts) {
  server_->Shutdown();  // this test wants a daemon that gives up after 2 attempts
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.outbox_path = outbox_dir_ + "/outbox.db";
  options.sender.initial_backoff = absl::Milliseconds(50);
  options.sender.max_backoff = absl::Milliseconds(50);
  options.sender.max_attempts = 2;
  server_ = std::make_unique<server::Server>(options);
  ASSERT_TRUE(server_->Start().ok());
  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                 grpc::InsecureChannelCredentials());
  sessions_ = v1::SessionService::NewStub(channel_);
  send_ = v1::SendService::NewStub(channel_);

  int port = FreePort();
  Sink sink(port, {"-r", "MAIL"});
  std::string smtp = StartSink(port, /*asynchronous=*/true);
  v1::SendMessageResponse queued = Queue(Raw(smtp, "gives up", "dave@example.test"));
  v1::SendStatus done = WaitFor(queued.send_id(), Final);
  EXPECT_EQ(done.state(), v1::SEND_STATE_ERROR);
  EXPECT_EQ(done.attempts(), 2u);
  EXPECT_THAT(done.detail(), HasSubstr("gave up after 2 attempts"));
  EXPECT_THAT(done.detail(), HasSubstr("450"));
}

TEST_F(OutboxTest, PendingSendsWaitForAMatchingSessionAndCanBeCancelled) {
  int port = FreePort();
  auto sink = std::make_unique<Sink>(port, std::vector<std::string>{"-r", "MAIL"});
  std::string first_session = StartSink(port, /*asynchronous=*/true);
  v1::SendMessageResponse head =
      Queue(Raw(first_session, absl::StrCat("head ", tag_), "dave@example.test"));
  v1::SendMessageResponse behind =
      Queue(Raw(first_session, absl::StrCat("behind ", tag_), "dave@example.test"));
  WaitFor(head.send_id(), [](const v1::SendStatus& s) {
    return s.attempts() >= 1 && s.state() == v1::SEND_STATE_QUEUED;
  });
  // In order: the second waits behind the first.
  EXPECT_EQ(Status(behind.send_id()).attempts(), 0u);
  const std::string depth = "mailpool_outbox_depth";
  EXPECT_EQ(MetricValue(ScrapeMetrics(), depth), 2);

  // The caller goes away; the credentials (none here, but the rule is the same) go with
  // the session, so nothing is attempted until a matching session comes back.
  CloseSession(first_session);
  sink->Stop();
  sink = std::make_unique<Sink>(port, std::vector<std::string>{});
  uint32_t attempts = Status(head.send_id()).attempts();
  // Sessions that do not match: synchronous on the same server, asynchronous elsewhere.
  StartSink(port, /*asynchronous=*/false);
  StartPostfix(/*asynchronous=*/true);
  grpc::Status watch;
  std::vector<v1::SendStatus> events = Watch({head.send_id()}, 2, &watch);
  EXPECT_EQ(watch.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_EQ(events.size(), 1u);  // the current status only: nothing happened
  EXPECT_EQ(events[0].state(), v1::SEND_STATE_QUEUED);
  EXPECT_EQ(events[0].attempts(), attempts);

  // Nothing is in flight without a session: cancelling is certain.
  v1::CancelSendRequest cancel;
  cancel.set_send_id(behind.send_id());
  v1::CancelSendResponse cancelled;
  ASSERT_TRUE(send_->CancelSend(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.send().state(), v1::SEND_STATE_CANCELLED);
  EXPECT_EQ(MetricValue(ScrapeMetrics(), depth), 1);
  EXPECT_TRUE(send_->CancelSend(Ctx().get(), cancel, &cancelled).ok());  // again: fine
  cancel.set_send_id("sd0_00000000000000000000000000000000");
  EXPECT_EQ(send_->CancelSend(Ctx().get(), cancel, &cancelled).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // A matching session (owner, server, user) delivers what waited.
  std::string again = StartSink(port, /*asynchronous=*/true);
  v1::SendStatus sent = WaitFor(head.send_id(), Final);
  EXPECT_EQ(sent.state(), v1::SEND_STATE_SENT) << sent.detail();
  EXPECT_EQ(sent.session_id(), first_session);  // still tells who queued it
  EXPECT_EQ(Status(behind.send_id()).state(), v1::SEND_STATE_CANCELLED);
  EXPECT_EQ(MetricValue(ScrapeMetrics(), depth), 0);

  // The outbox outlives the session: listing by the closed session's ID still works.
  v1::ListOutboxRequest list;
  list.set_session(first_session);
  list.set_page_size(1);
  v1::ListOutboxResponse page;
  ASSERT_TRUE(send_->ListOutbox(Ctx().get(), list, &page).ok());
  ASSERT_EQ(page.sends_size(), 1);
  EXPECT_EQ(page.sends(0).send_id(), head.send_id());
  ASSERT_FALSE(page.next_page_token().empty());
  list.set_page_token(page.next_page_token());
  ASSERT_TRUE(send_->ListOutbox(Ctx().get(), list, &page).ok());
  ASSERT_EQ(page.sends_size(), 1);
  EXPECT_EQ(page.sends(0).send_id(), behind.send_id());
  EXPECT_TRUE(page.next_page_token().empty());
  (void)again;
}

TEST_F(OutboxTest, RefusesBadOutboxRequests) {
  v1::GetSendStatusRequest get;
  v1::GetSendStatusResponse got;
  EXPECT_EQ(send_->GetSendStatus(Ctx().get(), get, &got).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  get.set_send_id("sd0_unknown");
  EXPECT_EQ(send_->GetSendStatus(Ctx().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  get.set_send_id("bad\r\nid");
  EXPECT_EQ(send_->GetSendStatus(Ctx().get(), get, &got).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListOutboxRequest list;
  v1::ListOutboxResponse listed;
  list.set_page_size(-1);
  EXPECT_EQ(send_->ListOutbox(Ctx().get(), list, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.set_page_size(1001);  // AIP-158: lowered to the maximum, not refused
  EXPECT_TRUE(send_->ListOutbox(Ctx().get(), list, &listed).ok());
  list.set_page_size(0);
  list.set_page_token("garbage");
  EXPECT_EQ(send_->ListOutbox(Ctx().get(), list, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.clear_page_token();
  list.add_states(static_cast<v1::SendState>(42));
  EXPECT_EQ(send_->ListOutbox(Ctx().get(), list, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  list.clear_states();
  list.set_session("no-such-session");
  EXPECT_EQ(send_->ListOutbox(Ctx().get(), list, &listed).error_code(),
            grpc::StatusCode::NOT_FOUND);

  std::string smtp = StartPostfix(/*asynchronous=*/true);
  v1::SendMessageRequest request = Raw(smtp, "x", "dave@example.test");
  request.set_idempotency_key("has space");
  v1::SendMessageResponse response;
  EXPECT_EQ(send_->SendMessage(Ctx().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.set_idempotency_key(std::string(129, 'k'));
  EXPECT_EQ(send_->SendMessage(Ctx().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Bad addresses never reach the outbox.
  request.clear_idempotency_key();
  request.mutable_envelope()->add_rcpt_to("dave@example.test>\r\nRCPT TO:<x@y");
  EXPECT_EQ(send_->SendMessage(Ctx().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListOutboxRequest all;
  ASSERT_TRUE(send_->ListOutbox(Ctx().get(), all, &listed).ok());
  EXPECT_EQ(listed.sends_size(), 0);
}

TEST_F(OutboxTest, TwentyFiveMegabyteAttachmentArrivesByteForByte) {
  std::string smtp = StartPostfix(/*asynchronous=*/true);
  v1::SendMessageRequest request;
  request.set_session(smtp);
  v1::EmailMessage* m = request.mutable_message();
  m->mutable_from()->set_address(Env("MAILPOOL_TEST_USER"));
  m->add_to()->set_address(Env("MAILPOOL_TEST_USER4"));
  m->set_subject(absl::StrCat("mp-outbox ", tag_, " big"));
  m->set_text_body("25 MB attached\r\n");
  v1::Attachment* a = m->add_attachments();
  a->set_file_name("big.bin");
  a->set_content_type("application/octet-stream");
  std::string content(25u << 20, '\0');
  std::mt19937 random(42);
  for (char& c : content) c = static_cast<char>(random());
  a->set_content(content);
  v1::SendMessageResponse queued = Queue(request);
  EXPECT_GT(queued.size(), content.size());
  v1::SendStatus sent = WaitFor(queued.send_id(), Final);
  ASSERT_EQ(sent.state(), v1::SEND_STATE_SENT) << sent.detail();

  std::string pop = StartDavePop3();
  std::vector<v1::EmailMessage> got =
      WaitForSubject(*mailbox_, pop, tag_, 1, std::chrono::seconds(60));
  ASSERT_EQ(got.size(), 1u);
  v1::GetMessageRequest get;
  get.set_session(pop);
  get.set_id(got[0].id());
  get.set_view(v1::MESSAGE_VIEW_FULL);
  get.set_max_attachment_bytes(1);  // the parts, not their bytes
  v1::GetMessageResponse full;
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), get, &full).ok());
  ASSERT_EQ(full.message().attachments_size(), 1);
  v1::GetAttachmentRequest attachment;
  attachment.set_session(pop);
  attachment.set_id(got[0].id());
  attachment.set_part_id(full.message().attachments(0).part_id());
  auto ctx = Ctx(120);
  auto reader = mailbox_->GetAttachment(ctx.get(), attachment);
  std::string bytes;
  v1::GetAttachmentResponse chunk;
  while (reader->Read(&chunk)) bytes.append(chunk.data());
  grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(bytes.size(), content.size());
  EXPECT_TRUE(bytes == content) << "the attachment differs";
  v1::DeleteMessagesRequest del;
  del.set_session(pop);
  del.add_ids(got[0].id());
  v1::DeleteMessagesResponse deleted;
  EXPECT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
}

}  // namespace
}  // namespace mailpool::testing
