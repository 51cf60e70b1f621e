// Transcript tests of the IMAP mailbox commands: every response form the client acts on,
// fed whole and one byte at a time (tests/fakes/transcript.h).
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/utf8.h"
#include "gtest/gtest.h"
#include "imap/client.h"
#include "tests/fakes/transcript.h"

namespace mailpool::imap {
namespace {

using ::mailpool::testing::Actions;
using ::mailpool::testing::ExpectTranscript;
using ::mailpool::testing::RunTranscript;
using Phase = wire::ClientProtocol::Phase;

Options TestOptions() {
  Options o;
  o.login.security = wire::Security::kImplicitTls;
  o.login.user = "alice";
  o.login.password = Secret("secret");
  return o;
}

testing::ClientFactory Factory(Options options = TestOptions()) {
  return [options] { return NewClient(options); };
}

Client& Imap(wire::ClientProtocol& c) { return static_cast<Client&>(c); }

std::string Reason(const absl::Status& s) {
  return GetPayloadText(s, kReasonPayload).value_or("<none>");
}

// Logged in, INBOX selected with 3 messages. kFull offers the extensions the client
// uses; kBare is plain IMAP4rev1 (synchronizing literals, LIST + LSUB, plain SEARCH).
std::string LoginWith(absl::string_view caps) {
  return absl::StrCat(R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: a1 OK [CAPABILITY )",
                      caps, R"(] Logged in
    C: a2 SELECT INBOX
    S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
    S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted.
    S: * 3 EXISTS
    S: * 0 RECENT
    S: * OK [UIDVALIDITY 1700000000] UIDs valid
    S: * OK [UIDNEXT 10] Predicted next UID
    S: a2 OK [READ-WRITE] Select completed
    PHASE READY
)");
}
const std::string kFull = LoginWith(
    "IMAP4rev1 LITERAL+ UIDPLUS MOVE ESEARCH LIST-EXTENDED SPECIAL-USE IDLE STATUS=SIZE ENABLE");
const std::string kBare = LoginWith("IMAP4rev1");

// What the actions collected, reset by each action that starts a command.
struct Results {
  int calls = 0;
  std::vector<ListEntry> list;
  MailboxStatus status;
  SearchResult search;
  std::vector<FetchedMessage> fetched;
  std::string streamed;
  int stream_ends = 0;
  uint32_t stream_uid = 0;
  CopyResult copy;
  AppendResult append;
  std::vector<MailboxEvent> events;
  absl::Status start_error;
};

// Actions named after the command they start; `extra` adds test-specific ones.
Actions MakeActions(Results& r, Actions extra = {}) {
  Actions a = {
      {"events",
       [&r](wire::ClientProtocol& c) {
         r.events.clear();
         Imap(c).SetEventCallback([&r](const MailboxEvent& e) { r.events.push_back(e); });
       }},
      {"list",
       [&r](wire::ClientProtocol& c) {
         r.list.clear();
         Imap(c).StartList("*", [&r](std::vector<ListEntry> e) {
           ++r.calls;
           r.list = std::move(e);
         });
       }},
      {"status",
       [&r](wire::ClientProtocol& c) {
         Imap(c).StartStatus("Entw\xc3\xbcrfe", [&r](MailboxStatus s) {
           ++r.calls;
           r.status = s;
         });
       }},
      {"idle", [](wire::ClientProtocol& c) { Imap(c).StartIdle(); }},
      {"done", [](wire::ClientProtocol& c) { Imap(c).StopIdle(); }},
  };
  for (auto& [name, action] : extra) a[name] = std::move(action);
  return a;
}

auto CollectFetch(Results& r) {
  return [&r](FetchedMessage m) { r.fetched.push_back(std::move(m)); };
}

TEST(ImapCommandsTest, ListExtendedDecodesNamesDelimitersAndSpecialUse) {
  Results r;
  ExpectTranscript(Factory(), kFull + R"(
    !list
    PHASE BUSY
    C: a3 LIST "" "*" RETURN (SUBSCRIBED SPECIAL-USE)
    S: * LIST (\HasNoChildren \Subscribed \Sent) "/" Sent
    S: * LIST (\HasChildren) "/" "Entw&APw-rfe"
    S: * LIST (\Noselect) NIL {6}
    S: a "b"c
    S: * LIST (\HasNoChildren) "\\" "x \"y\"" ("CHILDINFO" ("SUBSCRIBED"))
    S: a3 OK List completed
    PHASE READY
  )",
                   MakeActions(r));
  EXPECT_EQ(r.calls, 2);  // once per run
  ASSERT_EQ(r.list.size(), 4u);
  EXPECT_EQ(r.list[0].name, "Sent");
  EXPECT_EQ(r.list[0].delimiter, '/');
  EXPECT_TRUE(r.list[0].subscribed);
  EXPECT_EQ(r.list[0].special_use, "\\Sent");
  EXPECT_EQ(r.list[1].name, "Entw\xc3\xbcrfe");
  EXPECT_FALSE(r.list[1].subscribed);
  EXPECT_EQ(r.list[2].name, "a \"b\"c");
  EXPECT_EQ(r.list[2].delimiter, 0);
  EXPECT_EQ(r.list[3].name, "x \"y\"");
  EXPECT_EQ(r.list[3].delimiter, '\\');
}

// Issue 16: raw 8-bit bytes from a server (a Latin-1 folder name sent without modified
// UTF-7, a greeting or capability with stray bytes) reach proto3 string fields: they
// come out valid UTF-8, invalid bytes replaced by U+FFFD.
TEST(ImapCommandsTest, ServerTextThatIsNotUtf8ComesOutValid) {
  Results r;
  auto client = ExpectTranscript(Factory(), R"(
    S~ * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN X-CAF\xe9] caf\xe9 ready\r\n
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: a1 OK [CAPABILITY IMAP4rev1 X-\xe9] Logged in
    C: a2 SELECT INBOX
    S: a2 OK [READ-WRITE] Select completed
    PHASE READY
    !list
    C: a3 LIST "" "*"
    S~ * LIST (\\HasNoChildren) "/" "Entw\xe9rfe"\r\n
    S: * LIST (\HasNoChildren) "/" INBOX
    S: a3 OK done
    C: a4 LSUB "" "*"
    S: a4 OK done
    PHASE READY
  )",
                                 MakeActions(r));
  ASSERT_EQ(r.list.size(), 2u);
  EXPECT_EQ(r.list[0].name, "Entw\xef\xbf\xbdrfe");
  EXPECT_TRUE(IsValidUtf8(client->info().greeting)) << client->info().greeting;
  EXPECT_EQ(
      client->info().greeting,
      "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN X-CAF\xef\xbf\xbd] caf\xef\xbf\xbd ready");
  for (const std::string& cap : client->info().capabilities) EXPECT_TRUE(IsValidUtf8(cap)) << cap;
}

