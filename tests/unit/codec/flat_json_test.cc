#include "vitalgate/codec/flat_json.h"

#include <gtest/gtest.h>

namespace vg {
namespace {

TEST(FlatJsonTest, ParsesScalarsAndEscapes) {
  FlatJsonObject o;
  ASSERT_TRUE(o.Parse(R"( {"a": "x\"y\u00e9\ud83d\ude00", "b": -1.5e2, "c": true, "d": null} )"))
      << o.error();
  ASSERT_EQ(o.members().size(), 4u);
  EXPECT_EQ(o.members()[0].value.text, "x\"y\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(o.members()[1].value.number, -150);
  EXPECT_TRUE(o.members()[2].value.boolean);
  EXPECT_EQ(o.members()[3].value.type, FlatJsonValue::Type::kNull);
}

TEST(FlatJsonTest, ManyEscapedStringsStayValid) {
  FlatJsonObject o;
  std::string line = "{";
  for (int i = 0; i < 40; ++i) {
    if (i > 0) line += ",";
    line += "\"k" + std::to_string(i) + "\":\"v\\n" + std::to_string(i) + "\"";
  }
  line += "}";
  ASSERT_TRUE(o.Parse(line)) << o.error();
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(o.members()[static_cast<std::size_t>(i)].value.text, "v\n" + std::to_string(i));
  }
}

TEST(FlatJsonTest, RejectsInvalidJsonWithOffsets) {
  FlatJsonObject o;
  EXPECT_FALSE(o.Parse(""));
  EXPECT_FALSE(o.Parse("[1]"));
  EXPECT_FALSE(o.Parse("{\"a\":01}"));
  EXPECT_FALSE(o.Parse("{\"a\":1,}"));
  EXPECT_FALSE(o.Parse("{\"a\":1} x"));
  EXPECT_EQ(o.error_offset(), 8u);
  EXPECT_FALSE(o.Parse("{\"a\":\"\\ud800\"}"));
  EXPECT_FALSE(o.Parse("{\"a\":\"tab\there\"}"));
  EXPECT_FALSE(o.Parse("{\"a\":1,\"a\":2}"));
  EXPECT_FALSE(o.Parse("{\"a\":tru}"));
  EXPECT_FALSE(o.Parse("{\"a\":\"unterminated}"));
}

}  // namespace
}  // namespace vg
