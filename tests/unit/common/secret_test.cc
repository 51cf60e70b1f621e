#include "common/secret.h"

#include <type_traits>

#include "gtest/gtest.h"

namespace mailpool {
namespace {

TEST(SecretTest, RevealsOnlyOnRequestAndWipes) {
  Secret s("hunter2");
  EXPECT_EQ(s.Reveal(), "hunter2");
  Secret moved(std::move(s));
  EXPECT_TRUE(s.empty());  // NOLINT(bugprone-use-after-move): moved-from is wiped
  EXPECT_EQ(moved.Reveal(), "hunter2");
  moved.Wipe();
  EXPECT_TRUE(moved.empty());
}

TEST(SecretTest, IsNotImplicitlyConvertibleToText) {
  static_assert(!std::is_convertible_v<Secret, std::string>);
  static_assert(!std::is_convertible_v<Secret, absl::string_view>);
}

}  // namespace
}  // namespace mailpool