// A server without SPECIAL-USE (GNU Mailutils imap4d): top-level folders with the usual
// names take their roles; nested ones and a server that offers SPECIAL-USE do not.
TEST(ImapCommandsTest, WithoutSpecialUseWellKnownTopLevelNamesTakeRoles) {
  Results r;
  ExpectTranscript(Factory(), LoginWith("IMAP4rev1") + R"(
    !list
    C: a3 LIST "" "*"
    S: * LIST () "/" Sent
    S: * LIST () "/" "Deleted Items"
    S: * LIST () "/" spam
    S: * LIST () "/" Drafts/Sent
    S: * LIST () "/" Projects
    S: a3 OK done
    C: a4 LSUB "" "*"
    S: a4 OK done
    PHASE READY
  )",
                   MakeActions(r));
  ASSERT_EQ(r.list.size(), 5u);
  EXPECT_EQ(r.list[0].special_use, "\\Sent");
  EXPECT_EQ(r.list[1].special_use, "\\Trash");
  EXPECT_EQ(r.list[2].special_use, "\\Junk");
  EXPECT_EQ(r.list[3].special_use, "");
  EXPECT_EQ(r.list[4].special_use, "");

  Results with;
  ExpectTranscript(Factory(), kFull + R"(
    !list
    C: a3 LIST "" "*" RETURN (SUBSCRIBED SPECIAL-USE)
    S: * LIST () "/" Sent
    S: a3 OK done
    PHASE READY
  )",
                   MakeActions(with));
  ASSERT_EQ(with.list.size(), 1u);
  EXPECT_EQ(with.list[0].special_use, "");
}

TEST(ImapCommandsTest, ListWithoutExtensionsAsksLsubForSubscriptions) {
  Results r;
  ExpectTranscript(Factory(), kBare + R"(
    !list
    C: a3 LIST "" "*"
    S: * LIST (\HasNoChildren) "." INBOX
    S: * LIST (\HasNoChildren) "." Archive
    S: a3 OK done
    PHASE BUSY
    C: a4 LSUB "" "*"
    S: * LSUB () "." Archive
    S: a4 OK done
    PHASE READY
  )",
                   MakeActions(r));
  ASSERT_EQ(r.list.size(), 2u);
  EXPECT_FALSE(r.list[0].subscribed);
  EXPECT_TRUE(r.list[1].subscribed);
}

TEST(ImapCommandsTest, SelectExamineAndStateFromEveryResponse) {
  Results r;
  auto client =
      ExpectTranscript(Factory(), kFull + R"(
    !examine
    C: a3 EXAMINE "R&AOk-sum&AOk- \"2\""
    S: * FLAGS (\Seen $Junk)
    S: * 7 EXISTS
    S: * 2 RECENT
    S: * OK [UIDVALIDITY 99] x
    S: * OK [UIDNEXT 30] x
    S: * OK [HIGHESTMODSEQ 12345678901] x
    S: * OK [PERMANENTFLAGS ()] No permanent flags permitted
    S: a3 OK [READ-ONLY] Examine completed
    PHASE READY
  )",
                       MakeActions(r, {{"examine", [](wire::ClientProtocol& c) {
                                          Imap(c).StartSelect("R\xc3\xa9sum\xc3\xa9 \"2\"", true);
                                        }}}));
  const MailboxState& m = Imap(*client).mailbox();
  EXPECT_TRUE(Imap(*client).selected());
  EXPECT_EQ(m.name, "R\xc3\xa9sum\xc3\xa9 \"2\"");
  EXPECT_TRUE(m.read_only);
  EXPECT_EQ(m.exists, 7u);
  EXPECT_EQ(m.recent, 2u);
  EXPECT_EQ(m.uidvalidity, 99u);
  EXPECT_EQ(m.uidnext, 30u);
  EXPECT_EQ(m.highestmodseq, 12345678901u);
  EXPECT_EQ(m.flags, std::vector<std::string>({"\\Seen", "$Junk"}));
  EXPECT_TRUE(m.permanent_flags.empty());
}

TEST(ImapCommandsTest, FolderErrorsMapToCodesAndLeaveTheClientReady) {
  struct Case {
    const char* reply;
    absl::StatusCode code;
    const char* reason;
  };
  for (const Case& c : {
           Case{"a3 NO [NONEXISTENT] Mailbox doesn't exist", absl::StatusCode::kNotFound,
                "FOLDER_NOT_FOUND"},
           Case{"a3 NO [TRYCREATE] no such", absl::StatusCode::kNotFound, "FOLDER_NOT_FOUND"},
           Case{"a3 NO no such mailbox", absl::StatusCode::kNotFound, "FOLDER_NOT_FOUND"},
           Case{"a3 NO [CANNOT] nope", absl::StatusCode::kFailedPrecondition, "COMMAND_REFUSED"},
           Case{"a3 NO [NOPERM] nope", absl::StatusCode::kPermissionDenied, "COMMAND_REFUSED"},
           Case{"a3 NO [SERVERBUG] oops", absl::StatusCode::kInternal, "COMMAND_FAILED"},
           Case{"a3 NO Select failed", absl::StatusCode::kNotFound, "FOLDER_NOT_FOUND"},
           Case{"a3 BAD syntax", absl::StatusCode::kInvalidArgument, "COMMAND_REJECTED"},
       }) {
    Results r;
    auto client = ExpectTranscript(Factory(), kFull + R"(
      !select
      C: a3 SELECT Nope
      S: )" + std::string(c.reply) + R"(
      PHASE READY
    )",
                                   MakeActions(r, {{"select", [](wire::ClientProtocol& cl) {
                                                      Imap(cl).StartSelect("Nope", false);
                                                    }}}));
    EXPECT_EQ(client->error().code(), c.code) << c.reply;
    EXPECT_EQ(Reason(client->error()), c.reason) << c.reply;
    EXPECT_EQ(GetPayloadText(client->error(), kServerReplyPayload), c.reply);
    EXPECT_FALSE(Imap(*client).selected()) << "a failed SELECT deselects";
  }
}

// Issue 16: servers that send no response code used to get UNAVAILABLE (retry!) for
// refusals that are final.
TEST(ImapCommandsTest, RefusalsWithoutCodesMapByCommandAndText) {
  struct Case {
    const char* action;
    const char* command;
    const char* reply;
    absl::StatusCode code;
    const char* reason;
  };
  for (const Case& c : {
           Case{"create", "a3 CREATE x", "a3 NO Mailbox already exists",
                absl::StatusCode::kAlreadyExists, "FOLDER_EXISTS"},
           Case{"rename", "a3 RENAME x y", "a3 NO Target mailbox exists",
                absl::StatusCode::kAlreadyExists, "FOLDER_EXISTS"},
           Case{"rename", "a3 RENAME x y", "a3 NO Mailbox doesn't exist: x",
                absl::StatusCode::kNotFound, "FOLDER_NOT_FOUND"},
           Case{"copy", "a3 UID COPY 7 y", "a3 NO Mailbox does not exist",
                absl::StatusCode::kNotFound, "FOLDER_NOT_FOUND"},
           Case{"copy", "a3 UID COPY 7 y", "a3 NO [TRYCREATE] No such mailbox",
                absl::StatusCode::kNotFound, "FOLDER_NOT_FOUND"},
           Case{"copy", "a3 UID COPY 7 y", "a3 NO Copy failed",
                absl::StatusCode::kFailedPrecondition, "COMMAND_REFUSED"},
           Case{"create", "a3 CREATE x", "a3 NO Create failed",
                absl::StatusCode::kFailedPrecondition, "COMMAND_REFUSED"},
       }) {
    Results r;
    auto client = ExpectTranscript(
        Factory(),
        kFull + "\n!" + c.action + "\nC: " + c.command + "\nS: " + c.reply + "\nPHASE READY\n",
        MakeActions(r,
                    {{"create", [](wire::ClientProtocol& cl) { Imap(cl).StartCreate("x"); }},
                     {"rename", [](wire::ClientProtocol& cl) { Imap(cl).StartRename("x", "y"); }},
                     {"copy", [](wire::ClientProtocol& cl) {
                        UidSet set;
                        set.Add(7);
                        Imap(cl).StartUidCopy(set, "y", nullptr);
                      }}}));
    EXPECT_EQ(client->error().code(), c.code) << c.reply;
    EXPECT_EQ(Reason(client->error()), c.reason) << c.reply;
    EXPECT_EQ(GetPayloadText(client->error(), kServerReplyPayload), c.reply);
  }
}

