// The pool and its links against the real Dovecot and Postfix, without gRPC: keepalive,
// eviction and lifetime with a clock the test moves (no sleeps), and recovery through a
// fault-injecting proxy (drops, stalls, refusals), the per-session queue, cancellation,
// the handshake gate, and credentials refused after a reconnect.
#include <future>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "mailbox/imap_backend.h"
#include "net/event_loop.h"
#include "pool/pool.h"
#include "send/send.h"
#include "tests/fakes/fault_proxy.h"
#include "tests/integration/test_env.h"

namespace mailpool::testing {
namespace {

using session::Link;
using session::Protocol;
using session::RunOptions;

constexpr auto kPatience = std::chrono::seconds(30);

// Waits for a value posted from the loop; fails the test (instead of hanging) after
// kPatience.
template <typename T>
T Wait(std::future<T>& f) {
  if (f.wait_for(kPatience) != std::future_status::ready) {
    ADD_FAILURE() << "no answer within " << kPatience.count() << " s";
    return T(absl::DeadlineExceededError("test: no answer"));
  }
  return f.get();
}

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = ReadFile(Env("MAILPOOL_TEST_CA"));
    loop_.Start();
  }
  void TearDown() override {
    loop_.RunSync([this] { pool_.reset(); });
    loop_.Stop();
  }

  void MakePool(pool::PoolOptions options) {
    options.tick_interval = absl::ZeroDuration();  // the test calls Tick()
    loop_.RunSync([&] { pool_ = std::make_unique<pool::Pool>(loop_, options); });
  }

  pool::PoolOptions FastOptions() {
    pool::PoolOptions o;
    o.link.backoff.initial = absl::Milliseconds(20);
    o.link.backoff.max = absl::Milliseconds(200);
    o.link.backoff.stable_after = absl::Seconds(600);
    return o;
  }

  session::LinkSpec Spec(Protocol protocol, int port, const std::string& password = "") {
    session::LinkSpec spec;
    spec.protocol = protocol;
    spec.endpoint.host = "127.0.0.1";
    spec.endpoint.port = static_cast<uint16_t>(port);
    spec.endpoint.connect_timeout = absl::Seconds(10);
    spec.tls.ca_pem = ca_;
    spec.login.security = wire::Security::kStartTls;
    spec.login.user = Env("MAILPOOL_TEST_USER5");
    spec.login.password = Secret(password.empty() ? Env("MAILPOOL_TEST_PASSWORD5") : password);
    spec.login.host = "127.0.0.1";
    spec.login.port = static_cast<uint16_t>(port);
    return spec;
  }

  // Starts a session with one link; returns its ID.
  std::string Start(session::LinkSpec spec, absl::Status* failure = nullptr) {
    session::SessionSpec s;
    s.kind = spec.protocol == Protocol::kPop3   ? session::Kind::kPop3
             : spec.protocol == Protocol::kSmtp ? session::Kind::kSmtp
                                                : session::Kind::kImap;
    s.links.push_back(std::move(spec));
    std::promise<absl::StatusOr<session::SessionSnapshot>> p;
    auto f = p.get_future();
    loop_.Post([&] {
      pool_->Start("t", std::move(s),
                   [&](absl::StatusOr<session::SessionSnapshot> r) { p.set_value(std::move(r)); });
    });
    absl::StatusOr<session::SessionSnapshot> r = Wait(f);
    if (failure != nullptr) *failure = r.status();
    if (!r.ok()) {
      if (failure == nullptr) ADD_FAILURE() << r.status();
      return "";
    }
    return r->id;
  }

  // Runs `fn` with the session's only link on the loop.
  template <typename Fn>
  void WithLink(const std::string& id, Fn fn) {
    loop_.RunSync([&] {
      absl::StatusOr<session::Session*> s = pool_->Use("t", id);
      ASSERT_TRUE(s.ok()) << s.status();
      fn(*(*s)->links().front());
    });
  }

  // Queues a NOOP; the future gets its status.
  std::future<absl::Status> Noop(const std::string& id, RunOptions options = {}) {
    auto p = std::make_shared<std::promise<absl::Status>>();
    auto f = p->get_future();
    WithLink(id, [&](Link& link) {
      link.Noop([p](absl::Status s) { p->set_value(s); }, std::move(options));
    });
    return f;
  }

  absl::Status NoopNow(const std::string& id, RunOptions options = {}) {
    auto f = Noop(id, std::move(options));
    return Wait(f);
  }

