// Link against scripted servers (tests/fakes/scripted_server.h): what a session does when
// a server sends what the client cannot accept.
#include "session/link.h"

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "net/event_loop.h"
#include "tests/fakes/scripted_server.h"

namespace mailpool::session {
namespace {

using ::mailpool::testing::ScriptedConnection;
using ::mailpool::testing::ScriptedServer;

std::string Reason(const absl::Status& s) {
  return GetPayloadText(s, kReasonPayload).value_or("<none>");
}

// A minimal IMAP server: LOGIN, SELECT, LOGOUT; NOOP answered by `noop` (which may send
// anything before the tagged reply it returns).
ScriptedServer::Handler Imap(std::function<std::string(ScriptedConnection&, const std::string&)>
                                 noop) {
  return [noop](ScriptedConnection& c) {
    c.Send("* OK [CAPABILITY IMAP4rev1] scripted ready\r\n");
    while (std::optional<std::string> line = c.ReadLine()) {
      std::string tag = line->substr(0, line->find(' '));
      if (absl::StrContains(*line, " LOGIN ")) {
        c.Send(tag + " OK [CAPABILITY IMAP4rev1] logged in\r\n");
      } else if (absl::StrContains(*line, " SELECT ")) {
        c.Send("* 1 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n" + tag + " OK [READ-WRITE] done\r\n");
      } else if (absl::StrContains(*line, " NOOP")) {
        c.Send(noop(c, tag));
      } else if (absl::StrContains(*line, " LOGOUT")) {
        c.Send("* BYE bye\r\n" + tag + " OK done\r\n");
        return;
      } else {
        c.Send(tag + " BAD what\r\n");
      }
    }
  };
}

class LinkTest : public ::testing::Test {
 protected:
  void SetUp() override { loop_.Start(); }
  void TearDown() override {
    loop_.RunSync([this] { link_.reset(); });
    loop_.Stop();
  }

  void MakeLink(uint16_t port) {
    LinkSpec spec;
    spec.protocol = Protocol::kImap;
    spec.endpoint.host = "127.0.0.1";
    spec.endpoint.port = port;
    spec.login.security = wire::Security::kPlain;
    spec.login.allow_insecure_auth = true;
    spec.login.user = "alice";
    spec.login.password = Secret("secret");
    policy_.backoff.initial = absl::Milliseconds(10);
    loop_.RunSync([&] {
      link_ = std::make_unique<Link>(loop_, std::move(spec), [] { return absl::Seconds(30); },
                                     &policy_);
    });
  }

  absl::Status Open() {
    std::promise<absl::Status> done;
    loop_.Post([&] { link_->Open([&](absl::Status s) { done.set_value(s); }); });
    return Wait(done);
  }
  absl::Status Noop() {
    std::promise<absl::Status> done;
    loop_.Post([&] { link_->Noop([&](absl::Status s) { done.set_value(s); }); });
    return Wait(done);
  }
  static absl::Status Wait(std::promise<absl::Status>& done) {
    std::future<absl::Status> f = done.get_future();
    if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      ADD_FAILURE() << "no answer within 60 s";
      return absl::DeadlineExceededError("test timeout");
    }
    return f.get();
  }
  template <typename T, typename Fn>
  T OnLoop(Fn fn) {
    T out{};
    loop_.RunSync([&] { out = fn(); });
    return out;
  }

  net::EventLoop loop_;
  LinkPolicy policy_;
  std::unique_ptr<Link> link_;
};

// Issue 16: a literal over the 64 MiB limit used to make the link reconnect and repeat
// the command until RECONNECT_FAILED "...after 3 attempts: " (no cause), counting three
// reconnects to a server that was reachable all along.
TEST_F(LinkTest, AProtocolViolationIsNotRetriedAndKeepsItsCause) {
  std::atomic<int> noops{0};
  auto server = ScriptedServer::Start(Imap([&noops](ScriptedConnection&, const std::string& tag) {
    if (noops.fetch_add(1) == 0) return std::string("* 1 FETCH (UID 1 BODY[] {99999999999}\r\n");
    return tag + " OK noop\r\n";
  }));
  ASSERT_TRUE(server.ok()) << server.status();
  MakeLink((*server)->port());
  ASSERT_TRUE(Open().ok());

  absl::Status s = Noop();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(Reason(s), "PROTOCOL_VIOLATION") << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "literal")) << s;
  EXPECT_EQ(noops.load(), 1);  // not repeated
  EXPECT_EQ((*server)->accepted(), 1);
  std::string last_error = OnLoop<std::string>([&] { return link_->last_error(); });
  EXPECT_TRUE(absl::StrContains(last_error, "literal")) << last_error;

  // The next call logs in again and works; that is not counted as a reconnect.
  EXPECT_TRUE(Noop().ok());
  EXPECT_EQ((*server)->accepted(), 2);
  EXPECT_EQ(OnLoop<uint32_t>([&] { return link_->reconnect_count(); }), 0u);
}