TEST(ImapCommandsTest, AppendRefusedAsTooBigIsResourceExhausted) {
  for (const char* reply : {"a3 NO [TOOBIG] Message too large", "a3 NO Message is too big",
                            "a3 NO [LIMIT] Message exceeds size limit"}) {
    auto client = NewClient(TestOptions());
    ASSERT_TRUE(RunTranscript(*client, kFull, false));
    AppendRequest req;
    req.message = "Subject: x\r\n\r\nbody\r\n";
    Imap(*client).StartAppend("Drafts", std::move(req), nullptr);
    client->TakeOutput();
    client->OnBytes(std::string(reply) + "\r\n");
    ASSERT_EQ(client->phase(), Phase::kReady);
    EXPECT_EQ(client->error().code(), absl::StatusCode::kResourceExhausted) << reply;
  }
}

TEST(ImapCommandsTest, CreateRenameDeleteSubscribeQuoteAndEncodeNames) {
  Results r;
  auto client = ExpectTranscript(
      Factory(), kFull + R"(
    !create
    C: a3 CREATE "a \"q\" \\ b"
    S: a3 NO [ALREADYEXISTS] Mailbox already exists
    PHASE READY
    !rename
    C: a4 RENAME "a \"q\" \\ b" &ZeVnLIqe-/x
    S: a4 OK done
    !delete
    C: a5 DELETE &ZeVnLIqe-/x
    S: a5 OK done
    !subscribe
    C: a6 UNSUBSCRIBE INBOX
    S: a6 OK done
  )",
      MakeActions(
          r, {
                 {"create", [](wire::ClientProtocol& c) { Imap(c).StartCreate("a \"q\" \\ b"); }},
                 {"rename",
                  [](wire::ClientProtocol& c) {
                    Imap(c).StartRename("a \"q\" \\ b", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/x");
                  }},
                 {"delete",
                  [](wire::ClientProtocol& c) {
                    Imap(c).StartDelete("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/x");
                  }},
                 {"subscribe",
                  [](wire::ClientProtocol& c) { Imap(c).StartSubscribe("inbox", false); }},
             }));
  EXPECT_TRUE(client->error().ok());
}

TEST(ImapCommandsTest, StatusAsksSizeWhenOffered) {
  Results r;
  ExpectTranscript(Factory(), kFull + R"(
    !status
    C: a3 STATUS Entw&APw-rfe (MESSAGES UNSEEN RECENT UIDNEXT UIDVALIDITY SIZE)
    S: * STATUS "Entw&APw-rfe" (MESSAGES 12 UNSEEN 3 RECENT 0 UIDNEXT 40 UIDVALIDITY 7 SIZE 9876543210)
    S: a3 OK done
  )",
                   MakeActions(r));
  EXPECT_EQ(r.status.messages, 12u);
  EXPECT_EQ(r.status.unseen, 3u);
  EXPECT_EQ(r.status.uidnext, 40u);
  EXPECT_EQ(r.status.uidvalidity, 7u);
  EXPECT_EQ(r.status.size, 9876543210u);
  EXPECT_FALSE(r.status.highestmodseq.has_value());
}

TEST(ImapCommandsTest, StatusOfANameWithSpacesSentUnquotedIsRead) {
  // GNU imap4d answers STATUS "Old Mail" with the name unquoted.
  Results r;
  ExpectTranscript(Factory(), kFull + R"(
    !status
    C: a3 STATUS "Old Mail" (MESSAGES UNSEEN RECENT UIDNEXT UIDVALIDITY SIZE)
    S: * STATUS Old Mail (MESSAGES 4 UNSEEN 1 UIDNEXT 9 UIDVALIDITY 3)
    S: a3 OK done
  )",
                   MakeActions(r, {{"status", [&r](wire::ClientProtocol& c) {
                                      Imap(c).StartStatus("Old Mail", [&r](MailboxStatus s) {
                                        ++r.calls;
                                        r.status = s;
                                      });
                                    }}}));
  EXPECT_EQ(r.status.messages, 4u);
  EXPECT_EQ(r.status.unseen, 1u);
  EXPECT_EQ(r.status.uidnext, 9u);
}

Actions SearchActions(Results& r, SearchOptions options = {}) {
  return MakeActions(r, {{"search", [&r, options](wire::ClientProtocol& c) {
                            r.search = SearchResult();
                            Imap(c).StartUidSearch(
                                {SearchArg::Atom("SUBJECT"),
                                 SearchArg::String("Gr\xc3\xbc\xc3\x9f"
                                                   "e"),
                                 SearchArg::Atom("NOT"), SearchArg::Open(), SearchArg::Atom("FROM"),
                                 SearchArg::String("say \"hi\""), SearchArg::Atom("UID"),
                                 SearchArg::Set("1:*"), SearchArg::Close()},
                                options, [&r](SearchResult s) { r.search = std::move(s); });
                          }}});
}

TEST(ImapCommandsTest, SearchWithSynchronizingLiteralAndPlainResults) {
  Results r;
  ExpectTranscript(Factory(), kBare + R"(
    !search
    C: a3 UID SEARCH CHARSET UTF-8 SUBJECT {7}
    PHASE BUSY
    S: + go ahead
    C: Grüße NOT (FROM "say \"hi\"" UID 1:*)
    S: * SEARCH 9 3
    S: * 2 EXPUNGE
    S: * SEARCH 5
    S: a3 OK done
  )",
                   SearchActions(r));
  EXPECT_EQ(r.search.uids, std::vector<uint32_t>({3, 5, 9}));
  EXPECT_EQ(r.search.min, 3u);
  EXPECT_EQ(r.search.max, 9u);
  EXPECT_EQ(r.search.count, 3u);
}

TEST(ImapCommandsTest, SearchRefusedBeforeTheContinuationSendsNoMore) {
  Results r;
  auto client = ExpectTranscript(Factory(), kBare + R"(
    !search
    C: a3 UID SEARCH CHARSET UTF-8 SUBJECT {7}
    S: a3 NO [BADCHARSET (US-ASCII)] no
    PHASE READY
  )",
                                 SearchActions(r));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ImapCommandsTest, EsearchWithLiteralPlus) {
  Results r;
  SearchOptions both;
  both.want_min_max_count = true;
  ExpectTranscript(Factory(), kFull + R"(
    !search
    C: a3 UID SEARCH RETURN (MIN MAX COUNT ALL) CHARSET UTF-8 SUBJECT {7+}
    C: Grüße NOT (FROM "say \"hi\"" UID 1:*)
    S: * ESEARCH (TAG "a0") UID ALL 1:100
    S: * ESEARCH (TAG "a3") UID MIN 3 MAX 12 COUNT 4 ALL 3:5,12
    S: a3 OK done
  )",
                   SearchActions(r, both));
  EXPECT_EQ(r.search.uids, std::vector<uint32_t>({3, 4, 5, 12}));
  EXPECT_EQ(r.search.min, 3u);
  EXPECT_EQ(r.search.max, 12u);
  EXPECT_EQ(r.search.count, 4u);
}

