// ResponseReader / Cursor (imap/response.h), the UID set type (imap/uid_set.h) and the
// date-time helpers.
#include "imap/response.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "imap/client.h"
#include "imap/uid_set.h"

namespace mailpool::imap {
namespace {

// Feeds `data` whole or byte by byte; returns the complete responses.
std::vector<Response> Frame(const std::string& data, bool byte_by_byte, const Limits& limits,
                            absl::Status* status = nullptr) {
  ResponseReader reader(limits);
  std::vector<Response> out;
  auto drain = [&] {
    while (std::optional<Response> r = reader.Next()) out.push_back(*std::move(r));
  };
  if (byte_by_byte) {
    for (char c : data) {
      reader.Append(absl::string_view(&c, 1));
      drain();
    }
  } else {
    reader.Append(data);
    drain();
  }
  if (status != nullptr) *status = reader.status();
  return out;
}

TEST(ResponseReaderTest, LiteralsSplitAcrossReadsStayWithTheirResponse) {
  Limits limits;
  const std::string data =
      "* 1 FETCH (BODY[] {5}\r\na\r\nb) BINARY[1] ~{2}\r\n\r\n)\r\n"
      "* OK text ending like a literal {3}\r\n"
      "a1 OK done {2}\r\n";
  for (bool bytes : {false, true}) {
    std::vector<Response> r = Frame(data, bytes, limits);
    ASSERT_EQ(r.size(), 3u) << bytes;
    EXPECT_EQ(r[0].text, "* 1 FETCH (BODY[] {5} BINARY[1] ~{2})");
    ASSERT_EQ(r[0].literals.size(), 2u);
    EXPECT_EQ(r[0].literals[0].data, "a\r\nb)");
    EXPECT_EQ(r[0].literals[1].data, "\r\n");
    EXPECT_EQ(r[1].text, "* OK text ending like a literal {3}");
    EXPECT_TRUE(r[1].literals.empty());
    EXPECT_EQ(r[2].text, "a1 OK done {2}");
  }
}

TEST(ResponseReaderTest, StreamedLiteralGoesToTheSinkInPieces) {
  Limits limits;
  ResponseReader reader(limits);
  std::string streamed;
  int ends = 0;
  reader.SetStreaming([](const Response&, uint64_t size) { return size > 3; },
                      [&](absl::string_view piece, bool last) {
                        streamed.append(piece.data(), piece.size());
                        ends += last;
                      });
  reader.Append("* 1 FETCH (BODY[] {10}\r\n0123");
  EXPECT_FALSE(reader.Next().has_value());
  EXPECT_EQ(streamed, "0123");
  reader.Append("456789 X {2}\r\nab)\r\n");
  std::optional<Response> r = reader.Next();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(streamed, "0123456789");
  EXPECT_EQ(ends, 1);
  ASSERT_EQ(r->literals.size(), 2u);
  EXPECT_TRUE(r->literals[0].streamed);
  EXPECT_TRUE(r->literals[0].data.empty());
  EXPECT_EQ(r->literals[1].data, "ab");  // small: buffered
}

TEST(ResponseReaderTest, BoundsAreEnforced) {
  Limits limits;
  limits.max_line = 100;
  limits.max_response_text = 300;
  limits.max_literal = 50;
  absl::Status status;
  Frame(std::string(200, 'x'), false, limits, &status);
  EXPECT_FALSE(status.ok());
  Frame("* 1 FETCH (BODY[] {51}\r\n", false, limits, &status);
  EXPECT_FALSE(status.ok());
  Frame("* 1 FETCH (A {30}\r\n" + std::string(30, 'a') + " B {30}\r\n", false, limits, &status);
  EXPECT_FALSE(status.ok()) << "literals of one response add up";
  std::string long_response = "* 1 FETCH (A {0}\r\n";
  for (int i = 0; i < 10; ++i) long_response += std::string(50, 'y') + " {0}\r\n";
  Frame(long_response, false, limits, &status);
  EXPECT_FALSE(status.ok());
}

TEST(CursorTest, ReadsTheGrammarElements) {
  Limits limits;
  std::vector<Response> r = Frame(
      "* X atom 42 \"q \\\"x\\\" \\\\\" NIL {3}\r\nl\"t (a (b c) \"d\") \\Seen \\* BODY[1.2]<5> "
      "rest\r\n",
      false, limits);
  ASSERT_EQ(r.size(), 1u);
  Cursor c(r[0], limits);
  absl::string_view atom;
  uint32_t n = 0;
  std::string s;
  bool nil = false;
  ASSERT_TRUE(c.Consume('*') && c.Space() && c.Word("x") && c.Space());
  ASSERT_TRUE(c.Atom(&atom) && c.Space());
  EXPECT_EQ(atom, "atom");
  ASSERT_TRUE(c.Number(&n) && c.Space());
  EXPECT_EQ(n, 42u);
  ASSERT_TRUE(c.String(&s) && c.Space());
  EXPECT_EQ(s, "q \"x\" \\");
  ASSERT_TRUE(c.NString(&s, &nil) && c.Space());
  EXPECT_TRUE(nil);
  ASSERT_TRUE(c.AString(&s) && c.Space());
  EXPECT_EQ(s, "l\"t");
  ASSERT_TRUE(c.SkipValue() && c.Space());
  EXPECT_EQ(c.depth(), 0u);
  ASSERT_TRUE(c.Flag(&atom) && c.Space());
  EXPECT_EQ(atom, "\\Seen");
  ASSERT_TRUE(c.Flag(&atom) && c.Space());
  EXPECT_EQ(atom, "\\*");
  ASSERT_TRUE(c.FetchAttName(&atom) && c.Space());
  EXPECT_EQ(atom, "BODY[1.2]<5>");
  EXPECT_EQ(c.Rest(), "rest");
  EXPECT_FALSE(c.Number(&n));
}

TEST(CursorTest, NumbersAndNestingAreBounded) {
  Limits limits;
  limits.max_depth = 3;
  std::vector<Response> r = Frame("* 4294967296 ((((x))))\r\n", false, limits);
  ASSERT_EQ(r.size(), 1u);
  Cursor c(r[0], limits);
  uint32_t n = 0;
  c.Consume('*');
  c.Space();
  EXPECT_FALSE(c.Number(&n));  // 2^32 does not fit
  uint64_t big = 0;
  EXPECT_TRUE(c.Number64(&big));
  EXPECT_EQ(big, 4294967296u);
  c.Space();
  EXPECT_FALSE(c.SkipValue());
}

TEST(UidSetTest, NormalizesAndFormatsCompactly) {
  UidSet set;
  set.Add(7);
  set.AddRange(1, 5);
  set.AddRange(12, 9);
  set.Add(6);
  set.Add(0);  // not a UID
  EXPECT_EQ(set.ToString(), "1:7,9:12");
  EXPECT_EQ(set.size(), 11u);
  EXPECT_TRUE(set.Contains(6));
  EXPECT_FALSE(set.Contains(8));
  EXPECT_FALSE(set.Contains(13));
  set.Add(8);
  EXPECT_EQ(set.ToString(), "1:12");
  set.AddRange(4294967295u, 4294967294u);
  EXPECT_EQ(set.ToString(), "1:12,4294967294:4294967295");
  EXPECT_EQ(UidSet().ToString(), "");
}

TEST(UidSetTest, ParsesAndRejects) {
  EXPECT_EQ(UidSet::Parse("3,1:2,10:8").value().ToString(), "1:3,8:10");
  for (const char* bad :
       {"", "0", "1:", ":2", "1,,2", "a", "1:*", "*", "4294967296", "01", "1 2"}) {
    EXPECT_FALSE(UidSet::Parse(bad).ok()) << bad;
  }
  std::string many;
  for (int i = 0; i <= 100'000; ++i) absl::StrAppend(&many, i == 0 ? "" : ",", 2 * i + 1);
  EXPECT_FALSE(UidSet::Parse(many).ok());
}

TEST(UidSetTest, ExpandKeepsTheWrittenOrderAndIsBounded) {
  EXPECT_EQ(ExpandUidSet("5,3:4,9:7", 100).value(), std::vector<uint32_t>({5, 3, 4, 9, 8, 7}));
  EXPECT_FALSE(ExpandUidSet("1:4000000000", 1000).ok());
  EXPECT_FALSE(ExpandUidSet("1:10,x", 100).ok());
}

TEST(DateTimeTest, ParsesAndFormats) {
  absl::optional<absl::Time> t = ParseDateTime("17-Jul-1996 02:44:25 -0700");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(FormatDateTime(*t), "17-Jul-1996 09:44:25 +0000");
  EXPECT_EQ(ParseDateTime(" 7-Jul-1996 09:44:25 +0000"),
            ParseDateTime("07-Jul-1996 09:44:25 +0000"));
  EXPECT_EQ(FormatDateTime(absl::FromUnixSeconds(1700000000)), "14-Nov-2023 22:13:20 +0000");
  for (const char* bad : {"", "31-Feb-2024 00:00:00 +0000", "17-Foo-1996 02:44:25 -0700",
                          "17-Jul-1996 25:44:25 -0700", "17-Jul-1996 02:44:25 0700"}) {
    EXPECT_FALSE(ParseDateTime(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace mailpool::imap
