// Pop3Backend against a scripted POP3 server (tests/fakes/scripted_server.h): server
// behaviour a real Dovecot does not show.
#include "mailbox/pop3_backend.h"

#include <atomic>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "net/event_loop.h"
#include "pool/pool.h"
#include "tests/fakes/scripted_server.h"

namespace mailpool::mailbox {
namespace {

using ::mailpool::testing::ScriptedConnection;
using ::mailpool::testing::ScriptedServer;

// One message, listed at 100 bytes; RETR sends `retr_body` (already dot-stuffed).
ScriptedServer::Handler Pop3(std::string retr_body) {
  return [retr_body](ScriptedConnection& c) {
    c.Send("+OK scripted POP3 ready\r\n");
    while (std::optional<std::string> line = c.ReadLine()) {
      std::string cmd = line->substr(0, line->find(' '));
      if (cmd == "CAPA") {
        c.Send("+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n");
      } else if (cmd == "USER" || cmd == "PASS" || cmd == "NOOP" || cmd == "RSET") {
        c.Send("+OK\r\n");
      } else if (cmd == "STAT") {
        c.Send("+OK 1 100\r\n");
      } else if (cmd == "LIST") {
        c.Send(*line == "LIST" ? "+OK\r\n1 100\r\n.\r\n" : "+OK 1 100\r\n");
      } else if (cmd == "UIDL") {
        c.Send(*line == "UIDL" ? "+OK\r\n1 uid-one\r\n.\r\n" : "+OK 1 uid-one\r\n");
      } else if (cmd == "TOP") {
        c.Send("+OK\r\nSubject: big\r\n\r\n.\r\n");
      } else if (cmd == "RETR") {
        c.Send("+OK\r\n" + retr_body + ".\r\n");
      } else if (cmd == "QUIT") {
        c.Send("+OK bye\r\n");
        return;
      } else {
        c.Send("-ERR unknown\r\n");
      }
    }
  };
}

class Pop3BackendTest : public ::testing::Test {
 protected:
  void SetUp() override { loop_.Start(); }
  void TearDown() override {
    loop_.RunSync([this] {
      backend_.reset();
      pool_.reset();
    });
    loop_.Stop();
  }

  // Starts the pool, the backend (with `max_message_bytes`) and a session on `port`.
  std::string StartSession(uint16_t port, uint64_t max_message_bytes) {
    pool::PoolOptions options;
    options.tick_interval = absl::ZeroDuration();
    Pop3BackendOptions backend_options;
    backend_options.max_message_bytes = max_message_bytes;
    loop_.RunSync([&] {
      pool_ = std::make_unique<pool::Pool>(loop_, options);
      backend_ = std::make_unique<Pop3Backend>(*pool_, backend_options);
    });
    session::LinkSpec link;
    link.protocol = session::Protocol::kPop3;
    link.endpoint.host = "127.0.0.1";
    link.endpoint.port = port;
    link.login.security = wire::Security::kPlain;
    link.login.allow_insecure_auth = true;
    link.login.user = "alice";
    link.login.password = Secret("secret");
    session::SessionSpec spec;
    spec.kind = session::Kind::kPop3;
    spec.links.push_back(std::move(link));
    std::promise<absl::StatusOr<session::SessionSnapshot>> p;
    loop_.Post([&] {
      pool_->Start("t", std::move(spec), [&](absl::StatusOr<session::SessionSnapshot> r) {
        p.set_value(std::move(r));
      });
    });
    absl::StatusOr<session::SessionSnapshot> r = Wait(p);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->id : "";
  }

  template <typename T>
  static T Wait(std::promise<T>& p) {
    std::future<T> f = p.get_future();
    if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      ADD_FAILURE() << "no answer within 60 s";
      return T(absl::DeadlineExceededError("test timeout"));
    }
    return f.get();
  }

  absl::StatusOr<v1::ListMessagesResponse> List(const std::string& id) {
    std::promise<absl::StatusOr<v1::ListMessagesResponse>> p;
    v1::ListMessagesRequest request;
    request.set_session(id);
    loop_.Post([&] {
      backend_->ListMessages(CallTarget{"t", id, nullptr}, request,
                             [&](absl::StatusOr<v1::ListMessagesResponse> r) {
                               p.set_value(std::move(r));
                             });
    });
    return Wait(p);
  }

  absl::StatusOr<v1::GetMessageResponse> Get(const std::string& session, const std::string& id,
                                             v1::MessageView view) {
    std::promise<absl::StatusOr<v1::GetMessageResponse>> p;
    v1::GetMessageRequest request;
    request.set_session(session);
    request.set_id(id);
    request.set_view(view);
    loop_.Post([&] {
      backend_->GetMessage(CallTarget{"t", session, nullptr}, request,
                           [&](absl::StatusOr<v1::GetMessageResponse> r) {
                             p.set_value(std::move(r));
                           });
    });
    return Wait(p);
  }

  net::EventLoop loop_;
  std::unique_ptr<pool::Pool> pool_;
  std::unique_ptr<Pop3Backend> backend_;
};

// Issue 16: a RETR longer than LIST said and past the cap came back cut at the cap, OK.
TEST_F(Pop3BackendTest, ARetrPastTheCapIsResourceExhaustedNotAShortMessage) {
  std::string body = "Subject: big\r\n\r\n";
  for (int i = 0; i < 100; ++i) body += std::string(70, 'x') + "\r\n";  // ~7 KiB
  auto server = ScriptedServer::Start(Pop3(body));
  ASSERT_TRUE(server.ok()) << server.status();
  std::string session = StartSession((*server)->port(), /*max_message_bytes=*/4096);
  ASSERT_FALSE(session.empty());
  absl::StatusOr<v1::ListMessagesResponse> listed = List(session);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->messages_size(), 1);
  const std::string id = listed->messages(0).id();
  for (v1::MessageView view : {v1::MESSAGE_VIEW_RAW, v1::MESSAGE_VIEW_FULL}) {
    absl::StatusOr<v1::GetMessageResponse> got = Get(session, id, view);
    ASSERT_FALSE(got.ok()) << "a message cut at the cap came back as whole";
    EXPECT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted) << got.status();
    EXPECT_EQ(GetPayloadText(got.status(), kReasonPayload), "MESSAGE_TOO_LARGE");
    EXPECT_TRUE(absl::StrContains(got.status().message(), "listed at 100")) << got.status();
  }
  // The session is still usable, on the same connection.
  EXPECT_TRUE(List(session).ok());
  EXPECT_EQ((*server)->accepted(), 1);
}

TEST_F(Pop3BackendTest, ARetrWithinTheCapComesBackWhole) {
  std::string body = "Subject: small\r\n\r\n" + std::string(500, 'y') + "\r\n";
  auto server = ScriptedServer::Start(Pop3(body));
  ASSERT_TRUE(server.ok()) << server.status();
  std::string session = StartSession((*server)->port(), /*max_message_bytes=*/4096);
  ASSERT_FALSE(session.empty());
  absl::StatusOr<v1::ListMessagesResponse> listed = List(session);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->messages_size(), 1);
  absl::StatusOr<v1::GetMessageResponse> got =
      Get(session, listed->messages(0).id(), v1::MESSAGE_VIEW_RAW);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->message().source(), body);
}

}  // namespace
}  // namespace mailpool::mailbox