TEST(ImapCommandsTest, CallerFieldsThatCannotBeSentAreRefusedBeforeWriting) {
  auto client = NewClient(TestOptions());
  ASSERT_TRUE(RunTranscript(*client, kFull, false));
  Client& c = *client;
  auto expect_invalid = [&](const char* what) {
    EXPECT_EQ(c.error().code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_EQ(Reason(c.error()), "INVALID_FIELD") << what;
    EXPECT_EQ(c.phase(), Phase::kReady) << what;
    EXPECT_EQ(c.TakeOutput(), "") << what;
  };
  c.StartCreate("x\r\na9 DELETE INBOX");
  expect_invalid("CRLF in folder");
  c.StartRename("ok", std::string("a\0b", 3));
  expect_invalid("NUL in folder");
  c.StartSelect("bad \xff utf8", false);
  expect_invalid("invalid UTF-8");
  c.StartUidSearch({SearchArg::Atom("SUBJECT"), SearchArg::String("x\r\nA1 LOGOUT")}, {}, nullptr);
  expect_invalid("CRLF in search string");
  c.StartUidSearch({SearchArg::Atom("SUBJECT x")}, {}, nullptr);
  expect_invalid("space in atom");
  c.StartUidSearch({SearchArg::Atom("ALL"), SearchArg::Close()}, {}, nullptr);
  expect_invalid("unbalanced");
  c.StartUidSearch({SearchArg::Set("1:5 X")}, {}, nullptr);
  expect_invalid("bad set");
  UidSet one;
  one.Add(1);
  c.StartUidStore(one, StoreMode::kAdd, {"\\Recent"}, true, nullptr);
  expect_invalid("\\Recent");
  c.StartUidStore(one, StoreMode::kAdd, {"two words"}, true, nullptr);
  expect_invalid("keyword with space");
  c.StartUidStore(one, StoreMode::kAdd, {"a)b"}, true, nullptr);
  expect_invalid("keyword with paren");
  c.StartUidStore(UidSet(), StoreMode::kAdd, {"\\Seen"}, true, nullptr);
  expect_invalid("empty set");
  FetchRequest bad_section;
  bad_section.sections = {{"1] BODY[2"}};
  c.StartUidFetch(one, std::move(bad_section), nullptr);
  expect_invalid("section injection");
  AppendRequest nul;
  nul.message = std::string("a\0b", 3);
  c.StartAppend("INBOX", std::move(nul), nullptr);
  expect_invalid("NUL in message");
}

TEST(ImapCommandsTest, FetchParsesNestedBodyStructureAndKeepsUnsolicitedDataApart) {
  // multipart/mixed: multipart/alternative (text/plain, text/html), an inline image, an
  // attachment with languages, a message/rfc822 with a text body.
  const std::string body_structure =
      "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 42 1 NIL NIL NIL NIL)"
      "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 120 3 NIL NIL NIL "
      "NIL) \"alternative\" (\"boundary\" \"alt\") NIL NIL NIL)"
      "(\"image\" \"png\" (\"name\" \"logo.png\") \"<logo@x>\" NIL \"base64\" 12 NIL (\"inline\" "
      "(\"filename\" \"logo.png\")) NIL NIL)"
      "(\"application\" \"pdf\" (\"name\" \"doc.pdf\") NIL \"A \\\"doc\\\"\" \"base64\" 14 NIL "
      "(\"attachment\" (\"filename\" \"doc.pdf\")) (\"en\" \"de\") NIL)"
      "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 60 (\"Mon, 1 Jan 2024 00:00:00 +0000\" "
      "\"inner\" ((\"Dave\" NIL \"dave\" \"example.test\")) NIL NIL NIL NIL NIL NIL \"<i@x>\") "
      "(\"TEXT\" \"PLAIN\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 12 1 NIL NIL NIL NIL) 4 "
      "NIL NIL NIL NIL)";
  Results r;
  auto client = ExpectTranscript(
      Factory(),
      kFull + R"(
    !events
    !fetch
    C: a3 UID FETCH 7:8 (UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER] BODY.PEEK[1.1]<0.10>)
    S: * 2 FETCH (FLAGS (\Seen) UID 7 ENVELOPE ("Tue, 2 Jan 2024 10:00:00 +0100" {6}
    S~ Gr\xc3\xbc\xc3\x9f
    S:  (("Alice" NIL "alice" "example.test")) NIL NIL (("Bob" NIL "bob" "example.test")("Carol" NIL "carol" "example.test")) NIL NIL NIL "<m@x>") BODYSTRUCTURE ()" +
          body_structure + R"( "mixed" ("boundary" "outer") NIL NIL NIL) BODY[HEADER] {8}
    S~ A: b\r\n\r\n
    S:  BODY[1.1]<0> "Hello \"pl")
    S: * 4 EXISTS
    S: * 1 EXPUNGE
    S: * 2 FETCH (UID 8 FLAGS (\Deleted))
    S: * 1 FETCH (FLAGS (\Flagged))
    S: * 3 FETCH (UID 77 RFC822.SIZE 5)
    S: a3 OK done
    PHASE READY
  )",
      MakeActions(r, {{"fetch", [&r](wire::ClientProtocol& c) {
                         r.fetched.clear();
                         UidSet set;
                         set.AddRange(7, 8);
                         FetchRequest req;
                         req.items = kFetchFlags | kFetchEnvelope | kFetchBodyStructure;
                         req.sections = {{"HEADER"}, {"1.1", 0, 10}};
                         Imap(c).StartUidFetch(set, std::move(req), CollectFetch(r));
                       }}}));
  ASSERT_EQ(r.fetched.size(), 1u);
  const FetchedMessage& m = r.fetched[0];
  EXPECT_EQ(m.seq, 2u);
  EXPECT_EQ(m.uid, 7u);
  EXPECT_EQ(m.flags, std::vector<std::string>({"\\Seen"}));
  ASSERT_NE(m.envelope, nullptr);
  EXPECT_EQ(m.envelope->subject, "Gr\xc3\xbc\xc3\x9f");
  ASSERT_EQ(m.envelope->to.size(), 2u);
  EXPECT_EQ(m.envelope->to[1].mailbox, "carol");
  EXPECT_EQ(m.envelope->message_id, "<m@x>");
  ASSERT_EQ(m.sections.size(), 2u);
  EXPECT_EQ(m.sections[0].section, "HEADER");
  EXPECT_EQ(m.sections[0].data, "A: b\r\n\r\n");
  EXPECT_EQ(m.sections[1].data, "Hello \"pl");

  ASSERT_NE(m.body_structure, nullptr);
  const BodyPart& top = *m.body_structure;
  EXPECT_EQ(top.subtype, "mixed");
  EXPECT_EQ(top.part, "");
  ASSERT_EQ(top.params.size(), 1u);
  EXPECT_EQ(top.params[0].second, "outer");
  ASSERT_EQ(top.children.size(), 4u);
  const BodyPart& alt = top.children[0];
  EXPECT_EQ(alt.type, "multipart");
  EXPECT_EQ(alt.subtype, "alternative");
  ASSERT_EQ(alt.children.size(), 2u);
  EXPECT_EQ(alt.children[0].part, "1.1");
  EXPECT_EQ(alt.children[0].lines, 1u);
  EXPECT_EQ(alt.children[1].part, "1.2");
  EXPECT_EQ(alt.children[1].encoding, "quoted-printable");
  const BodyPart& image = top.children[1];
  EXPECT_EQ(image.part, "2");
  EXPECT_EQ(image.id, "<logo@x>");
  EXPECT_EQ(image.disposition, "inline");
  EXPECT_EQ(image.size, 12u);
  const BodyPart& pdf = top.children[2];
  EXPECT_EQ(pdf.description, "A \"doc\"");
  EXPECT_EQ(pdf.disposition, "attachment");
  EXPECT_EQ(pdf.disposition_params[0].second, "doc.pdf");
  EXPECT_EQ(pdf.language, std::vector<std::string>({"en", "de"}));
  const BodyPart& msg = top.children[3];
  EXPECT_EQ(msg.part, "4");
  EXPECT_EQ(msg.lines, 4u);
  ASSERT_NE(msg.envelope, nullptr);
  EXPECT_EQ(msg.envelope->from[0].name, "Dave");
  ASSERT_EQ(msg.children.size(), 1u);
  EXPECT_EQ(msg.children[0].type, "text");
  EXPECT_EQ(msg.children[0].part, "4.1");

  // Unsolicited: EXISTS, EXPUNGE (UID 5? unknown: seq 1 had no UID), FETCH FLAGS for UID 8
  // (in the set, but FLAGS only), FETCH FLAGS for seq 1 (UID 7 after the expunge), and
  // data for a UID outside the set (no event: no FLAGS).
  ASSERT_EQ(r.events.size(), 4u);
  EXPECT_EQ(r.events[0].kind, MailboxEvent::Kind::kExists);
  EXPECT_EQ(r.events[0].exists, 4u);
  EXPECT_EQ(r.events[1].kind, MailboxEvent::Kind::kExpunged);
  EXPECT_EQ(r.events[1].seq, 1u);
  EXPECT_EQ(r.events[1].uid, 0u);
  EXPECT_EQ(r.events[2].kind, MailboxEvent::Kind::kFlags);
  EXPECT_EQ(r.events[2].uid, 8u);
  EXPECT_EQ(r.events[2].flags, std::vector<std::string>({"\\Deleted"}));
  EXPECT_EQ(r.events[3].seq, 1u);
  EXPECT_EQ(r.events[3].uid, 7u);
  EXPECT_EQ(Imap(*client).mailbox().exists, 3u);
}