  // Session::UpdateCredentials with `password` for every link; the future gets its status.
  std::future<absl::Status> UpdateCredentials(const std::string& id, const std::string& password) {
    auto p = std::make_shared<std::promise<absl::Status>>();
    auto f = p->get_future();
    loop_.RunSync([&] {
      absl::StatusOr<session::Session*> s = pool_->Use("t", id);
      ASSERT_TRUE(s.ok()) << s.status();
      std::vector<wire::LoginOptions> logins;
      for (const auto& link : (*s)->links()) {
        logins.push_back(link->spec().login);
        logins.back().password = Secret(password);
      }
      (*s)->UpdateCredentials(std::move(logins), [p](absl::Status st) { p->set_value(st); });
    });
    return f;
  }

  template <typename T, typename Fn>
  T OnLoop(Fn fn) {
    T out{};
    loop_.RunSync([&] { out = fn(); });
    return out;
  }

  // Polls `cond` on the loop until true or kPatience passed.
  template <typename Fn>
  bool Eventually(Fn cond) {
    auto until = std::chrono::steady_clock::now() + kPatience;
    while (std::chrono::steady_clock::now() < until) {
      if (OnLoop<bool>(cond)) return true;
      std::this_thread::yield();
    }
    return false;
  }

  std::unique_ptr<FaultProxy> Proxy(const char* port_env) {
    auto proxy = FaultProxy::Start("127.0.0.1", static_cast<uint16_t>(EnvPort(port_env)));
    EXPECT_TRUE(proxy.ok()) << proxy.status();
    return proxy.ok() ? std::move(*proxy) : nullptr;
  }

  // Outlives the pool: links read the clock until the pool is torn down.
  FakeClock clock_;
  net::EventLoop loop_;
  std::unique_ptr<pool::Pool> pool_;
  std::string ca_;
};

// --- keepalive, eviction and lifetime on a clock the test moves --------------------------

TEST_F(PoolTest, KeepaliveNoopOnlyAfterTheQuietInterval) {
  FakeClock& clock = clock_;
  pool::PoolOptions o = FastOptions();
  o.link.clock = &clock;
  o.keepalive_pop3 = absl::Minutes(4);
  MakePool(o);
  std::string id = Start(Spec(Protocol::kPop3, EnvPort("MAILPOOL_TEST_POP3_PORT")));
  ASSERT_FALSE(id.empty());
  absl::Time opened = clock.Now();

  clock.Advance(absl::Minutes(3) + absl::Seconds(59));
  loop_.RunSync([&] { pool_->Tick(); });
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().keepalives; }), 0u);

  clock.Advance(absl::Seconds(1));
  loop_.RunSync([&] { pool_->Tick(); });
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().keepalives; }), 1u);
  // The NOOP went to the server and came back: the link is idle again, active "now".
  ASSERT_TRUE(Eventually([&] {
    session::Link* l = pool_->Use("t", id).value()->links().front().get();
    return l->idle() && l->last_activity() == opened + absl::Minutes(4);
  }));
  // Nothing more is due until another quiet interval has passed.
  clock.Advance(absl::Minutes(3));
  loop_.RunSync([&] { pool_->Tick(); });
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().keepalives; }), 1u);
  clock.Advance(absl::Minutes(1));
  loop_.RunSync([&] { pool_->Tick(); });
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().keepalives; }), 2u);
}

TEST_F(PoolTest, KeepaliveSkipsALinkWhoseCommandIsRunning) {
  FakeClock& clock = clock_;
  pool::PoolOptions o = FastOptions();
  o.link.clock = &clock;
  o.keepalive_pop3 = absl::Minutes(4);
  MakePool(o);
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());
  proxy->SetStall(true);
  auto running = Noop(id);  // stays on the wire (like an IDLE)
  clock.Advance(absl::Minutes(30));
  loop_.RunSync([&] { pool_->Tick(); });
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().keepalives; }), 0u);
  proxy->SetStall(false);
  EXPECT_TRUE(Wait(running).ok());
}

TEST_F(PoolTest, NoKeepaliveWhenTheIntervalIsZero) {
  FakeClock& clock = clock_;
  pool::PoolOptions o = FastOptions();
  o.link.clock = &clock;
  o.keepalive_smtp = absl::ZeroDuration();
  MakePool(o);
  std::string id = Start(Spec(Protocol::kSmtp, EnvPort("MAILPOOL_TEST_SMTP_PORT")));
  ASSERT_FALSE(id.empty());
  clock.Advance(absl::Minutes(59));
  loop_.RunSync([&] { pool_->Tick(); });
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().keepalives; }), 0u);
}

