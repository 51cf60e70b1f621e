// callers::Callers without gRPC: the token file grammar, identity from each kind of call
// facts, calls in flight and the StartSession bucket (on a fake clock).
#include "callers/callers.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mailpool::callers {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kHex = Sha256Hex("tok-alice");

TEST(TokenFileTest, ParsesNamesDigestsAdminAndComments) {
  auto entries = ParseTokenFile(
      absl::StrCat("# header\n\nalice ", kHex, "\n  bob\t", Sha256Hex("tok-bob"),
                   " admin # ops\r\n"),
      "tokens");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].name, "alice");
  EXPECT_FALSE((*entries)[0].admin);
  EXPECT_EQ((*entries)[0].digest.size(), 32u);
  EXPECT_EQ((*entries)[1].name, "bob");
  EXPECT_TRUE((*entries)[1].admin);
}

TEST(TokenFileTest, AMalformedLineIsAnErrorNamingItsNumberButNotItsText) {
  const struct {
    std::string text;
    const char* what;
  } cases[] = {
      {absl::StrCat("alice ", kHex, "\nbob\n"), "tokens:2: expected"},
      {"alice plain-token-pasted-by-mistake\n", "tokens:1: the second field"},
      {absl::StrCat("al ice ", kHex, "\n"), "tokens:1: the second field"},
      {absl::StrCat("alice ", kHex, " root\n"), "tokens:1: the third field"},
      {absl::StrCat("uid:0 ", kHex, "\n"), "tokens:1: NAME"},
      {absl::StrCat("alice ", kHex, "\nalice ", Sha256Hex("x"), "\n"), "tokens:2: caller alice"},
      {absl::StrCat("alice ", kHex, "\nbob ", kHex, "\n"), "tokens:2: the same token"},
      {absl::StrCat("alice ", kHex.substr(1), "\n"), "tokens:1: the second field"},
  };
  for (const auto& c : cases) {
    auto entries = ParseTokenFile(c.text, "tokens");
    ASSERT_FALSE(entries.ok()) << c.text;
    EXPECT_THAT(std::string(entries.status().message()), HasSubstr(c.what)) << c.text;
    EXPECT_THAT(std::string(entries.status().message()),
                Not(HasSubstr("plain-token-pasted-by-mistake")));
  }
}

class CallersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char path[] = "/tmp/callers-test-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = path;
    Write(absl::StrCat("alice ", kHex, "\nops ", Sha256Hex("tok-ops"), " admin\n"));
  }
  void TearDown() override { unlink(path_.c_str()); }
  void Write(const std::string& text) { std::ofstream(path_, std::ios::trunc) << text; }
  CallersOptions Options() {
    CallersOptions o;
    o.tokens_file = path_;
    return o;
  }
  static CallFacts Bearer(absl::string_view value) {
    CallFacts f;
    f.has_authorization = true;
    f.authorization = value;
    f.peer = "ipv4:127.0.0.1:5000";
    return f;
  }
  std::string path_;
};