TEST(ImapCommandsTest, StreamedSectionArrivesInPiecesAndLiteral8IsRead) {
  Results r;
  ExpectTranscript(Factory(), kFull + R"(
    !fetch
    C: a3 UID FETCH 7 (UID FLAGS BODY.PEEK[] BODY.PEEK[1])
    S: * 1 FETCH (UID 7 BODY[] {12}
    S~ hello\r\nwor
    S~ ld FLAGS (\\Seen) BODY[1] ~{3}\r\nabc
    S~ )\r\n
    S: * 2 FETCH (UID 8 FLAGS (\Seen))
    S: a3 OK done
  )",
                   MakeActions(r, {{"fetch", [&r](wire::ClientProtocol& c) {
                                      r.fetched.clear();
                                      r.streamed.clear();
                                      r.stream_ends = 0;
                                      UidSet set;
                                      set.Add(7);
                                      FetchRequest req;
                                      req.items = kFetchFlags;
                                      req.sections = {{""}, {"1"}};
                                      req.sink = [&r](uint32_t seq, uint32_t uid,
                                                      absl::string_view section,
                                                      absl::string_view piece, bool last) {
                                        EXPECT_EQ(seq, 1u);
                                        EXPECT_EQ(uid, 7u);
                                        absl::StrAppend(&r.streamed, "[", section, "]", piece);
                                        r.stream_ends += last;
                                      };
                                      Imap(c).StartUidFetch(set, std::move(req), CollectFetch(r));
                                    }}}));
  // Pieces are concatenated per section; the byte-by-byte run cuts them differently, so
  // compare without the markers between pieces of one section.
  std::string joined;
  std::string current = "none";
  for (size_t i = 0; i < r.streamed.size();) {
    size_t close = r.streamed.find(']', i);
    std::string section = r.streamed.substr(i + 1, close - i - 1);
    size_t next = r.streamed.find('[', close);
    if (section != current) {
      absl::StrAppend(&joined, "[", section, "]");
      current = section;
    }
    joined += r.streamed.substr(close + 1, next == std::string::npos ? next : next - close - 1);
    i = next == std::string::npos ? r.streamed.size() : next;
  }
  EXPECT_EQ(joined, "[]hello\r\nworld[1]abc");
  EXPECT_EQ(r.stream_ends, 2);
  ASSERT_EQ(r.fetched.size(), 1u);
  EXPECT_EQ(r.fetched[0].sections.size(), 2u);
  EXPECT_TRUE(r.fetched[0].sections[0].data.empty());
}

TEST(ImapCommandsTest, StoreResultsAreNotEvents) {
  Results r;
  ExpectTranscript(Factory(), kFull + R"(
    !events
    !store
    C: a3 UID STORE 7,9 +FLAGS (\Seen $Label)
    S: * 1 FETCH (FLAGS (\Seen $Label) UID 7)
    S: * 3 FETCH (UID 9 FLAGS (\Seen $Label))
    S: a3 OK done
  )",
                   MakeActions(r, {{"store", [&r](wire::ClientProtocol& c) {
                                      r.fetched.clear();
                                      UidSet set;
                                      set.Add(9);
                                      set.Add(7);
                                      Imap(c).StartUidStore(set, StoreMode::kAdd,
                                                            {"\\Seen", "$Label"}, false,
                                                            CollectFetch(r));
                                    }}}));
  ASSERT_EQ(r.fetched.size(), 2u);
  EXPECT_EQ(r.fetched[1].uid, 9u);
  EXPECT_TRUE(r.events.empty());
}

