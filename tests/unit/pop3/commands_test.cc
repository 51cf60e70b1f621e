// Transcript tests of the POP3 maildrop commands: STAT, LIST, UIDL, TOP, RETR, DELE, RSET.
// Every transcript runs whole and one byte at a time (tests/fakes/transcript.h).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "pop3/client.h"
#include "pop3/response.h"
#include "tests/fakes/transcript.h"

namespace mailpool::pop3 {
namespace {

using ::mailpool::testing::Actions;
using ::mailpool::testing::ExpectTranscript;
using Phase = wire::ClientProtocol::Phase;

wire::LoginOptions Login() {
  wire::LoginOptions o;
  o.security = wire::Security::kImplicitTls;
  o.user = "alice";
  o.password = Secret("s3cret-pass");
  return o;
}

testing::ClientFactory Factory(Limits limits = Limits()) {
  return [limits] { return NewClient(Login(), limits); };
}

// Logged in with USER/PASS, ready for commands.
constexpr char kLogin[] = R"(
  S: +OK ready
  C: CAPA
  S: +OK
  S: USER
  S: TOP
  S: UIDL
  S: .
  C: USER alice
  S: +OK
  C: PASS s3cret-pass
  S: +OK Logged in.
  C: CAPA
  S: -ERR
  PHASE READY
)";

Client& Pop3(wire::ClientProtocol& c) { return static_cast<Client&>(c); }

// What the commands delivered in the last run (each start action resets it).
struct Results {
  int calls = 0;
  uint32_t count = 0;
  uint64_t size = 0;
  std::vector<ListEntry> list;
  std::vector<UidlEntry> uidl;
  std::string data;
  int pieces = 0;
};

Actions MakeActions(Results& r) {
  auto sink = [&r](absl::string_view piece) {
    EXPECT_FALSE(piece.empty());
    r.data.append(piece.data(), piece.size());
    ++r.pieces;
  };
  return {
      {"stat",
       [&r](wire::ClientProtocol& c) {
         r = Results();
         Pop3(c).StartStat([&r](uint32_t count, uint64_t size) {
           ++r.calls;
           r.count = count;
           r.size = size;
         });
       }},
      {"list",
       [&r](wire::ClientProtocol& c) {
         r = Results();
         Pop3(c).StartList([&r](std::vector<ListEntry> e) {
           ++r.calls;
           r.list = std::move(e);
         });
       }},
      {"uidl",
       [&r](wire::ClientProtocol& c) {
         r = Results();
         Pop3(c).StartUidl([&r](std::vector<UidlEntry> e) {
           ++r.calls;
           r.uidl = std::move(e);
         });
       }},
      {"retr2",
       [&r, sink](wire::ClientProtocol& c) {
         r = Results();
         Pop3(c).StartRetr(2, sink);
       }},
      {"top1",
       [&r, sink](wire::ClientProtocol& c) {
         r = Results();
         Pop3(c).StartTop(1, 0, sink);
       }},
      {"dele3", [](wire::ClientProtocol& c) { Pop3(c).StartDele(3); }},
      {"rset", [](wire::ClientProtocol& c) { Pop3(c).StartRset(); }},
  };
}

std::string Reason(const absl::Status& s) {
  return GetPayloadText(s, kReasonPayload).value_or("<none>");
}

TEST(Pop3CommandsTest, StatReportsCountAndSize) {
  Results r;
  auto client = ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !stat
    C: STAT
    PHASE BUSY
    S: +OK 3 12345
    PHASE READY
  )"),
                                 MakeActions(r));
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(r.count, 3u);
  EXPECT_EQ(r.size, 12345u);
  EXPECT_TRUE(client->error().ok());
}

TEST(Pop3CommandsTest, StatRefusedLeavesClientUsable) {
  Results r;
  auto client = ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !stat
    C: STAT
    S: -ERR [SYS/TEMP] storage offline
    PHASE READY
  )"),
                                 MakeActions(r));
  EXPECT_EQ(r.calls, 0);
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(client->error()), "COMMAND_FAILED");
}

TEST(Pop3CommandsTest, MalformedStatIsAProtocolViolation) {
  Results r;
  auto client = ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !stat
    C: STAT
    S: +OK many 12
    PHASE FAILED
  )"),
                                 MakeActions(r));
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
  EXPECT_EQ(r.calls, 0);
}

TEST(Pop3CommandsTest, ListParsesScanListingWithTrailingInformation) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !list
    C: LIST
    S: +OK 3 messages (4200 octets)
    S: 1 120
    S: 2 4000 extra info
    S~ 3 80\n
    S: .
    PHASE READY
  )"),
                   MakeActions(r));
  ASSERT_EQ(r.calls, 1);
  ASSERT_EQ(r.list.size(), 3u);
  EXPECT_EQ(r.list[1].number, 2u);
  EXPECT_EQ(r.list[1].size, 4000u);
  EXPECT_EQ(r.list[2].size, 80u);
}