TEST_F(PoolTest, IdleSessionsAreEvictedAndLaterCallsSayWhy) {
  FakeClock& clock = clock_;
  pool::PoolOptions o = FastOptions();
  o.link.clock = &clock;
  o.idle_timeout = absl::Minutes(30);
  MakePool(o);
  std::string idle = Start(Spec(Protocol::kPop3, EnvPort("MAILPOOL_TEST_POP3_PORT")));
  std::string used = Start(Spec(Protocol::kPop3, EnvPort("MAILPOOL_TEST_POP3_PORT")));
  ASSERT_FALSE(idle.empty());
  ASSERT_FALSE(used.empty());

  clock.Advance(absl::Minutes(20));
  loop_.RunSync([&] { ASSERT_TRUE(pool_->Use("t", used).ok()); });  // a call touches it
  clock.Advance(absl::Minutes(10));
  loop_.RunSync([&] { pool_->Tick(); });
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().evicted_idle; }), 1u);
  // The evicted session logs out and is forgotten; the used one stays.
  ASSERT_TRUE(Eventually([&] { return pool_->size() == 1; }));
  absl::Status gone = OnLoop<absl::Status>([&] { return pool_->Get("t", idle).status(); });
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(gone.message(), "not used for 30m")) << gone;
  EXPECT_TRUE(OnLoop<bool>([&] { return pool_->Get("t", used).ok(); }));
}

TEST_F(PoolTest, SessionsEndAtTheirMaximumLifetimeEvenWhenUsed) {
  FakeClock& clock = clock_;
  pool::PoolOptions o = FastOptions();
  o.link.clock = &clock;
  o.idle_timeout = absl::ZeroDuration();
  o.max_lifetime = absl::Hours(2);
  MakePool(o);
  std::string id = Start(Spec(Protocol::kPop3, EnvPort("MAILPOOL_TEST_POP3_PORT")));
  ASSERT_FALSE(id.empty());
  for (int i = 0; i < 11; ++i) {
    clock.Advance(absl::Minutes(10));
    loop_.RunSync([&] {
      ASSERT_TRUE(pool_->Use("t", id).ok());
      pool_->Tick();
    });
  }
  EXPECT_EQ(OnLoop<size_t>([&] { return pool_->size(); }), 1u);  // 1h50m: still there
  clock.Advance(absl::Minutes(10));
  loop_.RunSync([&] { pool_->Tick(); });
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().evicted_lifetime; }), 1u);
  ASSERT_TRUE(Eventually([&] { return pool_->size() == 0; }));
  absl::Status gone = OnLoop<absl::Status>([&] { return pool_->Get("t", id).status(); });
  EXPECT_TRUE(absl::StrContains(gone.message(), "maximum lifetime of 2h")) << gone;
}

TEST_F(PoolTest, ConnectionsPerServerAreLimited) {
  pool::PoolOptions o = FastOptions();
  o.max_connections_per_server = 1;
  MakePool(o);
  std::string first = Start(Spec(Protocol::kPop3, EnvPort("MAILPOOL_TEST_POP3_PORT")));
  ASSERT_FALSE(first.empty());
  absl::Status failure;
  Start(Spec(Protocol::kPop3, EnvPort("MAILPOOL_TEST_POP3_PORT")), &failure);
  EXPECT_EQ(failure.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(failure.message(), "--max_connections_per_server")) << failure;
  // Another server is another budget.
  EXPECT_FALSE(Start(Spec(Protocol::kSmtp, EnvPort("MAILPOOL_TEST_SMTP_PORT"))).empty());
}

// --- recovery through the fault proxy -------------------------------------------------------

TEST_F(PoolTest, TheNextCallAfterADropReconnectsTransparently) {
  MakePool(FastOptions());
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(NoopNow(id).ok());
  proxy->DropAll();
  // The link notices the drop while idle and says so.
  ASSERT_TRUE(Eventually([&] { return pool_->Get("t", id)->state == session::State::kBroken; }));
  std::string last_error = OnLoop<std::string>([&] { return pool_->Get("t", id)->last_error; });
  EXPECT_FALSE(last_error.empty());
  EXPECT_TRUE(NoopNow(id).ok());
  session::SessionSnapshot s =
      OnLoop<session::SessionSnapshot>([&] { return *pool_->Get("t", id); });
  EXPECT_EQ(s.state, session::State::kReady);
  EXPECT_EQ(s.reconnect_count, 1u);
  EXPECT_EQ(s.last_error, last_error);  // kept after recovery, for GetSession
  EXPECT_EQ(proxy->accepted(), 2);
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().reconnects; }), 1u);
}

