// Load: hundreds of concurrent gRPC calls across many IMAP, POP3 and SMTP sessions against
// the real Dovecot and Postfix behind fault-injecting proxies (tests/fakes/fault_proxy):
// steady load, every connection dropped under in-flight calls, a stalled SMTP server, then
// recovery; plus sessions whose server is dead or silent. Every call must end with a
// status within its deadline, every session must recover, and the daemon must neither
// crash nor leak (CI runs this under ASan/LSan).
//
// Prints one summary line for the closing report:
//   load: calls=N ok=N failed=N (...) recovered_sessions=N reconnects=N hung=0
//         peak_rss_kib=N seconds=N
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
#include "tests/fakes/fault_proxy.h"
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
// daemon's own server-silence timeouts are shorter (below), so a silent server must be
// reported by the daemon, not by the client's deadline. Healthy servers get a generous
// timeout (a loaded 2-core machine can keep Dovecot busy for seconds); only the sessions
// whose server is made silent on purpose get the short one, and only while it is silent.
constexpr auto kCallDeadline = std::chrono::seconds(60);
constexpr auto kHealthyTimeout = absl::Seconds(30);
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

// A request and its response, kept alive (in `keep`) until the calls have completed.
template <typename Request, typename Response>
struct Exchange {
  Request request;
  Response response;
};

// The sessions of the test, by kind, as the daemon lists them.
struct Sessions {
  std::vector<std::string> all, pop3, smtp;
};

class LoadTest : public DaemonTest {
 protected:
  void Configure(server::ServerOptions& options) override {
    // Quick reconnects: the faults below drop every connection at once.
    options.pool.link.backoff.initial = absl::Milliseconds(20);
    options.pool.link.backoff.max = absl::Milliseconds(200);
  }
  void SetUp() override {
    DaemonTest::SetUp();
    mailbox_ = v1::MailboxService::NewStub(channel_);
    send_ = v1::SendService::NewStub(channel_);
    // The default for healthy servers; silent ones get kSilenceTimeout of their own.
    grpc::ClientContext ctx;
    v1::SetDefaultTimeoutRequest request;
    request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(kHealthyTimeout));
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

  // Sets a session's own server-silence timeout (zero: the daemon default again).
  void SetTimeout(const std::string& id, absl::Duration timeout) {
    grpc::ClientContext ctx;
    v1::UpdateSessionRequest request;
    request.set_session(id);
    request.mutable_timeout()->set_seconds(absl::ToInt64Seconds(timeout));
    v1::UpdateSessionResponse response;
    grpc::Status status = sessions_->UpdateSession(&ctx, request, &response);
    EXPECT_TRUE(status.ok()) << id << ": " << status.error_message();
  }

  // Starts sessions concurrently and waits for every answer.
  void StartAll(CallTracker& tracker, const std::vector<v1::StartSessionRequest>& requests) {
    std::vector<std::shared_ptr<v1::StartSessionResponse>> responses;
    for (const auto& request : requests) {
      auto response = std::make_shared<v1::StartSessionResponse>();
      responses.push_back(response);
      tracker.Issue("StartSession", [&](grpc::ClientContext* ctx, auto done) {
        sessions_->async()->StartSession(ctx, &request, response.get(), done);
      });
    }
    EXPECT_TRUE(tracker.WaitAll()) << "StartSession calls never completed";
  }

  Sessions List() {
    Sessions out;
    grpc::ClientContext ctx;
    v1::ListSessionsResponse list;
    EXPECT_TRUE(sessions_->ListSessions(&ctx, {}, &list).ok());
    for (const auto& s : list.sessions()) {
      out.all.push_back(s.id());
      if (s.protocol() == v1::PROTOCOL_POP3) out.pop3.push_back(s.id());
      if (s.protocol() == v1::PROTOCOL_SMTP) out.smtp.push_back(s.id());
    }
    return out;
  }

