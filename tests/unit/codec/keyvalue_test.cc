// Vectors KV-n: tests/vectors/README.md names their source (Nonin's ASCII output layout; both
// constructed).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "unit/codec/codec_test_util.h"
#include "unit/codec/serial_test_util.h"

namespace vg {
namespace {

using testing::FeedByteByByte;
using testing::FeedWhole;
using testing::MakeFromSpec;
using testing::MakeStatus;
using testing::Recorded;
using testing::Summary;

const nlohmann::json kNoninMap = {{"SPO2", "spo2"}, {"HR", "pulse_rate"}};

std::unique_ptr<Codec> KeyValue(nlohmann::json map = kNoninMap,
                                nlohmann::json extra = nlohmann::json::object()) {
  extra["type"] = "keyvalue";
  extra["map"] = std::move(map);
  return MakeFromSpec(extra);
}

Recorded Decode(const std::string& text, nlohmann::json map = kNoninMap,
                nlohmann::json extra = nlohmann::json::object()) {
  auto codec = KeyValue(std::move(map), std::move(extra));
  return FeedWhole(*codec, text);
}

void ExpectValue(const DecodedValue& v, Metric m, double value) {
  EXPECT_EQ(v.metric, m);
  EXPECT_DOUBLE_EQ(v.value, value);
}

TEST(KeyValueCodecTest, Kv1DashesAreNoValue) {
  auto r = Decode("SPO2=--- HR=---\r\n");
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.errors.empty());
}

TEST(KeyValueCodecTest, Kv2NoninAsciiWithFlagsAndEventMarker) {
  auto r = Decode("SPO2=097 HR=072 F\r\n12:00:01 SPO2=095 HR=101*\r\n");
  ASSERT_EQ(r.values.size(), 4u);
  ExpectValue(r.values[0], Metric::kSpo2, 97);
  ExpectValue(r.values[1], Metric::kPulseRate, 72);
  ExpectValue(r.values[2], Metric::kSpo2, 95);
  ExpectValue(r.values[3], Metric::kPulseRate, 101);
  EXPECT_FALSE(r.values[0].ts_ms.has_value());
  EXPECT_TRUE(r.errors.empty());
}

TEST(KeyValueCodecTest, UnitsAreConvertedToCanonical) {
  const nlohmann::json map = {{"TEMP", {{"metric", "temperature"}, {"unit", "[degF]"}}},
                              {"NIBP_S", {{"metric", "bp_systolic"}, {"unit", "kPa"}}},
                              {"SpO2", {{"metric", "spo2"}}}};
  auto r = Decode("TEMP=100.4 NIBP_S=16.0 SPO2=98%\n", map);
  ASSERT_EQ(r.values.size(), 3u);
  ExpectValue(r.values[0], Metric::kTemperature, 38.0);
  EXPECT_NEAR(r.values[1].value, 120.01, 0.01);
  ExpectValue(r.values[2], Metric::kSpo2, 98);
}

TEST(KeyValueCodecTest, LettersAndBooleans) {
  const nlohmann::json map = {{"AVPU", "consciousness"}, {"O2", "on_oxygen"}};
  auto r = Decode("AVPU=v O2=yes\nAVPU=A O2=0\nAVPU=X O2=maybe\n", map);
  ASSERT_EQ(r.values.size(), 4u);
  ExpectValue(r.values[0], Metric::kConsciousness, 2);
  ExpectValue(r.values[1], Metric::kOnOxygen, 1);
  ExpectValue(r.values[2], Metric::kConsciousness, 0);
  ExpectValue(r.values[3], Metric::kOnOxygen, 0);
  ASSERT_EQ(r.hard_errors(), 2u);
  EXPECT_NE(r.errors[0].message.find("A, C, V, P, U"), std::string::npos);
  EXPECT_NE(r.errors[1].message.find("boolean"), std::string::npos);
}

TEST(KeyValueCodecTest, NonNumericValueIsAnErrorForThatFieldOnly) {
  const std::string good = "SPO2=097 HR=072\n";
  const std::string bad = "SPO2=9x HR=072 RR=abc\n";
  auto r = Decode(good + bad + "SPO2=1e3 HR=7.2.1\n");
  ASSERT_EQ(r.values.size(), 3u);
  ExpectValue(r.values[2], Metric::kPulseRate, 72);
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].offset, good.size());
  EXPECT_NE(r.errors[0].message.find("spo2 is not a number"), std::string::npos);
  EXPECT_EQ(r.errors[0].detail, "SPO2=9x");
  EXPECT_EQ(r.errors[0].message.find("9x"), std::string::npos);  // no device text logged
  EXPECT_EQ(r.errors[1].offset, good.size() + bad.size());
  EXPECT_EQ(r.errors[2].offset, good.size() + bad.size() + 9);
}

