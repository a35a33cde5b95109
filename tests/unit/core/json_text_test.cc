#include "vitalgate/core/json_text.h"

#include <gtest/gtest.h>

#include "vitalgate/core/ids.h"

namespace vg {
namespace {

std::string Str(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

std::string Num(double v) {
  std::string out;
  AppendJsonNumber(out, v);
  return out;
}

TEST(JsonTextTest, EscapesPerRfc8259) {
  EXPECT_EQ(Str("plain"), "\"plain\"");
  EXPECT_EQ(Str("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Str("line\nnext\t"), "\"line\\nnext\\t\"");
  EXPECT_EQ(Str(std::string("\x01", 1)), "\"\\u0001\"");
  EXPECT_EQ(Str("\xC2\xB0" "C"), "\"\xC2\xB0" "C\"");  // valid UTF-8 kept
  EXPECT_EQ(Str("\xFF"), "\"\xEF\xBF\xBD\"");          // invalid byte replaced
  EXPECT_EQ(Str("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");  // overlong form rejected
}

TEST(JsonTextTest, NumbersAreShortestRoundTrip) {
  EXPECT_EQ(Num(75), "75");
  EXPECT_EQ(Num(36.6), "36.6");
  EXPECT_EQ(Num(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(Num(-0.0), "0");
  EXPECT_EQ(Num(-12.5), "-12.5");
}

TEST(IdFormatTest, FormatsAndParsesOwnIdsOnly) {
  IdFormat f("cd6fac20");
  IdAllocator ids(3);
  const std::uint64_t a = ids.Next();
  const std::uint64_t b = ids.Next();
  EXPECT_LT(a, b);
  EXPECT_EQ(a >> kIdCounterBits, 3u);
  const std::string s = f.Format(a);
  EXPECT_EQ(s, "cd6fac20-30000000001");
  EXPECT_EQ(f.Parse(s), a);
  EXPECT_FALSE(f.Parse("other000-30000000001").has_value());
  EXPECT_FALSE(f.Parse("cd6fac20-").has_value());
  EXPECT_FALSE(f.Parse("cd6fac20-xyz").has_value());
  EXPECT_FALSE(f.Parse("cd6fac20-11111111111111111").has_value());
}

}  // namespace
}  // namespace vg
