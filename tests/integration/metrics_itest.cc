// GET /metrics after real calls against the real Dovecot and Postfix: call counters move by
// exactly the calls made, latency histograms count them, the session gauges equal the
// sessions open, and bytes are counted per protocol.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kSessionService = "mailpool.v1.SessionService";

std::string Calls(const char* service, const char* method, const char* code) {
  return absl::StrCat("mailpool_grpc_calls_total{service=\"", service, "\",method=\"", method,
                      "\",code=\"", code, "\"}");
}
std::string LatencyCount(const char* service, const char* method) {
  return absl::StrCat("mailpool_grpc_call_duration_seconds_count{service=\"", service,
                      "\",method=\"", method, "\"}");
}
std::string LatencyInf(const char* service, const char* method) {
  return absl::StrCat("mailpool_grpc_call_duration_seconds_bucket{service=\"", service,
                      "\",method=\"", method, "\",le=\"+Inf\"}");
}
std::string Sessions(const char* protocol, const char* state) {
  return absl::StrCat("mailpool_sessions{protocol=\"", protocol, "\",state=\"", state, "\"}");
}

class MetricsTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    mailbox_ = v1::MailboxService::NewStub(channel_);
    send_ = v1::SendService::NewStub(channel_);
  }

  v1::StartSessionRequest Imap() const {
    v1::StartSessionRequest request;
    *request.mutable_imap()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_IMAPS_PORT"), v1::SECURITY_IMPLICIT_TLS);
    *request.mutable_imap()->mutable_credentials() = Password();
    return request;
  }
  v1::StartSessionRequest Pop3() const {
    v1::StartSessionRequest request;
    *request.mutable_pop3()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_POP3S_PORT"), v1::SECURITY_IMPLICIT_TLS);
    *request.mutable_pop3()->mutable_credentials() = Password();
    return request;
  }
  v1::StartSessionRequest Smtp() const {
    v1::StartSessionRequest request;
    *request.mutable_smtp()->mutable_server() =
        Endpoint(EnvPort("MAILPOOL_TEST_SMTPS_PORT"), v1::SECURITY_IMPLICIT_TLS);
    *request.mutable_smtp()->mutable_credentials() = Password();
    return request;
  }
  std::string StartOk(const v1::StartSessionRequest& request) {
    v1::Session session;
    grpc::Status status = Start(request, &session);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return session.id();
  }

  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::unique_ptr<v1::SendService::Stub> send_;
};

