// MailboxService over IMAP sessions, through gRPC, against the real Dovecot. Every test
// works in carol's mailbox (MAILPOOL_TEST_USER3) in folders of its own, seeded over a raw
// IMAP connection (imap_seed.h) that also plays the "other client" changing the mailbox
// while the daemon lists and watches it.
#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "tests/integration/imap_seed.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 60) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

std::string RandomTag() {
  std::random_device rd;
  return absl::StrCat(absl::Hex(rd() % 0xffffff), absl::Hex(rd() % 0xffff));
}

class ImapMailboxTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    mailbox_ = v1::MailboxService::NewStub(channel_);
    tag_ = absl::StrCat("t", RandomTag());
    ASSERT_TRUE(raw_.Connect(EnvPort("MAILPOOL_TEST_IMAP_PORT")));
    ASSERT_TRUE(raw_.Login(Env("MAILPOOL_TEST_USER3"), Env("MAILPOOL_TEST_PASSWORD3")));
    session_ = StartImap();
    ASSERT_FALSE(session_.empty());
  }

  void TearDown() override {
    for (const std::string& s : open_) Close(s);
    // Leave carol's mailbox as it was: every folder this test made goes.
    std::string listing = raw_.Command(absl::StrCat("LIST \"\" ", Quoted(tag_ + "*")));
    for (const std::string& f : made_) raw_.Command(absl::StrCat("DELETE ", Quoted(f)));
    DaemonTest::TearDown();
  }

  v1::Credentials Carol() const {
    v1::Credentials c;
    c.set_user(Env("MAILPOOL_TEST_USER3"));
    c.set_password(Env("MAILPOOL_TEST_PASSWORD3"));
    return c;
  }

  std::string StartImap(const std::string& folder = "") {
    v1::StartSessionRequest request;
    *request.mutable_imap()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_IMAP_PORT"), v1::SECURITY_STARTTLS);
    *request.mutable_imap()->mutable_credentials() = Carol();
    request.mutable_imap()->set_initial_folder(folder);
    v1::Session session;
    grpc::Status s = Start(request, &session);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok()) open_.push_back(session.id());
    return session.id();
  }

  // A fresh ASCII folder for this test, seeded with `messages`.
  std::string Folder(const std::string& suffix, const std::vector<std::string>& messages = {}) {
    std::string name = absl::StrCat(tag_, "-", suffix);
    EXPECT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("CREATE ", Quoted(name))))) << name;
    made_.push_back(name);
    EXPECT_EQ(raw_.AppendMany(name, messages), messages.size());
    // GNU Mailutils imap4d keeps a folder's UIDVALIDITY only once it was opened read-write:
    // until then every EXAMINE answers the time of day, so IDs from a listing would look
    // stale a second later. Open it read-write once, as a mail client would have.
    EXPECT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("SELECT ", Quoted(name))))) << name;
    EXPECT_TRUE(RawImap::Ok(raw_.Command("UNSELECT"))) << name;
    return name;
  }

  std::vector<v1::EmailMessage> ListAll(const std::string& folder,
                                        v1::MessageView view = v1::MESSAGE_VIEW_HEADERS,
                                        v1::MessageOrder order = v1::MESSAGE_ORDER_OLDEST_FIRST) {
    v1::ListMessagesRequest request;
    request.set_session(session_);
    request.set_folder(folder);
    request.set_view(view);
    request.set_order(order);
    request.set_page_size(view == v1::MESSAGE_VIEW_FULL || view == v1::MESSAGE_VIEW_RAW ? 100
                                                                                        : 1000);
    v1::ListMessagesResponse response;
    grpc::Status s = mailbox_->ListMessages(Ctx().get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {response.messages().begin(), response.messages().end()};
  }

  v1::EmailMessage Get(const std::string& id, v1::MessageView view = v1::MESSAGE_VIEW_FULL,
                       grpc::Status* status = nullptr) {
    v1::GetMessageRequest request;
    request.set_session(session_);
    request.set_id(id);
    request.set_view(view);
    v1::GetMessageResponse response;
    grpc::Status s = mailbox_->GetMessage(Ctx().get(), request, &response);
    if (status != nullptr) {
      *status = s;
    } else {
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    return response.message();
  }

  std::vector<std::string> FolderNames() {
    v1::ListFoldersRequest request;
    request.set_session(session_);
    v1::ListFoldersResponse response;
    grpc::Status s = mailbox_->ListFolders(Ctx().get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> names;
    for (const v1::Folder& f : response.folders()) names.push_back(f.name());
    return names;
  }

  grpc::Status Select(const std::string& folder, bool read_only = false) {
    v1::SelectFolderRequest request;
    request.set_session(session_);
    request.set_folder(folder);
    request.set_read_only(read_only);
    v1::SelectFolderResponse response;
    return mailbox_->SelectFolder(Ctx().get(), request, &response);
  }

  std::string StreamAll(const std::string& id, uint64_t offset, uint32_t chunk,
                        grpc::Status* status, uint64_t* total = nullptr) {
    v1::StreamMessageRequest request;
    request.set_session(session_);
    request.set_id(id);
    request.set_offset(offset);
    request.set_chunk_size(chunk);
    auto ctx = Ctx(120);
    auto reader = mailbox_->StreamMessage(ctx.get(), request);
    std::string out;
    v1::StreamMessageResponse piece;
    while (reader->Read(&piece)) {
      EXPECT_EQ(piece.offset(), offset + out.size());
      EXPECT_FALSE(piece.data().empty());
      EXPECT_LE(piece.data().size(), chunk);
      if (total != nullptr) *total = piece.total_size();
      out += piece.data();
    }
    *status = reader->Finish();
    return out;
  }

  std::string Attachment(const std::string& id, const std::string& part_id,
                         const std::string& content_id, v1::Attachment* meta,
                         grpc::Status* status) {
    v1::GetAttachmentRequest request;
    request.set_session(session_);
    request.set_id(id);
    if (!part_id.empty()) request.set_part_id(part_id);
    if (!content_id.empty()) request.set_content_id(content_id);
    auto ctx = Ctx(120);
    auto reader = mailbox_->GetAttachment(ctx.get(), request);
    std::string out;
    v1::GetAttachmentResponse piece;
    bool first = true;
    while (reader->Read(&piece)) {
      if (first && meta != nullptr) *meta = piece.attachment();
      first = false;
      EXPECT_EQ(piece.offset(), out.size());
      out += piece.data();
    }
    *status = reader->Finish();
    return out;
  }

  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::string tag_;
  std::string session_;
  RawImap raw_;
  std::vector<std::string> open_;
  std::vector<std::string> made_;
};

std::vector<std::string> Sources(const std::vector<Seeded>& corpus) {
  std::vector<std::string> out;
  for (const Seeded& s : corpus) out.push_back(s.source);
  return out;
}

TEST_F(ImapMailboxTest, FoldersWithAwkwardNamesRolesAndCurrentFolder) {
  // Names with a space, a quote, non-ASCII text and the hierarchy delimiter (Dovecot ".",
  // imap4d "/").
  const std::string delim = ImapDelimiter();
  std::vector<std::string> names = {tag_ + " with space", tag_ + " say \"hi\"",
                                    tag_ + " Entwürfe ☕", tag_ + delim + "2024" + delim + "Q1"};
  for (const std::string& name : names) {
    v1::CreateFolderRequest create;
    create.set_session(session_);
    create.set_folder(name);
    create.set_subscribe(true);
    v1::CreateFolderResponse created;
    grpc::Status s = mailbox_->CreateFolder(Ctx().get(), create, &created);
    ASSERT_TRUE(s.ok()) << name << ": " << s.error_message();
    EXPECT_EQ(created.folder().name(), name);
    EXPECT_TRUE(created.folder().subscribed());
    EXPECT_EQ(created.folder().delimiter(), ImapDelimiter());
    made_.push_back(name);
  }
  made_.push_back(tag_ + delim + "2024");
  made_.push_back(tag_);
  // Creating it again: ALREADY_EXISTS.
  v1::CreateFolderRequest again;
  again.set_session(session_);
  again.set_folder(names[0]);
  v1::CreateFolderResponse unused;
  EXPECT_EQ(mailbox_->CreateFolder(Ctx().get(), again, &unused).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  // INBOX cannot be created or deleted; nothing reaches the server.
  again.set_folder("inbox");
  EXPECT_EQ(mailbox_->CreateFolder(Ctx().get(), again, &unused).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::ListFoldersRequest list;
  list.set_session(session_);
  list.set_include_status(true);
  v1::ListFoldersResponse folders;
  ASSERT_TRUE(mailbox_->ListFolders(Ctx().get(), list, &folders).ok());
  ASSERT_GT(folders.folders_size(), 0);
  EXPECT_EQ(folders.folders(0).name(), "INBOX");
  EXPECT_EQ(folders.folders(0).role(), v1::FOLDER_ROLE_INBOX);
  std::map<std::string, v1::Folder> by_name;
  for (const v1::Folder& f : folders.folders()) by_name[f.name()] = f;
  for (const std::string& name : names) {
    ASSERT_TRUE(by_name.count(name)) << name;
    EXPECT_TRUE(by_name[name].selectable());
    EXPECT_TRUE(by_name[name].has_status());
    EXPECT_EQ(by_name[name].status().message_count(), 0u);
  }
  EXPECT_EQ(by_name["Sent"].role(), v1::FOLDER_ROLE_SENT);
  EXPECT_EQ(by_name["Trash"].role(), v1::FOLDER_ROLE_TRASH);
  EXPECT_EQ(by_name["Drafts"].role(), v1::FOLDER_ROLE_DRAFTS);
  EXPECT_EQ(by_name["Junk"].role(), v1::FOLDER_ROLE_JUNK);
  // The parent made implicitly by the hierarchy.
  ASSERT_TRUE(by_name.count(tag_ + delim + "2024"));

  // A pattern within one level.
  list.set_pattern(tag_ + delim + "%");
  list.set_include_status(false);
  ASSERT_TRUE(mailbox_->ListFolders(Ctx().get(), list, &folders).ok());
  ASSERT_EQ(folders.folders_size(), 1);
  EXPECT_EQ(folders.folders(0).name(), tag_ + delim + "2024");

  // Select the non-ASCII one: GetSession shows it; messages appended land there.
  ASSERT_TRUE(Select(names[2]).ok());
  v1::GetSessionRequest get;
  get.set_session(session_);
  v1::GetSessionResponse info;
  ASSERT_TRUE(sessions_->GetSession(Ctx().get(), get, &info).ok());
  EXPECT_EQ(info.session().current_folder(), names[2]);
  v1::AppendMessageRequest append;
  append.set_session(session_);
  append.set_folder(names[2]);
  append.set_source(SmallMessage("in a non-ASCII folder"));
  v1::AppendMessageResponse appended;
  ASSERT_TRUE(mailbox_->AppendMessage(Ctx().get(), append, &appended).ok());
  v1::GetMailboxStatusRequest status;
  status.set_session(session_);
  v1::GetMailboxStatusResponse st;
  ASSERT_TRUE(mailbox_->GetMailboxStatus(Ctx().get(), status, &st).ok());
  EXPECT_EQ(st.status().folder(), names[2]);
  EXPECT_EQ(st.status().message_count(), 1u);
  EXPECT_EQ(st.status().unread_count(), 1u);
  EXPECT_GT(st.status().uid_validity(), 0u);
  EXPECT_GT(st.status().uid_next(), 0u);
  EXPECT_EQ(Get(appended.id()).subject(), "in a non-ASCII folder");

  // Rename the current folder: it stays current under its new name.
  v1::RenameFolderRequest rename;
  rename.set_session(session_);
  rename.set_folder(names[2]);
  rename.set_new_name(tag_ + " renamed ✓");
  v1::RenameFolderResponse renamed;
  grpc::Status r = mailbox_->RenameFolder(Ctx().get(), rename, &renamed);
  ASSERT_TRUE(r.ok()) << r.error_message();
  made_.push_back(rename.new_name());
  EXPECT_EQ(renamed.folder().name(), rename.new_name());
  ASSERT_TRUE(sessions_->GetSession(Ctx().get(), get, &info).ok());
  EXPECT_EQ(info.session().current_folder(), rename.new_name());
  // The old ID named the old folder: stale, never another message.
  grpc::Status stale;
  Get(appended.id(), v1::MESSAGE_VIEW_FULL, &stale);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << stale.error_message();

  // Delete the current folder: INBOX becomes current.
  v1::DeleteFolderRequest del;
  del.set_session(session_);
  del.set_folder(rename.new_name());
  v1::DeleteFolderResponse deleted;
  grpc::Status d = mailbox_->DeleteFolder(Ctx().get(), del, &deleted);
  ASSERT_TRUE(d.ok()) << d.error_message();
  ASSERT_TRUE(sessions_->GetSession(Ctx().get(), get, &info).ok());
  EXPECT_EQ(info.session().current_folder(), "INBOX");
  std::vector<std::string> after = FolderNames();
  EXPECT_EQ(std::count(after.begin(), after.end(), rename.new_name()), 0);
  // A folder that does not exist.
  EXPECT_EQ(Select(tag_ + "-missing").error_code(), grpc::StatusCode::NOT_FOUND);
}

// AppendMessage answers the new message's ID: from APPENDUID (UIDPLUS, Dovecot), else found
// by its Message-ID (imap4d has no UIDPLUS). Here the folder is not the selected one.
TEST_F(ImapMailboxTest, AppendAnswersTheNewMessagesId) {
  std::string folder = Folder("append-id", {SmallMessage("already there")});
  v1::AppendMessageRequest append;
  append.set_session(session_);
  append.set_folder(folder);
  append.set_source(SmallMessage("appended with an id"));
  v1::AppendMessageResponse appended;
  grpc::Status a = mailbox_->AppendMessage(Ctx().get(), append, &appended);
  ASSERT_TRUE(a.ok()) << a.error_message();
  ASSERT_FALSE(appended.id().empty());
  EXPECT_EQ(Get(appended.id(), v1::MESSAGE_VIEW_HEADERS).subject(), "appended with an id");
  // A source without a Message-ID is stored all the same; only a UIDPLUS server can say
  // which message it became.
  std::string other = Folder("append-no-id");
  append.set_folder(other);
  append.set_source("From: a@example.test\r\nSubject: no message id\r\n\r\nbody\r\n");
  ASSERT_TRUE(mailbox_->AppendMessage(Ctx().get(), append, &appended).ok());
  EXPECT_EQ(appended.id().empty(), ImapServer() == "imap4d") << appended.id();
  EXPECT_EQ(ListAll(other, v1::MESSAGE_VIEW_BASIC).size(), 1u);
}

// Issue 16: refusals are final answers with the contract's codes (never UNAVAILABLE,
// which tells callers to retry): RENAME onto an existing folder ALREADY_EXISTS, COPY and
// MOVE and APPEND to a missing folder NOT_FOUND; the session stays usable.
TEST_F(ImapMailboxTest, RefusalsGetTheirFinalCodes) {
  std::string folder = Folder("refuse", {SmallMessage("refused copy")});
  std::string taken = Folder("refuse-taken");
  std::vector<v1::EmailMessage> listed = ListAll(folder, v1::MESSAGE_VIEW_BASIC);
  ASSERT_EQ(listed.size(), 1u);

  v1::RenameFolderRequest rename;
  rename.set_session(session_);
  rename.set_folder(folder);
  rename.set_new_name(taken);
  v1::RenameFolderResponse renamed;
  grpc::Status r = mailbox_->RenameFolder(Ctx().get(), rename, &renamed);
  EXPECT_EQ(r.error_code(), grpc::StatusCode::ALREADY_EXISTS) << r.error_message();

  v1::CopyMessagesRequest copy;
  copy.set_session(session_);
  copy.add_ids(listed[0].id());
  copy.set_destination_folder(tag_ + "-refuse-missing");
  v1::CopyMessagesResponse copied;
  grpc::Status c = mailbox_->CopyMessages(Ctx().get(), copy, &copied);
  EXPECT_EQ(c.error_code(), grpc::StatusCode::NOT_FOUND) << c.error_message();
  v1::MoveMessagesRequest move;
  move.set_session(session_);
  move.add_ids(listed[0].id());
  move.set_destination_folder(tag_ + "-refuse-missing");
  v1::MoveMessagesResponse moved;
  grpc::Status m = mailbox_->MoveMessages(Ctx().get(), move, &moved);
  EXPECT_EQ(m.error_code(), grpc::StatusCode::NOT_FOUND) << m.error_message();

  v1::AppendMessageRequest append;
  append.set_session(session_);
  append.set_folder(tag_ + "-refuse-missing");
  append.set_source(SmallMessage("nowhere"));
  v1::AppendMessageResponse appended;
  grpc::Status a = mailbox_->AppendMessage(Ctx().get(), append, &appended);
  EXPECT_EQ(a.error_code(), grpc::StatusCode::NOT_FOUND) << a.error_message();

  // Nothing was lost and the session still works.
  EXPECT_EQ(ListAll(folder, v1::MESSAGE_VIEW_BASIC).size(), 1u);
}

TEST_F(ImapMailboxTest, ReadsEverySeededMessageDecodedWithoutSettingSeen) {
  std::vector<Seeded> corpus = Corpus(tag_);
  std::string folder = Folder("read", Sources(corpus));
  std::vector<v1::EmailMessage> listed = ListAll(folder);
  ASSERT_EQ(listed.size(), corpus.size());
  for (size_t i = 0; i < corpus.size(); ++i) {
    EXPECT_EQ(listed[i].subject(), corpus[i].subject) << i;
    EXPECT_EQ(listed[i].folder(), folder);
    EXPECT_GT(listed[i].uid(), 0u);
    EXPECT_EQ(listed[i].size(), corpus[i].source.size());
    EXPECT_TRUE(listed[i].has_receive_time());
    EXPECT_EQ(listed[i].from().address(), "seed@example.test");
    EXPECT_FALSE(listed[i].flags().seen());
    // HEADERS view: no bodies.
    EXPECT_TRUE(listed[i].text_body().empty());
  }
  // The multipart message's attachment summary comes from BODYSTRUCTURE.
  const v1::EmailMessage& summary = listed[kMultipart];
  ASSERT_EQ(summary.attachments_size(), 2);
  EXPECT_EQ(summary.attachments(0).part_id(), "1.2");
  EXPECT_EQ(summary.attachments(0).content_id(), "logo@example.test");
  EXPECT_EQ(summary.attachments(0).disposition(), v1::ATTACHMENT_DISPOSITION_INLINE);
  EXPECT_TRUE(summary.attachments(0).content_omitted());
  EXPECT_EQ(summary.attachments(1).part_id(), "2");
  EXPECT_EQ(summary.attachments(1).file_name(), "rapport été.pdf");

  // Every message read in FULL and RAW.
  for (size_t i = 0; i < corpus.size(); ++i) {
    v1::EmailMessage full = Get(listed[i].id(), v1::MESSAGE_VIEW_FULL);
    EXPECT_EQ(full.subject(), corpus[i].subject) << i;
    EXPECT_EQ(full.id(), listed[i].id());
    v1::EmailMessage raw = Get(listed[i].id(), v1::MESSAGE_VIEW_RAW);
    EXPECT_EQ(raw.source(), corpus[i].source) << i;
  }
  v1::EmailMessage full = Get(listed[kMultipart].id(), v1::MESSAGE_VIEW_FULL);
  EXPECT_EQ(full.text_body(), "Hello été plain");
  EXPECT_THAT(full.html_body(), HasSubstr("cid:logo@example.test"));
  ASSERT_EQ(full.attachments_size(), 2);
  EXPECT_EQ(full.attachments(0).content(), PngBytes());
  EXPECT_EQ(full.attachments(1).content(), PdfBytes());

  // Reading set no \Seen.
  for (const v1::EmailMessage& m : ListAll(folder, v1::MESSAGE_VIEW_BASIC)) {
    EXPECT_FALSE(m.flags().seen()) << m.id();
  }
  // ... unless asked.
  v1::GetMessageRequest seen;
  seen.set_session(session_);
  seen.set_id(listed[0].id());
  seen.set_view(v1::MESSAGE_VIEW_RAW);
  seen.set_mark_seen(true);
  v1::GetMessageResponse got;
  ASSERT_TRUE(mailbox_->GetMessage(Ctx().get(), seen, &got).ok());
  EXPECT_TRUE(got.message().flags().seen());
  EXPECT_TRUE(Get(listed[0].id(), v1::MESSAGE_VIEW_BASIC).flags().seen());
  // The unread filter now leaves it out.
  v1::ListMessagesRequest unread;
  unread.set_session(session_);
  unread.set_folder(folder);
  unread.set_filter(v1::MESSAGE_FILTER_UNREAD);
  v1::ListMessagesResponse unread_list;
  ASSERT_TRUE(mailbox_->ListMessages(Ctx().get(), unread, &unread_list).ok());
  EXPECT_EQ(unread_list.total_count(), corpus.size() - 1);

  // Attachments by part ID and by Content-ID, transfer-decoded.
  grpc::Status s;
  v1::Attachment meta;
  EXPECT_EQ(Attachment(listed[kMultipart].id(), "2", "", &meta, &s), PdfBytes());
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(meta.file_name(), "rapport été.pdf");
  EXPECT_EQ(meta.part_id(), "2");
  EXPECT_EQ(meta.size(), PdfBytes().size());
  EXPECT_EQ(Attachment(listed[kMultipart].id(), "", "logo@example.test", &meta, &s), PngBytes());
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(meta.part_id(), "1.2");
  Attachment(listed[kMultipart].id(), "9", "", &meta, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);

  // Not an ID of this daemon / of this account.
  grpc::Status bad;
  Get("i1.bm9wZQ", v1::MESSAGE_VIEW_FULL, &bad);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ImapMailboxTest, StreamsA20MegabyteMessageAndItsAttachmentWhileOtherCallsRun) {
  constexpr size_t kAttachment = 15'000'000;  // ~20 MB once base64-encoded
  Seeded large = LargeMessage(tag_, kAttachment);
  ASSERT_GT(large.source.size(), 20'000'000u);
  std::string folder = Folder("large", {large.source, SmallMessage("small neighbour")});
  std::vector<v1::EmailMessage> listed = ListAll(folder, v1::MESSAGE_VIEW_BASIC);
  ASSERT_EQ(listed.size(), 2u);
  const std::string big = listed[0].id(), small = listed[1].id();

  // A small read on the same session while the big stream runs: it must not wait for the
  // whole download (it gets a turn between two windows).
  std::atomic<bool> streaming{true};
  std::atomic<int> reads_during_stream{0};
  std::thread reader([&] {
    while (streaming) {
      grpc::Status s;
      v1::EmailMessage m = Get(small, v1::MESSAGE_VIEW_HEADERS, &s);
      if (!s.ok() || m.subject() != "small neighbour") break;
      if (streaming) ++reads_during_stream;
    }
  });
  grpc::Status s;
  uint64_t total = 0;
  std::string streamed = StreamAll(big, 0, 256 * 1024, &s, &total);
  streaming = false;
  reader.join();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(total, large.source.size());
  EXPECT_TRUE(streamed == large.source) << "streamed " << streamed.size() << " bytes";
  EXPECT_GT(reads_during_stream.load(), 0);

  // Resume from an offset; past the end is OUT_OF_RANGE.
  std::string tail = StreamAll(big, large.source.size() - 1000, 300, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(tail, large.source.substr(large.source.size() - 1000));
  StreamAll(big, large.source.size(), 300, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);

  // The 15 MB attachment, decoded, streamed.
  v1::Attachment meta;
  std::string bytes = Attachment(big, "2", "", &meta, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(meta.file_name(), "big.bin");
  EXPECT_EQ(bytes.size(), kAttachment);
  EXPECT_TRUE(bytes == LargeBytes(kAttachment));

  // FULL leaves the big attachment out (over max_attachment_bytes) but says how to get it.
  v1::EmailMessage full = Get(big, v1::MESSAGE_VIEW_FULL);
  ASSERT_EQ(full.attachments_size(), 1);
  EXPECT_TRUE(full.attachments(0).content_omitted());
  EXPECT_EQ(full.attachments(0).part_id(), "2");
}

TEST_F(ImapMailboxTest, PagesStayStableWhileAnotherClientAppendsAndExpunges) {
  std::vector<std::string> messages;
  for (int i = 0; i < 30; ++i) messages.push_back(SmallMessage(absl::StrCat("page ", i)));
  std::string folder = Folder("pages", messages);
  for (v1::MessageOrder order : {v1::MESSAGE_ORDER_NEWEST_FIRST, v1::MESSAGE_ORDER_OLDEST_FIRST}) {
    std::vector<v1::EmailMessage> before = ListAll(folder, v1::MESSAGE_VIEW_HEADERS, order);
    ASSERT_GE(before.size(), 20u);
    v1::ListMessagesRequest request;
    request.set_session(session_);
    request.set_folder(folder);
    request.set_order(order);
    request.set_page_size(7);
    std::vector<std::string> seen;  // subjects, in listing order
    std::set<std::string> expunged;
    int arrived = 0, pages = 0;
    for (;;) {
      v1::ListMessagesResponse page;
      grpc::Status s = mailbox_->ListMessages(Ctx().get(), request, &page);
      ASSERT_TRUE(s.ok()) << s.error_message();
      ++pages;
      for (const v1::EmailMessage& m : page.messages()) seen.push_back(m.subject());
      if (page.next_page_token().empty()) break;
      request.set_page_token(page.next_page_token());
      if (seen.size() + 2 >= before.size()) continue;
      // The other client: a new message arrives, and one not listed yet is expunged.
      ASSERT_TRUE(RawImap::Ok(raw_.Append(folder, SmallMessage("arrived meanwhile"))));
      ++arrived;
      const v1::EmailMessage& victim = before[seen.size() + expunged.size() + 1];
      ASSERT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("SELECT ", Quoted(folder)))));
      ASSERT_TRUE(RawImap::Ok(
          raw_.Command(absl::StrCat("UID STORE ", victim.uid(), " +FLAGS.SILENT (\\Deleted)"))));
      // imap4d has no UIDPLUS: EXPUNGE removes the same message (the only \Deleted one).
      ASSERT_TRUE(RawImap::Ok(raw_.Command(ImapServer() == "imap4d"
                                               ? std::string("EXPUNGE")
                                               : absl::StrCat("UID EXPUNGE ", victim.uid()))));
      ASSERT_TRUE(RawImap::Ok(raw_.Command("CLOSE")));
      expunged.insert(victim.subject());
    }
    EXPECT_GT(pages, 2);
    // Nothing repeated, nothing skipped that still exists; messages that arrived meanwhile
    // come last when listing oldest-first and never when listing newest-first (they are
    // newer than the first page).
    std::vector<std::string> expected;
    for (const v1::EmailMessage& m : before) {
      if (!expunged.count(m.subject())) expected.push_back(m.subject());
    }
    if (order == v1::MESSAGE_ORDER_OLDEST_FIRST) {
      for (int i = 0; i < arrived; ++i) expected.push_back("arrived meanwhile");
    }
    EXPECT_EQ(seen, expected) << (order == v1::MESSAGE_ORDER_OLDEST_FIRST ? "oldest" : "newest");
    EXPECT_FALSE(expunged.empty());
  }
  // A token for another request shape is refused.
  v1::ListMessagesRequest request;
  request.set_session(session_);
  request.set_folder(folder);
  request.set_page_size(5);
  v1::ListMessagesResponse page;
  ASSERT_TRUE(mailbox_->ListMessages(Ctx().get(), request, &page).ok());
  request.set_page_token(page.next_page_token());
  request.set_view(v1::MESSAGE_VIEW_FULL);
  EXPECT_EQ(mailbox_->ListMessages(Ctx().get(), request, &page).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ImapMailboxTest, SearchesWithNonAsciiTermsAndCannotBeInjected) {
  std::vector<Seeded> corpus = Corpus(tag_);
  std::string folder = Folder("search", Sources(corpus));
  auto search = [&](const v1::SearchCriteria& criteria, grpc::Status* status = nullptr) {
    v1::SearchMessagesRequest request;
    request.set_session(session_);
    request.set_folder(folder);
    *request.mutable_criteria() = criteria;
    request.set_order(v1::MESSAGE_ORDER_OLDEST_FIRST);
    v1::SearchMessagesResponse response;
    grpc::Status s = mailbox_->SearchMessages(Ctx().get(), request, &response);
    if (status != nullptr)
      *status = s;
    else
      EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> subjects;
    for (const v1::EmailMessage& m : response.messages()) subjects.push_back(m.subject());
    return subjects;
  };
  v1::SearchCriteria c;
  c.set_subject("Grüße");
  EXPECT_THAT(search(c), ::testing::ElementsAre(corpus[0].subject));
  c.set_subject("Москвы");  // decoded from KOI8-R by the server
  EXPECT_THAT(search(c), ::testing::ElementsAre(corpus[5].subject));
  c.Clear();
  c.set_body("été plain");
  EXPECT_THAT(search(c), ::testing::ElementsAre(corpus[kMultipart].subject));
  // OR / NOT / header criteria.
  c.Clear();
  c.add_any_of()->set_subject("plain ascii");
  c.add_any_of()->set_subject("Multipart");
  EXPECT_EQ(search(c).size(), 2u);
  c.Clear();
  c.set_subject(tag_);
  c.add_none_of()->set_subject("Multipart");
  EXPECT_EQ(search(c).size(), corpus.size() - 1);
  c.Clear();
  v1::HeaderMatch* h = c.add_headers();
  h->set_name("Content-Type");
  h->set_value("multipart/mixed");
  EXPECT_EQ(search(c).size(), 1u);

  // Injection: CR/LF never reach the server; quotes, backslashes and literal markers are
  // sent as one string argument.
  grpc::Status s;
  c.Clear();
  c.set_subject("x\r\nA1 DELETE INBOX");
  search(c, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  for (const char* hostile : {"x\" DELETE INBOX \"", "x\\\" {5}", "x) (OR ALL", "{3+}"}) {
    c.Clear();
    c.set_subject(hostile);
    EXPECT_TRUE(search(c, &s).empty()) << hostile;
    EXPECT_TRUE(s.ok()) << hostile << ": " << s.error_message();
  }
  c.Clear();
  c.set_subject(std::string("x\"") + " " + folder);
  search(c, &s);
  EXPECT_TRUE(s.ok());
  std::vector<std::string> folders = FolderNames();
  EXPECT_EQ(std::count(folders.begin(), folders.end(), "INBOX"), 1);
  EXPECT_EQ(std::count(folders.begin(), folders.end(), folder), 1);
  EXPECT_EQ(ListAll(folder).size(), corpus.size());

  // Dates: the seeded messages arrived within the last minutes; refined to the instant
  // (IMAP SINCE alone would match the whole day).
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  c.Clear();
  c.mutable_since()->set_seconds(now - 3600);
  EXPECT_EQ(search(c).size(), corpus.size());
  c.mutable_since()->set_seconds(now + 3600);
  EXPECT_TRUE(search(c).empty());
  c.Clear();
  c.mutable_before()->set_seconds(now - 3600);
  EXPECT_TRUE(search(c).empty());
  // Sent date (the Date header says 3 Jun 2024 10:00 UTC).
  c.Clear();
  c.mutable_sent_since()->set_seconds(1717408800);  // 10:00:00
  c.mutable_sent_before()->set_seconds(1717408801);
  EXPECT_EQ(search(c).size(), corpus.size());
  c.mutable_sent_since()->set_seconds(1717408801);
  EXPECT_TRUE(search(c).empty());
  // Flags.
  c.Clear();
  c.mutable_flags_set()->set_flagged(true);
  EXPECT_TRUE(search(c).empty());
  c.Clear();
  c.set_unread(true);
  c.set_smaller(1000000);
  EXPECT_EQ(search(c).size(), corpus.size());

  // Paged search: page_size 1 is the seed's EmailSeekFirst.
  v1::SearchMessagesRequest paged;
  paged.set_session(session_);
  paged.set_folder(folder);
  paged.mutable_criteria()->set_subject(tag_);
  paged.set_page_size(3);
  std::set<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    v1::SearchMessagesResponse response;
    ASSERT_TRUE(mailbox_->SearchMessages(Ctx().get(), paged, &response).ok());
    EXPECT_EQ(response.total_count(), corpus.size());
    for (const v1::EmailMessage& m : response.messages()) ids.insert(m.id());
    if (response.next_page_token().empty()) break;
    paged.set_page_token(response.next_page_token());
  }
  EXPECT_EQ(ids.size(), corpus.size());
}

TEST_F(ImapMailboxTest, FlagsCopyMoveAppendDeleteAndExpunge) {
  std::vector<std::string> messages;
  for (int i = 0; i < 6; ++i) messages.push_back(SmallMessage(absl::StrCat("change ", i)));
  std::string folder = Folder("change", messages);
  std::string other = Folder("other");
  std::vector<v1::EmailMessage> listed = ListAll(folder, v1::MESSAGE_VIEW_BASIC);
  ASSERT_EQ(listed.size(), 6u);

  // Flags: add, remove, replace; keywords included.
  v1::UpdateFlagsRequest flags;
  flags.set_session(session_);
  flags.add_ids(listed[0].id());
  flags.add_ids(listed[1].id());
  flags.set_operation(v1::FLAG_OPERATION_ADD);
  flags.mutable_flags()->set_seen(true);
  flags.mutable_flags()->set_flagged(true);
  flags.mutable_flags()->add_keywords("$Work");
  v1::UpdateFlagsResponse updated;
  grpc::Status s = mailbox_->UpdateFlags(Ctx().get(), flags, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(updated.messages_size(), 2);
  EXPECT_EQ(updated.messages(0).id(), listed[0].id());
  EXPECT_TRUE(updated.messages(0).flags().seen());
  EXPECT_TRUE(updated.messages(1).flags().flagged());
  EXPECT_THAT(updated.messages(1).flags().keywords(), ::testing::Contains("$Work"));
  flags.set_operation(v1::FLAG_OPERATION_REMOVE);
  flags.mutable_flags()->Clear();
  flags.mutable_flags()->set_seen(true);
  ASSERT_TRUE(mailbox_->UpdateFlags(Ctx().get(), flags, &updated).ok());
  EXPECT_FALSE(updated.messages(0).flags().seen());
  EXPECT_TRUE(updated.messages(0).flags().flagged());
  flags.set_operation(v1::FLAG_OPERATION_REPLACE);
  flags.mutable_flags()->Clear();
  flags.mutable_flags()->set_answered(true);
  ASSERT_TRUE(mailbox_->UpdateFlags(Ctx().get(), flags, &updated).ok());
  EXPECT_TRUE(updated.messages(0).flags().answered());
  EXPECT_FALSE(updated.messages(0).flags().flagged());
  EXPECT_EQ(updated.messages(0).flags().keywords_size(), 0);
  // A keyword that is not an atom never reaches the server; \Recent cannot be set.
  flags.mutable_flags()->add_keywords("bad word");
  EXPECT_EQ(mailbox_->UpdateFlags(Ctx().get(), flags, &updated).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  flags.mutable_flags()->Clear();
  flags.mutable_flags()->set_recent(true);
  EXPECT_EQ(mailbox_->UpdateFlags(Ctx().get(), flags, &updated).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Copy: new IDs via UIDPLUS, readable; the originals stay.
  v1::CopyMessagesRequest copy;
  copy.set_session(session_);
  copy.add_ids(listed[2].id());
  copy.add_ids(listed[3].id());
  copy.set_destination_folder(other);
  v1::CopyMessagesResponse copied;
  s = mailbox_->CopyMessages(Ctx().get(), copy, &copied);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(copied.copies_size(), 2);
  EXPECT_EQ(copied.copies(0).source_id(), listed[2].id());
  ASSERT_FALSE(copied.copies(0).new_id().empty());
  EXPECT_EQ(Get(copied.copies(0).new_id()).subject(), "change 2");
  EXPECT_EQ(Get(copied.copies(1).new_id()).folder(), other);
  EXPECT_EQ(ListAll(folder).size(), 6u);
  copy.set_destination_folder(tag_ + "-nowhere");
  EXPECT_EQ(mailbox_->CopyMessages(Ctx().get(), copy, &copied).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Move: the old IDs are gone.
  v1::MoveMessagesRequest move;
  move.set_session(session_);
  move.add_ids(listed[4].id());
  move.set_destination_folder(other);
  v1::MoveMessagesResponse moved;
  s = mailbox_->MoveMessages(Ctx().get(), move, &moved);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(moved.moves_size(), 1);
  EXPECT_EQ(Get(moved.moves(0).new_id()).subject(), "change 4");
  grpc::Status gone;
  Get(listed[4].id(), v1::MESSAGE_VIEW_BASIC, &gone);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  // A stale ID fails the whole call before anything changes.
  move.add_ids(listed[5].id());
  EXPECT_EQ(mailbox_->MoveMessages(Ctx().get(), move, &moved).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get(listed[5].id()).subject(), "change 5");

  // Append: LF sources become CRLF; flags and internal date kept.
  v1::AppendMessageRequest append;
  append.set_session(session_);
  append.set_folder(folder);
  append.set_source("From: a@example.test\nSubject: appended\n\nline one\nline two\n");
  append.mutable_flags()->set_flagged(true);
  append.mutable_flags()->add_keywords("$Appended");
  append.mutable_receive_time()->set_seconds(1600000000);
  v1::AppendMessageResponse appended;
  s = mailbox_->AppendMessage(Ctx().get(), append, &appended);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_FALSE(appended.id().empty());
  v1::EmailMessage back = Get(appended.id(), v1::MESSAGE_VIEW_RAW);
  EXPECT_EQ(back.source(),
            "From: a@example.test\r\nSubject: appended\r\n\r\nline one\r\nline two\r\n");
  EXPECT_EQ(back.size(), back.source().size());
  EXPECT_TRUE(back.flags().flagged());
  EXPECT_THAT(back.flags().keywords(), ::testing::Contains("$Appended"));
  EXPECT_EQ(back.receive_time().seconds(), 1600000000);
  // A structured message, built like BuildSource.
  append.clear_source();
  append.mutable_message()->mutable_from()->set_address("b@example.test");
  append.mutable_message()->set_subject("structured ✓");
  append.mutable_message()->set_text_body("hi\r\n");
  ASSERT_TRUE(mailbox_->AppendMessage(Ctx().get(), append, &appended).ok());
  EXPECT_EQ(Get(appended.id()).subject(), "structured ✓");
  append.set_folder(tag_ + "-nowhere");
  EXPECT_EQ(mailbox_->AppendMessage(Ctx().get(), append, &appended).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Delete: flag only, then Expunge of exactly those.
  v1::DeleteMessagesRequest del;
  del.set_session(session_);
  del.add_ids(listed[0].id());
  del.set_mode(v1::DELETE_MODE_FLAG_ONLY);
  v1::DeleteMessagesResponse deleted;
  ASSERT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
  EXPECT_EQ(deleted.deleted_count(), 1u);
  EXPECT_FALSE(deleted.pending_until_quit());
  EXPECT_TRUE(Get(listed[0].id(), v1::MESSAGE_VIEW_BASIC).flags().deleted());
  v1::ExpungeRequest expunge;
  expunge.set_session(session_);
  expunge.set_folder(folder);
  expunge.add_ids(listed[0].id());
  expunge.add_ids(listed[1].id());  // not flagged \Deleted: stays
  v1::ExpungeResponse expunged;
  s = mailbox_->Expunge(Ctx().get(), expunge, &expunged);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(expunged.expunged_ids(), ::testing::ElementsAre(listed[0].id()));
  Get(listed[0].id(), v1::MESSAGE_VIEW_BASIC, &gone);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get(listed[1].id(), v1::MESSAGE_VIEW_BASIC).subject(), "");
  // Delete (expunge mode, the default) removes exactly the given one.
  del.clear_ids();
  del.add_ids(listed[1].id());
  del.set_mode(v1::DELETE_MODE_UNSPECIFIED);
  ASSERT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
  Get(listed[1].id(), v1::MESSAGE_VIEW_BASIC, &gone);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  // Move to Trash: a mapping to the new ID.
  del.clear_ids();
  del.add_ids(listed[2].id());
  del.set_mode(v1::DELETE_MODE_MOVE_TO_TRASH);
  s = mailbox_->DeleteMessages(Ctx().get(), del, &deleted);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(deleted.trashed_size(), 1);
  v1::EmailMessage trashed = Get(deleted.trashed(0).new_id(), v1::MESSAGE_VIEW_HEADERS);
  EXPECT_EQ(trashed.folder(), "Trash");
  EXPECT_EQ(trashed.subject(), "change 2");
  // Clean Trash again (Expunge of every \Deleted message there).
  del.clear_ids();
  del.add_ids(deleted.trashed(0).new_id());
  del.set_mode(v1::DELETE_MODE_EXPUNGE);
  ASSERT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
  // Expunge of a whole folder.
  del.clear_ids();
  del.add_ids(listed[3].id());
  del.set_mode(v1::DELETE_MODE_FLAG_ONLY);
  ASSERT_TRUE(mailbox_->DeleteMessages(Ctx().get(), del, &deleted).ok());
  expunge.clear_ids();
  ASSERT_TRUE(mailbox_->Expunge(Ctx().get(), expunge, &expunged).ok());
  EXPECT_THAT(expunged.expunged_ids(), ::testing::ElementsAre(listed[3].id()));

  // Read-only selection refuses changes.
  ASSERT_TRUE(Select(folder, /*read_only=*/true).ok());
  flags.clear_ids();
  flags.add_ids(listed[5].id());
  flags.mutable_flags()->Clear();
  flags.mutable_flags()->set_seen(true);
  flags.set_operation(v1::FLAG_OPERATION_ADD);
  EXPECT_EQ(mailbox_->UpdateFlags(Ctx().get(), flags, &updated).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::RefreshRequest refresh;
  refresh.set_session(session_);
  v1::RefreshResponse refreshed;
  ASSERT_TRUE(mailbox_->Refresh(Ctx().get(), refresh, &refreshed).ok());
  EXPECT_TRUE(refreshed.status().read_only());
  EXPECT_EQ(refreshed.status().folder(), folder);
  EXPECT_THAT(refreshed.server_reply(), HasSubstr("OK"));
}

TEST_F(ImapMailboxTest, OldIdsFailClearlyAfterUidValidityChanges) {
  std::string folder = Folder("validity", {SmallMessage("first life")});
  std::vector<v1::EmailMessage> listed = ListAll(folder, v1::MESSAGE_VIEW_BASIC);
  ASSERT_EQ(listed.size(), 1u);
  v1::ListMessagesRequest request;
  request.set_session(session_);
  request.set_folder(folder);
  request.set_page_size(1);
  ASSERT_TRUE(RawImap::Ok(raw_.Append(folder, SmallMessage("second"))));
  v1::ListMessagesResponse page;
  ASSERT_TRUE(mailbox_->ListMessages(Ctx().get(), request, &page).ok());
  ASSERT_FALSE(page.next_page_token().empty());
  // The daemon's connection moves back to the current folder (INBOX) ...
  v1::GetMailboxStatusRequest current;
  current.set_session(session_);
  v1::GetMailboxStatusResponse current_status;
  ASSERT_TRUE(mailbox_->GetMailboxStatus(Ctx().get(), current, &current_status).ok());
  // ... while another client deletes and recreates the folder: same name, new
  // UIDVALIDITY, a message with the same UID. (A folder deleted while a connection has it
  // selected stays readable there in Dovecot as its old incarnation until re-selected.)
  ASSERT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("DELETE ", Quoted(folder)))));
  ASSERT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("CREATE ", Quoted(folder)))));
  ASSERT_TRUE(RawImap::Ok(raw_.Append(folder, SmallMessage("second life"))));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetMessageRequest get;
  get.set_session(session_);
  get.set_id(listed[0].id());
  v1::GetMessageResponse got;
  grpc::Status s = mailbox_->GetMessage(&ctx, get, &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_EQ(ErrorDetailOf(ctx).reason(), "UIDVALIDITY_CHANGED");
  EXPECT_THAT(s.error_message(), HasSubstr("UIDVALIDITY"));
  request.set_page_token(page.next_page_token());
  EXPECT_EQ(mailbox_->ListMessages(Ctx().get(), request, &page).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  // The new message has its own ID.
  std::vector<v1::EmailMessage> now = ListAll(folder, v1::MESSAGE_VIEW_HEADERS);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_NE(now[0].id(), listed[0].id());
  EXPECT_EQ(now[0].subject(), "second life");
}

// Reads watch events until one of `type` arrives (or the stream's deadline passes).
bool WaitFor(grpc::ClientReader<v1::WatchMailboxResponse>& reader, v1::MailboxEventType type,
             v1::WatchMailboxResponse* event) {
  while (reader.Read(event)) {
    if (event->type() == type) return true;
  }
  return false;
}

TEST_F(ImapMailboxTest, WatchSeesAnotherClientsChangesAndEndsCleanly) {
  std::string folder = Folder("watch", {SmallMessage("already here")});
  ASSERT_TRUE(Select(folder).ok());
  v1::WatchMailboxRequest request;
  request.set_session(session_);
  request.set_view(v1::MESSAGE_VIEW_HEADERS);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = mailbox_->WatchMailbox(&ctx, request);
  v1::WatchMailboxResponse event;
  ASSERT_TRUE(reader->Read(&event));
  ASSERT_EQ(event.type(), v1::MAILBOX_EVENT_TYPE_READY);
  EXPECT_EQ(event.status().folder(), folder);
  EXPECT_EQ(event.status().message_count(), 1u);

  // Another connection appends: NEW with the message.
  ASSERT_TRUE(RawImap::Ok(raw_.Append(folder, SmallMessage("pushed by another client"))));
  ASSERT_TRUE(WaitFor(*reader, v1::MAILBOX_EVENT_TYPE_NEW, &event));
  std::string id = event.id();
  EXPECT_EQ(event.message().subject(), "pushed by another client");
  EXPECT_EQ(event.message().id(), id);

  // Calls on the session keep working while it watches (the daemon leaves IDLE).
  EXPECT_EQ(Get(id, v1::MESSAGE_VIEW_HEADERS).subject(), "pushed by another client");

  // Another connection flags it: FLAGS_CHANGED.
  ASSERT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("SELECT ", Quoted(folder)))));
  uint32_t uid = Get(id, v1::MESSAGE_VIEW_BASIC).uid();
  ASSERT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("UID STORE ", uid, " +FLAGS (\\Flagged)"))));
  ASSERT_TRUE(WaitFor(*reader, v1::MAILBOX_EVENT_TYPE_FLAGS_CHANGED, &event));
  EXPECT_EQ(event.id(), id);
  EXPECT_TRUE(event.flags().flagged());

  // ... and expunges it: EXPUNGED.
  ASSERT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("UID STORE ", uid, " +FLAGS (\\Deleted)"))));
  ASSERT_TRUE(RawImap::Ok(raw_.Command(absl::StrCat("UID EXPUNGE ", uid))));
  ASSERT_TRUE(WaitFor(*reader, v1::MAILBOX_EVENT_TYPE_EXPUNGED, &event));
  EXPECT_EQ(event.id(), id);

  // Cancelling ends the stream; the session stays usable.
  ctx.TryCancel();
  while (reader->Read(&event)) {
  }
  reader->Finish();
  v1::GetMailboxStatusRequest status;
  status.set_session(session_);
  v1::GetMailboxStatusResponse st;
  grpc::Status s = mailbox_->GetMailboxStatus(Ctx().get(), status, &st);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(st.status().message_count(), 1u);
  v1::GetSessionRequest get;
  get.set_session(session_);
  v1::GetSessionResponse info;
  ASSERT_TRUE(sessions_->GetSession(Ctx().get(), get, &info).ok());
  EXPECT_EQ(info.session().state(), v1::SESSION_STATE_READY);

  // Watching another folder than the current one is refused; selecting another folder
  // ends a running watch with ABORTED.
  request.set_folder("INBOX");
  grpc::ClientContext other;
  other.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto refused = mailbox_->WatchMailbox(&other, request);
  while (refused->Read(&event)) {
  }
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  request.clear_folder();
  grpc::ClientContext again;
  again.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto second = mailbox_->WatchMailbox(&again, request);
  ASSERT_TRUE(second->Read(&event));
  EXPECT_EQ(event.type(), v1::MAILBOX_EVENT_TYPE_READY);
  ASSERT_TRUE(Select("INBOX").ok());
  while (second->Read(&event)) {
  }
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::ABORTED);
}