TEST(KeyValueCodecTest, ImplausibleValuesAreStillEmitted) {
  auto r = Decode("SPO2=150 HR=-5\n");
  ASSERT_EQ(r.values.size(), 2u);
  ExpectValue(r.values[0], Metric::kSpo2, 150);
  ExpectValue(r.values[1], Metric::kPulseRate, -5);
}

TEST(KeyValueCodecTest, KeysMatchIgnoringCaseAndUnmappedFieldsAreIgnored) {
  auto r = Decode("spo2=97 Hr=60 PI=3.2 NOTE=hello\n");
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_TRUE(r.errors.empty());
}

TEST(KeyValueCodecTest, DelimitersAndSeparators) {
  auto any = Decode("SPO2=97,HR=60;X=1\tY=2\n");
  EXPECT_EQ(any.values.size(), 2u);
  auto comma = Decode("SPO2 = 97 , HR = 60\n", kNoninMap, {{"delimiter", "comma"}});
  ASSERT_EQ(comma.values.size(), 2u);
  ExpectValue(comma.values[1], Metric::kPulseRate, 60);
  auto semi =
      Decode("SPO2: 97; HR: 60\n", kNoninMap, {{"delimiter", "semicolon"}, {"separator", ":"}});
  ASSERT_EQ(semi.values.size(), 2u);
  // With whitespace delimiting a decimal comma stays in the value, which is then not a number.
  auto ws = Decode("SPO2=97,5 HR=60\n", kNoninMap, {{"delimiter", "whitespace"}});
  ASSERT_EQ(ws.values.size(), 1u);
  EXPECT_EQ(ws.hard_errors(), 1u);
  auto arrow = Decode("SPO2->97 HR->60\n", kNoninMap, {{"separator", "->"}});
  EXPECT_EQ(arrow.values.size(), 2u);
}

TEST(KeyValueCodecTest, TimeField) {
  const nlohmann::json ts = {{"ts_field", "TS"}};
  auto rfc = Decode("SPO2=97 TS=2026-11-22T05:00:00.000Z HR=60\n", kNoninMap, ts);
  ASSERT_EQ(rfc.values.size(), 2u);
  for (const DecodedValue& v : rfc.values) {
    EXPECT_EQ(v.ts_ms, 1795323600000);
    EXPECT_TRUE(v.flags & kFlagDeviceTime);
  }
  auto unix_s = Decode("ts=1795323600.25 SPO2=97\n", kNoninMap, ts);
  ASSERT_EQ(unix_s.values.size(), 1u);
  EXPECT_EQ(unix_s.values[0].ts_ms, 1795323600250);
  auto bad = Decode("TS=yesterday SPO2=97\n", kNoninMap, ts);
  ASSERT_EQ(bad.values.size(), 1u);
  EXPECT_FALSE(bad.values[0].ts_ms.has_value());
  ASSERT_EQ(bad.hard_errors(), 1u);
  EXPECT_NE(bad.errors[0].message.find("time field"), std::string::npos);
}

TEST(KeyValueCodecTest, HeaderLineAndRepeatedFieldAreWarnings) {
  auto r = Decode("Nonin 9600 V2.1 12/01/25\nSPO2=97 SPO2=98\n");
  ASSERT_EQ(r.values.size(), 1u);
  ExpectValue(r.values[0], Metric::kSpo2, 97);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_TRUE(r.errors[1].warning);
  EXPECT_EQ(r.hard_errors(), 0u);
}