// A complete response the client cannot parse fails that one command; the connection
// stays up and the next command runs on it.
TEST_F(LinkTest, AnUnparseableResponseFailsOneCommandAndKeepsTheConnection) {
  std::atomic<int> noops{0};
  auto server = ScriptedServer::Start(Imap([&noops](ScriptedConnection&, const std::string& tag) {
    if (noops.fetch_add(1) == 0) return "* 1 FETCH (UID x)\r\n" + tag + " OK noop\r\n";
    return tag + " OK noop\r\n";
  }));
  ASSERT_TRUE(server.ok()) << server.status();
  MakeLink((*server)->port());
  ASSERT_TRUE(Open().ok());

  absl::Status s = Noop();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_EQ(Reason(s), "MALFORMED_RESPONSE") << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "* 1 FETCH (UID x)")) << s;
  std::string last_error = OnLoop<std::string>([&] { return link_->last_error(); });
  EXPECT_TRUE(absl::StrContains(last_error, "MALFORMED") || absl::StrContains(last_error, "parse"))
      << last_error;
  EXPECT_TRUE(Noop().ok());
  EXPECT_EQ((*server)->accepted(), 1);
  EXPECT_EQ(noops.load(), 2);
}

// Issue 16: an SMTP server that says 421 and hangs up while the session is idle left the
// link neither ready nor broken (the session showed BUSY until the next call).
TEST_F(LinkTest, AnSmtpServerThatHangsUpWhileIdleLeavesTheLinkBrokenThenItReconnects) {
  std::promise<void> hang_up;
  std::shared_future<void> hang_up_now = hang_up.get_future().share();
  auto server = ScriptedServer::Start([hang_up_now](ScriptedConnection& c) {
    c.Send("220 scripted ESMTP\r\n");
    while (std::optional<std::string> line = c.ReadLine()) {
      if (absl::StartsWith(*line, "EHLO")) {
        c.Send("250-scripted\r\n250 PIPELINING\r\n");
        if (c.index() == 0) {
          hang_up_now.wait();
          c.Send("421 4.4.2 scripted idle timeout\r\n");
          return;
        }
      } else if (absl::StartsWith(*line, "NOOP")) {
        c.Send("250 2.0.0 ok\r\n");
      } else if (absl::StartsWith(*line, "QUIT")) {
        c.Send("221 bye\r\n");
        return;
      } else {
        c.Send("502 what\r\n");
      }
    }
  });
  ASSERT_TRUE(server.ok()) << server.status();
  LinkSpec spec;
  spec.protocol = Protocol::kSmtp;
  spec.endpoint.host = "127.0.0.1";
  spec.endpoint.port = (*server)->port();
  spec.login.security = wire::Security::kPlain;
  spec.login.ehlo_name = "client.test";
  policy_.backoff.initial = absl::Milliseconds(10);
  loop_.RunSync([&] {
    link_ = std::make_unique<Link>(loop_, std::move(spec), [] { return absl::Seconds(30); },
                                   &policy_);
  });
  ASSERT_TRUE(Open().ok());
  EXPECT_TRUE(OnLoop<bool>([&] { return link_->ready(); }));
  hang_up.set_value();
  // Wait (bounded) until the link notices.
  absl::Status broken;
  for (int i = 0; i < 6000 && broken.ok(); ++i) {
    broken = OnLoop<absl::Status>([&] { return link_->broken(); });
    if (broken.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(broken.ok()) << "the link never noticed the server hung up";
  EXPECT_TRUE(absl::StrContains(broken.message(), "421")) << broken;
  std::string last_error = OnLoop<std::string>([&] { return link_->last_error(); });
  EXPECT_TRUE(absl::StrContains(last_error, "421")) << last_error;
  EXPECT_FALSE(OnLoop<bool>([&] { return link_->ready(); }));
  // The next call reconnects lazily and works.
  EXPECT_TRUE(Noop().ok());
  EXPECT_TRUE(OnLoop<bool>([&] { return link_->ready(); }));
  EXPECT_EQ((*server)->accepted(), 2);
}

// Issue 16: the wrong security for a port (STARTTLS, the default, against an
// implicit-TLS port) used to wait for the whole silence timeout (10 minutes).
TEST_F(LinkTest, ASilentServerEndsTheLoginAtTheGreetingTimeoutWithAHint) {
  auto server = ScriptedServer::Start([](ScriptedConnection& c) { c.WaitClosed(); });
  ASSERT_TRUE(server.ok()) << server.status();
  policy_.greeting_timeout = absl::Milliseconds(200);  // the silence timeout is 30 s
  MakeLink((*server)->port());
  absl::Status s = Open();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(Reason(s), "GREETING_TIMEOUT") << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "SECURITY_IMPLICIT_TLS")) << s;
}

TEST_F(LinkTest, TlsRecordsWhereAGreetingBelongsSuggestImplicitTls) {
  auto server = ScriptedServer::Start([](ScriptedConnection& c) {
    c.Send(std::string("\x15\x03\x01\x00\x02\x02\x32", 7));  // a TLS alert record
    c.WaitClosed();
  });
  ASSERT_TRUE(server.ok()) << server.status();
  MakeLink((*server)->port());
  absl::Status s = Open();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(Reason(s), "WRONG_SECURITY") << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "SECURITY_IMPLICIT_TLS")) << s;
  // Not retried: the next call gets the same answer without a new connection.
  EXPECT_EQ(Reason(Noop()), "WRONG_SECURITY");
  EXPECT_EQ((*server)->accepted(), 1);
}

}  // namespace
}  // namespace mailpool::session
