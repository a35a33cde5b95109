#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "codec/jsonl.h"
#include "unit/codec/codec_test_util.h"

namespace vg {
namespace {

using testing::Bytes;
using testing::RecordingSink;

std::unique_ptr<Codec> MakeJsonl() {
  auto spec = ValidateCodecSpec(nlohmann::json{{"type", "jsonl"}}, "codec");
  EXPECT_TRUE(spec.ok());
  return std::move(*MakeCodec(*spec));
}

testing::Recorded Decode(const std::string& text) {
  auto codec = MakeJsonl();
  RecordingSink sink;
  codec->Feed(Bytes(text), sink);
  return sink.rec;
}

TEST(JsonlCodecTest, DecodesMinimalLine) {
  auto r = Decode("{\"metric\":\"heart_rate\",\"value\":72}\n");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].metric, Metric::kHeartRate);
  EXPECT_EQ(r.values[0].value, 72);
  EXPECT_FALSE(r.values[0].ts_ms.has_value());
  EXPECT_TRUE(r.errors.empty());
}

TEST(JsonlCodecTest, ConvertsUnitsAndReadsTimeAndPatient) {
  auto r = Decode(
      "{\"metric\":\"temperature\",\"value\":100.4,\"unit\":\"[degF]\","
      "\"ts\":\"2026-11-22T05:00:00.000Z\",\"patient\":\"p-002\"}\n");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_DOUBLE_EQ(r.values[0].value, 38.0);
  EXPECT_EQ(r.values[0].ts_ms, 1795323600000);
  EXPECT_TRUE(r.values[0].flags & kFlagDeviceTime);
  EXPECT_EQ(r.patients[0], "p-002");
}

TEST(JsonlCodecTest, LettersAndBooleans) {
  auto r = Decode(
      "{\"metric\":\"consciousness\",\"value\":\"V\"}\n{\"metric\":\"on_oxygen\",\"value\":true}\n");
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_EQ(r.values[0].value, 2);
  EXPECT_EQ(r.values[1].value, 1);
}

TEST(JsonlCodecTest, LinesSplitAcrossReadsAndCrlf) {
  auto codec = MakeJsonl();
  RecordingSink sink;
  const std::string text = "{\"metric\":\"spo2\",\"value\":97}\r\n{\"metric\":\"spo2\",\"value\":96}\n";
  for (char c : text) codec->Feed(Bytes(std::string(1, c)), sink);
  ASSERT_EQ(sink.rec.values.size(), 2u);
  EXPECT_EQ(sink.rec.values[1].value, 96);
}

TEST(JsonlCodecTest, BadLinesAreReportedWithOffsetAndTheStreamGoesOn) {
  const std::string good = "{\"metric\":\"spo2\",\"value\":97}\n";
  const std::string text = good + "not json\n" + "{\"metric\":\"spo2\",\"value\":\"97\"}\n" +
                           "{\"metric\":\"hr\",\"value\":1}\n" +
                           "{\"metric\":\"spo2\",\"value\":97,\"unti\":\"%\"}\n" +
                           "{\"metric\":\"temperature\",\"value\":37,\"unit\":\"K\"}\n" +
                           "{\"metric\":\"spo2\",\"value\":97,\"ts\":\"yesterday\"}\n" +
                           "{\"metric\":\"consciousness\",\"value\":\"X\"}\n" +
                           "{\"metric\":\"spo2\",\"value\":{\"a\":1}}\n" +
                           "{\"metric\":\"spo2\",\"value\":1e999}\n" + good;
  auto r = Decode(text);
  EXPECT_EQ(r.values.size(), 2u);
  ASSERT_EQ(r.errors.size(), 9u);
  EXPECT_EQ(r.errors[0].offset, good.size());  // byte offset of the bad line in the stream
  EXPECT_NE(r.errors[1].message.find("must be a number"), std::string::npos);
  EXPECT_NE(r.errors[2].message.find("unknown metric"), std::string::npos);
  EXPECT_EQ(r.errors[2].detail, "hr");
  EXPECT_NE(r.errors[3].message.find("unknown key"), std::string::npos);
  EXPECT_NE(r.errors[4].message.find("unit not accepted"), std::string::npos);
  EXPECT_NE(r.errors[5].message.find("\"ts\""), std::string::npos);
  EXPECT_NE(r.errors[7].message.find("nested"), std::string::npos);
  EXPECT_NE(r.errors[8].message.find("out of range"), std::string::npos);
  // Device text never appears in the loggable message.
  for (const DecodeError& e : r.errors) EXPECT_EQ(e.message.find("unti"), std::string::npos);
}

TEST(JsonlCodecTest, OversizedLineIsBoundedAndDiscarded) {
  auto codec = MakeJsonl();
  RecordingSink sink;
  const std::string huge(100000, 'x');
  codec->Feed(Bytes(huge), sink);
  codec->Feed(Bytes(huge), sink);
  codec->Feed(Bytes("\n{\"metric\":\"spo2\",\"value\":95}\n"), sink);
  EXPECT_EQ(sink.rec.errors.size(), 1u);
  ASSERT_EQ(sink.rec.values.size(), 1u);
  EXPECT_EQ(sink.rec.values[0].value, 95);
}

TEST(JsonlCodecTest, ResetDropsThePartialLine) {
  auto codec = MakeJsonl();
  RecordingSink sink;
  codec->Feed(Bytes("{\"metric\":\"spo2\",\"val"), sink);
  codec->Reset();
  codec->Feed(Bytes("{\"metric\":\"spo2\",\"value\":94}\n"), sink);
  ASSERT_EQ(sink.rec.values.size(), 1u);
  EXPECT_TRUE(sink.rec.errors.empty());
}

}  // namespace
}  // namespace vg