TEST_F(PoolTest, AnImapSessionLogsInAndSelectsItsFolderAgainAfterADrop) {
  MakePool(FastOptions());
  auto proxy = Proxy("MAILPOOL_TEST_IMAP_PORT");
  session::LinkSpec spec = Spec(Protocol::kImap, proxy->port());
  spec.initial_folder = "INBOX";
  std::string id = Start(std::move(spec));
  ASSERT_FALSE(id.empty());
  proxy->DropAll();
  ASSERT_TRUE(Eventually([&] { return pool_->Get("t", id)->state == session::State::kBroken; }));
  // What the IMAP backend does when the caller selects another folder: the next login
  // selects that one.
  WithLink(id, [](Link& link) { link.set_initial_folder("INBOX"); });
  EXPECT_TRUE(NoopNow(id).ok());
  session::SessionSnapshot s =
      OnLoop<session::SessionSnapshot>([&] { return *pool_->Get("t", id); });
  EXPECT_EQ(s.reconnect_count, 1u);
  EXPECT_EQ(s.current_folder, "INBOX");
  EXPECT_EQ(proxy->accepted(), 2);
}

TEST_F(PoolTest, ADropUnderACommandRepeatsItOnlyWhenSafe) {
  MakePool(FastOptions());
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());

  proxy->SetStall(true);
  auto safe = Noop(id);
  ASSERT_TRUE(Eventually([&] { return !pool_->Use("t", id).value()->links()[0]->ready(); }));
  proxy->DropAll();
  proxy->SetStall(false);
  EXPECT_TRUE(Wait(safe).ok()) << "a safe command runs again on the new connection";

  proxy->SetStall(true);
  auto unsafe = Noop(id, session::Repeat::kUnsafe);
  ASSERT_TRUE(Eventually([&] { return !pool_->Use("t", id).value()->links()[0]->ready(); }));
  proxy->DropAll();
  proxy->SetStall(false);
  absl::Status s = Wait(unsafe);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GetPayloadText(s, kReasonPayload), "OUTCOME_UNKNOWN");
  EXPECT_TRUE(absl::StrContains(s.message(), "may or may not have been carried out")) << s;
  // The session itself recovers for the next call.
  EXPECT_TRUE(NoopNow(id).ok());
  EXPECT_EQ(OnLoop<uint32_t>([&] { return pool_->Get("t", id)->reconnect_count; }), 2u);
}

TEST_F(PoolTest, AnUnsafeCommandThatFindsTheLinkDownRunsAfterTheReconnect) {
  MakePool(FastOptions());
  auto proxy = Proxy("MAILPOOL_TEST_SMTP_PORT");
  std::string id = Start(Spec(Protocol::kSmtp, proxy->port()));
  ASSERT_FALSE(id.empty());
  proxy->DropAll();
  ASSERT_TRUE(Eventually([&] { return pool_->Get("t", id)->state == session::State::kBroken; }));
  // Nothing was sent on the dead connection, so there is no doubt to report.
  EXPECT_TRUE(NoopNow(id, session::Repeat::kUnsafe).ok());
}

TEST_F(PoolTest, ACancelledCallLeavesNoConnectionInAnUnknownState) {
  MakePool(FastOptions());
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());
  proxy->SetStall(true);
  auto call = std::make_shared<CallToken>();
  RunOptions o;
  o.call = call;
  auto stalled = Noop(id, o);
  auto queued_call = std::make_shared<CallToken>();
  RunOptions q;
  q.call = queued_call;
  auto queued = Noop(id, q);
  // What gRPC does at the deadline (service/call.h): the token is cancelled on the loop.
  loop_.RunSync([&] { queued_call->Cancel(absl::DeadlineExceededError("deadline")); });
  EXPECT_EQ(Wait(queued).code(), absl::StatusCode::kDeadlineExceeded);
  loop_.RunSync([&] { call->Cancel(absl::CancelledError("caller cancelled")); });
  EXPECT_EQ(Wait(stalled).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(OnLoop<int>([&] { return static_cast<int>(pool_->Get("t", id)->state); }),
            static_cast<int>(session::State::kBroken));
  proxy->SetStall(false);
  EXPECT_TRUE(NoopNow(id).ok());
  EXPECT_EQ(proxy->accepted(), 2) << "the half-used connection was replaced";
}