TEST(ImapCommandsTest, CopyAndMoveReturnTheCopyUidMapping) {
  Results r;
  auto copy = [&r](wire::ClientProtocol& c) {
    UidSet set;
    set.AddRange(7, 9);
    Imap(c).StartUidCopy(set, "Archive", [&r](CopyResult x) { r.copy = std::move(x); });
  };
  auto move = [&r](wire::ClientProtocol& c) {
    UidSet set;
    set.Add(8);
    Imap(c).StartUidMove(set, "Archive", [&r](CopyResult x) { r.copy = std::move(x); });
  };
  ExpectTranscript(Factory(), kFull + R"(
    !copy
    C: a3 UID COPY 7:9 Archive
    S: a3 OK [COPYUID 1234 7:9 100,103:102] done
  )",
                   MakeActions(r, {{"copy", copy}}));
  EXPECT_EQ(r.copy.uidvalidity, 1234u);
  EXPECT_EQ(r.copy.mapping,
            (std::vector<std::pair<uint32_t, uint32_t>>{{7, 100}, {8, 103}, {9, 102}}));

  auto client = ExpectTranscript(Factory(), kFull + R"(
    !events
    !move
    C: a3 UID MOVE 8 Archive
    S: * OK [COPYUID 1234 8 104] Moved UIDs.
    S: * 2 EXPUNGE
    S: a3 OK Move completed
  )",
                                 MakeActions(r, {{"move", move}}));
  EXPECT_EQ(r.copy.mapping, (std::vector<std::pair<uint32_t, uint32_t>>{{8, 104}}));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, MailboxEvent::Kind::kExpunged);
  EXPECT_EQ(Imap(*client).mailbox().exists, 2u);

  // Without MOVE: refused before writing.
  auto bare = NewClient(TestOptions());
  ASSERT_TRUE(RunTranscript(*bare, kBare, false));
  move(*bare);
  EXPECT_EQ(bare->error().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(bare->TakeOutput(), "");
  Imap(*bare).StartUidExpunge(UidSet::Parse("1").value());
  EXPECT_EQ(bare->error().code(), absl::StatusCode::kUnimplemented);
  Imap(*bare).StartIdle();
  EXPECT_EQ(bare->error().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(bare->TakeOutput(), "");
}

Actions AppendActions(Results& r) {
  return MakeActions(r, {{"append", [&r](wire::ClientProtocol& c) {
                            AppendRequest req;
                            req.flags = {"\\Draft", "$x"};
                            req.internal_date = absl::FromUnixSeconds(1700000000);
                            req.message = "hello";
                            Imap(c).StartAppend("Drafts", std::move(req),
                                                [&r](AppendResult a) { r.append = a; });
                          }}});
}

TEST(ImapCommandsTest, AppendWaitsForTheContinuationAndReturnsAppendUid) {
  Results r;
  ExpectTranscript(Factory(), kBare + R"(
    !append
    C: a3 APPEND Drafts (\Draft $x) "14-Nov-2023 22:13:20 +0000" {5}
    S: + Ready for literal data
    C: hello
    S: a3 OK [APPENDUID 42 17] Append completed.
  )",
                   AppendActions(r));
  EXPECT_EQ(r.append.uidvalidity, 42u);
  EXPECT_EQ(r.append.uid, 17u);

  auto client = ExpectTranscript(Factory(), kBare + R"(
    !append
    C: a3 APPEND Drafts (\Draft $x) "14-Nov-2023 22:13:20 +0000" {5}
    S: a3 NO [TRYCREATE] Mailbox doesn't exist: Drafts
    PHASE READY
  )",
                                 AppendActions(r));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kNotFound);
}

TEST(ImapCommandsTest, AppendWithLiteralPlusSendsAtOnce) {
  Results r;
  ExpectTranscript(Factory(), kFull + R"(
    !append
    C: a3 APPEND Drafts (\Draft $x) "14-Nov-2023 22:13:20 +0000" {5+}
    C: hello
    S: a3 OK [APPENDUID 42 18] Append completed.
  )",
                   AppendActions(r));
  EXPECT_EQ(r.append.uid, 18u);
}

TEST(ImapCommandsTest, IdleDeliversEventsUntilDone) {
  Results r;
  auto client = ExpectTranscript(Factory(), kFull + R"(
    !events
    !idle
    C: a3 IDLE
    PHASE BUSY
    S: + idling
    S: * 5 EXISTS
    S: * 1 RECENT
    S: * 2 EXPUNGE
    S: * 1 FETCH (FLAGS (\Seen))
    PHASE BUSY
    !done
    C: DONE
    S: a3 OK Idle completed
    PHASE READY
    # DONE requested before the server's "+" goes out with it.
    !idle
    !done
    C: a4 IDLE
    S: + idling
    C: DONE
    S: a4 OK Idle completed
    PHASE READY
  )",
                                 MakeActions(r));
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[0].exists, 5u);
  EXPECT_EQ(r.events[1].kind, MailboxEvent::Kind::kExpunged);
  EXPECT_EQ(r.events[2].kind, MailboxEvent::Kind::kFlags);
  EXPECT_EQ(Imap(*client).mailbox().exists, 4u);
  EXPECT_FALSE(Imap(*client).idling());
}

TEST(ImapCommandsTest, EnableUtf8AcceptSendsNamesAsUtf8) {
  Results r;
  auto client = ExpectTranscript(Factory(), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: a1 OK [CAPABILITY IMAP4rev1 ENABLE UTF8=ACCEPT LITERAL+] Logged in
    C: a2 ENABLE UTF8=ACCEPT
    S: * ENABLED UTF8=ACCEPT
    S: a2 OK Enabled
    C: a3 SELECT INBOX
    S: a3 OK [READ-WRITE] done
    !list
    C: a4 LIST "" "*"
    S: * LIST () "/" "Entwürfe"
    S: a4 OK done
    C: a5 LSUB "" "*"
    S: a5 OK done
    !status
    C: a6 STATUS {9+}
    C: Entwürfe (MESSAGES UNSEEN RECENT UIDNEXT UIDVALIDITY)
    S: a6 OK done
  )",
                                 MakeActions(r));
  EXPECT_TRUE(Imap(*client).utf8_enabled());
  ASSERT_EQ(r.list.size(), 1u);
  EXPECT_EQ(r.list[0].name, "Entw\xc3\xbcrfe");
}

TEST(ImapCommandsTest, CondstoreIsEnabledOnRequestAndKeepsModSeqs) {
  Options options = TestOptions();
  options.enable_condstore = true;
  Results r;
  auto client =
      ExpectTranscript(Factory(options), R"(
    S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
    C: a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==
    S: a1 OK [CAPABILITY IMAP4rev1 ENABLE CONDSTORE] Logged in
    C: a2 ENABLE CONDSTORE
    S: * ENABLED CONDSTORE
    S: a2 OK Enabled
    C: a3 SELECT INBOX
    S: * OK [HIGHESTMODSEQ 500] Highest
    S: a3 OK [READ-WRITE] done
    !fetch
    C: a4 UID FETCH 5 (UID FLAGS MODSEQ)
    S: * 1 FETCH (UID 5 MODSEQ (499) FLAGS ())
    S: a4 OK done
    !status
    C: a5 STATUS Entw&APw-rfe (MESSAGES UNSEEN RECENT UIDNEXT UIDVALIDITY HIGHESTMODSEQ)
    S: * STATUS Entw&APw-rfe (HIGHESTMODSEQ 77)
    S: a5 OK done
  )",
                       MakeActions(r, {{"fetch", [&r](wire::ClientProtocol& c) {
                                          r.fetched.clear();
                                          FetchRequest req;
                                          req.items = kFetchFlags | kFetchModSeq;
                                          Imap(c).StartUidFetch(UidSet::Parse("5").value(),
                                                                std::move(req), CollectFetch(r));
                                        }}}));
  EXPECT_TRUE(Imap(*client).condstore_enabled());
  EXPECT_FALSE(Imap(*client).utf8_enabled());
  EXPECT_EQ(Imap(*client).mailbox().highestmodseq, 500u);
  ASSERT_EQ(r.fetched.size(), 1u);
  EXPECT_EQ(r.fetched[0].modseq, 499u);
  EXPECT_TRUE(r.fetched[0].flags.empty());
  EXPECT_EQ(r.status.highestmodseq, 77u);
}

