// The daemon against a misbehaving IMAP server (tests/fakes/misbehaving_server.h): each
// fault fails one ListFolders call (or, where the bytes are legal or a retry is safe, the
// call survives it), and the session stays usable: the next call on the same session ID
// works.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/duration.pb.h"
#include "gtest/gtest.h"
#include "mailpool/v1/mailbox.grpc.pb.h"
#include "tests/fakes/misbehaving_server.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using Fault = MisbehavingImapServer::Fault;

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

class MisbehavingServerTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    auto server = MisbehavingImapServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    mailbox_ = v1::MailboxService::NewStub(channel_);
    v1::StartSessionRequest request;
    *request.mutable_imap()->mutable_server() =
        Endpoint(server_->port(), v1::SECURITY_PLAIN);
    v1::Credentials* c = request.mutable_imap()->mutable_credentials();
    c->set_user("fuzz@example.test");
    c->set_password("secret");
    c->set_allow_insecure_auth(true);
    // A short server-silence timeout, so the stalled call ends (what is asserted is the
    // code, not how long it took).
    request.mutable_timeout()->set_seconds(3);
    v1::Session session;
    grpc::Status s = Start(request, &session);
    ASSERT_TRUE(s.ok()) << s.error_message();
    session_ = session.id();
  }
  void TearDown() override {
    if (!session_.empty()) Close(session_);
    DaemonTest::TearDown();
    server_.reset();
  }

  grpc::Status List(v1::ListFoldersResponse* out) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::ListFoldersRequest request;
    request.set_session(session_);
    return mailbox_->ListFolders(&context, request, out);
  }

  // The armed fault makes one ListFolders fail with a message; the next one works on the
  // same session.
  void ExpectOneCallFails(Fault fault) {
    server_->Arm("LIST", fault);
    v1::ListFoldersResponse bad;
    grpc::Status s = List(&bad);
    EXPECT_FALSE(s.ok());
    EXPECT_FALSE(s.error_message().empty());
    EXPECT_EQ(server_->faults_served(), 1);
    ExpectSessionWorks();
  }

  void ExpectSessionWorks() {
    v1::ListFoldersResponse good;
    grpc::Status s = List(&good);
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    ASSERT_EQ(good.folders_size(), 2);
    EXPECT_EQ(good.folders(0).name(), "INBOX");
    EXPECT_EQ(good.folders(1).name(), "Archive");
  }

  std::unique_ptr<MisbehavingImapServer> server_;
  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::string session_;
};

TEST_F(MisbehavingServerTest, StallFailsOneCallWithDeadlineAndTheSessionRecovers) {
  server_->Arm("LIST", Fault::kStall);
  v1::ListFoldersResponse bad;
  grpc::Status s = List(&bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  ExpectSessionWorks();
}

// LIST reads nothing that a retry could duplicate: after the drop the daemon reconnects,
// logs in again and repeats it, so the caller sees the whole answer.
TEST_F(MisbehavingServerTest, CloseMidResponseIsRetriedOnANewConnection) {
  server_->Arm("LIST", Fault::kCloseMidResponse);
  v1::ListFoldersResponse folders;
  grpc::Status s = List(&folders);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(folders.folders_size(), 2);
  EXPECT_EQ(server_->faults_served(), 1);
  EXPECT_EQ(server_->accepted(), 2);  // the session reconnected once
  ExpectSessionWorks();
}

TEST_F(MisbehavingServerTest, OversizeLiteralFailsOneCallAndTheSessionRecovers) {
  ExpectOneCallFails(Fault::kOversizeLiteral);
}

TEST_F(MisbehavingServerTest, OversizeLineFailsOneCallAndTheSessionRecovers) {
  ExpectOneCallFails(Fault::kOversizeLine);
}

TEST_F(MisbehavingServerTest, InvalidUtf8FolderNameComesOutAsValidUtf8) {
  server_->Arm("LIST", Fault::kInvalidUtf8);
  v1::ListFoldersResponse folders;
  grpc::Status s = List(&folders);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(folders.folders_size(), 3);
  for (const v1::Folder& f : folders.folders()) EXPECT_TRUE(IsValidUtf8(f.name())) << f.name();
  ExpectSessionWorks();
}

TEST_F(MisbehavingServerTest, UnsolicitedResponsesMidCommandAreAbsorbed) {
  server_->Arm("LIST", Fault::kUnsolicited);
  v1::ListFoldersResponse folders;
  grpc::Status s = List(&folders);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(folders.folders_size(), 2);
  EXPECT_EQ(server_->accepted(), 1);  // no reconnect needed
  ExpectSessionWorks();
}

}  // namespace
}  // namespace mailpool::testing
