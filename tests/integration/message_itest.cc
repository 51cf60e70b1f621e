// MessageService (BuildSource, ParseSource) through gRPC against an in-process daemon.
// No mail server is involved; the fixture still reads the test servers' environment.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "mailpool/v1/message.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class MessageServiceTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    // Messages here go beyond gRPC's default 4 MiB client receive limit.
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    big_channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                             grpc::InsecureChannelCredentials(), args);
    messages_ = v1::MessageService::NewStub(big_channel_);
  }
  void TearDown() override {
    messages_.reset();
    big_channel_.reset();
    DaemonTest::TearDown();
  }

  grpc::Status Build(const v1::BuildSourceRequest& request, v1::BuildSourceResponse* response,
                     grpc::ClientContext* context = nullptr) {
    grpc::ClientContext local;
    grpc::ClientContext* ctx = context ? context : &local;
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return messages_->BuildSource(ctx, request, response);
  }
  grpc::Status Parse(const v1::ParseSourceRequest& request, v1::ParseSourceResponse* response,
                     grpc::ClientContext* context = nullptr) {
    grpc::ClientContext local;
    grpc::ClientContext* ctx = context ? context : &local;
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return messages_->ParseSource(ctx, request, response);
  }

  std::shared_ptr<grpc::Channel> big_channel_;
  std::unique_ptr<v1::MessageService::Stub> messages_;
};

v1::EmailMessage SampleMessage() {
  v1::EmailMessage m;
  m.mutable_from()->set_name("Élodie Dupont");
  m.mutable_from()->set_address("elodie@example.com");
  v1::Address* to = m.add_to();
  to->set_name("山田 太郎");
  to->set_address("taro@example.jp");
  v1::Address* bcc = m.add_bcc();
  bcc->set_address("hidden@example.com");
  m.set_subject("Réunion d'été — 会議");
  m.set_text_body("Bonjour,\r\nÀ bientôt.\r\n");
  m.set_html_body("<p>Bonjour, <img src=\"cid:logo@x\"></p>");
  v1::Attachment* inline_part = m.add_attachments();
  inline_part->set_file_name("logo.png");
  inline_part->set_content_type("image/png");
  inline_part->set_content(std::string("\x89PNG\r\n\x1a\n", 8));
  inline_part->set_content_id("logo@x");
  inline_part->set_disposition(v1::ATTACHMENT_DISPOSITION_INLINE);
  v1::Attachment* file = m.add_attachments();
  file->set_file_name("rapport été.pdf");
  file->set_content_type("application/pdf");
  file->set_content("%PDF-1.4 ...");
  file->set_disposition(v1::ATTACHMENT_DISPOSITION_ATTACHMENT);
  v1::Header* h = m.add_headers();
  h->set_name("X-Mailer");
  h->set_value("message_itest");
  m.add_references("root@example.com");
  m.add_in_reply_to("root@example.com");
  m.mutable_date()->set_seconds(1709211909);
  m.set_date_utc_offset_minutes(60);
  m.set_priority(v1::PRIORITY_LOW);
  m.set_sensitivity(v1::SENSITIVITY_PRIVATE);
  m.set_read_receipt(true);
  m.mutable_read_receipt_to()->set_address("receipts@example.com");
  m.set_delivery_receipt(true);
  return m;
}

TEST_F(MessageServiceTest, BuildThenParseGivesBackTheMessage) {
  v1::BuildSourceRequest build;
  *build.mutable_message() = SampleMessage();
  v1::BuildSourceResponse built;
  ASSERT_TRUE(Build(build, &built).ok());
  EXPECT_FALSE(built.message_id().empty());
  EXPECT_TRUE(absl::EndsWith(built.message_id(), "@example.com")) << built.message_id();
  EXPECT_THAT(built.source(), HasSubstr("\r\nMessage-ID: <" + built.message_id() + ">\r\n"));
  EXPECT_THAT(built.source(), ::testing::Not(HasSubstr("hidden@example.com")));

  v1::ParseSourceRequest parse;
  parse.set_source(built.source());
  v1::ParseSourceResponse parsed;
  ASSERT_TRUE(Parse(parse, &parsed).ok());
  EXPECT_THAT(parsed.warnings(), IsEmpty());

  v1::EmailMessage expected = SampleMessage();
  expected.clear_bcc();  // not written without include_bcc_header
  expected.set_message_id(built.message_id());
  expected.set_size(built.source().size());
  const char* part_ids[] = {"1.2.2", "2"};
  for (int i = 0; i < expected.attachments_size(); ++i) {
    auto* a = expected.mutable_attachments(i);
    a->set_size(a->content().size());
    a->set_part_id(part_ids[i]);
  }
  EXPECT_EQ(parsed.message().DebugString(), expected.DebugString());
}

TEST_F(MessageServiceTest, BuildOptionsReachTheBuilder) {
  v1::BuildSourceRequest build;
  *build.mutable_message() = SampleMessage();
  build.mutable_message()->set_message_id("fixed@example.com");
  build.mutable_options()->set_include_bcc_header(true);
  build.mutable_options()->set_header_encoding(v1::HEADER_ENCODING_UTF8);
  v1::BuildSourceResponse built;
  ASSERT_TRUE(Build(build, &built).ok());
  EXPECT_EQ(built.message_id(), "fixed@example.com");
  EXPECT_THAT(built.source(), HasSubstr("Bcc: hidden@example.com\r\n"));
  EXPECT_THAT(built.source(), HasSubstr("Subject: Réunion d'été — 会議\r\n"));

  build.mutable_options()->set_regenerate_message_id(true);
  build.mutable_options()->set_message_id_domain("ids.example.net");
  ASSERT_TRUE(Build(build, &built).ok());
  EXPECT_TRUE(absl::EndsWith(built.message_id(), "@ids.example.net")) << built.message_id();
}

