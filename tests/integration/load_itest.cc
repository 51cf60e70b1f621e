// Load: hundreds of concurrent gRPC calls across many IMAP, POP3 and SMTP sessions against
// the real Dovecot and Postfix, plus sessions whose server is dead or silent. Every call
// must end with a status within its deadline, sessions on healthy servers must keep
// working, and the daemon must neither crash nor leak (CI runs this under ASan/LSan).
//
// Prints one summary line for the closing report:
//   load: calls=N ok=N failed=N recovered=N hung=0 peak_rss_kib=N seconds=N
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "mailpool/v1/send.grpc.pb.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Sessions per kind on the healthy servers; calls per session and round.
constexpr int kImapSessions = 24;
constexpr int kPop3Sessions = 24;
constexpr int kSmtpSessions = 12;
constexpr int kRounds = 5;
// The client's deadline for every call: a call still unanswered then counts as hung. The
// daemon's own server-silence timeout is far shorter (below), so a silent server must be
// reported by the daemon, not by the client's deadline.
constexpr auto kCallDeadline = std::chrono::seconds(60);
constexpr auto kSilenceTimeout = absl::Seconds(3);

// Peak resident set (VmHWM) of this process, which holds the daemon, in KiB.
long PeakRssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      long kib = 0;
      absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 6 - 3)), &kib);
      return kib;
    }
  }
  return -1;
}

// A TCP listener that accepts into its backlog and never says anything: a hung server.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(fd_, 128);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Issues asynchronous calls and tallies how each ended.
class CallTracker {
 public:
  // Starts one call: `issue` gets a context (deadline set) and a completion to call with
  // the status; `method` names it in the tallies.
  void Issue(const std::string& method,
             std::function<void(grpc::ClientContext*, std::function<void(grpc::Status)>)> issue) {
    auto call = std::make_shared<Call>();
    call->method = method;
    call->context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    call->start = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++issued_;
      ++issued_by_method_[method];
    }
    issue(&call->context, [this, call](grpc::Status status) {
      auto elapsed = Clock::now() - call->start;
      std::lock_guard<std::mutex> lock(mu_);
      ++done_;
      ++codes_[{call->method, status.error_code()}];
      if (elapsed >= kCallDeadline) ++hung_;
      if (!status.ok() && examples_.size() < 10) {
        examples_.push_back(
            absl::StrCat(call->method, ": ", status.error_code(), " ", status.error_message()));
      }
      cv_.notify_all();
    });
  }

  // Waits until every issued call has completed (bounded: the deadline plus slack).
  bool WaitAll() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kCallDeadline + std::chrono::seconds(30),
                        [&] { return done_ == issued_; });
  }

  int issued() const { return issued_; }
  int issued(const std::string& method) {
    std::lock_guard<std::mutex> lock(mu_);
    return issued_by_method_[method];
  }
  int hung() const { return hung_; }
  int Count(const std::string& method, grpc::StatusCode code) {
    std::lock_guard<std::mutex> lock(mu_);
    return codes_[{method, code}];
  }
  int Failed() {
    std::lock_guard<std::mutex> lock(mu_);
    int failed = 0;
    for (const auto& [key, n] : codes_) failed += key.second != grpc::StatusCode::OK ? n : 0;
    return failed;
  }
  std::string Examples() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& e : examples_) absl::StrAppend(&out, e, "\n");
    return out;
  }

 private:
  struct Call {
    std::string method;
    grpc::ClientContext context;
    Clock::time_point start;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  int issued_ = 0;
  int done_ = 0;
  int hung_ = 0;
  std::map<std::string, int> issued_by_method_;
  std::map<std::pair<std::string, grpc::StatusCode>, int> codes_;
  std::vector<std::string> examples_;
};

class LoadTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    mailbox_ = v1::MailboxService::NewStub(channel_);
    send_ = v1::SendService::NewStub(channel_);
    // A short server-silence timeout so that silent servers are reported by the daemon.
    grpc::ClientContext ctx;
    v1::SetDefaultTimeoutRequest request;
    request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(kSilenceTimeout));
    v1::SetDefaultTimeoutResponse response;
    ASSERT_TRUE(sessions_->SetDefaultTimeout(&ctx, request, &response).ok());
  }

  v1::StartSessionRequest Request(v1::Protocol protocol, int port, v1::Security security) const {
    v1::StartSessionRequest request;
    v1::Credentials credentials = Password();
    credentials.set_allow_insecure_auth(security == v1::SECURITY_PLAIN);
    switch (protocol) {
      case v1::PROTOCOL_POP3:
        *request.mutable_pop3()->mutable_server() = Endpoint(port, security);
        *request.mutable_pop3()->mutable_credentials() = credentials;
        break;
      case v1::PROTOCOL_SMTP:
        *request.mutable_smtp()->mutable_server() = Endpoint(port, security);
        *request.mutable_smtp()->mutable_credentials() = credentials;
        break;
      default:
        *request.mutable_imap()->mutable_server() = Endpoint(port, security);
        *request.mutable_imap()->mutable_credentials() = credentials;
    }
    return request;
  }

  // Starts sessions concurrently; returns the IDs of those that started.
  std::vector<std::string> StartAll(CallTracker& tracker,
                                    const std::vector<v1::StartSessionRequest>& requests) {
    std::mutex mu;
    std::vector<std::string> ids;
    std::vector<std::shared_ptr<v1::StartSessionResponse>> responses;
    for (const auto& request : requests) {
      auto response = std::make_shared<v1::StartSessionResponse>();
      responses.push_back(response);
      tracker.Issue("StartSession", [&](grpc::ClientContext* ctx, auto done) {
        sessions_->async()->StartSession(ctx, &request, response.get(),
                                         [&mu, &ids, response, done](grpc::Status status) {
                                           if (status.ok()) {
                                             std::lock_guard<std::mutex> lock(mu);
                                             ids.push_back(response->session().id());
                                           }
                                           done(status);
                                         });
      });
    }
    EXPECT_TRUE(tracker.WaitAll()) << "StartSession calls never completed";
    return ids;
  }

  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::unique_ptr<v1::SendService::Stub> send_;
};

// A request and its response, kept alive (in `keep`) until the calls have completed.
template <typename Request, typename Response>
struct Exchange {
  Request request;
  Response response;
};

