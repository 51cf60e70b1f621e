// MailboxService over POP3 sessions, through gRPC, against the real Dovecot POP3 (plain,
// STLS, implicit TLS). Mail is seeded through Postfix's injection port into bob's mailbox
// (MAILPOOL_TEST_USER2), each test with its own marker so that tests may run in parallel.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::HasSubstr;

// --- A tiny SMTP client for seeding (no auth on the injection port). ---

class SmtpSocket {
 public:
  explicit SmtpSocket(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~SmtpSocket() { close(fd_); }
  bool ok() const { return ok_; }
  void Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd_, data.data() + off, data.size() - off);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  // The last line of the next (possibly multi-line) reply.
  std::string Reply() {
    for (;;) {
      size_t lf = buffer_.find('\n');
      if (lf == std::string::npos) {
        char chunk[4096];
        ssize_t n = read(fd_, chunk, sizeof(chunk));
        if (n <= 0) return "EOF";
        buffer_.append(chunk, static_cast<size_t>(n));
        continue;
      }
      std::string line = buffer_.substr(0, lf);
      buffer_.erase(0, lf + 1);
      if (line.size() >= 4 && line[3] == '-') continue;
      return line;
    }
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
  std::string buffer_;
};

// Sends `message` (CRLF lines) to `rcpt`; returns the final reply.
std::string Inject(const std::string& rcpt, const std::string& message) {
  SmtpSocket s(EnvPort("MAILPOOL_TEST_SMTP_INJECT_PORT"));
  if (!s.ok()) return "connect failed";
  s.Reply();
  s.Send("EHLO seed.test\r\n");
  s.Reply();
  s.Send("MAIL FROM:<seed@example.test>\r\n");
  s.Reply();
  s.Send(absl::StrCat("RCPT TO:<", rcpt, ">\r\n"));
  std::string r = s.Reply();
  if (!absl::StartsWith(r, "250")) return r;
  s.Send("DATA\r\n");
  s.Reply();
  std::string stuffed;
  for (absl::string_view line : absl::StrSplit(message, "\r\n")) {
    if (absl::StartsWith(line, ".")) stuffed += ".";
    absl::StrAppend(&stuffed, line, "\r\n");
  }
  // The split yields a trailing empty piece for the final CRLF.
  stuffed.resize(stuffed.size() - 2);
  s.Send(stuffed + ".\r\n");
  r = s.Reply();
  s.Send("QUIT\r\n");
  return r;
}

std::string RandomTag() {
  std::random_device rd;
  return absl::StrCat(absl::Hex(rd()), absl::Hex(rd()));
}

std::string PlainMessage(const std::string& tag, int n, const std::string& body) {
  return absl::StrCat("From: Seed <seed@example.test>\r\nTo: bob@example.test\r\n",
                      "Subject: mp-pop3 ", tag, " #", n, "\r\nMessage-ID: <", tag, ".", n,
                      "@example.test>\r\nDate: Tue, 1 Jul 2025 10:52:37 +0200\r\n",
                      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
                      body);
}

std::string MessageWithAttachment(const std::string& tag) {
  return absl::StrCat(
      "From: Seed <seed@example.test>\r\nTo: bob@example.test\r\nSubject: mp-pop3 ", tag,
      " attachment\r\nMessage-ID: <", tag, ".att@example.test>\r\nMIME-Version: 1.0\r\n",
      "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n",
      "Content-Type: text/plain; charset=us-ascii\r\n\r\nsee attached\r\n--b1\r\n",
      "Content-Type: application/octet-stream\r\n",
      "Content-Disposition: attachment; filename=\"data.bin\"\r\n",
      "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gYXR0YWNobWVudA==\r\n--b1--\r\n");
}

class Pop3MailboxTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    mailbox_ = v1::MailboxService::NewStub(channel_);
    tag_ = RandomTag();
  }
  void TearDown() override {
    for (const std::string& s : open_) Close(s);
    mailbox_.reset();
    DaemonTest::TearDown();
  }

  v1::Credentials Bob() const {
    v1::Credentials c;
    c.set_user(Env("MAILPOOL_TEST_USER2"));
    c.set_password(Env("MAILPOOL_TEST_PASSWORD2"));
    c.set_allow_insecure_auth(true);
    return c;
  }

  std::string StartPop3(const char* port_env, v1::Security security) {
    v1::StartSessionRequest request;
    *request.mutable_pop3()->mutable_server() = Endpoint(EnvPort(port_env), security);
    *request.mutable_pop3()->mutable_credentials() = Bob();
    v1::Session session;
    grpc::Status status = Start(request, &session);
    EXPECT_TRUE(status.ok()) << status.error_message();
    open_.push_back(session.id());
    return session.id();
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return ctx;
  }

  // This test's messages (by the subject marker), oldest first.
  std::vector<v1::EmailMessage> Mine(const std::string& session) {
    return FindBySubject(*mailbox_, session, tag_);
  }

  // Refreshes until `count` of this test's messages are visible (bounded).
  std::vector<v1::EmailMessage> WaitForMine(const std::string& session, size_t count) {
    return WaitForSubject(*mailbox_, session, tag_, count, std::chrono::seconds(20));
  }

  // Deletes this test's messages and commits (Refresh).
  void CleanUp(const std::string& session) {
    std::vector<v1::EmailMessage> mine = Mine(session);
    if (mine.empty()) return;
    v1::DeleteMessagesRequest request;
    request.set_session(session);
    for (const auto& m : mine) request.add_ids(m.id());
    v1::DeleteMessagesResponse response;
    EXPECT_TRUE(mailbox_->DeleteMessages(Ctx().get(), request, &response).ok());
    v1::RefreshRequest refresh;
    refresh.set_session(session);
    v1::RefreshResponse r;
    EXPECT_TRUE(mailbox_->Refresh(Ctx().get(), refresh, &r).ok());
  }

  std::string StreamAll(const std::string& session, const std::string& id, uint32_t chunk,
                        uint64_t offset = 0, uint64_t* total = nullptr) {
    v1::StreamMessageRequest request;
    request.set_session(session);
    request.set_id(id);
    request.set_chunk_size(chunk);
    request.set_offset(offset);
    auto ctx = Ctx();
    auto reader = mailbox_->StreamMessage(ctx.get(), request);
    std::string out;
    v1::StreamMessageResponse r;
    while (reader->Read(&r)) {
      EXPECT_EQ(r.offset(), offset + out.size());
      EXPECT_FALSE(r.data().empty());
      EXPECT_LE(r.data().size(), chunk);
      if (total) *total = r.total_size();
      out += r.data();
    }
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return out;
  }

  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::string tag_;
  std::vector<std::string> open_;
};

