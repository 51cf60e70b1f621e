// Recovery through gRPC, with tests/fakes/fault_proxy between the daemon and the real
// Dovecot/Postfix: the next call after a drop succeeds without an error, a send cut under
// DATA says it may have happened, a stalled server ends the call within its deadline and
// the connection left mid-command is reset, POP3 message IDs survive the re-login, an IMAP
// stream cut mid-message resumes where it stopped, and an IMAP call queued behind a stalled
// one leaves the queue when its caller gives up.
#include <future>

#include "absl/strings/match.h"
#include "tests/fakes/fault_proxy.h"
#include "tests/integration/imap_seed.h"
#include "tests/integration/recovery_fixture.h"

namespace mailpool::testing {
namespace {

std::unique_ptr<FaultProxy> ProxyTo(const char* port_env) {
  auto proxy = FaultProxy::Start("127.0.0.1", static_cast<uint16_t>(EnvPort(port_env)));
  EXPECT_TRUE(proxy.ok()) << proxy.status();
  return proxy.ok() ? std::move(*proxy) : nullptr;
}

TEST_F(RecoveryTest, Pop3CallAfterADropSucceeds) {
  auto proxy = ProxyTo("MAILPOOL_TEST_POP3_PORT");
  std::string id = StartErin(/*pop3=*/true, proxy->port());
  ASSERT_TRUE(MailboxStatus(id).ok());
  proxy->DropAll();
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BROKEN));
  v1::Session broken = Get(id);
  EXPECT_FALSE(broken.last_error().empty());

  grpc::Status status = MailboxStatus(id);
  EXPECT_TRUE(status.ok()) << status.error_message();
  v1::ListMessagesRequest list;
  list.set_session(id);
  v1::ListMessagesResponse listed;
  status = mailbox_->ListMessages(Ctx().get(), list, &listed);
  EXPECT_TRUE(status.ok()) << status.error_message();
  v1::Session s = Get(id);
  EXPECT_EQ(s.state(), v1::SESSION_STATE_READY);
  EXPECT_EQ(s.reconnect_count(), 1u);
  EXPECT_EQ(s.last_error(), broken.last_error());
}

TEST_F(RecoveryTest, Pop3MessageIdsAndDeletionsSurviveTheRelogin) {
  std::string tag = Tag();
  std::string smtp = StartErin(/*pop3=*/false, EnvPort("MAILPOOL_TEST_SMTP_PORT"));
  ASSERT_TRUE(Send(smtp, tag + " keep").ok());
  ASSERT_TRUE(Send(smtp, tag + " delete").ok());
  auto proxy = ProxyTo("MAILPOOL_TEST_POP3_PORT");
  std::string pop3 = StartErin(/*pop3=*/true, proxy->port());
  std::vector<v1::EmailMessage> mine =
      WaitForSubject(*mailbox_, pop3, tag, 2, std::chrono::seconds(30));
  ASSERT_EQ(mine.size(), 2u);
  const v1::EmailMessage& keep = absl::StrContains(mine[0].subject(), "keep") ? mine[0] : mine[1];
  const v1::EmailMessage& doomed = &keep == &mine[0] ? mine[1] : mine[0];

  v1::DeleteMessagesRequest del;
  del.set_session(pop3);
  del.add_ids(doomed.id());
  v1::DeleteMessagesResponse deleted;
  ASSERT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());

  proxy->DropAll();  // the server forgets the pending DELE and renumbers on the new login
  ASSERT_TRUE(WaitState(pop3, v1::SESSION_STATE_BROKEN));
  v1::GetMessageRequest get;
  get.set_session(pop3);
  get.set_id(keep.id());
  get.set_view(v1::MESSAGE_VIEW_FULL);
  v1::GetMessageResponse got;
  grpc::Status status = mailbox_->GetMessage(Ctx().get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.message().subject(), keep.subject()) << "the ID still names the same message";
  EXPECT_EQ(Get(pop3).reconnect_count(), 1u);

  // The deletion asked before the drop is still pending and commits at QUIT.
  v1::RefreshRequest refresh;
  refresh.set_session(pop3);
  v1::RefreshResponse refreshed;
  ASSERT_TRUE(mailbox_->Refresh(Ctx().get(), refresh, &refreshed).ok());
  std::vector<v1::EmailMessage> left = FindBySubject(*mailbox_, pop3, tag);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].subject(), keep.subject());
  // Clean up.
  del.clear_ids();
  del.add_ids(left[0].id());
  EXPECT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
  EXPECT_TRUE(mailbox_->Refresh(Ctx().get(), refresh, &refreshed).ok());
}