TEST_F(PoolTest, CallsOnOneSessionQueueInOrderAndOverflowIsRefused) {
  pool::PoolOptions o = FastOptions();
  o.link.max_queue = 4;
  MakePool(o);
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());
  proxy->SetStall(true);
  std::vector<int> order;
  std::vector<std::future<absl::Status>> done;
  for (int i = 0; i < 6; ++i) {
    auto p = std::make_shared<std::promise<absl::Status>>();
    done.push_back(p->get_future());
    WithLink(id, [&](Link& link) {
      link.Noop([p, i, &order](absl::Status s) {
        if (s.ok()) order.push_back(i);
        p->set_value(s);
      });
    });
  }
  // One running + four queued; the sixth is refused at once.
  ASSERT_EQ(done[5].wait_for(std::chrono::seconds(0)), std::future_status::ready);
  absl::Status full = done[5].get();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StrContains(full.message(), "more than 4 calls are waiting")) << full;
  proxy->SetStall(false);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Wait(done[i]).ok());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

// The mailbox backends queue whole turns in the link (no queue of their own), so the
// session's queue bound and cancel-while-queued hold for mailbox calls too.
TEST_F(PoolTest, MailboxCallsShareTheLinkQueueItsBoundAndItsCancellation) {
  pool::PoolOptions o = FastOptions();
  o.link.max_queue = 2;
  MakePool(o);
  auto proxy = Proxy("MAILPOOL_TEST_IMAP_PORT");
  std::string id = Start(Spec(Protocol::kImap, proxy->port()));
  ASSERT_FALSE(id.empty());
  std::unique_ptr<mailbox::ImapBackend> backend;
  loop_.RunSync([&] { backend = std::make_unique<mailbox::ImapBackend>(loop_, *pool_); });
  using Folders = absl::StatusOr<v1::ListFoldersResponse>;
  auto list = [&](std::shared_ptr<CallToken> call) {
    auto p = std::make_shared<std::promise<Folders>>();
    auto f = p->get_future();
    loop_.RunSync([&] {
      backend->ListFolders(mailbox::CallTarget{"t", id, std::move(call)}, v1::ListFoldersRequest(),
                           [p](Folders r) { p->set_value(r); });
    });
    return f;
  };
  proxy->SetStall(true);
  auto running = Noop(id);  // on the wire, stalled
  auto first = list(nullptr);
  auto cancelled_call = std::make_shared<CallToken>();
  auto second = list(cancelled_call);
  auto third = list(nullptr);
  // Two waiting fill the queue: the third mailbox call is refused at once.
  ASSERT_EQ(third.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  Folders full = third.get();
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted) << full.status();
  EXPECT_TRUE(absl::StrContains(full.status().message(), "more than 2 calls")) << full.status();
  // Cancelled while queued: answered at once, and it never reaches the server.
  loop_.RunSync([&] { cancelled_call->Cancel(absl::CancelledError("caller cancelled")); });
  ASSERT_EQ(second.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(second.get().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(OnLoop<size_t>([&] { return pool_->Use("t", id).value()->links().front()->queued(); }),
            1u);
  proxy->SetStall(false);
  EXPECT_TRUE(Wait(running).ok());
  Folders folders = Wait(first);
  ASSERT_TRUE(folders.ok()) << folders.status();
  EXPECT_GT(folders->folders_size(), 0);
  EXPECT_EQ(proxy->accepted(), 1) << "nothing was reset: the cancelled call never ran";
  loop_.RunSync([&] { backend.reset(); });
}

// The send paths (probes, sends, the outbox sender) queue in the SMTP link itself: the
// session's queue bound and cancel-while-queued hold for them too.
TEST_F(PoolTest, SendCallsShareTheLinkQueueItsBoundAndItsCancellation) {
  pool::PoolOptions o = FastOptions();
  o.link.max_queue = 2;
  MakePool(o);
  auto proxy = Proxy("MAILPOOL_TEST_SMTP_PORT");
  std::string id = Start(Spec(Protocol::kSmtp, proxy->port()));
  ASSERT_FALSE(id.empty());
  using Probed = absl::StatusOr<smtp::Reply>;
  auto probe = [&](std::shared_ptr<CallToken> call, bool vrfy = false) {
    auto p = std::make_shared<std::promise<Probed>>();
    auto f = p->get_future();
    loop_.RunSync([&] {
      absl::StatusOr<session::Link*> link = sender::SmtpLinkOf(*pool_, "t", id);
      ASSERT_TRUE(link.ok()) << link.status();
      sender::ProbeAddress(**link, Env("MAILPOOL_TEST_USER"), vrfy, std::move(call),
                           [p](Probed r) { p->set_value(std::move(r)); });
    });
    return f;
  };
  proxy->SetStall(true);
  auto running = Noop(id);  // on the wire, stalled
  auto first = probe(nullptr, /*vrfy=*/true);
  auto cancelled_call = std::make_shared<CallToken>();
  auto second = probe(cancelled_call);
  // Two waiting fill the queue: a send is refused at once.
  auto sent = std::make_shared<std::promise<absl::Status>>();
  auto sent_f = sent->get_future();
  loop_.RunSync([&] {
    auto out = std::make_shared<sender::Outgoing>();
    out->envelope.mail_from = Env("MAILPOOL_TEST_USER5");
    out->envelope.rcpt_to = {Env("MAILPOOL_TEST_USER")};
    out->source = "Subject: queued\r\n\r\nbody\r\n";
    sender::Transact(**sender::SmtpLinkOf(*pool_, "t", id), out, nullptr, nullptr,
                     [sent](absl::Status s, smtp::SendResult) { sent->set_value(s); });
  });
  ASSERT_EQ(sent_f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  absl::Status full = sent_f.get();
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_EQ(GetPayloadText(full, kReasonPayload), "SESSION_QUEUE_FULL") << full;
  // Cancelled while queued: answered at once, and it never reaches the server.
  loop_.RunSync([&] { cancelled_call->Cancel(absl::CancelledError("caller cancelled")); });
  ASSERT_EQ(second.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(second.get().status().code(), absl::StatusCode::kCancelled);
  proxy->SetStall(false);
  EXPECT_TRUE(Wait(running).ok());
  // VRFY (refused or not by Postfix) and, where refused as unimplemented, the probe: a reply.
  Probed verdict = Wait(first);
  ASSERT_TRUE(verdict.ok()) << verdict.status();
  EXPECT_GT(verdict->code, 0);
  EXPECT_EQ(proxy->accepted(), 1) << "nothing was reset: the cancelled call never ran";
  // A session without SMTP: WRONG_PROTOCOL before anything is queued.
  std::string imap = Start(Spec(Protocol::kImap, EnvPort("MAILPOOL_TEST_IMAP_PORT")));
  absl::Status wrong =
      OnLoop<absl::Status>([&] { return sender::SmtpLinkOf(*pool_, "t", imap).status(); });
  EXPECT_EQ(GetPayloadText(wrong, kReasonPayload), "WRONG_PROTOCOL") << wrong;
}

// Issue 16: the wrong security for a port, against the real Dovecot. STARTTLS (the
// default) against the IMAPS port used to hang for the whole silence timeout; implicit TLS
// against the plaintext port now says which mode the port wants.
TEST_F(PoolTest, TheWrongSecurityForAPortFailsFastWithAHint) {
  pool::PoolOptions o = FastOptions();
  o.link.greeting_timeout = absl::Seconds(2);  // the silence timeout stays 10 minutes
  MakePool(o);
  absl::Status failure;
  session::LinkSpec starttls_on_imaps = Spec(Protocol::kImap, EnvPort("MAILPOOL_TEST_IMAPS_PORT"));
  EXPECT_EQ(Start(std::move(starttls_on_imaps), &failure), "");
  EXPECT_EQ(failure.code(), absl::StatusCode::kDeadlineExceeded) << failure;
  EXPECT_EQ(GetPayloadText(failure, kReasonPayload), "GREETING_TIMEOUT") << failure;
  EXPECT_TRUE(absl::StrContains(failure.message(), "SECURITY_IMPLICIT_TLS")) << failure;

  for (const char* port :
       {"MAILPOOL_TEST_IMAP_PORT", "MAILPOOL_TEST_POP3_PORT", "MAILPOOL_TEST_SMTP_PORT"}) {
    Protocol protocol = absl::StrContains(port, "IMAP")   ? Protocol::kImap
                        : absl::StrContains(port, "POP3") ? Protocol::kPop3
                                                          : Protocol::kSmtp;
    session::LinkSpec implicit_on_plain = Spec(protocol, EnvPort(port));
    implicit_on_plain.login.security = wire::Security::kImplicitTls;
    EXPECT_EQ(Start(std::move(implicit_on_plain), &failure), "");
    EXPECT_EQ(failure.code(), absl::StatusCode::kFailedPrecondition) << port << failure;
    EXPECT_EQ(GetPayloadText(failure, kReasonPayload), "WRONG_SECURITY") << port << failure;
    EXPECT_TRUE(absl::StrContains(failure.message(), "SECURITY_STARTTLS")) << failure;
  }
}

TEST_F(PoolTest, ReconnectsBackOffAndACallGivesUpAfterItsAttempts) {
  pool::PoolOptions o = FastOptions();
  o.link.max_attempts_per_call = 3;
  MakePool(o);
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());
  proxy->SetRefuse(true);
  proxy->DropAll();
  ASSERT_TRUE(Eventually([&] { return pool_->Get("t", id)->state == session::State::kBroken; }));
  absl::Status s = NoopNow(id);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GetPayloadText(s, kReasonPayload), "RECONNECT_FAILED") << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "after 3 attempts")) << s;
  EXPECT_EQ(proxy->accepted(), 1 + 3);
  EXPECT_EQ(OnLoop<uint64_t>([&] { return pool_->stats().failed_reconnects; }), 3u);
  // The server is back: the next call recovers the session.
  proxy->SetRefuse(false);
  EXPECT_TRUE(NoopNow(id).ok());
}

