// imap::NewClient against the real Dovecot started by scripts/testservers.sh, over a plain
// blocking socket (the STARTTLS port, with allow_insecure_auth): every mechanism, literals,
// folder names, NOOP and LOGOUT. TLS itself is covered through the daemon in session_itest.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
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

  // Like Drive, but for a command that does not end by itself (IDLE): feeds server bytes
  // until `done` holds or 10 s pass.
  bool PumpUntil(wire::ClientProtocol& client, const std::function<bool()>& done) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!done()) {
      std::string out = client.TakeOutput();
      if (!out.empty() && send(fd_, out.data(), out.size(), MSG_NOSIGNAL) < 0) return false;
      if (absl::Now() > deadline) return false;
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 100) < 0) return false;
      if (pfd.revents == 0) continue;
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      client.OnBytes(absl::string_view(buf, static_cast<size_t>(n)));
    }
    return true;
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
                                           Mechanism::kXoauth2, Mechanism::kOauthbearer,
                                           Mechanism::kScramSha1, Mechanism::kScramSha256),
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

// ---- Mailbox commands, in alice's folders under kPrefix (never her INBOX). ----

constexpr char kPrefix[] = "imapc-itest";

// A logged-in client on its own connection.
struct Session {
  Connection conn;
  std::unique_ptr<Client> client;

  Session() : client(NewClient(PlainOptions(Mechanism::kPlain))) {
    EXPECT_TRUE(conn.connected());
    conn.Drive(*client);
    EXPECT_EQ(client->phase(), Phase::kReady) << client->error();
  }
  // Runs the command started on the client; true when it ended OK.
  bool Run() {
    conn.Drive(*client);
    EXPECT_EQ(client->phase(), Phase::kReady) << client->error();
    return client->phase() == Phase::kReady && client->error().ok();
  }
  std::vector<ListEntry> List(std::string pattern) {
    std::vector<ListEntry> entries;
    client->StartList(std::move(pattern),
                      [&](std::vector<ListEntry> e) { entries = std::move(e); });
    EXPECT_TRUE(Run()) << client->error();
    return entries;
  }
  // Deletes every folder under `name` (children first) and `name` itself.
  void DeleteTree(const std::string& name) {
    std::vector<ListEntry> entries = List(name + "*");
    std::sort(entries.begin(), entries.end(),
              [](const ListEntry& a, const ListEntry& b) { return a.name.size() > b.name.size(); });
    for (const ListEntry& e : entries) {
      client->StartDelete(e.name);
      conn.Drive(*client);
    }
  }
  uint32_t Append(const std::string& folder, std::string message,
                  std::vector<std::string> flags = {}) {
    AppendRequest request;
    request.message = std::move(message);
    request.flags = std::move(flags);
    request.internal_date = absl::FromUnixSeconds(1700000000);
    AppendResult result;
    client->StartAppend(folder, std::move(request), [&](AppendResult r) { result = r; });
    EXPECT_TRUE(Run()) << client->error();
    return result.uid;
  }
};