TEST_F(RecoveryTest, SmtpSendAfterADropSucceeds) {
  auto proxy = ProxyTo("MAILPOOL_TEST_SMTP_PORT");
  std::string id = StartErin(/*pop3=*/false, proxy->port());
  std::string tag = Tag();
  ASSERT_TRUE(Send(id, tag).ok());
  proxy->DropAll();
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BROKEN));
  grpc::Status status = Send(id, tag);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Get(id).reconnect_count(), 1u);
}

// The daemon stopping with a short grace, as SIGTERM stops it.
class ShutdownTest : public RecoveryTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    RecoveryTest::Configure(options);
    options.shutdown_grace = absl::Seconds(4);  // the pool answers 1 s before gRPC cancels
  }
};

TEST_F(ShutdownTest, ASendRunningWhenTheDaemonShutsDownSaysItMayHaveHappened) {
  auto proxy = ProxyTo("MAILPOOL_TEST_SMTP_PORT");
  std::string id = StartErin(/*pop3=*/false, proxy->port());
  proxy->SetStall(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto sent = std::async(std::launch::async, [&] { return Send(id, Tag(), &ctx); });
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BUSY));
  // SIGTERM's path: the server stops, the grace runs out, every session's calls are failed.
  server_->Shutdown();
  grpc::Status status = sent.get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(ErrorDetailOf(ctx).reason(), "OUTCOME_UNKNOWN") << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "may or may not have been carried out"))
      << status.error_message();
  proxy->SetStall(false);
  server_.reset();
}

TEST_F(RecoveryTest, ASendCutUnderItSaysItMayHaveHappened) {
  auto proxy = ProxyTo("MAILPOOL_TEST_SMTP_PORT");
  std::string id = StartErin(/*pop3=*/false, proxy->port());
  proxy->SetStall(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto sent = std::async(std::launch::async, [&] { return Send(id, Tag(), &ctx); });
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BUSY));
  proxy->DropAll();
  proxy->SetStall(false);
  grpc::Status status = sent.get();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(ErrorDetailOf(ctx).reason(), "OUTCOME_UNKNOWN");
  EXPECT_EQ(ErrorDetailOf(ctx).protocol(), v1::PROTOCOL_SMTP);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "may or may not have been carried out"))
      << status.error_message();
  // The session recovers for the next send.
  EXPECT_TRUE(Send(id, Tag()).ok());
}

TEST_F(RecoveryTest, AStalledServerEndsTheCallByItsDeadlineAndTheConnectionIsReset) {
  auto proxy = ProxyTo("MAILPOOL_TEST_SMTP_PORT");
  std::string id = StartErin(/*pop3=*/false, proxy->port());
  proxy->SetStall(true);
  v1::CheckAddressRequest check;
  check.set_session(id);
  check.set_address(Env("MAILPOOL_TEST_USER5"));
  check.set_mode(v1::CHECK_MODE_SERVER);
  v1::CheckAddressResponse checked;
  auto begin = std::chrono::steady_clock::now();
  grpc::Status status = send_->CheckAddress(Ctx(2).get(), check, &checked);
  auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_LT(took, std::chrono::seconds(10));  // not the 10-minute silence timeout
  // The cancellation reached the daemon: the connection left mid-command is reset, not
  // reused in an unknown state.
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BROKEN));
  EXPECT_TRUE(absl::StrContains(Get(id).last_error(), "reset")) << Get(id).last_error();
  proxy->SetStall(false);
  status = send_->CheckAddress(Ctx().get(), check, &checked);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(checked.result(), v1::CHECK_RESULT_VALID);
  EXPECT_EQ(Get(id).reconnect_count(), 1u);
  EXPECT_EQ(proxy->accepted(), 2);
}

TEST_F(RecoveryTest, CloseOnAStalledServerEndsByTheCallersDeadlineAndForgetsTheSession) {
  auto proxy = ProxyTo("MAILPOOL_TEST_POP3_PORT");
  std::string id = StartErin(/*pop3=*/true, proxy->port());
  ASSERT_TRUE(MailboxStatus(id).ok());
  proxy->SetStall(true);  // QUIT goes out, no answer comes back
  v1::CloseSessionRequest close;
  close.set_session(id);
  v1::CloseSessionResponse closed;
  auto begin = std::chrono::steady_clock::now();
  grpc::Status status = sessions_->CloseSession(Ctx(2).get(), close, &closed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  // The deadline reached the daemon: the session is dropped and forgotten, well before the
  // 10-minute silence timeout would have ended the QUIT.
  grpc::Status got;
  do {
    v1::GetSessionRequest get;
    get.set_session(id);
    v1::GetSessionResponse response;
    got = sessions_->GetSession(Ctx().get(), get, &response);
    std::this_thread::yield();
  } while (got.ok() && std::chrono::steady_clock::now() - begin < std::chrono::seconds(10));
  EXPECT_EQ(got.error_code(), grpc::StatusCode::NOT_FOUND) << got.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(10));
  proxy->SetStall(false);
  // Nothing was left behind: the proxy's connections to the daemon are gone.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (proxy->open() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  EXPECT_EQ(proxy->open(), 0);
}