TEST_F(PoolTest, ACallDoesNotWaitForABackoffBeyondItsDeadline) {
  pool::PoolOptions o = FastOptions();
  o.link.backoff.initial = absl::Seconds(30);
  o.link.backoff.max = absl::Seconds(30);
  o.link.backoff.jitter = 0;
  MakePool(o);
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());
  proxy->SetRefuse(true);
  proxy->DropAll();
  ASSERT_TRUE(Eventually([&] { return pool_->Get("t", id)->state == session::State::kBroken; }));
  RunOptions r;
  r.call = std::make_shared<CallToken>(absl::Now() + absl::Seconds(5));
  absl::Status s = NoopNow(id, r);  // the connection had not lived long: wait 30 s first
  EXPECT_EQ(GetPayloadText(s, kReasonPayload), "RECONNECT_BACKOFF") << s;
  EXPECT_EQ(proxy->accepted(), 1) << "no attempt was made";
}

TEST_F(PoolTest, LoginsAfterAMassDropGoThroughTheHandshakeGate) {
  pool::PoolOptions o = FastOptions();
  o.max_handshakes_in_flight = 3;
  MakePool(o);
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(Start(Spec(Protocol::kPop3, proxy->port())));
  EXPECT_LE(OnLoop<int>([&] { return pool_->stats().peak_handshakes_in_flight; }), 3);
  proxy->DropAll();
  ASSERT_TRUE(Eventually([&] {
    for (const auto& id : ids) {
      if (pool_->Get("t", id)->state != session::State::kBroken) return false;
    }
    return true;
  }));
  loop_.RunSync([&] { pool_->gate().ResetPeak(); });
  std::vector<std::future<absl::Status>> calls;
  for (const auto& id : ids) calls.push_back(Noop(id));
  for (auto& c : calls) EXPECT_TRUE(Wait(c).ok());
  pool::PoolStats st = OnLoop<pool::PoolStats>([&] { return pool_->stats(); });
  EXPECT_EQ(st.reconnects, 12u);
  EXPECT_LE(st.peak_handshakes_in_flight, 3);
  EXPECT_GE(st.peak_handshakes_in_flight, 1);
  EXPECT_EQ(st.handshakes_in_flight, 0);
}