const ListEntry* Find(const std::vector<ListEntry>& entries, absl::string_view name) {
  for (const ListEntry& e : entries) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::string Folder(absl::string_view suffix) { return absl::StrCat(kPrefix, "-", suffix); }

TEST(ImapClientItest, FolderLifecycleWithNonAsciiSpaceAndQuoteNames) {
  Session s;
  s.DeleteTree(Folder("names"));
  const std::string parent = Folder("names");
  const std::string snowman = parent + ".Entw\xc3\xbcrfe \xe2\x98\x83";
  const std::string quoted = parent + ".a \"quoted\" name";
  const std::string renamed = parent +
                              ".\xc3\x9c"
                              "ber & mehr";
  s.client->StartCreate(parent);
  ASSERT_TRUE(s.Run()) << s.client->error();
  for (const std::string& f : {snowman, quoted}) {
    s.client->StartCreate(f);
    ASSERT_TRUE(s.Run()) << f << ": " << s.client->error();
  }
  s.client->StartCreate(quoted);
  s.conn.Drive(*s.client);
  EXPECT_EQ(s.client->error().code(), absl::StatusCode::kAlreadyExists) << s.client->error();

  s.client->StartSubscribe(snowman, true);
  ASSERT_TRUE(s.Run()) << s.client->error();
  std::vector<ListEntry> entries = s.List(parent + "*");
  ASSERT_EQ(entries.size(), 3u);
  const ListEntry* e = Find(entries, snowman);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->delimiter, '.');
  EXPECT_TRUE(e->subscribed);
  ASSERT_NE(Find(entries, quoted), nullptr);
  EXPECT_FALSE(Find(entries, quoted)->subscribed);

  // Special-use attributes of alice's standard folders.
  std::vector<ListEntry> all = s.List("*");
  ASSERT_NE(Find(all, "Sent"), nullptr);
  EXPECT_EQ(Find(all, "Sent")->special_use, "\\Sent");

  s.client->StartRename(snowman, renamed);
  ASSERT_TRUE(s.Run()) << s.client->error();
  MailboxStatus status;
  s.client->StartStatus(renamed, [&](MailboxStatus st) { status = st; });
  ASSERT_TRUE(s.Run()) << s.client->error();
  EXPECT_EQ(status.messages, 0u);
  EXPECT_TRUE(status.uidvalidity.has_value());

  s.client->StartSelect(quoted, /*read_only=*/true);
  ASSERT_TRUE(s.Run()) << s.client->error();
  EXPECT_TRUE(s.client->selected());
  EXPECT_TRUE(s.client->mailbox().read_only);
  EXPECT_EQ(s.client->mailbox().name, quoted);
  EXPECT_GT(s.client->mailbox().uidvalidity, 0u);

  // Dovecot says BYE when the selected mailbox is deleted: leave it first.
  s.client->StartSelect("INBOX", true);
  ASSERT_TRUE(s.Run());
  for (const std::string& f : {renamed, quoted, parent}) {
    s.client->StartDelete(f);
    ASSERT_TRUE(s.Run()) << f << ": " << s.client->error();
  }
  s.client->StartDelete(quoted);
  s.conn.Drive(*s.client);
  EXPECT_EQ(s.client->error().code(), absl::StatusCode::kNotFound) << s.client->error();
  EXPECT_EQ(Reason(s.client->error()), "FOLDER_NOT_FOUND");
  s.client->StartSelect(quoted, false);
  s.conn.Drive(*s.client);
  EXPECT_EQ(s.client->error().code(), absl::StatusCode::kNotFound) << s.client->error();
  EXPECT_FALSE(s.client->selected());
  EXPECT_TRUE(s.List(parent + "*").empty());
}

// multipart/mixed ( multipart/alternative (text/plain, text/html), image/png inline,
// application/pdf attachment, message/rfc822 (text/plain) )
std::string NestedMessage(absl::string_view subject) {
  return absl::StrCat(
      "From: Alice <alice@example.test>\r\n"
      "To: Bob <bob@example.test>, carol@example.test\r\n"
      "Subject: ",
      subject,
      "\r\n"
      "Message-ID: <nested-1@example.test>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
      "\r\n"
      "--outer\r\n"
      "Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
      "\r\n"
      "--alt\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n"
      "Hello plain world, this is the text part.\r\n"
      "--alt\r\n"
      "Content-Type: text/html; charset=utf-8\r\n"
      "\r\n"
      "<p>Hello <img src=\"cid:logo@x\"></p>\r\n"
      "--alt--\r\n"
      "--outer\r\n"
      "Content-Type: image/png; name=\"logo.png\"\r\n"
      "Content-ID: <logo@x>\r\n"
      "Content-Disposition: inline; filename=\"logo.png\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "iVBORw0KGgo=\r\n"
      "--outer\r\n"
      "Content-Type: application/pdf; name=\"doc.pdf\"\r\n"
      "Content-Disposition: attachment; filename=\"doc.pdf\"\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n"
      "JVBERi0xLjQK\r\n"
      "--outer\r\n"
      "Content-Type: message/rfc822\r\n"
      "\r\n"
      "From: dave@example.test\r\n"
      "Subject: inner\r\n"
      "\r\n"
      "Inner body.\r\n"
      "--outer--\r\n");
}

