#include "common/session_id.h"

#include <set>

#include "gtest/gtest.h"

namespace mailpool {
namespace {

TEST(SessionIdTest, HasTagAnd128RandomBits) {
  auto id = NewSessionId("pod-3");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->substr(0, 8), "mspod-3_");
  EXPECT_EQ(id->size(), 8u + 32u);
  EXPECT_TRUE(LooksLikeSessionId(*id));
}

TEST(SessionIdTest, IdsDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(*NewSessionId("0"));
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(SessionIdTest, RejectsBadTagsAndShapes) {
  EXPECT_FALSE(NewSessionId("a b").ok());
  EXPECT_FALSE(NewSessionId("").ok());
  EXPECT_FALSE(LooksLikeSessionId("alice@example.test"));
  EXPECT_FALSE(LooksLikeSessionId("ms0_XYZ"));
}

}  // namespace
}  // namespace mailpool
