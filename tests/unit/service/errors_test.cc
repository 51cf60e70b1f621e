// The gRPC edge's error conversion (service/errors.h): the google.rpc.Status sent as
// grpc-status-details-bin (ErrorInfo, RetryInfo, BadRequest) beside the ErrorDetail.
#include "service/errors.h"

#include "common/status.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"

namespace mailpool::service {
namespace {

template <typename T>
bool Find(const google::rpc::Status& s, T* out) {
  for (const auto& any : s.details()) {
    if (any.Is<T>()) return any.UnpackTo(out);
  }
  return false;
}

TEST(ErrorsTest, MailServerErrorCarriesErrorInfoWithReplyAndRedactedCommand) {
  absl::Status st = MailServerError(absl::StatusCode::kUnauthenticated, "AUTH_FAILED", "login",
                                    "LOGIN alice ***", "a1 NO [AUTHENTICATIONFAILED] nope");
  st.SetPayload(kProtocolPayload, absl::Cord("imap"));
  grpc::Status g = ToGrpcStatus(st);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  google::rpc::Status rpc;
  ASSERT_TRUE(rpc.ParseFromString(g.error_details()));
  EXPECT_EQ(rpc.code(), static_cast<int>(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_EQ(rpc.message(), g.error_message());
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(Find(rpc, &info));
  EXPECT_EQ(info.reason(), "AUTH_FAILED");
  EXPECT_EQ(info.domain(), "mailpool.dev");
  EXPECT_EQ(info.metadata().at("command"), "LOGIN alice ***");
  EXPECT_EQ(info.metadata().at("server_reply"), "a1 NO [AUTHENTICATIONFAILED] nope");
  EXPECT_EQ(info.metadata().at("protocol"), "imap");
  google::rpc::RetryInfo retry;
  EXPECT_FALSE(Find(rpc, &retry)) << "a refused login is not worth retrying";
  google::rpc::BadRequest bad;
  EXPECT_FALSE(Find(rpc, &bad));
  EXPECT_EQ(DetailOf(st).protocol(), v1::PROTOCOL_IMAP);
}

TEST(ErrorsTest, InvalidFieldBecomesBadRequestFieldViolation) {
  absl::Status st = Invalid("imap.server.host", "must not be empty");
  google::rpc::Status rpc = RpcStatusOf(st);
  google::rpc::BadRequest bad;
  ASSERT_TRUE(Find(rpc, &bad));
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "imap.server.host");
  EXPECT_EQ(bad.field_violations(0).description(), "must not be empty");
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(Find(rpc, &info));
  EXPECT_EQ(info.reason(), "INVALID_FIELD");
  EXPECT_TRUE(info.metadata().empty());
}

TEST(ErrorsTest, RetryHintPayloadBecomesRetryInfo) {
  absl::Status st = ReasonError(absl::StatusCode::kResourceExhausted, "RATE_LIMITED", "slow down");
  st.SetPayload(kRetryAfterPayload, absl::Cord("2500"));
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(Find(RpcStatusOf(st), &retry));
  EXPECT_EQ(retry.retry_delay().seconds(), 2);
  EXPECT_EQ(retry.retry_delay().nanos(), 500000000);
}

TEST(ErrorsTest, UnavailableSuggestsDefaultRetryAndMalformedHintIsIgnored) {
  absl::Status st = absl::UnavailableError("connection refused");
  st.SetPayload(kRetryAfterPayload, absl::Cord("soon"));
  google::rpc::RetryInfo retry;
  ASSERT_TRUE(Find(RpcStatusOf(st), &retry));
  EXPECT_EQ(retry.retry_delay().seconds(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(Find(RpcStatusOf(st), &info));
  EXPECT_EQ(info.reason(), "UNAVAILABLE") << "no module reason: the code's name";
  EXPECT_FALSE(Find(RpcStatusOf(absl::NotFoundError("no such session")), &retry));
}

TEST(ErrorsTest, OkHasNoDetails) {
  grpc::Status g = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(g.ok());
  EXPECT_TRUE(g.error_details().empty());
}

}  // namespace
}  // namespace mailpool::service