TEST(ImapClientItest, AppendThenFetchStructureSectionsAndPartialWithoutSeen) {
  Session s;
  const std::string folder = Folder("fetch");
  s.DeleteTree(folder);
  s.client->StartCreate(folder);
  ASSERT_TRUE(s.Run());
  const std::string message = NestedMessage("structure test");
  uint32_t uid = s.Append(folder, message, {"\\Flagged", "$imapc"});
  ASSERT_GT(uid, 0u) << "no APPENDUID";
  s.client->StartSelect(folder, false);
  ASSERT_TRUE(s.Run());
  EXPECT_EQ(s.client->mailbox().exists, 1u);

  FetchRequest request;
  request.items =
      kFetchFlags | kFetchSize | kFetchInternalDate | kFetchEnvelope | kFetchBodyStructure;
  request.sections = {{"HEADER"}, {"1.1", 6, 5}, {"4.1"}};
  std::vector<FetchedMessage> got;
  UidSet set;
  set.Add(uid);
  s.client->StartUidFetch(set, std::move(request),
                          [&](FetchedMessage m) { got.push_back(std::move(m)); });
  ASSERT_TRUE(s.Run()) << s.client->error();
  ASSERT_EQ(got.size(), 1u);
  const FetchedMessage& m = got[0];
  EXPECT_EQ(m.uid, uid);
  EXPECT_EQ(m.size, message.size());
  EXPECT_EQ(m.internal_time, absl::FromUnixSeconds(1700000000)) << m.internal_date;
  EXPECT_TRUE(std::count(m.flags.begin(), m.flags.end(), "\\Flagged"));
  EXPECT_TRUE(std::count(m.flags.begin(), m.flags.end(), "$imapc"));
  EXPECT_FALSE(std::count(m.flags.begin(), m.flags.end(), "\\Seen"));
  ASSERT_NE(m.envelope, nullptr);
  EXPECT_EQ(m.envelope->subject, "structure test");
  ASSERT_EQ(m.envelope->to.size(), 2u);
  EXPECT_EQ(m.envelope->to[0].name, "Bob");
  EXPECT_EQ(m.envelope->to[1].host, "example.test");
  EXPECT_EQ(m.envelope->message_id, "<nested-1@example.test>");

  ASSERT_NE(m.body_structure, nullptr);
  const BodyPart& top = *m.body_structure;
  EXPECT_EQ(top.type, "multipart");
  EXPECT_EQ(top.subtype, "mixed");
  ASSERT_EQ(top.children.size(), 4u);
  const BodyPart& alt = top.children[0];
  EXPECT_EQ(alt.subtype, "alternative");
  ASSERT_EQ(alt.children.size(), 2u);
  EXPECT_EQ(alt.children[0].part, "1.1");
  EXPECT_EQ(alt.children[1].subtype, "html");
  EXPECT_EQ(top.children[1].id, "<logo@x>");
  EXPECT_EQ(top.children[1].disposition, "inline");
  EXPECT_EQ(top.children[1].encoding, "base64");
  EXPECT_EQ(top.children[2].disposition, "attachment");
  ASSERT_EQ(top.children[2].disposition_params.size(), 1u);
  EXPECT_EQ(top.children[2].disposition_params[0].second, "doc.pdf");
  const BodyPart& inner = top.children[3];
  EXPECT_EQ(inner.type, "message");
  EXPECT_EQ(inner.part, "4");
  ASSERT_NE(inner.envelope, nullptr);
  EXPECT_EQ(inner.envelope->subject, "inner");
  ASSERT_EQ(inner.children.size(), 1u);
  EXPECT_EQ(inner.children[0].part, "4.1");

  ASSERT_EQ(m.sections.size(), 3u);
  EXPECT_TRUE(absl::StartsWith(m.sections[0].data, "From: Alice")) << m.sections[0].data;
  EXPECT_TRUE(absl::EndsWith(m.sections[0].data, "\r\n\r\n"));
  EXPECT_EQ(m.sections[1].section, "1.1");
  EXPECT_EQ(m.sections[1].origin, 6u);
  EXPECT_EQ(m.sections[1].data, "plain");
  EXPECT_EQ(m.sections[2].data, "Inner body.");  // the CRLF belongs to the boundary

  // The whole message streamed to a sink, in pieces, equals what was appended; reading
  // did not set \Seen.
  FetchRequest whole;
  whole.items = kFetchFlags;
  whole.sections = {{""}};
  std::string streamed;
  int pieces = 0, ends = 0;
  whole.sink = [&](uint32_t, uint32_t, absl::string_view section, absl::string_view piece,
                   bool last) {
    EXPECT_EQ(section, "");
    streamed.append(piece.data(), piece.size());
    pieces += !piece.empty();
    ends += last;
  };
  got.clear();
  s.client->StartUidFetch(set, std::move(whole),
                          [&](FetchedMessage m) { got.push_back(std::move(m)); });
  ASSERT_TRUE(s.Run()) << s.client->error();
  EXPECT_EQ(streamed, message);
  EXPECT_EQ(ends, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].sections[0].data.empty());
  EXPECT_FALSE(std::count(got[0].flags.begin(), got[0].flags.end(), "\\Seen"));
  s.client->StartSelect("INBOX", true);
  ASSERT_TRUE(s.Run());
  s.DeleteTree(folder);
}