struct Mode {
  const char* name;
  const char* port_env;
  v1::Security security;
};
std::ostream& operator<<(std::ostream& os, const Mode& m) { return os << m.name; }

class Pop3MailboxModeTest : public Pop3MailboxTest, public ::testing::WithParamInterface<Mode> {};

TEST_P(Pop3MailboxModeTest, ListsReadsStreamsSearchesDeletesAndRefreshes) {
  const std::string rcpt = Env("MAILPOOL_TEST_USER2");
  const std::string first = PlainMessage(tag_, 1, "hello\r\n.leading dot\r\n..two dots\r\n");
  std::string big_body;
  for (int i = 0; i < 3000; ++i) absl::StrAppend(&big_body, "line ", i, " of a larger body\r\n");
  const std::string second = PlainMessage(tag_, 2, big_body + "needle-" + tag_ + "\r\n");
  ASSERT_THAT(Inject(rcpt, first), HasSubstr("250"));
  ASSERT_THAT(Inject(rcpt, second), HasSubstr("250"));
  ASSERT_THAT(Inject(rcpt, MessageWithAttachment(tag_)), HasSubstr("250"));

  std::string session = StartPop3(GetParam().port_env, GetParam().security);
  // `mine` is in arrival order, which Postfix does not promise to keep: the messages are
  // told apart by subject.
  std::vector<v1::EmailMessage> mine = WaitForMine(session, 3);
  ASSERT_EQ(mine.size(), 3u);
  auto by_subject = [&](absl::string_view suffix) {
    for (const auto& m : mine) {
      if (absl::EndsWith(m.subject(), suffix)) return m;
    }
    ADD_FAILURE() << "no message " << suffix;
    return v1::EmailMessage();
  };
  const v1::EmailMessage m1 = by_subject(" #1"), m2 = by_subject(" #2"),
                         with_attachment = by_subject(" attachment");
  EXPECT_EQ(m1.subject(), absl::StrCat("mp-pop3 ", tag_, " #1"));
  EXPECT_EQ(m1.folder(), "INBOX");
  EXPECT_FALSE(m1.uidl().empty());
  EXPECT_TRUE(absl::StartsWith(m1.id(), "p1."));
  EXPECT_TRUE(m1.has_receive_time());

  // Status: the snapshot.
  v1::GetMailboxStatusRequest status_request;
  status_request.set_session(session);
  v1::GetMailboxStatusResponse status;
  ASSERT_TRUE(mailbox_->GetMailboxStatus(Ctx().get(), status_request, &status).ok());
  EXPECT_GE(status.status().message_count(), 3u);
  EXPECT_GT(status.status().size(), 0u);
  EXPECT_GT(status.status().snapshot_time().seconds(), 0);
  EXPECT_EQ(status.status().folder(), "INBOX");

  // Paging through every message, newest first, two at a time: no repeats, no gaps.
  std::vector<std::string> ids;
  std::string token;
  uint32_t total = 0;
  for (int page = 0; page < 10000; ++page) {
    v1::ListMessagesRequest list;
    list.set_session(session);
    list.set_view(v1::MESSAGE_VIEW_BASIC);
    list.set_page_size(2);
    list.set_page_token(token);
    v1::ListMessagesResponse response;
    grpc::Status s = mailbox_->ListMessages(Ctx().get(), list, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    total = response.total_count();
    for (const auto& m : response.messages()) ids.push_back(m.id());
    token = response.next_page_token();
    if (token.empty()) break;
  }
  EXPECT_EQ(ids.size(), total);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  // Newest first: this test's messages appear in reverse arrival order.
  auto position = [&](const std::string& id) {
    return std::find(ids.begin(), ids.end(), id) - ids.begin();
  };
  EXPECT_LT(position(mine[2].id()), position(mine[1].id()));
  EXPECT_LT(position(mine[1].id()), position(mine[0].id()));
  EXPECT_LT(position(mine[0].id()), static_cast<long>(ids.size()));

  // RAW: the delivered source ends with exactly what was sent (the server prepends
  // Return-Path / Received); StreamMessage gives the same bytes in chunks.
  v1::GetMessageRequest get;
  get.set_session(session);
  get.set_id(m2.id());
  get.set_view(v1::MESSAGE_VIEW_RAW);
  v1::GetMessageResponse raw;
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), get, &raw).ok());
  const std::string& source = raw.message().source();
  EXPECT_TRUE(absl::EndsWith(source, second)) << source.substr(0, 400);
  EXPECT_EQ(raw.message().size(), source.size());
  uint64_t total_size = 0;
  EXPECT_EQ(StreamAll(session, m2.id(), 1000, 0, &total_size), source);
  EXPECT_EQ(total_size, source.size());
  ASSERT_GT(source.size(), 12345u);
  EXPECT_EQ(StreamAll(session, m2.id(), 4096, 12345), source.substr(12345));
  get.set_id(m1.id());
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), get, &raw).ok());
  EXPECT_TRUE(absl::EndsWith(raw.message().source(), first));
  EXPECT_TRUE(raw.message().flags().seen());

  // FULL and HEADERS views.
  get.set_view(v1::MESSAGE_VIEW_FULL);
  v1::GetMessageResponse full;
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), get, &full).ok());
  EXPECT_THAT(full.message().text_body(), HasSubstr(".leading dot"));
  EXPECT_EQ(full.message().message_id(), absl::StrCat(tag_, ".1@example.test"));
  get.set_view(v1::MESSAGE_VIEW_HEADERS);
  v1::GetMessageResponse headers;
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), get, &headers).ok());
  EXPECT_EQ(headers.message().from().address(), "seed@example.test");
  EXPECT_TRUE(headers.message().text_body().empty());

  // Attachment, streamed.
  get.set_id(with_attachment.id());
  get.set_view(v1::MESSAGE_VIEW_FULL);
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), get, &full).ok());
  ASSERT_EQ(full.message().attachments_size(), 1);
  v1::GetAttachmentRequest att;
  att.set_session(session);
  att.set_id(with_attachment.id());
  att.set_part_id(full.message().attachments(0).part_id());
  att.set_chunk_size(5);
  auto att_ctx = Ctx();
  auto reader = mailbox_->GetAttachment(att_ctx.get(), att);
  v1::GetAttachmentResponse chunk;
  std::string content;
  std::string file_name;
  while (reader->Read(&chunk)) {
    if (chunk.has_attachment()) file_name = chunk.attachment().file_name();
    content += chunk.data();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(file_name, "data.bin");
  EXPECT_EQ(content, "hello attachment");

  // Search: body criteria download bodies, header criteria do not.
  v1::SearchMessagesRequest search;
  search.set_session(session);
  search.mutable_criteria()->set_body(absl::StrCat("needle-", tag_));
  search.set_view(v1::MESSAGE_VIEW_BASIC);
  v1::SearchMessagesResponse found;
  ASSERT_TRUE(mailbox_->SearchMessages(Ctx().get(), search, &found).ok());
  ASSERT_EQ(found.messages_size(), 1);
  EXPECT_EQ(found.messages(0).id(), m2.id());
  search.clear_criteria();
  search.mutable_criteria()->set_subject(tag_);
  search.mutable_criteria()->add_none_of()->set_subject("attachment");
  search.mutable_criteria()->set_larger(10000);
  ASSERT_TRUE(mailbox_->SearchMessages(Ctx().get(), search, &found).ok());
  ASSERT_EQ(found.messages_size(), 1);
  EXPECT_EQ(found.messages(0).id(), m2.id());
  search.clear_criteria();
  search.mutable_criteria()->set_message_id(absl::StrCat("<", tag_, ".att@example.test>"));
  ASSERT_TRUE(mailbox_->SearchMessages(Ctx().get(), search, &found).ok());
  ASSERT_EQ(found.messages_size(), 1);
  EXPECT_EQ(found.messages(0).id(), with_attachment.id());
  // Paged search (EmailSeekFirst style).
  search.clear_criteria();
  search.mutable_criteria()->set_subject(tag_);
  search.set_page_size(1);
  ASSERT_TRUE(mailbox_->SearchMessages(Ctx().get(), search, &found).ok());
  EXPECT_EQ(found.total_count(), 3u);
  ASSERT_FALSE(found.next_page_token().empty());
  search.set_page_token(found.next_page_token());
  ASSERT_TRUE(mailbox_->SearchMessages(Ctx().get(), search, &found).ok());
  ASSERT_EQ(found.messages_size(), 1);
  EXPECT_EQ(found.messages(0).id(), mine[1].id());

  // Delete: pending until QUIT, hidden at once; Refresh commits.
  v1::DeleteMessagesRequest del;
  del.set_session(session);
  del.add_ids(mine[0].id());
  v1::DeleteMessagesResponse deleted;
  ASSERT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
  EXPECT_EQ(deleted.deleted_count(), 1u);
  EXPECT_TRUE(deleted.pending_until_quit());
  ASSERT_TRUE(mailbox_->GetMailboxStatus(Ctx().get(), status_request, &status).ok());
  EXPECT_EQ(status.status().pending_deletions(), 1u);
  get.set_id(mine[0].id());
  v1::GetMessageResponse gone;
  EXPECT_EQ(mailbox_->GetMessage(Ctx().get(), get, &gone).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::RefreshRequest refresh;
  refresh.set_session(session);
  v1::RefreshResponse refreshed;
  ASSERT_TRUE(mailbox_->Refresh(Ctx().get(), refresh, &refreshed).ok());
  EXPECT_EQ(refreshed.committed_deletions(), 1u);
  EXPECT_THAT(refreshed.server_reply(), HasSubstr("+OK"));
  EXPECT_EQ(refreshed.status().pending_deletions(), 0u);
  auto after = Mine(session);
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].id(), mine[1].id());  // UIDL IDs survive the new snapshot
  EXPECT_EQ(after[1].id(), mine[2].id());
  auto grpc_status = mailbox_->GetMessage(Ctx().get(), get, &gone);
  EXPECT_EQ(grpc_status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(grpc_status.error_message(), HasSubstr("not in the mailbox"));

  CleanUp(session);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, Pop3MailboxModeTest,
    ::testing::Values(Mode{"Plain", "MAILPOOL_TEST_POP3_PORT", v1::SECURITY_PLAIN},
                      Mode{"StartTls", "MAILPOOL_TEST_POP3_PORT", v1::SECURITY_STARTTLS},
                      Mode{"ImplicitTls", "MAILPOOL_TEST_POP3S_PORT", v1::SECURITY_IMPLICIT_TLS}),
    [](const auto& info) { return std::string(info.param.name); });