TEST(ImapCommandsTest, LiteralMinusIsNonSynchronizingUpTo4096Bytes) {
  for (size_t size : {4096u, 4097u}) {
    auto client = NewClient(TestOptions());
    ASSERT_TRUE(RunTranscript(*client, LoginWith("IMAP4rev1 LITERAL-"), false));
    AppendRequest req;
    req.message = std::string(size, 'm');
    Imap(*client).StartAppend("Drafts", std::move(req), nullptr);
    std::string out = client->TakeOutput();
    if (size == 4096) {
      EXPECT_EQ(out, "a3 APPEND Drafts {4096+}\r\n" + std::string(4096, 'm') + "\r\n");
    } else {
      EXPECT_EQ(out, "a3 APPEND Drafts {4097}\r\n");
      client->OnBytes("+ go\r\n");
      EXPECT_EQ(client->TakeOutput(), std::string(4097, 'm') + "\r\n");
    }
  }
}

TEST(ImapCommandsTest, StartOnAFailedClientKeepsTheFailure) {
  auto client = NewClient(TestOptions());
  ASSERT_TRUE(RunTranscript(*client, kFull, false));
  client->OnBytes("x9 OK a tag nobody sent\r\n");
  ASSERT_EQ(client->phase(), Phase::kFailed);
  Imap(*client).StartCreate("x");
  client->StartNoop();
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
  EXPECT_EQ(client->TakeOutput(), "");
}

// ---- Hostile servers: bounded, kFailed, never a crash. ----

void ExpectViolation(const std::string& data, Options options = TestOptions()) {
  for (bool byte_by_byte : {false, true}) {
    auto client = NewClient(options);
    ASSERT_TRUE(RunTranscript(*client, kFull, false));
    UidSet set;
    set.Add(7);
    FetchRequest req;
    req.items = kFetchBodyStructure;
    req.sections = {{""}};
    Imap(*client).StartUidFetch(set, std::move(req), [](FetchedMessage) {});
    client->TakeOutput();
    if (byte_by_byte) {
      for (char c : data) client->OnBytes(absl::string_view(&c, 1));
    } else {
      client->OnBytes(data);
    }
    EXPECT_EQ(client->phase(), Phase::kFailed) << data.substr(0, 80);
    EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION") << client->error();
  }
}

// A complete response the client cannot parse: the command fails with
// MALFORMED_RESPONSE naming it, the client stays usable (the stream is still in step).
void ExpectMalformed(const std::string& data, Options options = TestOptions()) {
  for (bool byte_by_byte : {false, true}) {
    auto client = NewClient(options);
    ASSERT_TRUE(RunTranscript(*client, kFull, false));
    UidSet set;
    set.Add(7);
    FetchRequest req;
    req.items = kFetchBodyStructure;
    req.sections = {{""}};
    int results = 0;
    Imap(*client).StartUidFetch(set, std::move(req), [&results](FetchedMessage) { ++results; });
    client->TakeOutput();
    std::string all = data + "a3 OK done\r\n";
    if (byte_by_byte) {
      for (char c : all) client->OnBytes(absl::string_view(&c, 1));
    } else {
      client->OnBytes(all);
    }
    ASSERT_EQ(client->phase(), Phase::kReady) << data.substr(0, 80) << client->error();
    EXPECT_EQ(client->error().code(), absl::StatusCode::kInternal) << client->error();
    EXPECT_EQ(Reason(client->error()), "MALFORMED_RESPONSE") << client->error();
    EXPECT_NE(client->error().message().find(data.substr(0, 12)), absl::string_view::npos)
        << client->error();
    EXPECT_EQ(results, 0);
    client->StartNoop();
    EXPECT_EQ(client->TakeOutput(), "a4 NOOP\r\n");
  }
}

TEST(ImapCommandsTest, BrokenFramingFailsTheClient) {
  ExpectViolation("* 1 FETCH (UID 7 BODY[] {99999999999}\r\n");  // past max_literal
  Options small = TestOptions();
  small.limits.max_literal = 1000;
  ExpectViolation("* 1 FETCH (UID 7 BODYSTRUCTURE {1001}\r\n", small);
  small.limits.max_line = 300;
  ExpectViolation("* 1 FETCH (UID 7 FLAGS (" + std::string(400, 'k') + "))\r\n", small);
}

TEST(ImapCommandsTest, MalformedResponsesFailOnlyTheCommand) {
  std::string deep = "* 1 FETCH (UID 7 BODYSTRUCTURE ";
  for (int i = 0; i < 200; ++i) deep += "(";
  ExpectMalformed(deep + "\r\n");
  ExpectMalformed("* 1 FETCH (UID x)\r\n");
  ExpectMalformed("* SEARCH 1 2 three\r\n");
  ExpectMalformed("* 1 FETCH (UID 7 BODY[] \"unterminated)\r\n");
  ExpectMalformed("* 1 FETCH (UID 7 BODY[] \"bad \\q escape\")\r\n");
  ExpectMalformed("* LIST (\\Noselect) \"toolong\" INBOX\r\n");
  ExpectMalformed("* 1 FETCH UID 7\r\n");
  Options small = TestOptions();
  small.limits.max_list_items = 100;
  std::string many = "* 1 FETCH (UID 7 FLAGS (";
  for (int i = 0; i < 200; ++i) absl::StrAppend(&many, "k", i, " ");
  ExpectMalformed(many + "))\r\n", small);
}