TEST_F(MessageServiceTest, BuildSourceRejectsInvalidMessages) {
  v1::BuildSourceRequest build;
  v1::BuildSourceResponse built;
  grpc::Status status = Build(build, &built);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("message"));

  build.mutable_message()->set_subject("no sender");
  grpc::ClientContext context;
  status = Build(build, &built, &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("message.from.address"));
  EXPECT_EQ(ErrorDetailOf(context).reason(), "INVALID_FIELD");

  *build.mutable_message() = SampleMessage();
  v1::Header* h = build.mutable_message()->add_headers();
  h->set_name("Content-Type");
  h->set_value("text/html");
  status = Build(build, &built);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("message.headers[1].name"));
  EXPECT_THAT(status.error_message(), HasSubstr("Content-Type"));

  *build.mutable_message() = SampleMessage();
  build.mutable_message()->set_subject("injected\r\nBcc: victim@example.com");
  status = Build(build, &built);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("message.subject"));
}

TEST_F(MessageServiceTest, ParseSourceDegradesAndSaysWhy) {
  v1::ParseSourceRequest parse;
  parse.set_source(
      "From: Andr\xE9 <andre@example.com>\r\n"
      "Subject: =?x-bogus?Q?abc?=\r\n"
      "Content-Type: multipart/mixed; boundary=b\r\n"
      "\r\n"
      "--b\r\n"
      "Content-Type: text/plain; charset=no-such-charset\r\n"
      "\r\n"
      "caf\xE9\r\n");
  parse.mutable_options()->set_include_source(true);
  v1::ParseSourceResponse parsed;
  ASSERT_TRUE(Parse(parse, &parsed).ok());
  EXPECT_EQ(parsed.message().from().name(), "André");
  EXPECT_EQ(parsed.message().text_body(), "café\r\n");  // no closing boundary
  EXPECT_EQ(parsed.message().source(), parse.source());
  EXPECT_THAT(parsed.warnings(), Contains(HasSubstr("missing closing boundary")));
  EXPECT_THAT(parsed.warnings(), Contains(HasSubstr("unknown charset \"no-such-charset\"")));
  EXPECT_THAT(parsed.warnings(), Contains(HasSubstr("bad encoded-word in Subject")));
}

TEST_F(MessageServiceTest, ParseSourceRejectsEmptyAndOversizedInput) {
  v1::ParseSourceRequest parse;
  v1::ParseSourceResponse parsed;
  grpc::Status status = Parse(parse, &parsed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("source"));

  parse.set_source(std::string((64 << 20) + 1, 'a'));
  grpc::ClientContext context;
  status = Parse(parse, &parsed, &context);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("message size limit"));
  EXPECT_EQ(ErrorDetailOf(context).reason(), "MESSAGE_TOO_LARGE");
}

TEST_F(MessageServiceTest, LargeMessagesBeyondGrpcDefaults) {
  // 20 MiB of attachment: the request and both responses exceed gRPC's 4 MiB default.
  std::string content(20 << 20, '\0');
  std::mt19937 rng(3);
  for (auto& c : content) c = static_cast<char>(rng());
  v1::BuildSourceRequest build;
  *build.mutable_message() = SampleMessage();
  build.mutable_message()->mutable_attachments(1)->set_content(content);
  v1::BuildSourceResponse built;
  grpc::Status status = Build(build, &built);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GT(built.source().size(), 26u << 20);

  v1::ParseSourceRequest parse;
  parse.set_source(built.source());
  v1::ParseSourceResponse parsed;
  status = Parse(parse, &parsed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(parsed.message().attachments_size(), 2);
  EXPECT_TRUE(parsed.message().attachments(1).content() == content);

  parse.mutable_options()->set_omit_attachment_content(true);
  status = Parse(parse, &parsed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(parsed.message().attachments(1).content_omitted());
  EXPECT_EQ(parsed.message().attachments(1).size(), content.size());
  EXPECT_EQ(parsed.message().attachments(1).content(), "");
}

TEST_F(MessageServiceTest, ManyConcurrentCalls) {
  v1::BuildSourceRequest build;
  *build.mutable_message() = SampleMessage();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, busy{0}, other{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        v1::BuildSourceResponse built;
        grpc::Status status = Build(build, &built);
        if (status.ok()) {
          v1::ParseSourceRequest parse;
          parse.set_source(built.source());
          v1::ParseSourceResponse parsed;
          status = Parse(parse, &parsed);
          if (status.ok() && parsed.message().subject() == build.message().subject()) {
            ++ok;
            continue;
          }
        }
        (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ? busy : other)++;
      }
    });
  }
  for (auto& t : threads) t.join();
  // 8 callers fit in the queue: nobody is turned away.
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(busy.load(), 0);
  EXPECT_EQ(other.load(), 0);
}

}  // namespace
}  // namespace mailpool::testing
