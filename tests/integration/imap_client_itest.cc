// imap::NewClient against the real Dovecot started by scripts/testservers.sh, over a plain
// blocking socket (the STARTTLS port, with allow_insecure_auth): every mechanism, literals,
// folder names, NOOP and LOGOUT. TLS itself is covered through the daemon in session_itest.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "imap/client.h"

namespace mailpool::imap {
namespace {

using wire::Mechanism;
using Phase = wire::ClientProtocol::Phase;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  EXPECT_NE(value, nullptr) << name << " is not set: start scripts/testservers.sh first";
  return value ? value : "";
}

class Connection {
 public:
  Connection() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::atoi(Env("MAILPOOL_TEST_IMAP_PORT").c_str())));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Connection() { close(fd_); }
  bool connected() const { return connected_; }

  // Writes the client's output and feeds it server bytes until it stops in a phase other
  // than kLoggingIn / kBusy, or the server goes quiet for 5 s or closes.
  void Drive(wire::ClientProtocol& client) {
    for (;;) {
      std::string out = client.TakeOutput();
      if (!out.empty() && send(fd_, out.data(), out.size(), MSG_NOSIGNAL) < 0) return;
      Phase p = client.phase();
      if (p != Phase::kLoggingIn && p != Phase::kBusy) return;
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 5000) <= 0) return;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return;
      client.OnBytes(absl::string_view(buf, static_cast<size_t>(n)));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

Options PlainOptions(Mechanism mechanism) {
  Options o;
  o.login.security = wire::Security::kPlain;
  o.login.allow_insecure_auth = true;
  o.login.user = Env("MAILPOOL_TEST_USER");
  bool token = mechanism == Mechanism::kXoauth2 || mechanism == Mechanism::kOauthbearer;
  (token ? o.login.oauth2_token : o.login.password) =
      Secret(Env(token ? "MAILPOOL_TEST_TOKEN" : "MAILPOOL_TEST_PASSWORD"));
  o.login.mechanism = mechanism;
  o.login.host = "127.0.0.1";
  o.login.port = static_cast<uint16_t>(std::atoi(Env("MAILPOOL_TEST_IMAP_PORT").c_str()));
  return o;
}

std::string Reason(const absl::Status& s) { return GetPayloadText(s, kReasonPayload).value_or(""); }

class ImapMechanismTest : public ::testing::TestWithParam<Mechanism> {};

TEST_P(ImapMechanismTest, LogsInSelectsNoopsAndLogsOut) {
  Connection conn;
  ASSERT_TRUE(conn.connected());
  auto client = NewClient(PlainOptions(GetParam()));
  conn.Drive(*client);
  ASSERT_EQ(client->phase(), Phase::kReady) << client->error();
  EXPECT_EQ(client->info().mechanism, GetParam());
  EXPECT_TRUE(absl::StartsWith(client->info().greeting, "* OK"));
  EXPECT_FALSE(client->info().capabilities.empty());

  client->StartNoop();
  conn.Drive(*client);
  ASSERT_EQ(client->phase(), Phase::kReady);
  EXPECT_TRUE(client->error().ok()) << client->error();

  client->StartLogout();
  conn.Drive(*client);
  EXPECT_EQ(client->phase(), Phase::kClosed);
  EXPECT_TRUE(absl::StartsWith(client->last_reply(), "a")) << client->last_reply();
  EXPECT_TRUE(absl::StrContains(client->last_reply(), " OK ")) << client->last_reply();
}

INSTANTIATE_TEST_SUITE_P(Dovecot, ImapMechanismTest,
                         ::testing::Values(Mechanism::kCommand, Mechanism::kPlain,
                                           Mechanism::kLogin, Mechanism::kCramMd5,
                                           Mechanism::kXoauth2, Mechanism::kOauthbearer),
                         [](const auto& info) {
                           std::string name(wire::MechanismName(info.param));
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

TEST(ImapClientItest, EightBitPasswordTravelsAsALiteralAndIsRefusedCleanly) {
  // Dovecot answers NO (a verdict on the credentials), not BAD (a syntax error): the
  // literal was framed correctly.
  for (Mechanism m : {Mechanism::kCommand, Mechanism::kPlain}) {
    Connection conn;
    ASSERT_TRUE(conn.connected());
    Options o = PlainOptions(m);
    o.login.password = Secret("p\xc3\xa4sswort \"\\");
    auto client = NewClient(o);
    conn.Drive(*client);
    ASSERT_EQ(client->phase(), Phase::kFailed);
    EXPECT_EQ(client->error().code(), absl::StatusCode::kUnauthenticated) << client->error();
    EXPECT_TRUE(absl::StrContains(client->last_reply(), " NO ")) << client->last_reply();
  }
}

TEST(ImapClientItest, QuotedUserNameReachesTheServerIntact) {
  Connection conn;
  ASSERT_TRUE(conn.connected());
  Options o = PlainOptions(Mechanism::kCommand);
  o.login.user = "no \"such\" \\user";
  auto client = NewClient(o);
  conn.Drive(*client);
  ASSERT_EQ(client->phase(), Phase::kFailed);
  EXPECT_EQ(Reason(client->error()), "AUTH_FAILED");
  EXPECT_TRUE(absl::StrContains(client->last_reply(), " NO ")) << client->last_reply();
}

TEST(ImapClientItest, InitialFolderIsSelected) {
  for (const char* folder : {"Sent", "inbox"}) {
    Connection conn;
    ASSERT_TRUE(conn.connected());
    Options o = PlainOptions(Mechanism::kPlain);
    o.initial_folder = folder;
    auto client = NewClient(o);
    conn.Drive(*client);
    EXPECT_EQ(client->phase(), Phase::kReady) << folder << ": " << client->error();
  }
}

TEST(ImapClientItest, MissingFolderIsNotFoundWithTheServerReply) {
  for (const char* folder : {"No Such Folder", "Entw\xc3\xbcrfe", "R&D"}) {
    Connection conn;
    ASSERT_TRUE(conn.connected());
    Options o = PlainOptions(Mechanism::kPlain);
    o.initial_folder = folder;
    auto client = NewClient(o);
    conn.Drive(*client);
    ASSERT_EQ(client->phase(), Phase::kFailed) << folder;
    EXPECT_EQ(client->error().code(), absl::StatusCode::kNotFound) << client->error();
    EXPECT_EQ(Reason(client->error()), "FOLDER_NOT_FOUND");
    EXPECT_TRUE(absl::StrContains(GetPayloadText(client->error(), kServerReplyPayload).value_or(""),
                                  " NO "));
  }
}

TEST(ImapClientItest, StartTlsStopsForTheHandshakeWithNothingBuffered) {
  Connection conn;
  ASSERT_TRUE(conn.connected());
  Options o = PlainOptions(Mechanism::kPlain);
  o.login.security = wire::Security::kStartTls;
  auto client = NewClient(o);
  conn.Drive(*client);
  EXPECT_EQ(client->phase(), Phase::kNeedTls) << client->error();
  EXPECT_EQ(client->TakeOutput(), "");
}

}  // namespace
}  // namespace mailpool::imap