// mailbox.proto: on POP3 "unread" is "not yet retrieved by this session" (Flags.seen): the
// filter and the criterion follow what this session has read.
TEST_F(Pop3MailboxTest, UnreadIsWhatThisSessionHasNotRetrieved) {
  const std::string rcpt = Env("MAILPOOL_TEST_USER2");
  ASSERT_THAT(Inject(rcpt, PlainMessage(tag_, 1, "one\r\n")), HasSubstr("250"));
  ASSERT_THAT(Inject(rcpt, PlainMessage(tag_, 2, "two\r\n")), HasSubstr("250"));
  std::string session = StartPop3("MAILPOOL_TEST_POP3S_PORT", v1::SECURITY_IMPLICIT_TLS);
  std::vector<v1::EmailMessage> mine = WaitForMine(session, 2);
  ASSERT_EQ(mine.size(), 2u);
  // This test's messages among the unread ones of every page.
  auto unread_mine = [&] {
    std::set<std::string> found;
    v1::ListMessagesRequest list;
    list.set_session(session);
    list.set_filter(v1::MESSAGE_FILTER_UNREAD);
    list.set_view(v1::MESSAGE_VIEW_HEADERS);
    list.set_page_size(50);
    for (int page = 0; page < 100; ++page) {
      v1::ListMessagesResponse listed;
      grpc::Status s = mailbox_->ListMessages(Ctx().get(), list, &listed);
      EXPECT_TRUE(s.ok()) << s.error_message();
      for (const auto& m : listed.messages()) {
        EXPECT_FALSE(m.flags().seen());
        if (absl::StrContains(m.subject(), tag_)) found.insert(m.id());
      }
      if (!s.ok() || listed.next_page_token().empty()) break;
      list.set_page_token(listed.next_page_token());
    }
    return found;
  };
  EXPECT_EQ(unread_mine(), (std::set<std::string>{mine[0].id(), mine[1].id()}));

  v1::GetMessageRequest get;
  get.set_session(session);
  get.set_id(mine[0].id());
  get.set_view(v1::MESSAGE_VIEW_RAW);
  v1::GetMessageResponse raw;
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), get, &raw).ok());
  EXPECT_EQ(unread_mine(), (std::set<std::string>{mine[1].id()}));

  v1::SearchMessagesRequest search;
  search.set_session(session);
  search.mutable_criteria()->set_unread(true);
  search.mutable_criteria()->set_subject(tag_);
  v1::SearchMessagesResponse found;
  grpc::Status s = mailbox_->SearchMessages(Ctx().get(), search, &found);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(found.messages_size(), 1);
  EXPECT_EQ(found.messages(0).id(), mine[1].id());
  CleanUp(session);
}