TEST_F(PoolTest, LoginsStuckOnASilentServerDoNotBlockOtherServers) {
  pool::PoolOptions o = FastOptions();
  o.max_handshakes_in_flight = 4;  // one server may hold 3
  MakePool(o);
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  proxy->SetStall(true);  // accepts connections, never greets
  std::vector<std::future<absl::Status>> stuck;
  for (int i = 0; i < 6; ++i) {
    auto p = std::make_shared<std::promise<absl::Status>>();
    stuck.push_back(p->get_future());
    session::SessionSpec s;
    s.kind = session::Kind::kPop3;
    s.links.push_back(Spec(Protocol::kPop3, proxy->port()));
    loop_.Post([this, p, s = std::move(s)]() mutable {
      pool_->Start("t", std::move(s),
                   [p](absl::StatusOr<session::SessionSnapshot> r) { p->set_value(r.status()); });
    });
  }
  ASSERT_TRUE(Eventually([&] { return pool_->stats().handshakes_waiting == 3; }));
  // Another server's login takes the slot the silent one may not have.
  EXPECT_FALSE(Start(Spec(Protocol::kSmtp, EnvPort("MAILPOOL_TEST_SMTP_PORT"))).empty());
  proxy->SetStall(false);
  for (auto& f : stuck) EXPECT_TRUE(Wait(f).ok());
}