TEST_F(RecoveryTest, ASlowServerStillAnswersAndOnlyItsSessionWaits) {
  auto slow_proxy = ProxyTo("MAILPOOL_TEST_SMTP_PORT");
  std::string slow = StartErin(/*pop3=*/false, slow_proxy->port());
  std::string fast = StartErin(/*pop3=*/false, EnvPort("MAILPOOL_TEST_SMTP_PORT"));
  slow_proxy->SetStall(true);
  v1::CheckAddressRequest check;
  check.set_address(Env("MAILPOOL_TEST_USER5"));
  check.set_mode(v1::CHECK_MODE_SERVER);
  check.set_session(slow);
  grpc::ClientContext slow_ctx;
  slow_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::CheckAddressResponse slow_answer;
  auto pending = std::async(std::launch::async,
                            [&] { return send_->CheckAddress(&slow_ctx, check, &slow_answer); });
  ASSERT_TRUE(WaitState(slow, v1::SESSION_STATE_BUSY));
  // Another session on the same loop is not held up by the stalled one.
  check.set_session(fast);
  for (int i = 0; i < 5; ++i) {
    v1::CheckAddressResponse r;
    grpc::Status s = send_->CheckAddress(Ctx().get(), check, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(pending.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  // The stalled server comes back, slowly (16 bytes every 10 ms).
  slow_proxy->SetSlow(16, absl::Milliseconds(10));
  slow_proxy->SetStall(false);
  grpc::Status s = pending.get();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(slow_answer.result(), v1::CHECK_RESULT_VALID);
}

TEST_F(RecoveryTest, ATruncatedGreetingFailsTheStartCleanly) {
  auto proxy = ProxyTo("MAILPOOL_TEST_POP3_PORT");
  proxy->TruncateAfter(5);  // "+OK D" and the server hangs up
  v1::StartSessionRequest request;
  *request.mutable_pop3()->mutable_server() = Endpoint(proxy->port(), v1::SECURITY_STARTTLS);
  *request.mutable_pop3()->mutable_credentials() = Erin();
  grpc::Status status = Start(request, nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  proxy->TruncateAfter(0);
  proxy->ResetAfter(200);  // mid-login: after the greeting and capabilities
  status = Start(request, nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

class MailboxRecoveryTest : public RecoveryTest {
 protected:
  // IMAP session of erin over STARTTLS to 127.0.0.1:`port` with `folder` selected.
  std::string StartImap(int port, const std::string& folder) {
    v1::StartSessionRequest request;
    *request.mutable_imap()->mutable_server() = Endpoint(port, v1::SECURITY_STARTTLS);
    *request.mutable_imap()->mutable_credentials() = Erin();
    request.mutable_imap()->set_initial_folder(folder);
    v1::Session session;
    grpc::Status status = Start(request, &session);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (status.ok()) open_.push_back(session.id());
    return session.id();
  }
  // Streams message `message_id` of session `id` slowly through `proxy`, cuts the
  // connection after the first piece, and returns everything the stream delivered.
  std::string StreamWithADrop(FaultProxy& proxy, const std::string& id,
                              const std::string& message_id, grpc::Status* status) {
    // Slow enough that the cut comes while the message is on the wire.
    proxy.SetSlow(32 * 1024, absl::Milliseconds(10));
    v1::StreamMessageRequest request;
    request.set_session(id);
    request.set_id(message_id);
    request.set_chunk_size(16 * 1024);
    auto ctx = Ctx(120);
    auto reader = mailbox_->StreamMessage(ctx.get(), request);
    std::string out;
    v1::StreamMessageResponse piece;
    if (reader->Read(&piece)) out += piece.data();
    proxy.DropAll();
    proxy.SetSlow(0, absl::ZeroDuration());
    while (reader->Read(&piece)) {
      EXPECT_EQ(piece.offset(), out.size());
      out += piece.data();
    }
    *status = reader->Finish();
    return out;
  }

  // Polls /metrics until `series` reaches `value` or `seconds` pass; the last value seen.
  double WaitMetric(const std::string& series, double value, int seconds) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    double seen = MetricValue(ScrapeMetrics(), series);
    while (seen < value && std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();
      seen = MetricValue(ScrapeMetrics(), series);
    }
    return seen;
  }
  static std::string Finished(const char* service, const char* method) {
    return absl::StrCat("mailpool_grpc_call_duration_seconds_count{service=\"mailpool.v1.", service,
                        "\",method=\"", method, "\"}");
  }

  grpc::Status FolderStatus(const std::string& id, int seconds) {
    v1::GetMailboxStatusRequest request;
    request.set_session(id);
    v1::GetMailboxStatusResponse response;
    return mailbox_->GetMailboxStatus(Ctx(seconds).get(), request, &response);
  }
};

TEST_F(MailboxRecoveryTest, ImapStreamAndAttachmentCutMidMessageComeOutWhole) {
  // A folder of its own holding one large message (about 4 MB on the wire).
  std::string folder = absl::StrCat("recovery-stream-", Tag().substr(Tag().rfind('-') + 1));
  RawImap raw;
  ASSERT_TRUE(raw.Connect(EnvPort("MAILPOOL_TEST_IMAP_PORT")));
  ASSERT_TRUE(raw.Login(Env("MAILPOOL_TEST_USER5"), Env("MAILPOOL_TEST_PASSWORD5")));
  ASSERT_TRUE(RawImap::Ok(raw.Command(absl::StrCat("CREATE ", Quoted(folder)))));
  Seeded large = LargeMessage("recovery-stream", 3 << 20);
  ASSERT_TRUE(RawImap::Ok(raw.Append(folder, large.source)));

  auto proxy = ProxyTo("MAILPOOL_TEST_IMAP_PORT");
  std::string id = StartImap(proxy->port(), folder);
  v1::ListMessagesRequest list;
  list.set_session(id);
  list.set_view(v1::MESSAGE_VIEW_BASIC);
  v1::ListMessagesResponse listed;
  grpc::Status status = mailbox_->ListMessages(Ctx().get(), list, &listed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(listed.messages_size(), 1);

  std::string out = StreamWithADrop(*proxy, id, listed.messages(0).id(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(out.size(), large.source.size());
  EXPECT_TRUE(out == large.source) << "the resumed stream differs from the message";
  EXPECT_EQ(Get(id).reconnect_count(), 1u);
  EXPECT_EQ(proxy->accepted(), 2);

  // The attachment (part 2, 3 MiB) is read whole before it is sent: the cut comes once
  // a megabyte of its FETCH went by, and the repeated FETCH must not add to what the
  // lost one gathered.
  proxy->SetSlow(32 * 1024, absl::Milliseconds(10));
  uint64_t at_start = proxy->server_bytes();
  auto fetched = std::async(std::launch::async, [&] {
    v1::GetAttachmentRequest get;
    get.set_session(id);
    get.set_id(listed.messages(0).id());
    get.set_part_id("2");
    auto ctx = Ctx(120);
    auto reader = mailbox_->GetAttachment(ctx.get(), get);
    std::string content;
    v1::GetAttachmentResponse piece;
    while (reader->Read(&piece)) content += piece.data();
    grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return content;
  });
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (proxy->server_bytes() < at_start + (1 << 20) && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
  }
  proxy->DropAll();
  proxy->SetSlow(0, absl::ZeroDuration());
  std::string content = fetched.get();
  EXPECT_EQ(content.size(), size_t{3} << 20);
  EXPECT_TRUE(content == LargeBytes(3 << 20)) << "the refetched attachment differs";
  EXPECT_EQ(Get(id).reconnect_count(), 2u);
  EXPECT_TRUE(RawImap::Ok(raw.Command(absl::StrCat("DELETE ", Quoted(folder)))));
}

TEST_F(MailboxRecoveryTest, APop3StreamCutMidMessageResumesOnTheNewConnection) {
  std::string tag = absl::StrCat("recovery-pop3-", Tag().substr(Tag().rfind('-') + 1));
  RawImap raw;
  ASSERT_TRUE(raw.Connect(EnvPort("MAILPOOL_TEST_IMAP_PORT")));
  ASSERT_TRUE(raw.Login(Env("MAILPOOL_TEST_USER5"), Env("MAILPOOL_TEST_PASSWORD5")));
  Seeded large = LargeMessage(tag, 3 << 20);
  ASSERT_TRUE(RawImap::Ok(raw.Append("INBOX", large.source)));

  auto proxy = ProxyTo("MAILPOOL_TEST_POP3_PORT");
  std::string id = StartErin(/*pop3=*/true, proxy->port());
  v1::ListMessagesRequest list;
  list.set_session(id);
  list.set_view(v1::MESSAGE_VIEW_HEADERS);
  list.set_page_size(1000);
  v1::ListMessagesResponse listed;
  grpc::Status status = mailbox_->ListMessages(Ctx().get(), list, &listed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::string message_id;
  for (const auto& m : listed.messages()) {
    if (m.subject() == large.subject) message_id = m.id();
  }
  ASSERT_FALSE(message_id.empty());

  std::string out = StreamWithADrop(*proxy, id, message_id, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(out.size(), large.source.size());
  EXPECT_TRUE(out == large.source) << "the resumed stream differs from the message";
  EXPECT_EQ(Get(id).reconnect_count(), 1u);
  ASSERT_TRUE(RawImap::Ok(raw.Command("SELECT INBOX")));
  std::string found = raw.Command(absl::StrCat("UID SEARCH SUBJECT ", Quoted(tag)));
  size_t at = found.find("* SEARCH ");
  ASSERT_NE(at, std::string::npos) << found;
  std::string uids = found.substr(at + 9, found.find("\r\n", at) - at - 9);
  EXPECT_TRUE(RawImap::Ok(raw.Command(absl::StrCat("UID STORE ", uids, " +FLAGS (\\Deleted)"))));
  EXPECT_TRUE(RawImap::Ok(raw.Command("EXPUNGE")));
}

TEST_F(MailboxRecoveryTest, AStalledServerEndsTheCallsByTheirDeadlinesAndAQueuedOneLeavesAtOnce) {
  auto proxy = ProxyTo("MAILPOOL_TEST_IMAP_PORT");
  std::string id = StartImap(proxy->port(), "INBOX");
  ASSERT_TRUE(FolderStatus(id, 60).ok());
  const std::string finished = Finished("MailboxService", "GetMailboxStatus");
  double before = MetricValue(ScrapeMetrics(), finished);

  proxy->SetStall(true);
  auto running = std::async(std::launch::async, [&] { return FolderStatus(id, 8); });
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BUSY));
  // A second call queues behind the stalled one; its caller gives up after a second, and
  // the daemon answers it then, not when the first call ends.
  grpc::Status queued = FolderStatus(id, 1);
  EXPECT_EQ(queued.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << queued.error_message();
  EXPECT_EQ(WaitMetric(finished, before + 1, 6), before + 1)
      << "the queued call was not answered while the first one still waited";
  EXPECT_EQ(running.wait_for(std::chrono::seconds(0)), std::future_status::timeout);

  // The running call ends by its deadline, not the 10-minute silence timeout, and the
  // connection it left mid-command is reset.
  grpc::Status first = running.get();
  EXPECT_EQ(first.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << first.error_message();
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BROKEN));
  EXPECT_TRUE(absl::StrContains(Get(id).last_error(), "reset")) << Get(id).last_error();
  proxy->SetStall(false);
  grpc::Status again = FolderStatus(id, 60);
  EXPECT_TRUE(again.ok()) << again.error_message();
  EXPECT_EQ(Get(id).reconnect_count(), 1u);
  EXPECT_EQ(proxy->accepted(), 2);
}

TEST_F(MailboxRecoveryTest, AnSmtpCallQueuedBehindAStalledOneLeavesWhenItsCallerGivesUp) {
  auto proxy = ProxyTo("MAILPOOL_TEST_SMTP_PORT");
  std::string id = StartErin(/*pop3=*/false, proxy->port());
  v1::CheckAddressRequest check;
  check.set_session(id);
  check.set_address(Env("MAILPOOL_TEST_USER5"));
  check.set_mode(v1::CHECK_MODE_SERVER);
  const std::string finished = Finished("SendService", "CheckAddress");
  double before = MetricValue(ScrapeMetrics(), finished);
  proxy->SetStall(true);
  auto running = std::async(std::launch::async, [&] {
    v1::CheckAddressResponse r;
    return send_->CheckAddress(Ctx(8).get(), check, &r);
  });
  ASSERT_TRUE(WaitState(id, v1::SESSION_STATE_BUSY));
  v1::CheckAddressResponse r;
  grpc::Status queued = send_->CheckAddress(Ctx(1).get(), check, &r);
  EXPECT_EQ(queued.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << queued.error_message();
  EXPECT_EQ(WaitMetric(finished, before + 1, 6), before + 1)
      << "the queued call was not answered while the first one still waited";
  EXPECT_EQ(running.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  EXPECT_EQ(running.get().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  proxy->SetStall(false);
  grpc::Status again = send_->CheckAddress(Ctx().get(), check, &r);
  EXPECT_TRUE(again.ok()) << again.error_message();
}

}  // namespace
}  // namespace mailpool::testing