TEST(KeyValueCodecTest, SplitAcrossReadsGivesTheSameResult) {
  const std::string text = "header\r\nSPO2=097 HR=072 F\r\nSPO2=--- HR=---\r\nSPO2=9x HR=101*\r\n" +
                           std::string(3000, 'z') + "\nSPO2=99\n";
  const Recorded a = FeedWhole(*KeyValue(), text);
  const Recorded b = FeedByteByByte(*KeyValue(), text);
  EXPECT_EQ(Summary(a), Summary(b));
  EXPECT_EQ(a.values.size(), 4u);
  EXPECT_EQ(a.hard_errors(), 2u);  // 9x and the oversized line
}

TEST(KeyValueCodecTest, OversizedLineIsDiscardedWithOneError) {
  auto codec = KeyValue();
  testing::RecordingSink sink;
  const std::string huge(700, 'S');
  for (int i = 0; i < 5; ++i) codec->Feed(testing::Bytes(huge), sink);
  codec->Feed(testing::Bytes("\nSPO2=96\n"), sink);
  ASSERT_EQ(sink.rec.errors.size(), 1u);
  EXPECT_EQ(sink.rec.errors[0].offset, 0u);
  ASSERT_EQ(sink.rec.values.size(), 1u);
  ExpectValue(sink.rec.values[0], Metric::kSpo2, 96);
}

TEST(KeyValueCodecTest, ResetDropsThePartialLine) {
  auto codec = KeyValue();
  testing::RecordingSink sink;
  codec->Feed(testing::Bytes("SPO2=9"), sink);
  codec->Reset();
  codec->Feed(testing::Bytes("7 HR=60\n"), sink);
  // Without Reset this would have been SPO2=97; now "7" is an unnamed token and HR decodes.
  ASSERT_EQ(sink.rec.values.size(), 1u);
  ExpectValue(sink.rec.values[0], Metric::kPulseRate, 60);
}

TEST(KeyValueCodecTest, MapIsValidatedAtCreationNamingTheKey) {
  const auto make = [](nlohmann::json map, nlohmann::json extra = nlohmann::json::object()) {
    extra["type"] = "keyvalue";
    extra["map"] = std::move(map);
    return MakeStatus(extra);
  };
  EXPECT_TRUE(make(kNoninMap).ok());
  const Status unknown = make({{"SPO2", "spo2x"}});
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("map.SPO2: unknown metric \"spo2x\""), std::string::npos);
  const Status unknown_obj = make({{"HR", {{"metric", "hr"}}}});
  EXPECT_NE(unknown_obj.message().find("map.HR.metric: unknown metric"), std::string::npos);
  const Status unit = make({{"T", {{"metric", "temperature"}, {"unit", "K"}}}});
  EXPECT_NE(unit.message().find("map.T.unit"), std::string::npos);
  const Status unit_on_letter = make({{"C", {{"metric", "consciousness"}, {"unit", "%"}}}});
  EXPECT_NE(unit_on_letter.message().find("takes no unit"), std::string::npos);
  const Status extra_key = make({{"T", {{"metric", "temperature"}, {"scale", 2}}}});
  EXPECT_NE(extra_key.message().find("map.T.scale: unknown key"), std::string::npos);
  EXPECT_NE(make({{"T", {{"unit", "Cel"}}}}).message().find("map.T.metric: required"),
            std::string::npos);
  EXPECT_NE(make({{"T", 5}}).message().find("map.T: expected"), std::string::npos);
  EXPECT_NE(make({{"HR", "pulse_rate"}, {"hr", "heart_rate"}}).message().find("ignoring case"),
            std::string::npos);
  EXPECT_NE(make({{"A B", "spo2"}}).message().find("map.A B"), std::string::npos);
  EXPECT_FALSE(make(nlohmann::json::object()).ok());
  EXPECT_FALSE(make(nlohmann::json::array()).ok());  // ApplyOptionSpecs: not an object
  EXPECT_NE(make(kNoninMap, {{"separator", ""}}).message().find("separator"), std::string::npos);
  EXPECT_FALSE(make(kNoninMap, {{"separator", " "}}).ok());
  EXPECT_NE(make(kNoninMap, {{"ts_field", "hr"}}).message().find("ts_field"), std::string::npos);
  EXPECT_FALSE(make(kNoninMap, {{"delimiter", "tab"}}).ok());
  // `map` is required.
  EXPECT_FALSE(MakeStatus({{"type", "keyvalue"}}).ok());
}

}  // namespace
}  // namespace vg