  // Issues one round without waiting: GetSession on every session, two GetMailboxStatus
  // per POP3 session, two RCPT probes (CheckAddress SERVER) per SMTP session, and a
  // GetSession of an unknown session.
  void IssueRound(CallTracker& tracker, const Sessions& sessions) {
    for (const auto& id : sessions.all) {
      auto x = Keep<v1::GetSessionRequest, v1::GetSessionResponse>();
      x->request.set_session(id);
      tracker.Issue("GetSession", [this, x](grpc::ClientContext* ctx, auto done) {
        sessions_->async()->GetSession(ctx, &x->request, &x->response, done);
      });
    }
    for (int i = 0; i < 2; ++i) {
      for (const auto& id : sessions.pop3) IssueMailboxStatus(tracker, id);
      for (const auto& id : sessions.smtp) IssueProbe(tracker, id);
    }
    auto x = Keep<v1::GetSessionRequest, v1::GetSessionResponse>();
    x->request.set_session("ms0_00000000000000000000000000000000");
    tracker.Issue("GetSession", [this, x](grpc::ClientContext* ctx, auto done) {
      sessions_->async()->GetSession(ctx, &x->request, &x->response, done);
    });
  }
  void IssueMailboxStatus(CallTracker& tracker, const std::string& id) {
    auto x = Keep<v1::GetMailboxStatusRequest, v1::GetMailboxStatusResponse>();
    x->request.set_session(id);
    tracker.Issue("GetMailboxStatus", [this, x](grpc::ClientContext* ctx, auto done) {
      mailbox_->async()->GetMailboxStatus(ctx, &x->request, &x->response, done);
    });
  }
  void IssueProbe(CallTracker& tracker, const std::string& id) {
    auto x = Keep<v1::CheckAddressRequest, v1::CheckAddressResponse>();
    x->request.set_session(id);
    x->request.set_mode(v1::CHECK_MODE_SERVER);
    x->request.set_address(Env("MAILPOOL_TEST_USER"));
    tracker.Issue("CheckAddress", [this, x](grpc::ClientContext* ctx, auto done) {
      send_->async()->CheckAddress(ctx, &x->request, &x->response, done);
    });
  }

  template <typename Request, typename Response>
  std::shared_ptr<Exchange<Request, Response>> Keep() {
    auto x = std::make_shared<Exchange<Request, Response>>();
    keep_.push_back(x);
    return x;
  }

  std::unique_ptr<FaultProxy> Proxy(const char* port_env) {
    auto proxy = FaultProxy::Start("127.0.0.1", static_cast<uint16_t>(EnvPort(port_env)));
    EXPECT_TRUE(proxy.ok()) << proxy.status();
    return proxy.ok() ? std::move(*proxy) : nullptr;
  }

  std::unique_ptr<v1::MailboxService::Stub> mailbox_;
  std::unique_ptr<v1::SendService::Stub> send_;
  std::vector<std::shared_ptr<void>> keep_;  // requests and responses of issued calls
};

// Every call of a phase ended with one of `codes`.
void ExpectOnly(CallTracker& tracker, std::initializer_list<grpc::StatusCode> codes,
                const char* phase) {
  int allowed = 0;
  for (const char* method :
       {"StartSession", "GetSession", "GetMailboxStatus", "CheckAddress", "CloseSession"}) {
    for (grpc::StatusCode code : codes) allowed += tracker.Count(method, code);
  }
  EXPECT_EQ(allowed, tracker.issued()) << phase << ": unexpected codes\n" << tracker.Examples();
}