TEST(Pop3CommandsTest, EmptyListing) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !list
    C: LIST
    S: +OK 0 messages
    S: .
    PHASE READY
  )"),
                   MakeActions(r));
  EXPECT_EQ(r.calls, 1);
  EXPECT_TRUE(r.list.empty());
}

TEST(Pop3CommandsTest, UidlListsUniqueIds) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !uidl
    C: UIDL
    S: +OK
    S: 1 whqtswO00WBw418f9t5JxYwZ
    S: 2 QhdPYR:00WBw1Ph7x7
    S: .
    PHASE READY
  )"),
                   MakeActions(r));
  ASSERT_EQ(r.uidl.size(), 2u);
  EXPECT_EQ(r.uidl[0].uidl, "whqtswO00WBw418f9t5JxYwZ");
  EXPECT_EQ(r.uidl[1].number, 2u);
}

TEST(Pop3CommandsTest, UidlRefusedMeansUnsupported) {
  Results r;
  auto client = ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !uidl
    C: UIDL
    S: -ERR unknown command
    PHASE READY
  )"),
                                 MakeActions(r));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(Reason(client->error()), "UIDL_UNSUPPORTED");
  EXPECT_EQ(r.calls, 0);
}

TEST(Pop3CommandsTest, RetrUnstuffsDotsAndStreams) {
  Results r;
  auto client = ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !retr2
    C: RETR 2
    S: +OK 60 octets
    S: Subject: dots
    S:
    S: ..
    S: ...two
    S: .not a terminator
    S: body
    S: .
    PHASE READY
  )"),
                                 MakeActions(r));
  EXPECT_TRUE(client->error().ok()) << client->error();
  EXPECT_EQ(r.data, "Subject: dots\r\n\r\n.\r\n..two\r\nnot a terminator\r\nbody\r\n");
}

TEST(Pop3CommandsTest, RetrKeepsBareLfLinesAndEndsOnDotLf) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !retr2
    C: RETR 2
    S: +OK
    S~ a: b\n\n..x\nline\r\n.\n
    PHASE READY
  )"),
                   MakeActions(r));
  EXPECT_EQ(r.data, "a: b\n\n.x\nline\r\n");
}

TEST(Pop3CommandsTest, RetrStuffedLineStartingWithCr) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !retr2
    C: RETR 2
    S: +OK
    S~ .\rX\r\n.\r\n
    PHASE READY
  )"),
                   MakeActions(r));
  EXPECT_EQ(r.data, "\rX\r\n");
}

TEST(Pop3CommandsTest, RetrOfEmptyMessage) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !retr2
    C: RETR 2
    S: +OK 0 octets
    S: .
    PHASE READY
    !stat
    C: STAT
    S: +OK 1 0
    PHASE READY
  )"),
                   MakeActions(r));
  EXPECT_EQ(r.count, 1u);
}

TEST(Pop3CommandsTest, RetrRefusedIsNotFoundAndUsable) {
  Results r;
  auto client = ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !retr2
    C: RETR 2
    S: -ERR There's no message 2.
    PHASE READY
    !noop
    C: NOOP
    S: +OK
    PHASE READY
  )"),
                                 MakeActions(r));
  EXPECT_TRUE(r.data.empty());
  EXPECT_TRUE(client->error().ok());
}

TEST(Pop3CommandsTest, RetrRefusalCarriesReasonAndCommand) {
  Results r;
  auto client = ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !retr2
    C: RETR 2
    S: -ERR There's no message 2.
    PHASE READY
  )"),
                                 MakeActions(r));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Reason(client->error()), "NO_SUCH_MESSAGE");
  EXPECT_EQ(GetPayloadText(client->error(), kCommandPayload).value_or(""), "RETR 2");
  EXPECT_EQ(GetPayloadText(client->error(), kServerReplyPayload).value_or(""),
            "-ERR There's no message 2.");
}

TEST(Pop3CommandsTest, TopZeroGivesTheHeaderBlock) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !top1
    C: TOP 1 0
    S: +OK
    S: From: a@example.test
    S: Subject: hi
    S:
    S: .
    PHASE READY
  )"),
                   MakeActions(r));
  EXPECT_EQ(r.data, "From: a@example.test\r\nSubject: hi\r\n\r\n");
}

