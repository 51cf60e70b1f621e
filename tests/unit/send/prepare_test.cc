// Message preparation (send/send.h): envelope derivation, Bcc removal, field errors.
#include <string>

#include "gtest/gtest.h"
#include "send/send.h"

namespace mailpool::sender {
namespace {

v1::SendMessageRequest SourceRequest(const std::string& source) {
  v1::SendMessageRequest request;
  request.set_source(source);
  return request;
}

TEST(PrepareTest, SourceGivesSenderAndDeduplicatedRecipientsAndLosesItsBcc) {
  absl::StatusOr<Outgoing> out = Prepare(SourceRequest(
      "From: Alice <alice@example.com>\r\nTo: bob@example.com, Carol <carol@example.com>\r\n"
      "Cc: BOB@example.com\r\nBcc: dave@example.com,\r\n erin@example.com\r\n"
      "Subject: hi\r\nMessage-ID: <m1@example.com>\r\n\r\nBcc: stays in the body\r\n"));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->envelope.mail_from, "alice@example.com");
  EXPECT_EQ(out->envelope.rcpt_to,
            (std::vector<std::string>{"bob@example.com", "carol@example.com", "dave@example.com",
                                      "erin@example.com"}));
  EXPECT_EQ(out->subject, "hi");
  EXPECT_EQ(out->message_id, "m1@example.com");
  EXPECT_EQ(out->source.find("dave@"), std::string::npos);
  EXPECT_EQ(out->source.find("erin@"), std::string::npos);
  EXPECT_NE(out->source.find("Bcc: stays in the body"), std::string::npos);
  EXPECT_NE(out->source.find("Subject: hi"), std::string::npos);
}

TEST(PrepareTest, AnExplicitEnvelopeWinsAndTheSourceIsSentAsGiven) {
  std::string source = "From: a@example.com\r\nBcc: hidden@example.com\r\n\r\nbody\r\n";
  v1::SendMessageRequest request = SourceRequest(source);
  request.mutable_envelope()->set_mail_from("<>");
  request.mutable_envelope()->add_rcpt_to("x@example.org");
  absl::StatusOr<Outgoing> out = Prepare(request);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->envelope.mail_from, "");  // the null reverse path
  EXPECT_EQ(out->envelope.rcpt_to, std::vector<std::string>{"x@example.org"});
  EXPECT_EQ(out->source, source);
}

TEST(PrepareTest, ABuiltMessageTakesSenderBeforeFromAndAskedForReceipts) {
  v1::SendMessageRequest request;
  v1::EmailMessage* m = request.mutable_message();
  m->mutable_from()->set_address("alice@example.com");
  m->mutable_sender()->set_address("secretary@example.com");
  m->add_to()->set_address("bob@example.com");
  m->add_bcc()->set_address("carol@example.com");
  m->set_subject("built");
  m->set_text_body("hello\n");
  m->set_delivery_receipt(true);
  absl::StatusOr<Outgoing> out = Prepare(request);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->envelope.mail_from, "secretary@example.com");
  EXPECT_EQ(out->envelope.rcpt_to,
            (std::vector<std::string>{"bob@example.com", "carol@example.com"}));
  EXPECT_TRUE(out->envelope.request_dsn);
  EXPECT_FALSE(out->message_id.empty());
  EXPECT_EQ(out->source.find("carol@"), std::string::npos);  // Bcc is never written
}

TEST(PrepareTest, BadRequestsNameTheirField) {
  auto error = [](const v1::SendMessageRequest& r) {
    absl::StatusOr<Outgoing> out = Prepare(r);
    EXPECT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(out.status().message());
  };
  EXPECT_EQ(error(v1::SendMessageRequest()), "content: a message or a source is required");
  EXPECT_EQ(error(SourceRequest("")), "source: empty");
  EXPECT_EQ(error(SourceRequest("To: b@example.com\r\n\r\nx")),
            "envelope.mail_from: the message has no From or Sender address; give one");
  EXPECT_EQ(error(SourceRequest("From: a@example.com\r\n\r\nx")),
            "envelope.rcpt_to: the message has no recipient");
  v1::SendMessageRequest bad_rcpt = SourceRequest("From: a@example.com\r\n\r\nx");
  bad_rcpt.mutable_envelope()->add_rcpt_to("no-at-sign");
  EXPECT_EQ(error(bad_rcpt), "envelope.rcpt_to: missing '@'");
  v1::SendMessageRequest too_many = SourceRequest("From: a@example.com\r\n\r\nx");
  for (int i = 0; i < 1001; ++i) too_many.mutable_envelope()->add_rcpt_to("b@example.com");
  EXPECT_EQ(error(too_many), "envelope.rcpt_to: at most 1000 recipients");
}

TEST(PrepareTest, ASourceOver64MiBIsTooLarge) {
  absl::StatusOr<Outgoing> out = Prepare(SourceRequest(std::string((64u << 20) + 1, 'x')));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(WithoutBccTest, DropsEveryBccFieldWithItsContinuationLinesOnly) {
  EXPECT_EQ(WithoutBcc("To: a\r\nBCC: b,\r\n\tc\r\nSubject: s\r\nbcc: d\r\n\r\nBcc: body\r\n"),
            "To: a\r\nSubject: s\r\n\r\nBcc: body\r\n");
  EXPECT_EQ(WithoutBcc("To: a\r\n"), "To: a\r\n");
}

}  // namespace
}  // namespace mailpool::sender