// One unusual BODYSTRUCTURE must not take a folder down (issue 16): a
// message/delivery-status part given message/rfc822's envelope, body and lines, NIL where
// strings belong, extension data in odd places — all read, the parts numbered as usual.
TEST(ImapCommandsTest, BodyStructureIsReadLiberally) {
  const std::string report =
      "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL)"
      "(\"message\" \"delivery-status\" NIL NIL NIL \"7bit\" 200 (NIL \"s\" NIL NIL NIL NIL NIL "
      "NIL NIL NIL) (\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1) 5 NIL NIL NIL NIL)"
      "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 60 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL "
      "NIL) (\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1) 2)"
      "(\"application\" \"octet-stream\" (\"name\" NIL \"x\") NIL NIL NIL NIL NIL (\"attachment\" "
      "NIL) NIL NIL (1 2 (3)))"
      "(NIL NIL NIL NIL NIL \"base64\" 4)"
      " \"report\" (\"report-type\" \"delivery-status\") NIL NIL NIL (\"x\" (\"y\")))";
  Results r;
  ExpectTranscript(
      Factory(),
      kFull + R"(
    !fetch
    C: a3 UID FETCH 7 (UID BODYSTRUCTURE)
    S: * 1 FETCH (UID 7 BODYSTRUCTURE )" +
          report + R"( ENVELOPE (NIL "subj" "not a list" NIL NIL (("To" NIL "to" "x")) NIL NIL NIL))
    S: a3 OK done
    PHASE READY
  )",
      MakeActions(r, {{"fetch", [&r](wire::ClientProtocol& c) {
                         r.fetched.clear();
                         UidSet set;
                         set.Add(7);
                         FetchRequest req;
                         req.items = kFetchBodyStructure;
                         Imap(c).StartUidFetch(set, std::move(req), CollectFetch(r));
                       }}}));
  ASSERT_EQ(r.fetched.size(), 1u);
  const FetchedMessage& m = r.fetched[0];
  EXPECT_TRUE(m.unparsed.empty());
  ASSERT_NE(m.body_structure, nullptr);
  const BodyPart& top = *m.body_structure;
  EXPECT_EQ(top.subtype, "report");
  ASSERT_EQ(top.params.size(), 1u);
  EXPECT_EQ(top.params[0].second, "delivery-status");
  ASSERT_EQ(top.children.size(), 5u);
  EXPECT_EQ(top.children[0].part, "1");
  const BodyPart& status = top.children[1];
  EXPECT_EQ(status.part, "2");
  EXPECT_EQ(status.subtype, "delivery-status");
  EXPECT_EQ(status.size, 200u);
  EXPECT_TRUE(status.children.empty());
  const BodyPart& original = top.children[2];
  EXPECT_EQ(original.part, "3");
  ASSERT_EQ(original.children.size(), 1u);
  EXPECT_EQ(original.children[0].part, "3.1");
  EXPECT_EQ(original.lines, 2u);
  EXPECT_EQ(top.children[3].part, "4");
  EXPECT_EQ(top.children[3].disposition, "attachment");
  EXPECT_EQ(top.children[4].part, "5");
  EXPECT_EQ(top.children[4].encoding, "base64");
  EXPECT_EQ(top.children[4].type, "");
  ASSERT_NE(m.envelope, nullptr);
  EXPECT_EQ(m.envelope->subject, "subj");
  EXPECT_TRUE(m.envelope->from.empty());
  ASSERT_EQ(m.envelope->to.size(), 1u);
  EXPECT_EQ(m.envelope->to[0].mailbox, "to");
}

// A BODYSTRUCTURE even the liberal reader cannot make sense of costs that message its
// parts list (noted in `unparsed`), not the command its result.
TEST(ImapCommandsTest, UnreadableBodyStructureDegradesOneMessage) {
  Results r;
  ExpectTranscript(Factory(), kFull + R"(
    !fetch
    C: a3 UID FETCH 7:8 (UID FLAGS BODYSTRUCTURE)
    S: * 1 FETCH (UID 7 BODYSTRUCTURE ("text") FLAGS (\Seen))
    S: * 2 FETCH (UID 8 FLAGS () BODYSTRUCTURE ("text" "plain" NIL NIL NIL "7bit" 3 1))
    S: a3 OK done
    PHASE READY
  )",
                   MakeActions(r, {{"fetch", [&r](wire::ClientProtocol& c) {
                                      r.fetched.clear();
                                      UidSet set;
                                      set.AddRange(7, 8);
                                      FetchRequest req;
                                      req.items = kFetchFlags | kFetchBodyStructure;
                                      Imap(c).StartUidFetch(set, std::move(req), CollectFetch(r));
                                    }}}));
  ASSERT_EQ(r.fetched.size(), 2u);
  EXPECT_EQ(r.fetched[0].body_structure, nullptr);
  EXPECT_EQ(r.fetched[0].unparsed, std::vector<std::string>({"BODYSTRUCTURE"}));
  EXPECT_EQ(r.fetched[0].present & kFetchBodyStructure, 0u);
  EXPECT_EQ(r.fetched[0].flags, std::vector<std::string>({"\\Seen"}));
  ASSERT_NE(r.fetched[1].body_structure, nullptr);
  EXPECT_TRUE(r.fetched[1].unparsed.empty());
}

// Random and mutated server bytes after a FETCH: the client ends kBusy/kReady or kFailed
// (never crashes, never reports success for garbage it could not parse), within bounded
// memory (small limits). Deterministic seed; bounded iterations.
TEST(ImapCommandsTest, FuzzedResponsesNeverCrash) {
  const std::vector<std::string> corpus = {
      "* 1 FETCH (UID 7 FLAGS (\\Seen) BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" "
      "\"utf-8\") NIL NIL \"7bit\" 4 1 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL "
      "\"7bit\" 60 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" NIL NIL NIL "
      "\"7bit\" 1 1) 2) \"mixed\") BODY[] {5}\r\nhello)\r\n",
      "* 2 FETCH (UID 8 ENVELOPE (\"d\" {3}\r\nabc ((\"n\" NIL \"m\" \"h\")) NIL NIL NIL NIL "
      "NIL NIL \"<x>\") BINARY[1] ~{2}\r\nab)\r\n",
      "* 4 EXISTS\r\n* 1 EXPUNGE\r\n* OK [UIDNEXT 9] x\r\n* ESEARCH (TAG \"a3\") UID ALL 1:3\r\n",
      "* LIST (\\HasNoChildren) \"/\" {3}\r\nabc\r\n* STATUS x (MESSAGES 1)\r\na3 OK done\r\n",
  };
  std::mt19937 rng(20261128);
  Options options = TestOptions();
  options.limits.max_line = 4096;
  options.limits.max_response_text = 16384;
  options.limits.max_literal = 4096;
  options.limits.max_depth = 16;
  options.limits.max_list_items = 256;
  int failed = 0, survived = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    auto client = NewClient(options);
    ASSERT_TRUE(RunTranscript(*client, kFull, false));
    Imap(*client).SetEventCallback([](const MailboxEvent&) {});
    UidSet set;
    set.AddRange(1, 10);
    FetchRequest req;
    req.items = kFetchFlags | kFetchEnvelope | kFetchBodyStructure;
    req.sections = {{""}};
    if (iteration % 2)
      req.sink = [](uint32_t, uint32_t, absl::string_view, absl::string_view, bool) {};
    Imap(*client).StartUidFetch(set, std::move(req), [](FetchedMessage) {});
    client->TakeOutput();
    std::string data = corpus[rng() % corpus.size()];
    int mutations = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < mutations && !data.empty(); ++i) {
      size_t pos = rng() % data.size();
      switch (rng() % 4) {
        case 0:
          data[pos] = static_cast<char>(rng() % 256);
          break;
        case 1:
          data.erase(pos, 1 + rng() % 4);
          break;
        case 2:
          data.insert(pos, std::string(1 + rng() % 3, "(){}~\"\\ \r\n0123456789NIL*"[rng() % 25]));
          break;
        case 3:
          data.insert(pos, data.substr(rng() % data.size(), rng() % 40));
          break;
      }
    }
    size_t cut = 0;
    while (cut < data.size()) {
      size_t n = 1 + rng() % 17;
      client->OnBytes(absl::string_view(data).substr(cut, n));
      cut += n;
    }
    Phase p = client->phase();
    EXPECT_TRUE(p == Phase::kFailed || p == Phase::kBusy || p == Phase::kReady ||
                p == Phase::kClosed)
        << testing::PhaseName(p);
    (p == Phase::kFailed ? failed : survived)++;
  }
  // Both outcomes occur: the mutations neither always break nor never break the parser.
  EXPECT_GT(failed, 100);
  EXPECT_GT(survived, 100);
}

}  // namespace
}  // namespace mailpool::imap