TEST_F(LoadTest, HundredsOfConcurrentCallsThroughFaultsAllEndInTimeAndSessionsRecover) {
  auto begin = Clock::now();
  std::string before = ScrapeMetrics();

  // The POP3 and SMTP servers sit behind fault-injecting proxies. IMAP sessions talk to
  // Dovecot directly: no call here would use (and so reconnect) an IMAP link, and they
  // show that faults elsewhere leave them alone.
  auto pop3 = Proxy("MAILPOOL_TEST_POP3_PORT");
  auto pop3s = Proxy("MAILPOOL_TEST_POP3S_PORT");
  auto smtps = Proxy("MAILPOOL_TEST_SMTPS_PORT");
  ASSERT_TRUE(pop3 && pop3s && smtps);
  std::vector<v1::StartSessionRequest> healthy;
  for (int i = 0; i < kImapSessions; ++i) {
    healthy.push_back(i % 2 ? Request(v1::PROTOCOL_IMAP, EnvPort("MAILPOOL_TEST_IMAPS_PORT"),
                                      v1::SECURITY_IMPLICIT_TLS)
                            : Request(v1::PROTOCOL_IMAP, EnvPort("MAILPOOL_TEST_IMAP_PORT"),
                                      v1::SECURITY_STARTTLS));
  }
  for (int i = 0; i < kPop3Sessions; ++i) {
    healthy.push_back(i % 2 ? Request(v1::PROTOCOL_POP3, pop3s->port(), v1::SECURITY_IMPLICIT_TLS)
                            : Request(v1::PROTOCOL_POP3, pop3->port(), v1::SECURITY_PLAIN));
  }
  for (int i = 0; i < kSmtpSessions; ++i) {
    healthy.push_back(Request(v1::PROTOCOL_SMTP, smtps->port(), v1::SECURITY_IMPLICIT_TLS));
  }
  // Sessions that cannot start: a closed port (refused at once) and a server that accepts
  // and never speaks (the daemon's silence timeout must answer for it).
  SilentListener silent;
  std::vector<v1::StartSessionRequest> all = healthy;
  for (int i = 0; i < 4; ++i) {
    all.push_back(Request(v1::PROTOCOL_IMAP, EnvPort("MAILPOOL_TEST_CLOSED_PORT"),
                          v1::SECURITY_IMPLICIT_TLS));
    v1::StartSessionRequest hung = Request(v1::PROTOCOL_POP3, silent.port(), v1::SECURITY_PLAIN);
    hung.mutable_timeout()->set_seconds(absl::ToInt64Seconds(kSilenceTimeout));
    all.push_back(hung);
  }
  CallTracker start;
  StartAll(start, all);
  EXPECT_EQ(start.Count("StartSession", grpc::StatusCode::OK), static_cast<int>(healthy.size()))
      << start.Examples();
  EXPECT_EQ(start.Count("StartSession", grpc::StatusCode::UNAVAILABLE), 4);
  EXPECT_EQ(start.Count("StartSession", grpc::StatusCode::DEADLINE_EXCEEDED), 4);
  Sessions sessions = List();
  ASSERT_EQ(sessions.all.size(), healthy.size());

  // 1. Steady load: rounds issued all at once.
  CallTracker steady;
  for (int round = 0; round < kRounds; ++round) IssueRound(steady, sessions);
  // Scrapes in the middle of the load: the endpoint shares the loop.
  EXPECT_THAT(ScrapeMetrics(), ::testing::HasSubstr("mailpool_sessions{"));
  ASSERT_TRUE(steady.WaitAll()) << "calls never completed";
  EXPECT_EQ(steady.Count("GetSession", grpc::StatusCode::NOT_FOUND), kRounds);
  EXPECT_EQ(steady.Failed(), kRounds) << steady.Examples();

  // 2. Drops: every POP3 and SMTP connection is reset while calls are in flight. Calls that
  //    are safe to repeat reconnect transparently; none may hang.
  CallTracker dropped;
  for (int round = 0; round < kRounds; ++round) IssueRound(dropped, sessions);
  for (auto* proxy : {pop3.get(), pop3s.get(), smtps.get()}) proxy->DropAll();
  ASSERT_TRUE(dropped.WaitAll()) << "calls never completed";
  ExpectOnly(dropped,
             {grpc::StatusCode::OK, grpc::StatusCode::NOT_FOUND, grpc::StatusCode::UNAVAILABLE,
              grpc::StatusCode::DEADLINE_EXCEEDED},
             "drops");

  // 3. A stalled SMTP server: its probes end by the silence timeout while POP3 calls on
  //    the same loop carry on.
  CallTracker stalled;
  for (const auto& id : sessions.smtp) SetTimeout(id, kSilenceTimeout);
  smtps->SetStall(true);
  for (const auto& id : sessions.smtp) IssueProbe(stalled, id);
  for (const auto& id : sessions.pop3) IssueMailboxStatus(stalled, id);
  ASSERT_TRUE(stalled.WaitAll()) << "calls never completed";
  smtps->SetStall(false);
  for (const auto& id : sessions.smtp) SetTimeout(id, absl::ZeroDuration());  // the default
  EXPECT_EQ(stalled.Count("GetMailboxStatus", grpc::StatusCode::OK),
            static_cast<int>(sessions.pop3.size()))
      << stalled.Examples();
  EXPECT_EQ(stalled.Count("CheckAddress", grpc::StatusCode::OK), 0) << stalled.Examples();
  ExpectOnly(
      stalled,
      {grpc::StatusCode::OK, grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::DEADLINE_EXCEEDED},
      "stall");

  // 4. Faults cleared: every session recovers, every call succeeds.
  CallTracker recovery;
  for (int round = 0; round < kRounds; ++round) IssueRound(recovery, sessions);
  ASSERT_TRUE(recovery.WaitAll()) << "calls never completed";
  EXPECT_EQ(recovery.Failed(), kRounds) << recovery.Examples();  // the unknown session only
  int reconnects = 0, recovered = 0;
  for (const auto& id : sessions.all) {
    grpc::ClientContext ctx;
    v1::GetSessionRequest request;
    request.set_session(id);
    v1::GetSessionResponse response;
    ASSERT_TRUE(sessions_->GetSession(&ctx, request, &response).ok());
    EXPECT_EQ(response.session().state(), v1::SESSION_STATE_READY) << id;
    reconnects += static_cast<int>(response.session().reconnect_count());
    recovered += response.session().reconnect_count() > 0 ? 1 : 0;
  }
  // Every POP3 and SMTP session was cut and used again afterwards.
  EXPECT_GE(recovered, kPop3Sessions + kSmtpSessions);
  std::string during = ScrapeMetrics();
  EXPECT_EQ(MetricValue(during, "mailpool_reconnects_total{result=\"ok\"}") -
                MetricValue(before, "mailpool_reconnects_total{result=\"ok\"}"),
            reconnects);

  // 5. Close everything concurrently; nothing is left.
  CallTracker closing;
  for (const auto& id : sessions.all) {
    auto x = Keep<v1::CloseSessionRequest, v1::CloseSessionResponse>();
    x->request.set_session(id);
    closing.Issue("CloseSession", [this, x](grpc::ClientContext* ctx, auto done) {
      sessions_->async()->CloseSession(ctx, &x->request, &x->response, done);
    });
  }
  ASSERT_TRUE(closing.WaitAll());
  EXPECT_EQ(closing.Count("CloseSession", grpc::StatusCode::OK),
            static_cast<int>(sessions.all.size()));

  // The daemon's own count of calls agrees with ours.
  std::vector<CallTracker*> phases = {&start, &steady, &dropped, &stalled, &recovery, &closing};
  std::string after = ScrapeMetrics();
  for (const char* method : {"StartSession", "GetSession", "CloseSession"}) {
    int issued = 0;
    for (CallTracker* t : phases) issued += t->issued(method);
    // Plus the GetSession per session that read the reconnect counts.
    if (absl::string_view(method) == "GetSession") issued += static_cast<int>(sessions.all.size());
    double counted = 0;
    for (const char* code : {"OK", "NOT_FOUND", "UNAVAILABLE", "DEADLINE_EXCEEDED"}) {
      std::string series =
          absl::StrCat("mailpool_grpc_calls_total{service=\"mailpool.v1.SessionService\",method=\"",
                       method, "\",code=\"", code, "\"}");
      counted += MetricValue(after, series) - MetricValue(before, series);
    }
    EXPECT_EQ(counted, issued) << method;
  }
  EXPECT_EQ(MetricValue(after, "mailpool_sessions{protocol=\"pop3\",state=\"ready\"}"), 0);

  int calls = 0, failed = 0, hung = 0;
  for (CallTracker* t : phases) {
    calls += t->issued();
    failed += t->Failed();
    hung += t->hung();
  }
  EXPECT_EQ(hung, 0);
  double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  printf(
      "load: calls=%d ok=%d failed=%d (in faults: drops %d, stall %d) recovered_sessions=%d "
      "reconnects=%d hung=%d peak_rss_kib=%ld seconds=%.1f\n",
      calls, calls - failed, failed, dropped.Failed(), stalled.Failed(), recovered, reconnects,
      hung, PeakRssKib(), seconds);
}

}  // namespace
}  // namespace mailpool::testing