TEST(ImapClientItest, SearchWithNonAsciiLiteralStoreCopyMoveAndExpunge) {
  Session s;
  const std::string folder = Folder("search");
  const std::string other = Folder("search-dest");
  s.DeleteTree(folder);
  s.DeleteTree(other);
  for (const std::string& f : {folder, other}) {
    s.client->StartCreate(f);
    ASSERT_TRUE(s.Run());
  }
  uint32_t u1 = s.Append(folder, NestedMessage("Gr\xc3\xbc\xc3\x9f"
                                               "e aus K\xc3\xb6ln"));
  uint32_t u2 = s.Append(folder, NestedMessage("plain hello"));
  uint32_t u3 = s.Append(folder, NestedMessage("another hello"));
  s.client->StartSelect(folder, false);
  ASSERT_TRUE(s.Run());

  SearchResult result;
  s.client->StartUidSearch({SearchArg::Atom("SUBJECT"), SearchArg::String("Gr\xc3\xbc\xc3\x9f"
                                                                          "e")},
                           {}, [&](SearchResult r) { result = std::move(r); });
  ASSERT_TRUE(s.Run()) << s.client->error();
  EXPECT_EQ(result.uids, std::vector<uint32_t>({u1}));

  SearchOptions counting;
  counting.want_min_max_count = true;
  s.client->StartUidSearch({SearchArg::Atom("SUBJECT"), SearchArg::String("hello \"\\")}, {},
                           [&](SearchResult r) { result = std::move(r); });
  ASSERT_TRUE(s.Run()) << s.client->error();
  EXPECT_TRUE(result.uids.empty());
  s.client->StartUidSearch({SearchArg::Atom("SUBJECT"), SearchArg::String("hello")}, counting,
                           [&](SearchResult r) { result = std::move(r); });
  ASSERT_TRUE(s.Run()) << s.client->error();
  EXPECT_EQ(result.count, 2u);
  EXPECT_EQ(result.min, u2);
  EXPECT_EQ(result.max, u3);

  // STORE: keyword and \Seen; the untagged FETCH answers are results, not events.
  std::vector<MailboxEvent> events;
  s.client->SetEventCallback([&](const MailboxEvent& e) { events.push_back(e); });
  UidSet both;
  both.Add(u2);
  both.Add(u3);
  std::vector<FetchedMessage> stored;
  s.client->StartUidStore(both, StoreMode::kAdd, {"\\Seen", "$Label1"}, false,
                          [&](FetchedMessage m) { stored.push_back(std::move(m)); });
  ASSERT_TRUE(s.Run()) << s.client->error();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_TRUE(std::count(stored[0].flags.begin(), stored[0].flags.end(), "$Label1"));
  EXPECT_TRUE(events.empty());
  s.client->StartUidStore(both, StoreMode::kAdd, {"\\Recent"}, false, nullptr);
  EXPECT_EQ(s.client->error().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.client->phase(), Phase::kReady);

  // COPY: COPYUID maps both; MOVE: mapping plus expunge events with UIDs.
  CopyResult copy;
  s.client->StartUidCopy(both, other, [&](CopyResult r) { copy = std::move(r); });
  ASSERT_TRUE(s.Run()) << s.client->error();
  EXPECT_GT(copy.uidvalidity, 0u);
  ASSERT_EQ(copy.mapping.size(), 2u);
  EXPECT_EQ(copy.mapping[0].first, u2);

  FetchRequest uids_only;  // learn seq -> UID for every message
  UidSet all;
  all.AddRange(1, 4'000'000'000u);
  s.client->StartUidFetch(all, std::move(uids_only), nullptr);
  ASSERT_TRUE(s.Run()) << s.client->error();

  UidSet first;
  first.Add(u1);
  s.client->StartUidMove(first, other, [&](CopyResult r) { copy = std::move(r); });
  ASSERT_TRUE(s.Run()) << s.client->error();
  ASSERT_EQ(copy.mapping.size(), 1u);
  EXPECT_EQ(copy.mapping[0].first, u1);
  bool expunged = false;
  for (const MailboxEvent& e : events) {
    if (e.kind == MailboxEvent::Kind::kExpunged && e.uid == u1) expunged = true;
  }
  EXPECT_TRUE(expunged);
  EXPECT_EQ(s.client->mailbox().exists, 2u);

  // UID EXPUNGE of a \Deleted message.
  UidSet third;
  third.Add(u3);
  s.client->StartUidStore(third, StoreMode::kAdd, {"\\Deleted"}, true, nullptr);
  ASSERT_TRUE(s.Run());
  s.client->StartUidExpunge(third);
  ASSERT_TRUE(s.Run()) << s.client->error();
  EXPECT_EQ(s.client->mailbox().exists, 1u);

  s.client->StartSelect("INBOX", true);  // leave the folders before deleting them
  ASSERT_TRUE(s.Run());
  s.DeleteTree(folder);
  s.DeleteTree(other);
}

TEST(ImapClientItest, IdleSeesAnAppendFromASecondConnection) {
  Session watcher;
  Session writer;
  const std::string folder = Folder("idle");
  writer.DeleteTree(folder);
  writer.client->StartCreate(folder);
  ASSERT_TRUE(writer.Run());
  watcher.client->StartSelect(folder, false);
  ASSERT_TRUE(watcher.Run());
  std::vector<MailboxEvent> events;
  watcher.client->SetEventCallback([&](const MailboxEvent& e) { events.push_back(e); });
  watcher.client->StartIdle();
  ASSERT_TRUE(watcher.conn.PumpUntil(*watcher.client, [&] { return watcher.client->idling(); }));

  writer.Append(folder, NestedMessage("idle wake-up"));
  ASSERT_TRUE(watcher.conn.PumpUntil(*watcher.client, [&] {
    return !events.empty() && events.back().kind == MailboxEvent::Kind::kExists;
  }));
  EXPECT_EQ(events.back().exists, 1u);
  watcher.client->StopIdle();
  ASSERT_TRUE(watcher.conn.PumpUntil(*watcher.client,
                                     [&] { return watcher.client->phase() == Phase::kReady; }));
  EXPECT_TRUE(watcher.client->error().ok()) << watcher.client->error();
  EXPECT_EQ(watcher.client->mailbox().exists, 1u);

  watcher.client->StartSelect("INBOX", true);
  ASSERT_TRUE(watcher.Run());
  writer.DeleteTree(folder);
}

}  // namespace
}  // namespace mailpool::imap