TEST_F(LoadTest, HundredsOfConcurrentCallsAllEndInTimeAndSessionsKeepWorking) {
  auto begin = Clock::now();
  std::string before = ScrapeMetrics();
  CallTracker tracker;

  // Sessions on the healthy servers, in every security mode.
  std::vector<v1::StartSessionRequest> healthy;
  for (int i = 0; i < kImapSessions; ++i) {
    healthy.push_back(i % 2 ? Request(v1::PROTOCOL_IMAP, EnvPort("MAILPOOL_TEST_IMAPS_PORT"),
                                      v1::SECURITY_IMPLICIT_TLS)
                            : Request(v1::PROTOCOL_IMAP, EnvPort("MAILPOOL_TEST_IMAP_PORT"),
                                      v1::SECURITY_STARTTLS));
  }
  for (int i = 0; i < kPop3Sessions; ++i) {
    healthy.push_back(
        i % 2 ? Request(v1::PROTOCOL_POP3, EnvPort("MAILPOOL_TEST_POP3S_PORT"),
                        v1::SECURITY_IMPLICIT_TLS)
              : Request(v1::PROTOCOL_POP3, EnvPort("MAILPOOL_TEST_POP3_PORT"), v1::SECURITY_PLAIN));
  }
  for (int i = 0; i < kSmtpSessions; ++i) {
    healthy.push_back(
        Request(v1::PROTOCOL_SMTP, EnvPort("MAILPOOL_TEST_SMTPS_PORT"), v1::SECURITY_IMPLICIT_TLS));
  }
  // Faults: sessions to a closed port (refused at once) and to a server that accepts and
  // never speaks (the daemon's silence timeout must answer for it).
  SilentListener silent;
  std::vector<v1::StartSessionRequest> doomed;
  for (int i = 0; i < 4; ++i) {
    doomed.push_back(Request(v1::PROTOCOL_IMAP, EnvPort("MAILPOOL_TEST_CLOSED_PORT"),
                             v1::SECURITY_IMPLICIT_TLS));
    doomed.push_back(Request(v1::PROTOCOL_POP3, silent.port(), v1::SECURITY_PLAIN));
  }
  std::vector<v1::StartSessionRequest> all = healthy;
  all.insert(all.end(), doomed.begin(), doomed.end());
  std::vector<std::string> ids = StartAll(tracker, all);
  EXPECT_EQ(tracker.Count("StartSession", grpc::StatusCode::OK), static_cast<int>(healthy.size()))
      << tracker.Examples();
  EXPECT_EQ(tracker.Count("StartSession", grpc::StatusCode::UNAVAILABLE), 4);
  EXPECT_EQ(tracker.Count("StartSession", grpc::StatusCode::DEADLINE_EXCEEDED), 4);

  // Which session is what, from the daemon itself.
  std::vector<std::string> pop3, smtp;
  {
    grpc::ClientContext ctx;
    v1::ListSessionsResponse list;
    ASSERT_TRUE(sessions_->ListSessions(&ctx, {}, &list).ok());
    for (const auto& s : list.sessions()) {
      if (s.protocol() == v1::PROTOCOL_POP3) pop3.push_back(s.id());
      if (s.protocol() == v1::PROTOCOL_SMTP) smtp.push_back(s.id());
    }
    EXPECT_EQ(list.sessions_size(), static_cast<int>(healthy.size()));
  }

  // Rounds of calls, all issued at once: GetSession on every session, GetMailboxStatus
  // on POP3, an RCPT probe (CheckAddress SERVER) on SMTP, an unknown session.
  std::vector<std::shared_ptr<void>> keep;
  for (int round = 0; round < kRounds; ++round) {
    for (const auto& id : ids) {
      auto x = std::make_shared<Exchange<v1::GetSessionRequest, v1::GetSessionResponse>>();
      x->request.set_session(id);
      keep.push_back(x);
      tracker.Issue("GetSession", [&, x](grpc::ClientContext* ctx, auto done) {
        sessions_->async()->GetSession(ctx, &x->request, &x->response, done);
      });
    }
    for (const auto& id : pop3) {
      for (int i = 0; i < 2; ++i) {
        auto x =
            std::make_shared<Exchange<v1::GetMailboxStatusRequest, v1::GetMailboxStatusResponse>>();
        x->request.set_session(id);
        keep.push_back(x);
        tracker.Issue("GetMailboxStatus", [&, x](grpc::ClientContext* ctx, auto done) {
          mailbox_->async()->GetMailboxStatus(ctx, &x->request, &x->response, done);
        });
      }
    }
    for (const auto& id : smtp) {
      for (int i = 0; i < 2; ++i) {
        auto x = std::make_shared<Exchange<v1::CheckAddressRequest, v1::CheckAddressResponse>>();
        x->request.set_session(id);
        x->request.set_mode(v1::CHECK_MODE_SERVER);
        x->request.set_address(Env("MAILPOOL_TEST_USER"));
        keep.push_back(x);
        tracker.Issue("CheckAddress", [&, x](grpc::ClientContext* ctx, auto done) {
          send_->async()->CheckAddress(ctx, &x->request, &x->response, done);
        });
      }
    }
    auto x = std::make_shared<Exchange<v1::GetSessionRequest, v1::GetSessionResponse>>();
    x->request.set_session("ms0_00000000000000000000000000000000");
    keep.push_back(x);
    tracker.Issue("GetSession", [&, x](grpc::ClientContext* ctx, auto done) {
      sessions_->async()->GetSession(ctx, &x->request, &x->response, done);
    });
    // Scrapes in the middle of the load: the endpoint shares the loop.
    EXPECT_THAT(ScrapeMetrics(), ::testing::HasSubstr("mailpool_sessions{"));
  }
  ASSERT_TRUE(tracker.WaitAll()) << "calls never completed";
  EXPECT_EQ(tracker.Count("GetSession", grpc::StatusCode::OK),
            kRounds * static_cast<int>(ids.size()))
      << tracker.Examples();
  EXPECT_EQ(tracker.Count("GetSession", grpc::StatusCode::NOT_FOUND), kRounds);
  EXPECT_EQ(tracker.Count("GetMailboxStatus", grpc::StatusCode::OK),
            tracker.issued("GetMailboxStatus"))
      << tracker.Examples();
  EXPECT_EQ(tracker.Count("CheckAddress", grpc::StatusCode::OK), tracker.issued("CheckAddress"))
      << tracker.Examples();

  // Close everything concurrently; then nothing is left.
  for (const auto& id : ids) {
    auto x = std::make_shared<Exchange<v1::CloseSessionRequest, v1::CloseSessionResponse>>();
    x->request.set_session(id);
    keep.push_back(x);
    tracker.Issue("CloseSession", [&, x](grpc::ClientContext* ctx, auto done) {
      sessions_->async()->CloseSession(ctx, &x->request, &x->response, done);
    });
  }
  ASSERT_TRUE(tracker.WaitAll());
  EXPECT_EQ(tracker.Count("CloseSession", grpc::StatusCode::OK), static_cast<int>(ids.size()));
  EXPECT_EQ(tracker.hung(), 0);

  // The daemon's own count agrees with ours, method by method.
  std::string after = ScrapeMetrics();
  for (const char* method : {"StartSession", "GetSession", "CloseSession"}) {
    double counted = 0;
    for (const char* code : {"OK", "NOT_FOUND", "UNAVAILABLE", "DEADLINE_EXCEEDED"}) {
      std::string series =
          absl::StrCat("mailpool_grpc_calls_total{service=\"mailpool.v1.SessionService\",method=\"",
                       method, "\",code=\"", code, "\"}");
      counted += MetricValue(after, series) - MetricValue(before, series);
    }
    EXPECT_EQ(counted, tracker.issued(method)) << method;
  }
  EXPECT_EQ(MetricValue(after, "mailpool_sessions{protocol=\"imap\",state=\"ready\"}"), 0);

  int failed = tracker.Failed();
  int expected_failures = static_cast<int>(doomed.size()) + kRounds;  // + unknown session
  EXPECT_EQ(failed, expected_failures) << tracker.Examples();
  double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  printf("load: calls=%d ok=%d failed=%d recovered=%d hung=%d peak_rss_kib=%ld seconds=%.1f\n",
         tracker.issued(), tracker.issued() - failed, failed, 0, tracker.hung(), PeakRssKib(),
         seconds);
}

}  // namespace
}  // namespace mailpool::testing
