// PageSize: 0 is the default, above the view's maximum is lowered to it (AIP-158), and a
// negative size is the only refusal.
#include "gtest/gtest.h"
#include "mailbox/call_util.h"

namespace mailpool::mailbox {
namespace {

TEST(PageSizeTest, AboveTheMaximumIsLoweredNotRefused) {
  EXPECT_EQ(*PageSize(0, v1::MESSAGE_VIEW_HEADERS), 50u);
  EXPECT_EQ(*PageSize(7, v1::MESSAGE_VIEW_HEADERS), 7u);
  EXPECT_EQ(*PageSize(1000, v1::MESSAGE_VIEW_HEADERS), 1000u);
  EXPECT_EQ(*PageSize(1001, v1::MESSAGE_VIEW_HEADERS), 1000u);
  EXPECT_EQ(*PageSize(2147483647, v1::MESSAGE_VIEW_BASIC), 1000u);
  EXPECT_EQ(*PageSize(101, v1::MESSAGE_VIEW_FULL), 100u);
  EXPECT_EQ(*PageSize(5000, v1::MESSAGE_VIEW_RAW), 100u);
}

TEST(PageSizeTest, NegativeIsInvalid) {
  absl::StatusOr<size_t> size = PageSize(-1, v1::MESSAGE_VIEW_HEADERS);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(size.status().message().find("page_size"), absl::string_view::npos);
}

}  // namespace
}  // namespace mailpool::mailbox
