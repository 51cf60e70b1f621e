#include "common/status.h"

#include "gtest/gtest.h"

namespace mailpool {
namespace {

TEST(StatusTest, MailServerErrorCarriesReplyAndReason) {
  absl::Status s =
      MailServerError(absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "login refused",
                      "LOGIN alice ***", "a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(),
            "login refused: server replied: a1 NO [AUTHENTICATIONFAILED] Authentication failed.");
  EXPECT_EQ(GetPayloadText(s, kReasonPayload), "AUTH_FAILED");
  EXPECT_EQ(GetPayloadText(s, kCommandPayload), "LOGIN alice ***");
}

TEST(StatusTest, RedactSecretScrubsMessageAndPayloads) {
  absl::Status s = MailServerError(absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "refused",
                                   "LOGIN alice ***", "a1 NO bad password hunter2!");
  absl::Status r = RedactSecret(s, "hunter2");
  EXPECT_EQ(r.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(r.message(), "refused: server replied: a1 NO bad password ***!");
  EXPECT_EQ(GetPayloadText(r, kServerReplyPayload), "a1 NO bad password ***!");
  EXPECT_EQ(GetPayloadText(r, kReasonPayload), "AUTH_FAILED");
  EXPECT_EQ(RedactSecret(s, "abc").message(), s.message());  // too short to be told apart
}

TEST(StatusTest, PrefixMessageKeepsCodeAndPayloads) {
  absl::Status s = MailServerError(absl::StatusCode::kFailedPrecondition, "SERVER_REJECTED",
                                   "refused", "RCPT TO:<x@example.test>", "550 5.1.1 no");
  absl::Status p = PrefixMessage(s, "no recipient was accepted; ");
  EXPECT_EQ(p.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(p.message(), "no recipient was accepted; refused: server replied: 550 5.1.1 no");
  EXPECT_EQ(GetPayloadText(p, kReasonPayload), "SERVER_REJECTED");
  EXPECT_EQ(GetPayloadText(p, kCommandPayload), "RCPT TO:<x@example.test>");
  EXPECT_EQ(GetPayloadText(p, kServerReplyPayload), "550 5.1.1 no");
  EXPECT_TRUE(PrefixMessage(absl::OkStatus(), "x").ok());
}

TEST(StatusTest, SanitizeReplacesControlBytesAndCaps) {
  EXPECT_EQ(SanitizeServerText(absl::string_view("a\0b\x1b", 4)), "a?b?");
  EXPECT_EQ(SanitizeServerText(std::string(600, 'x'), 10), "xxxxxxxxxx...");
}

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status UseMacros(int x, int* out) {
  MP_ASSIGN_OR_RETURN(int h, Half(x));
  MP_RETURN_IF_ERROR(h > 100 ? absl::OutOfRangeError("big") : absl::OkStatus());
  *out = h;
  return absl::OkStatus();
}

TEST(StatusTest, Macros) {
  int out = 0;
  EXPECT_TRUE(UseMacros(4, &out).ok());
  EXPECT_EQ(out, 2);
  EXPECT_EQ(UseMacros(3, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UseMacros(400, &out).code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace mailpool