TEST_F(MetricsTest, CallCountersMoveByExactlyTheCallsMade) {
  std::string before = ScrapeMetrics();
  std::vector<std::string> ids = {StartOk(Imap()), StartOk(Imap()), StartOk(Pop3())};
  v1::Session ignored;
  EXPECT_EQ(Start(
                [&] {
                  auto r = Imap();
                  r.mutable_imap()->mutable_credentials()->set_password("not-the-password");
                  return r;
                }(),
                &ignored)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    v1::GetSessionRequest request;
    request.set_session("ms0_00000000000000000000000000000000");
    v1::GetSessionResponse response;
    EXPECT_EQ(sessions_->GetSession(&ctx, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  std::string after = ScrapeMetrics();

  auto delta = [&](const std::string& series) {
    return MetricValue(after, series) - MetricValue(before, series);
  };
  EXPECT_EQ(delta(Calls(kSessionService, "StartSession", "OK")), 3);
  EXPECT_EQ(delta(Calls(kSessionService, "StartSession", "UNAUTHENTICATED")), 1);
  EXPECT_EQ(delta(Calls(kSessionService, "GetSession", "NOT_FOUND")), 2);
  EXPECT_EQ(delta(Calls(kSessionService, "GetSession", "OK")), 0);
  // Every call, whatever its code, lands in its method's histogram; _count is the +Inf
  // bucket.
  EXPECT_EQ(delta(LatencyCount(kSessionService, "StartSession")), 4);
  EXPECT_EQ(MetricValue(after, LatencyCount(kSessionService, "StartSession")),
            MetricValue(after, LatencyInf(kSessionService, "StartSession")));
  // A TLS login takes more than a millisecond: the first bucket did not get them all.
  std::string first_bucket =
      absl::StrCat("mailpool_grpc_call_duration_seconds_bucket{service=\"", kSessionService,
                   "\",method=\"StartSession\",le=\"0.001\"}");
  EXPECT_LT(delta(first_bucket), 4);
  EXPECT_GT(MetricValue(after, absl::StrCat("mailpool_grpc_call_duration_seconds_sum{service=\"",
                                            kSessionService, "\",method=\"StartSession\"}")),
            0);
  for (const auto& id : ids) EXPECT_TRUE(Close(id).ok());
}

TEST_F(MetricsTest, SessionGaugesEqualTheSessionsOpen) {
  std::string empty = ScrapeMetrics();
  EXPECT_EQ(MetricValue(empty, Sessions("imap", "ready")), 0);
  // Zeros are written too, so a state that empties shows it.
  EXPECT_THAT(empty, HasSubstr(Sessions("pop3", "ready") + " 0\n"));

  std::vector<std::string> ids = {StartOk(Imap()), StartOk(Imap()), StartOk(Pop3()),
                                  StartOk(Smtp())};
  std::string open = ScrapeMetrics();
  EXPECT_EQ(MetricValue(open, Sessions("imap", "ready")), 2);
  EXPECT_EQ(MetricValue(open, Sessions("pop3", "ready")), 1);
  EXPECT_EQ(MetricValue(open, Sessions("smtp", "ready")), 1);
  EXPECT_EQ(MetricValue(open, Sessions("imap", "connecting")), 0);
  EXPECT_THAT(open, HasSubstr("# TYPE mailpool_sessions gauge\n"));

  ASSERT_TRUE(Close(ids[0]).ok());
  ASSERT_TRUE(Close(ids[2]).ok());
  std::string fewer = ScrapeMetrics();
  EXPECT_EQ(MetricValue(fewer, Sessions("imap", "ready")), 1);
  EXPECT_EQ(MetricValue(fewer, Sessions("pop3", "ready")), 0);
  EXPECT_EQ(MetricValue(fewer, Sessions("smtp", "ready")), 1);
  EXPECT_TRUE(Close(ids[1]).ok());
  EXPECT_TRUE(Close(ids[3]).ok());
}

TEST_F(MetricsTest, BytesAreCountedPerProtocolAndMailboxCallsByMethod) {
  std::string before = ScrapeMetrics();
  std::string pop3 = StartOk(Pop3());
  v1::GetMailboxStatusRequest request;
  request.set_session(pop3);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    v1::GetMailboxStatusResponse response;
    grpc::Status status = mailbox_->GetMailboxStatus(&ctx, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  std::string smtp = StartOk(Smtp());
  {
    grpc::ClientContext ctx;
    v1::CheckAddressRequest check;
    check.set_session(smtp);
    check.set_mode(v1::CHECK_MODE_SERVER);
    check.set_address(Env("MAILPOOL_TEST_USER"));
    v1::CheckAddressResponse response;
    grpc::Status status = send_->CheckAddress(&ctx, check, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  std::string after = ScrapeMetrics();
  auto delta = [&](const std::string& series) {
    return MetricValue(after, series) - MetricValue(before, series);
  };
  EXPECT_EQ(delta(Calls("mailpool.v1.MailboxService", "GetMailboxStatus", "OK")), 3);
  EXPECT_EQ(delta(Calls("mailpool.v1.SendService", "CheckAddress", "OK")), 1);
  // A POP3 login over TLS: the greeting, CAPA and +OK lines in; USER/PASS (or AUTH) out.
  EXPECT_GT(delta("mailpool_bytes_read_total{protocol=\"pop3\"}"), 20);
  EXPECT_GT(delta("mailpool_bytes_written_total{protocol=\"pop3\"}"), 10);
  EXPECT_GT(delta("mailpool_bytes_read_total{protocol=\"smtp\"}"), 20);
  EXPECT_GT(delta("mailpool_bytes_written_total{protocol=\"smtp\"}"), 10);
  // No IMAP session in this test.
  EXPECT_EQ(delta("mailpool_bytes_read_total{protocol=\"imap\"}"), 0);
  EXPECT_TRUE(Close(pop3).ok());
  EXPECT_TRUE(Close(smtp).ok());
}

TEST_F(MetricsTest, PageNamesNoSecretAndOtherPathsAre404) {
  std::string id = StartOk(Imap());
  std::string page = ScrapeMetrics();
  EXPECT_THAT(page, Not(HasSubstr(Env("MAILPOOL_TEST_PASSWORD"))));
  EXPECT_THAT(page, Not(HasSubstr(id)));  // no per-session series: bounded cardinality
  EXPECT_THAT(page, HasSubstr("# TYPE mailpool_grpc_call_duration_seconds histogram\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE mailpool_bytes_read_total counter\n"));
  EXPECT_THAT(HttpGet(server_->metrics_port(), "/"), ::testing::StartsWith("HTTP/1.1 404 "));
  EXPECT_TRUE(Close(id).ok());
}

}  // namespace
}  // namespace mailpool::testing