TEST_F(CallersTest, TokensNameTheirCallers) {
  Callers callers(Options());
  ASSERT_TRUE(callers.Load().ok());
  EXPECT_TRUE(callers.authentication_required());
  auto alice = callers.Identify(Bearer("Bearer tok-alice"));
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->name, "alice");
  EXPECT_FALSE(alice->admin);
  auto ops = callers.Identify(Bearer("bearer   tok-ops "));
  ASSERT_TRUE(ops.ok());
  EXPECT_EQ(ops->name, "ops");
  EXPECT_TRUE(ops->admin);
  for (absl::string_view bad : {"Bearer tok-alicE", "Bearer ", "Basic tok-alice", "tok-alice", ""}) {
    auto who = callers.Identify(Bearer(bad));
    EXPECT_EQ(who.status().code(), absl::StatusCode::kUnauthenticated) << bad;
    EXPECT_THAT(who.status().ToString(), Not(HasSubstr("tok-alice")));
  }
  // No credentials at all: refused when tokens are configured.
  CallFacts none;
  none.peer = "ipv4:127.0.0.1:5000";
  EXPECT_EQ(callers.Identify(none).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(CallersTest, WithoutAuthenticationEveryTcpCallerIsLocal) {
  Callers callers(CallersOptions{});
  ASSERT_TRUE(callers.Load().ok());
  CallFacts none;
  none.peer = "ipv6:[::1]:5000";
  auto who = callers.Identify(none);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->name, kLocal);
  EXPECT_FALSE(who->admin);
  // A token where none are configured is still checked, never ignored.
  EXPECT_EQ(callers.Identify(Bearer("Bearer tok-alice")).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(CallersTest, UnixPeersAndCertificates) {
  Callers callers(Options());
  ASSERT_TRUE(callers.Load().ok());
  callers.NoteUnixPeer(17, 1000);
  callers.NoteUnixPeer(18, 0);
  CallFacts unix_peer;
  unix_peer.peer = "fd:17";
  EXPECT_EQ(callers.Identify(unix_peer)->name, "uid:1000");
  EXPECT_EQ(callers.Identify(unix_peer)->admin, 1000 == geteuid());
  unix_peer.peer = "fd:18";
  EXPECT_TRUE(callers.Identify(unix_peer)->admin) << "root is an admin on the socket";
  unix_peer.peer = "fd:19";
  EXPECT_EQ(callers.Identify(unix_peer).status().code(), absl::StatusCode::kUnauthenticated);
  // The descriptor number is reused by the next connection: its uid replaces the old one.
  callers.NoteUnixPeer(17, 1001);
  unix_peer.peer = "fd:17";
  EXPECT_EQ(callers.Identify(unix_peer)->name, "uid:1001");
  CallFacts cert;
  cert.peer = "ipv4:10.0.0.1:4000";
  cert.cert_common_name = "billing";
  EXPECT_EQ(callers.Identify(cert)->name, "cert:billing");
  cert.cert_common_name.clear();
  cert.cert_uri = "spiffe://example/app";
  EXPECT_EQ(callers.Identify(cert)->name, "cert:spiffe://example/app");
}

TEST_F(CallersTest, LoadKeepsTheOldTableWhenTheNewFileIsBad) {
  Callers callers(Options());
  ASSERT_TRUE(callers.Load().ok());
  Write("broken\n");
  EXPECT_FALSE(callers.Load().ok());
  EXPECT_TRUE(callers.Identify(Bearer("Bearer tok-alice")).ok());
  Write(absl::StrCat("carol ", Sha256Hex("tok-carol"), "\n"));
  ASSERT_TRUE(callers.Load().ok());
  EXPECT_FALSE(callers.Identify(Bearer("Bearer tok-alice")).ok());
  EXPECT_EQ(callers.Identify(Bearer("Bearer tok-carol"))->name, "carol");
  CallersOptions missing;
  missing.tokens_file = "/nonexistent/tokens";
  EXPECT_FALSE(Callers(missing).Load().ok());
}

TEST_F(CallersTest, CallsInFlightArePerCaller) {
  CallersOptions o;
  o.max_calls_per_caller = 2;
  Callers callers(o);
  Caller alice{"alice"}, bob{"bob"};
  callers.Enter("alice");
  callers.Enter("alice");
  EXPECT_TRUE(callers.Admit(alice).ok());
  callers.Enter("alice");
  absl::Status refused = callers.Admit(alice);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(GetPayloadText(refused, kRetryAfterPayload).has_value());
  callers.Enter("bob");
  EXPECT_TRUE(callers.Admit(bob).ok());
  callers.Leave("alice");
  EXPECT_TRUE(callers.Admit(alice).ok());
}

absl::Time fake_now = absl::UnixEpoch();
absl::Time FakeNow() { return fake_now; }

TEST_F(CallersTest, StartBucketRefillsAtItsRate) {
  CallersOptions o;
  o.start_rate_per_caller = 2;  // one token per 500 ms
  o.start_burst_per_caller = 3;
  o.now = &FakeNow;
  Callers callers(o);
  Caller alice{"alice"}, bob{"bob"};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(callers.TakeStart(alice).ok()) << i;
  absl::Status empty = callers.TakeStart(alice);
  EXPECT_EQ(empty.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GetPayloadText(empty, kRetryAfterPayload), "500");
  EXPECT_TRUE(callers.TakeStart(bob).ok()) << "each caller has its own bucket";
  fake_now += absl::Milliseconds(499);
  EXPECT_FALSE(callers.TakeStart(alice).ok());
  fake_now += absl::Milliseconds(2);
  EXPECT_TRUE(callers.TakeStart(alice).ok());
  fake_now += absl::Hours(1);  // refills to the burst, not beyond
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(callers.TakeStart(alice).ok()) << i;
  EXPECT_FALSE(callers.TakeStart(alice).ok());
}

TEST_F(CallersTest, MessageBytesBudgetIsDaemonWide) {
  CallersOptions o;
  o.max_inflight_message_bytes = 100;
  Callers callers(o);
  auto first = callers.ReserveMessageBytes(60);
  ASSERT_TRUE(first.ok());
  auto second = callers.ReserveMessageBytes(60);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GetPayloadText(second.status(), kReasonPayload), "MEMORY_BUDGET");
  EXPECT_TRUE(GetPayloadText(second.status(), kRetryAfterPayload).has_value());
  auto small = callers.ReserveMessageBytes(40);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(callers.message_bytes_in_flight(), 100u);
  first->reset();
  small->reset();
  EXPECT_EQ(callers.message_bytes_in_flight(), 0u);
  // Alone, a message larger than the whole budget still goes.
  auto huge = callers.ReserveMessageBytes(500);
  EXPECT_TRUE(huge.ok());
  EXPECT_FALSE(callers.ReserveMessageBytes(1).ok());
}

}  // namespace
}  // namespace mailpool::callers