TEST_F(ImapMailboxTest, ClosingAWatchedSessionEndsTheWatch) {
  ASSERT_TRUE(Select("INBOX").ok());
  v1::WatchMailboxRequest request;
  request.set_session(session_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = mailbox_->WatchMailbox(&ctx, request);
  v1::WatchMailboxResponse event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.type(), v1::MAILBOX_EVENT_TYPE_READY);
  ASSERT_TRUE(Close(session_).ok());
  open_.clear();
  while (reader->Read(&event)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(ImapMailboxTest, RequestsAreValidatedBeforeReachingTheServer) {
  v1::SelectFolderRequest select;
  select.set_session(session_);
  select.set_folder("bad\r\nA1 DELETE INBOX");
  v1::SelectFolderResponse selected;
  EXPECT_EQ(mailbox_->SelectFolder(Ctx().get(), select, &selected).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::DeleteFolderRequest del;
  del.set_session(session_);
  del.set_folder("INBOX");
  v1::DeleteFolderResponse deleted;
  EXPECT_EQ(mailbox_->DeleteFolder(Ctx().get(), del, &deleted).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::UpdateFlagsRequest flags;
  flags.set_session(session_);
  flags.add_ids("i1.AAAA");
  v1::UpdateFlagsResponse updated;
  EXPECT_EQ(mailbox_->UpdateFlags(Ctx().get(), flags, &updated).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // no operation
  v1::WatchMailboxRequest watch;
  watch.set_session(session_);
  watch.mutable_poll_interval()->set_seconds(1);
  grpc::ClientContext ctx;
  auto reader = mailbox_->WatchMailbox(&ctx, watch);
  v1::WatchMailboxResponse event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  std::vector<std::string> folders = FolderNames();
  EXPECT_EQ(std::count(folders.begin(), folders.end(), "INBOX"), 1);
}

}  // namespace
}  // namespace mailpool::testing
