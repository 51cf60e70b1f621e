#include "mailbox/imap_search.h"

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mailpool::mailbox {
namespace {

// The program as the client would write it, strings marked so that tests can see that
// caller text stays one argument.
std::string Show(const std::vector<imap::SearchArg>& args) {
  std::vector<std::string> out;
  for (const imap::SearchArg& a : args) {
    switch (a.kind) {
      case imap::SearchArg::Kind::kString:
        out.push_back("<" + a.text + ">");
        break;
      case imap::SearchArg::Kind::kOpen:
        out.push_back("(");
        break;
      case imap::SearchArg::Kind::kClose:
        out.push_back(")");
        break;
      default:
        out.push_back(a.text);
    }
  }
  return absl::StrJoin(out, " ");
}

std::string Translate(const v1::SearchCriteria& c) {
  absl::StatusOr<ImapSearch> s = TranslateCriteria(c);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? Show(s->args) : "";
}

TEST(ImapSearchTest, EmptyCriteriaMatchEverything) {
  EXPECT_EQ(Translate(v1::SearchCriteria()), "ALL");
}

TEST(ImapSearchTest, TextFieldsBecomeStringArguments) {
  v1::SearchCriteria c;
  c.set_subject("Grüße \"quoted\" {5}");
  c.set_from("alice");
  c.set_recipient("bob");
  c.set_message_id("abc@x");
  auto* h = c.add_headers();
  h->set_name("List-Id");
  EXPECT_EQ(Translate(c),
            "SUBJECT <Grüße \"quoted\" {5}> FROM <alice> OR TO <bob> OR CC <bob> BCC <bob> "
            "HEADER <List-Id> <> HEADER <Message-ID> <<abc@x>>");
}

TEST(ImapSearchTest, FlagsSizesAndBooleanStructure) {
  v1::SearchCriteria c;
  c.mutable_flags_set()->set_flagged(true);
  c.mutable_flags_set()->add_keywords("$Work");
  c.mutable_flags_unset()->set_seen(true);
  c.set_larger(100);
  c.set_smaller(uint64_t{1} << 40);  // beyond 32 bits: no bound
  c.add_any_of()->set_subject("a");
  c.add_any_of()->set_subject("b");
  c.add_any_of()->set_subject("c");
  c.add_none_of()->set_unread(true);
  EXPECT_EQ(Translate(c),
            "LARGER 100 FLAGGED KEYWORD $Work UNSEEN OR ( SUBJECT <a> ) OR ( SUBJECT <b> ) ( "
            "SUBJECT <c> ) NOT ( UNSEEN )");
}

TEST(ImapSearchTest, TopLevelDatesAreWidenedAndRefined) {
  v1::SearchCriteria c;
  c.mutable_since()->set_seconds(1717408800);   // 2024-06-03 10:00 UTC
  c.mutable_before()->set_seconds(1717495200);  // 2024-06-04 10:00 UTC
  absl::StatusOr<ImapSearch> s = TranslateCriteria(c);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Show(s->args), "SINCE 2-Jun-2024 BEFORE 6-Jun-2024");
  ASSERT_TRUE(s->refine.needed());
  absl::Time at = absl::FromUnixSeconds(1717408800);
  EXPECT_TRUE(s->refine.Accepts(at, absl::nullopt));
  EXPECT_FALSE(s->refine.Accepts(at - absl::Seconds(1), absl::nullopt));
  EXPECT_FALSE(s->refine.Accepts(absl::FromUnixSeconds(1717495200), absl::nullopt));
  EXPECT_FALSE(s->refine.Accepts(absl::nullopt, absl::nullopt));
  // Nested: day granularity, no refinement.
  v1::SearchCriteria nested;
  *nested.add_none_of()->mutable_sent_since() = c.since();
  s = TranslateCriteria(nested);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(Show(s->args), "NOT ( SENTSINCE 3-Jun-2024 )");
  EXPECT_FALSE(s->refine.needed());
}

TEST(ImapSearchTest, RefusesWhatCannotBeSent) {
  v1::SearchCriteria c;
  c.set_subject("x\r\nA1 DELETE INBOX");
  EXPECT_EQ(TranslateCriteria(c).status().code(), absl::StatusCode::kInvalidArgument);
  c.Clear();
  c.mutable_flags_set()->add_keywords("two words");
  EXPECT_EQ(TranslateCriteria(c).status().code(), absl::StatusCode::kInvalidArgument);
  c.Clear();
  v1::SearchCriteria* deep = &c;
  for (int i = 0; i < 10; ++i) deep = deep->add_all_of();
  EXPECT_EQ(TranslateCriteria(c).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mailpool::mailbox