TEST_F(PoolTest, CredentialsRefusedOnAReconnectAreNeverTriedAgain) {
  MakePool(FastOptions());
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());
  {
    PasswordChange change("changed-by-pool-itest");
    proxy->DropAll();
    ASSERT_TRUE(Eventually([&] { return pool_->Get("t", id)->state == session::State::kBroken; }));
    absl::Status first = NoopNow(id);
    EXPECT_EQ(first.code(), absl::StatusCode::kUnauthenticated) << first;
    int connections = proxy->accepted();
    for (int i = 0; i < 3; ++i) {
      absl::Status again = NoopNow(id);
      EXPECT_EQ(again.code(), absl::StatusCode::kUnauthenticated) << again;
    }
    EXPECT_EQ(proxy->accepted(), connections) << "refused credentials were retried";
    session::SessionSnapshot s =
        OnLoop<session::SessionSnapshot>([&] { return *pool_->Get("t", id); });
    EXPECT_EQ(s.state, session::State::kBroken);
    EXPECT_FALSE(s.last_error.empty());
    EXPECT_FALSE(absl::StrContains(s.last_error, Env("MAILPOOL_TEST_PASSWORD5")));
  }
  // Even with the password back, the session stays refused until given credentials again.
  EXPECT_EQ(NoopNow(id).code(), absl::StatusCode::kUnauthenticated);
  int before = proxy->accepted();
  auto updated = UpdateCredentials(id, Env("MAILPOOL_TEST_PASSWORD5"));
  absl::Status status = Wait(updated);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(proxy->accepted(), before + 1) << "one login with the new credentials, at once";
  EXPECT_EQ(OnLoop<session::State>([&] { return pool_->Get("t", id)->state; }),
            session::State::kReady);
  EXPECT_TRUE(NoopNow(id).ok());
  EXPECT_EQ(proxy->accepted(), before + 1);
}

// A login still in flight with the old credentials when new ones arrive: its refusal says
// nothing about the new ones, which are tried next instead of being refused for good.
TEST_F(PoolTest, ARefusalOfReplacedCredentialsDoesNotStickToTheNewOnes) {
  MakePool(FastOptions());
  auto proxy = Proxy("MAILPOOL_TEST_POP3_PORT");
  std::string id = Start(Spec(Protocol::kPop3, proxy->port()));
  ASSERT_FALSE(id.empty());
  const std::string changed = "changed-by-pool-itest-race";
  PasswordChange change(changed);
  proxy->DropAll();
  ASSERT_TRUE(Eventually([&] { return pool_->Get("t", id)->state == session::State::kBroken; }));
  auto noop = Noop(id);  // reconnects with the old password, which the server now refuses
  std::future<absl::Status> updated;
  ASSERT_TRUE(Eventually([&] {
    session::Link& link = *pool_->Use("t", id).value()->links().front();
    if (!link.reconnecting()) return false;
    // The same loop turn: the login with the old password is surely still in flight.
    std::vector<wire::LoginOptions> logins{link.spec().login};
    logins.front().password = Secret(changed);
    auto p = std::make_shared<std::promise<absl::Status>>();
    updated = p->get_future();
    pool_->Use("t", id).value()->UpdateCredentials(std::move(logins),
                                                   [p](absl::Status st) { p->set_value(st); });
    return true;
  }));
  absl::Status update_status = Wait(updated);
  EXPECT_TRUE(update_status.ok()) << "nothing had been refused yet: " << update_status;
  absl::Status noop_status = Wait(noop);
  EXPECT_TRUE(noop_status.ok()) << noop_status;
  session::SessionSnapshot s =
      OnLoop<session::SessionSnapshot>([&] { return *pool_->Get("t", id); });
  EXPECT_EQ(s.state, session::State::kReady);
  EXPECT_EQ(s.reconnect_count, 1u);
  EXPECT_TRUE(OnLoop<bool>(
      [&] { return pool_->Use("t", id).value()->links().front()->permanent_failure().ok(); }));
}

}  // namespace
}  // namespace mailpool::testing
