#include "vitalgate/core/timefmt.h"

#include <gtest/gtest.h>

namespace vg {
namespace {

TEST(TimeFormatTest, FormatsUtcWithMilliseconds) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(1795323600123), "2026-11-22T05:00:00.123Z");
  EXPECT_EQ(FormatRfc3339(951782400000), "2000-02-29T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339(-1), "1969-12-31T23:59:59.999Z");
}

TEST(TimeFormatTest, ParsesWhatItFormats) {
  for (std::int64_t ms : {0LL, 1795323600123LL, 951782400000LL, 4102444799999LL}) {
    auto parsed = ParseRfc3339(FormatRfc3339(ms));
    ASSERT_TRUE(parsed.ok()) << FormatRfc3339(ms);
    EXPECT_EQ(*parsed, ms);
  }
}

TEST(TimeFormatTest, AcceptsOffsetsAndFractionPrecisions) {
  EXPECT_EQ(*ParseRfc3339("2026-11-22T06:00:00.000+01:00"), 1795323600000);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T05:00:00Z"), 1795323600000);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T05:00:00.5Z"), 1795323600500);
  EXPECT_EQ(*ParseRfc3339("2026-11-22T05:00:00.123456789Z"), 1795323600123);
  EXPECT_EQ(*ParseRfc3339("2026-11-22t05:00:00.000z"), 1795323600000);
}

TEST(TimeFormatTest, RejectsMalformedWithFieldInMessage) {
  EXPECT_FALSE(ParseRfc3339("2026-11-22 05:00").ok());
  EXPECT_FALSE(ParseRfc3339("2026-13-01T00:00:00Z").ok());
  EXPECT_NE(ParseRfc3339("2026-02-29T00:00:00Z").status().message().find("day"),
            std::string::npos);
  EXPECT_FALSE(ParseRfc3339("2026-11-22T24:00:00Z").ok());
  EXPECT_FALSE(ParseRfc3339("2026-11-22T05:00:60Z").ok());
  EXPECT_NE(ParseRfc3339("2026-11-22T05:00:00").status().message().find("zone"),
            std::string::npos);
  EXPECT_FALSE(ParseRfc3339("2026-11-22T05:00:00.Z").ok());
  EXPECT_FALSE(ParseRfc3339("2026-11-22T05:00:00Zjunk").ok());
  EXPECT_FALSE(ParseRfc3339("").ok());
}

}  // namespace
}  // namespace vg