TEST(Pop3CommandsTest, DeleAndRset) {
  Results r;
  auto client = ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !dele3
    C: DELE 3
    PHASE BUSY
    S: +OK Marked to be deleted.
    PHASE READY
    !rset
    C: RSET
    S: +OK
    PHASE READY
    !dele3
    C: DELE 3
    S: -ERR Message is deleted.
    PHASE READY
  )"),
                                 MakeActions(r));
  EXPECT_EQ(client->error().code(), absl::StatusCode::kNotFound);
}

TEST(Pop3CommandsTest, CommandsWhileBusyDoNothing) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !stat
    C: STAT
    !list
    !dele3
    S: +OK 0 0
    PHASE READY
  )"),
                   MakeActions(r));
}

TEST(Pop3CommandsTest, OversizedMessageIsAProtocolViolation) {
  Results r;
  Limits limits;
  limits.max_message_bytes = 10;
  auto client = ExpectTranscript(Factory(limits), absl::StrCat(kLogin, R"(
    !retr2
    C: RETR 2
    S: +OK
    S: 0123456789abcdef
    S: .
    PHASE FAILED
  )"),
                                 MakeActions(r));
  EXPECT_EQ(Reason(client->error()), "PROTOCOL_VIOLATION");
  EXPECT_LE(r.data.size(), 10u);
}

TEST(Pop3CommandsTest, TooManyListingEntriesIsAProtocolViolation) {
  Results r;
  Limits limits;
  limits.max_listing_entries = 2;
  auto client = ExpectTranscript(Factory(limits), absl::StrCat(kLogin, R"(
    !list
    C: LIST
    S: +OK
    S: 1 1
    S: 2 2
    S: 3 3
    S: .
    PHASE FAILED
  )"),
                                 MakeActions(r));
  EXPECT_EQ(r.calls, 0);
}

TEST(Pop3CommandsTest, OverlongListingLineIsAProtocolViolation) {
  Results r;
  ExpectTranscript(Factory(),
                   absl::StrCat(kLogin, R"(
    !list
    C: LIST
    S: +OK
    S: 1 )",
                                std::string(2000, '1'), R"(
    PHASE FAILED
  )"),
                   MakeActions(r));
}

TEST(Pop3CommandsTest, MalformedListingLinesAreProtocolViolations) {
  for (const char* line : {"x 12", "0 12", "1", "1 -3", "4294967296 1"}) {
    Results r;
    ExpectTranscript(Factory(),
                     absl::StrCat(kLogin, R"(
      !list
      C: LIST
      S: +OK
      S: )",
                                  line, R"(
      PHASE FAILED
    )"),
                     MakeActions(r));
  }
  for (const char* line : {"1 ", "1 has space", "x abc"}) {
    Results r;
    ExpectTranscript(Factory(),
                     absl::StrCat(kLogin, R"(
      !uidl
      C: UIDL
      S: +OK
      S: )",
                                  line, R"(
      PHASE FAILED
    )"),
                     MakeActions(r));
  }
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !uidl
    C: UIDL
    S: +OK
    S~ 1 a\x01b\r\n
    PHASE FAILED
  )"),
                   MakeActions(r));
}

TEST(Pop3CommandsTest, UnsolicitedDataAfterTheTerminatorIsAViolation) {
  Results r;
  ExpectTranscript(Factory(), absl::StrCat(kLogin, R"(
    !retr2
    C: RETR 2
    S: +OK
    S~ x\r\n.\r\nsurprise\r\n
    PHASE FAILED
  )"),
                   MakeActions(r));
  EXPECT_EQ(r.data, "x\r\n");
}

TEST(MultilineDecoderTest, StopsAtTerminatorAndReportsConsumedBytes) {
  MultilineDecoder d;
  std::string out;
  absl::string_view input = "a\r\n..b\r\n.\r\n+OK next";
  size_t used = d.Consume(input, [&](absl::string_view p) { out.append(p.data(), p.size()); });
  EXPECT_TRUE(d.done());
  EXPECT_EQ(out, "a\r\n.b\r\n");
  EXPECT_EQ(input.substr(used), "+OK next");
}

TEST(MultilineDecoderTest, DotInsideALineIsData) {
  MultilineDecoder d;
  std::string out;
  d.Consume("a.\r\n.", [&](absl::string_view p) { out.append(p.data(), p.size()); });
  EXPECT_FALSE(d.done());
  d.Consume("\r", [&](absl::string_view p) { out.append(p.data(), p.size()); });
  EXPECT_FALSE(d.done());
  d.Consume("\n", [&](absl::string_view p) { out.append(p.data(), p.size()); });
  EXPECT_TRUE(d.done());
  EXPECT_EQ(out, "a.\r\n");
}

}  // namespace
}  // namespace mailpool::pop3