TEST_F(Pop3MailboxTest, PopOnlyLimitsAreClearErrors) {
  // One message of this test's own, so that a real ID can be made stale below.
  ASSERT_THAT(Inject(Env("MAILPOOL_TEST_USER2"), PlainMessage(tag_, 1, "limits\r\n")),
              HasSubstr("250"));
  std::string session = StartPop3("MAILPOOL_TEST_POP3S_PORT", v1::SECURITY_IMPLICIT_TLS);
  ASSERT_FALSE(WaitForMine(session, 1).empty());
  grpc::Status s;
  v1::ListMessagesRequest list;
  list.set_session(session);
  v1::ListMessagesResponse listed;
  v1::ListFoldersRequest folders;
  folders.set_session(session);
  v1::ListFoldersResponse folder_list;
  s = mailbox_->ListFolders(Ctx().get(), folders, &folder_list);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("IMAP"));

  v1::GetMessageRequest get;
  get.set_session(session);
  get.set_id("p1.AAAAAAAA.eHl6");  // another account
  v1::GetMessageResponse got;
  EXPECT_EQ(mailbox_->GetMessage(Ctx().get(), get, &got).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  get.set_id("not-an-id");
  EXPECT_EQ(mailbox_->GetMessage(Ctx().get(), get, &got).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  get.set_id("bad\r\nid");
  EXPECT_EQ(mailbox_->GetMessage(Ctx().get(), get, &got).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // A stale ID of this account: NOT_FOUND. Take a real ID and change its UIDL.
  list.set_filter(v1::MESSAGE_FILTER_ALL);
  list.set_view(v1::MESSAGE_VIEW_BASIC);
  ASSERT_TRUE(mailbox_->ListMessages(Ctx().get(), list, &listed).ok());
  ASSERT_GT(listed.messages_size(), 0);
  std::vector<std::string> parts = absl::StrSplit(listed.messages(0).id(), '.');
  ASSERT_EQ(parts.size(), 3u);
  get.set_id(absl::StrCat(parts[0], ".", parts[1], ".bm8tc3VjaA"));
  EXPECT_EQ(mailbox_->GetMessage(Ctx().get(), get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(Pop3MailboxTest, OtherSessionKindsAreRoutedClearly) {
  v1::StartSessionRequest smtp;
  *smtp.mutable_smtp()->mutable_server() =
      Endpoint(EnvPort("MAILPOOL_TEST_SMTP_PORT"), v1::SECURITY_STARTTLS);
  *smtp.mutable_smtp()->mutable_credentials() = Bob();
  v1::Session smtp_session;
  ASSERT_TRUE(Start(smtp, &smtp_session).ok());
  open_.push_back(smtp_session.id());
  v1::GetMailboxStatusRequest status;
  status.set_session(smtp_session.id());
  v1::GetMailboxStatusResponse response;
  grpc::Status s = mailbox_->GetMailboxStatus(Ctx().get(), status, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("SMTP session has no mailbox"));

  v1::StartSessionRequest imap;
  *imap.mutable_imap()->mutable_server() =
      Endpoint(EnvPort("MAILPOOL_TEST_IMAP_PORT"), v1::SECURITY_STARTTLS);
  *imap.mutable_imap()->mutable_credentials() = Bob();
  v1::Session imap_session;
  ASSERT_TRUE(Start(imap, &imap_session).ok());
  open_.push_back(imap_session.id());
  status.set_session(imap_session.id());
  // Routed to the IMAP mailbox (imap_mailbox_itest covers it), not refused as POP3 or SMTP.
  grpc::Status imap_status = mailbox_->GetMailboxStatus(Ctx().get(), status, &response);
  EXPECT_NE(imap_status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << imap_status.error_message();

  // The legacy combined session reads over its POP3 link.
  ASSERT_THAT(Inject(Env("MAILPOOL_TEST_USER2"), PlainMessage(tag_, 1, "combined\r\n")),
              HasSubstr("250"));
  v1::StartSessionRequest combined;
  *combined.mutable_pop3_smtp()->mutable_pop3() =
      Endpoint(EnvPort("MAILPOOL_TEST_POP3S_PORT"), v1::SECURITY_IMPLICIT_TLS);
  *combined.mutable_pop3_smtp()->mutable_smtp() =
      Endpoint(EnvPort("MAILPOOL_TEST_SMTP_PORT"), v1::SECURITY_STARTTLS);
  *combined.mutable_pop3_smtp()->mutable_credentials() = Bob();
  v1::Session combined_session;
  grpc::Status started = Start(combined, &combined_session);
  ASSERT_TRUE(started.ok()) << started.error_message();
  open_.push_back(combined_session.id());
  // Addressed through the routing header only.
  auto mine = WaitForMine(combined_session.id(), 1);
  ASSERT_EQ(mine.size(), 1u);
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-mailpool-session", combined_session.id());
  v1::GetMessageRequest get;
  get.set_id(mine[0].id());
  get.set_view(v1::MESSAGE_VIEW_FULL);
  v1::GetMessageResponse got;
  ASSERT_TRUE(mailbox_->GetMessage(&ctx, get, &got).ok());
  EXPECT_EQ(got.message().text_body(), "combined\r\n");
  CleanUp(combined_session.id());
}

}  // namespace
}  // namespace mailpool::testing
