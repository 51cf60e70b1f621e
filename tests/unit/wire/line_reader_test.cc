#include "wire/line_reader.h"

#include "gtest/gtest.h"

namespace mailpool::wire {
namespace {

TEST(LineReaderTest, SplitsCrlfAndBareLf) {
  LineReader r;
  r.Append("one\r\ntwo\nthr");
  EXPECT_EQ(r.NextLine(), "one");
  EXPECT_EQ(r.NextLine(), "two");
  EXPECT_EQ(r.NextLine(), std::nullopt);
  r.Append("ee\r\n");
  EXPECT_EQ(r.NextLine(), "three");
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(LineReaderTest, ByteByByte) {
  LineReader r;
  std::string data = "hello world\r\nsecond\r\n";
  std::vector<std::string> lines;
  for (char c : data) {
    r.Append(absl::string_view(&c, 1));
    while (auto l = r.NextLine()) lines.push_back(*l);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"hello world", "second"}));
}

TEST(LineReaderTest, FailsOnOverlongLineWithoutUnboundedGrowth) {
  LineReader r(16);
  r.Append(std::string(17, 'x'));
  EXPECT_EQ(r.NextLine(), std::nullopt);
  EXPECT_FALSE(r.status().ok());
  r.Append("\r\n");
  EXPECT_EQ(r.NextLine(), std::nullopt);
}

TEST(LineReaderTest, TakeBytesForLiterals) {
  LineReader r;
  r.Append("abc\r\ndef");
  EXPECT_EQ(r.TakeBytes(5), "abc\r\n");
  EXPECT_EQ(r.TakeBytes(10), "def");
}

}  // namespace
}  // namespace mailpool::wire
