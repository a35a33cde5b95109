#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "codec/gatt/characteristics.h"
#include "codec/gatt/gatt_codec.h"
#include "codec/gatt/sfloat.h"
#include "unit/codec/codec_test_util.h"
#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

using gatt::DecodeFloat;
using gatt::DecodeSfloat;
using testing::Bytes;
using testing::Hex;
using testing::Recorded;
using testing::RecordingSink;

std::unique_ptr<Codec> MakeGatt(const nlohmann::json& options = nlohmann::json::object()) {
  nlohmann::json spec = options;
  spec["type"] = "gatt";
  auto validated = ValidateCodecSpec(spec, "codec");
  EXPECT_TRUE(validated.ok()) << validated.status().message();
  auto codec = MakeCodec(*validated);
  EXPECT_TRUE(codec.ok());
  return std::move(*codec);
}

Recorded Decode(std::uint16_t uuid, const std::string& hex,
                const nlohmann::json& options = nlohmann::json::object()) {
  auto codec = MakeGatt(options);
  RecordingSink sink;
  const std::string bytes = Hex(hex);
  codec->FeedCharacteristic(uuid, Bytes(bytes), sink);
  return sink.rec;
}

std::string Ts(const DecodedValue& v) { return v.ts_ms ? FormatRfc3339(*v.ts_ms) : "none"; }

std::vector<std::string> Status(const DecodedValue& v) {
  std::vector<std::string> out;
  for (std::uint8_t i = 0; i < v.status_count; ++i) out.emplace_back(v.status[i]);
  return out;
}

bool HasStatus(const DecodedValue& v, std::string_view word) {
  for (std::uint8_t i = 0; i < v.status_count; ++i) {
    if (v.status[i] == word) return true;
  }
  return false;
}

std::string Printed(double v) {
  std::string s;
  AppendJsonNumber(s, v);
  return s;
}

// ---- IEEE 11073-20601 SFLOAT / FLOAT -------------------------------------------------------

TEST(SfloatTest, WorkedExamples) {
  EXPECT_EQ(DecodeSfloat(0xF16E), 36.6);
  EXPECT_EQ(DecodeSfloat(0x0002), 2.0);
  EXPECT_EQ(DecodeSfloat(0xF014), 2.0);
  EXPECT_EQ(DecodeSfloat(0xE0C8), 2.0);
  EXPECT_EQ(DecodeSfloat(0x1002), 20.0);
  EXPECT_EQ(DecodeSfloat(0x2002), 200.0);
  EXPECT_EQ(DecodeSfloat(0x04D2), 1234.0);
  EXPECT_EQ(DecodeSfloat(0x0B2E), -1234.0);
  EXPECT_EQ(DecodeSfloat(0xFFFF), -0.1);
  EXPECT_EQ(DecodeSfloat(0xF800), -204.8);         // mantissa -2048 is special only with exponent 0
  EXPECT_EQ(DecodeSfloat(0x8062), 9.8e-7);         // exponent nibble 8 is -8, not a bias
  EXPECT_EQ(DecodeSfloat(0x7FFF), -1e7);           // mantissa 0xFFF is -1
  EXPECT_EQ(DecodeSfloat(0x77FF), 20470000000.0);  // the largest SFLOAT
  EXPECT_EQ(DecodeSfloat(0xF7FF), 204.7);          // NaN's mantissa with exponent -1 is a number
}

TEST(SfloatTest, KeepsDecimalPrecisionWhenPrinted) {
  EXPECT_EQ(Printed(*DecodeSfloat(0xF16E)), "36.6");
  EXPECT_EQ(Printed(*DecodeSfloat(0xFFFF)), "-0.1");
  EXPECT_EQ(Printed(*DecodeSfloat(0xF0BD)), "18.9");
  EXPECT_EQ(Printed(*DecodeSfloat(0xB05F)), "0.00095");
  EXPECT_EQ(Printed(*DecodeFloat(0xFE000EB0)), "37.6");
  EXPECT_EQ(Printed(*DecodeFloat(0xFD008FD3)), "36.819");
}

TEST(SfloatTest, MantissaAndExponentAreSignExtended) {
  const auto f = gatt::ParseSfloat(0xE0C8);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->mantissa, 200);
  EXPECT_EQ(f->exponent, -2);
  const auto g = gatt::ParseSfloat(0x7800);  // exponent +7, mantissa -2048
  ASSERT_TRUE(g);
  EXPECT_EQ(g->mantissa, -2048);
  EXPECT_EQ(g->exponent, 7);
}

TEST(SfloatTest, EverySpecialValueGivesNoNumber) {
  EXPECT_FALSE(DecodeSfloat(0x07FF));  // NaN
  EXPECT_FALSE(DecodeSfloat(0x0800));  // NRes
  EXPECT_FALSE(DecodeSfloat(0x07FE));  // +INF
  EXPECT_FALSE(DecodeSfloat(0x0802));  // -INF
  EXPECT_FALSE(DecodeSfloat(0x0801));  // reserved
}

TEST(SfloatTest, AllOtherRawValuesAreFiniteNumbers) {
  int specials = 0;
  for (std::uint32_t raw = 0; raw <= 0xFFFF; ++raw) {
    const auto v = DecodeSfloat(static_cast<std::uint16_t>(raw));
    if (!v) {
      ++specials;
      continue;
    }
    ASSERT_TRUE(std::isfinite(*v)) << raw;
  }
  EXPECT_EQ(specials, 5);
}

TEST(FloatTest, WorkedExamples) {
  EXPECT_EQ(DecodeFloat(0xFE000EB0), 37.6);
  EXPECT_EQ(DecodeFloat(0xFF000172), 37.0);
  EXPECT_EQ(DecodeFloat(0xFF0003DA), 98.6);
  EXPECT_EQ(DecodeFloat(0x00000002), 2.0);
  EXPECT_EQ(DecodeFloat(0xFF000014), 2.0);
  EXPECT_EQ(DecodeFloat(0xFE0000C8), 2.0);
  EXPECT_EQ(DecodeFloat(0x01000002), 20.0);
  EXPECT_EQ(DecodeFloat(0x02000002), 200.0);
  EXPECT_EQ(DecodeFloat(0x00FFFB2E), -1234.0);
  EXPECT_EQ(DecodeFloat(0xFF7FFFFF), 838860.7);  // NaN's mantissa, exponent -1: a number
}

TEST(FloatTest, EverySpecialValueGivesNoNumber) {
  EXPECT_FALSE(DecodeFloat(0x007FFFFF));  // NaN
  EXPECT_FALSE(DecodeFloat(0x00800000));  // NRes
  EXPECT_FALSE(DecodeFloat(0x007FFFFE));  // +INF
  EXPECT_FALSE(DecodeFloat(0x00800002));  // -INF
  EXPECT_FALSE(DecodeFloat(0x00800001));  // reserved
}

TEST(FloatTest, ExtremeExponentsStayFinite) {
  const auto big = DecodeFloat(0x7F7FFFFD);  // 8388605 × 10^127
  ASSERT_TRUE(big);
  EXPECT_TRUE(std::isfinite(*big));
  EXPECT_GT(*big, 8e133);
  const auto tiny = DecodeFloat(0x80000001);  // 1 × 10^-128
  ASSERT_TRUE(tiny);
  EXPECT_GT(*tiny, 0);
  EXPECT_LT(*tiny, 1e-127);
  const auto negative = DecodeFloat(0x7F800003);  // -8388605 × 10^127
  ASSERT_TRUE(negative);
  EXPECT_TRUE(std::isfinite(*negative));
  EXPECT_LT(*negative, 0);
}

TEST(RoundConvertedTest, OneDecimalFinerThanTheSourceAndAtLeastTwo) {
  constexpr double kMmHgPerKpa = 1000.0 / 133.322387415;
  EXPECT_EQ(gatt::RoundConverted(18.9 * kMmHgPerKpa, 0.1 * kMmHgPerKpa), 141.76);
  EXPECT_EQ(gatt::RoundConverted(11 * kMmHgPerKpa, 1 * kMmHgPerKpa), 82.51);
  EXPECT_EQ(gatt::RoundConverted((98.6 - 32) * 5 / 9, 0.1 * 5 / 9), 37.0);
  EXPECT_EQ(gatt::RoundConverted(157.0 * 0.45359237, 0.01 * 0.45359237), 71.214);
  EXPECT_EQ(gatt::RoundConverted(-3.14159, 0.001), -3.1416);
}

// ---- Codec plumbing ------------------------------------------------------------------------

TEST(GattCodecTest, IsRegisteredForCharacteristicInputWithDefaults) {
  const CodecDescriptor* desc = FindCodec("gatt");
  ASSERT_NE(desc, nullptr);
  EXPECT_EQ(desc->cli_input, DecodeInput::kCharacteristic);
  auto spec = ValidateCodecSpec(nlohmann::json{{"type", "gatt"}}, "devices[0].codec");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ((*spec)["timestamps"], "device");
  EXPECT_EQ((*spec)["utc_offset_minutes"], 0);
  auto bad = ValidateCodecSpec(nlohmann::json{{"type", "gatt"}, {"timestamps", "wall"}}, "c");
  EXPECT_FALSE(bad.ok());
  auto far = ValidateCodecSpec(nlohmann::json{{"type", "gatt"}, {"utc_offset_minutes", 900}}, "c");
  EXPECT_FALSE(far.ok());
  EXPECT_EQ(GattCodec::SupportedUuids().size(), 9u);  // with Current Time (2A2B)
}

TEST(GattCodecTest, ByteStreamAndUnknownUuidAreErrors) {
  auto codec = MakeGatt();
  RecordingSink sink;
  const std::string bytes = Hex("00 55");
  codec->Feed(Bytes(bytes), sink);
  codec->FeedCharacteristic(0x2A38, Bytes(bytes), sink);  // body sensor location: unsupported
  EXPECT_TRUE(sink.rec.values.empty());
  ASSERT_EQ(sink.rec.hard_errors(), 2u);
  EXPECT_NE(sink.rec.errors[1].message.find("2A38"), std::string::npos);
}

// ---- 2A37 Heart Rate Measurement -----------------------------------------------------------

TEST(HeartRateTest, NordicVectors) {
  auto r = Decode(0x2A37, "00 55");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].metric, Metric::kHeartRate);
  EXPECT_EQ(r.values[0].value, 85);
  EXPECT_EQ(r.values[0].status_count, 0);
  EXPECT_FALSE(r.values[0].ts_ms);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_TRUE(r.conditions.empty());  // sensor-off was never active: nothing to end

  r = Decode(0x2A37, "1E 55 32 00 21 00");  // uint8, contact detected, EE, one RR
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].value, 85);
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"contact_detected"});
  EXPECT_TRUE(r.errors.empty());

  r = Decode(0x2A37, "1F 01 01 32 01 01 00 02 01 FF FF");  // uint16 257, EE 306, three RR
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].value, 257);
  EXPECT_TRUE(r.errors.empty());
}

TEST(HeartRateTest, ContactSupportedButNotDetectedIsSensorOffWithoutReading) {
  auto r = Decode(0x2A37, "04 FF");
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.conditions.size(), 1u);
  EXPECT_EQ(r.conditions[0], std::make_pair(DeviceCondition::kSensorOff, true));
  EXPECT_TRUE(r.errors.empty());
}

TEST(HeartRateTest, InterfaceExampleWithIncompleteRrIsAReadingAndAWarning) {
  // flags 0x16: uint8 HR, contact detected, RR present; one byte is left for a 2-byte RR.
  auto r = Decode(0x2A37, "16 4B 00");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].metric, Metric::kHeartRate);
  EXPECT_EQ(r.values[0].value, 75);
  EXPECT_TRUE(HasStatus(r.values[0], "contact_detected"));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_EQ(r.errors[0].offset, 2u);
  EXPECT_NE(r.errors[0].message.find("RR"), std::string::npos);
  EXPECT_EQ(r.hard_errors(), 0u);

  r = Decode(0x2A37, "16 4B 00 04");  // the same with a complete RR of 1.000 s
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_TRUE(r.errors.empty());
}

TEST(HeartRateTest, RrFlagWithNoIntervalsIsAWarning) {
  auto r = Decode(0x2A37, "17 01 01");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].value, 257);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_EQ(r.errors[0].offset, 3u);
}

TEST(HeartRateTest, FlagCombinations) {
  EXPECT_EQ(Decode(0x2A37, "06 4B").values.at(0).value, 75);
  EXPECT_EQ(Decode(0x2A37, "01 4B 00").values.at(0).value, 75);  // uint16
  EXPECT_EQ(Decode(0x2A37, "01 2C 01").values.at(0).value, 300);
  EXPECT_EQ(Decode(0x2A37, "02 4B").values.at(0).value, 75);  // 01: not supported
  EXPECT_EQ(Decode(0x2A37, "02 4B").values.at(0).status_count, 0);
  EXPECT_EQ(Decode(0x2A37, "08 4B 10 00").values.at(0).value, 75);        // energy expended
  EXPECT_EQ(Decode(0x2A37, "10 4B 00 04 00 02").values.at(0).value, 75);  // two RR
  auto r = Decode(0x2A37, "0D 4B 00 10 00");  // uint16, supported not detected, EE
  EXPECT_TRUE(r.values.empty());
  EXPECT_EQ(r.conditions.size(), 1u);
}

TEST(HeartRateTest, MalformedValues) {
  auto r = Decode(0x2A37, "");
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.hard_errors(), 1u);
  EXPECT_EQ(r.errors[0].offset, 0u);

  r = Decode(0x2A37, "01 4B");  // uint16 announced, one byte
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.hard_errors(), 1u);
  EXPECT_EQ(r.errors[0].offset, 1u);

  r = Decode(0x2A37, "08 4B 10");  // energy expended cut short
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.hard_errors(), 1u);
  EXPECT_EQ(r.errors[0].offset, 2u);
  EXPECT_NE(r.errors[0].message.find("energy expended"), std::string::npos);
  EXPECT_EQ(r.errors[0].message.find("4B"), std::string::npos);

  r = Decode(0x2A37, "20 4B");  // reserved flag bit: ignored with a warning
  ASSERT_EQ(r.values.size(), 1u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_EQ(r.errors[0].offset, 0u);

  r = Decode(0x2A37, "00 4B 99");  // trailing byte
  ASSERT_EQ(r.values.size(), 1u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_EQ(r.errors[0].offset, 2u);
}

TEST(HeartRateTest, SensorOffIsReportedOnceOnChange) {
  auto codec = MakeGatt();
  RecordingSink sink;
  const auto feed = [&](const std::string& hex) {
    const std::string b = Hex(hex);
    codec->FeedCharacteristic(0x2A37, Bytes(b), sink);
  };
  feed("04 FF");
  feed("04 FF");
  feed("04 00");
  ASSERT_EQ(sink.rec.conditions.size(), 1u);
  EXPECT_EQ(sink.rec.conditions[0], std::make_pair(DeviceCondition::kSensorOff, true));
  EXPECT_TRUE(sink.rec.values.empty());
  feed("06 4B");
  feed("06 4C");
  feed("00 4D");
  ASSERT_EQ(sink.rec.conditions.size(), 2u);
  EXPECT_EQ(sink.rec.conditions[1], std::make_pair(DeviceCondition::kSensorOff, false));
  EXPECT_EQ(sink.rec.values.size(), 3u);
  feed("04 00");
  ASSERT_EQ(sink.rec.conditions.size(), 3u);
  EXPECT_TRUE(sink.rec.conditions[2].second);
  // A lost link keeps the condition: the first value after reconnecting ends it.
  codec->Reset();
  feed("06 4B");
  ASSERT_EQ(sink.rec.conditions.size(), 4u);
  EXPECT_FALSE(sink.rec.conditions[3].second);
  // A malformed value says nothing about the sensor.
  feed("05 4B");
  EXPECT_EQ(sink.rec.conditions.size(), 4u);
}

// ---- 2A35 Blood Pressure Measurement -------------------------------------------------------

TEST(BloodPressureTest, NordicMmHgVectorWithUnknownDateUserAndStatus) {
  auto r = Decode(0x2A35, "1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00");
  ASSERT_EQ(r.values.size(), 4u);
  EXPECT_EQ(r.values[0].metric, Metric::kBpSystolic);
  EXPECT_EQ(r.values[0].value, 138);
  EXPECT_EQ(r.values[1].metric, Metric::kBpDiastolic);
  EXPECT_EQ(r.values[1].value, 88);
  EXPECT_EQ(r.values[2].metric, Metric::kBpMean);
  EXPECT_EQ(r.values[2].value, 120);
  EXPECT_EQ(r.values[3].metric, Metric::kPulseRate);
  EXPECT_EQ(r.values[3].value, 60);
  for (const DecodedValue& v : r.values) {
    EXPECT_FALSE(v.ts_ms);  // year 0: unknown
    EXPECT_FALSE(v.flags & kFlagDeviceTime);
    EXPECT_TRUE(v.flags & kFlagQuestionable);  // body movement, cuff too loose, position
    EXPECT_EQ(Status(v),
              (std::vector<std::string>{"body_movement", "cuff_too_loose", "improper_position",
                                        "irregular_pulse", "user_1", "time_unknown"}));
  }
  EXPECT_TRUE(r.errors.empty());
}

TEST(BloodPressureTest, NordicKpaVectorIsConvertedToMmHg) {
  auto r = Decode(0x2A35, "15 BD F0 0B 00 9F F0 3C 00 12 00");
  ASSERT_EQ(r.values.size(), 4u);
  EXPECT_EQ(r.values[0].value, 141.76);
  EXPECT_EQ(r.values[1].value, 82.51);
  EXPECT_EQ(r.values[2].value, 119.26);
  EXPECT_EQ(r.values[3].value, 60);  // pulse rate is not a pressure
  EXPECT_EQ(Status(r.values[0]), (std::vector<std::string>{"cuff_too_loose", "pulse_below_range"}));
  EXPECT_TRUE(r.values[0].flags & kFlagQuestionable);
  EXPECT_EQ(Printed(r.values[0].value), "141.76");
}

TEST(BloodPressureTest, MinimalAndSpecialComponents) {
  auto r = Decode(0x2A35, "00 BD F0 0B 00 9F F0");
  ASSERT_EQ(r.values.size(), 3u);
  EXPECT_EQ(r.values[0].value, 18.9);
  EXPECT_EQ(r.values[1].value, 11);
  EXPECT_EQ(r.values[2].value, 15.9);
  EXPECT_EQ(r.values[0].flags, kFlagSpot);  // a cuff measurement is a spot check

  r = Decode(0x2A35, "04 78 00 50 00 FF 07 48 00");  // MAP NaN
  ASSERT_EQ(r.values.size(), 3u);
  EXPECT_EQ(r.values[0].value, 120);
  EXPECT_EQ(r.values[1].value, 80);
  EXPECT_EQ(r.values[2].metric, Metric::kPulseRate);
  EXPECT_EQ(r.values[2].value, 72);

  r = Decode(0x2A35, "04 FF 07 00 08 FE 07 02 08");  // NaN, NRes, +INF, -INF
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.errors.empty());
}

TEST(BloodPressureTest, TimeStampUserAndPulseRange) {
  const std::string hex = "0A 78 00 50 00 5D 00 E8 07 03 0F 08 1E 00 FF";
  auto r = Decode(0x2A35, hex);
  ASSERT_EQ(r.values.size(), 3u);
  EXPECT_EQ(Ts(r.values[0]), "2024-03-15T08:30:00.000Z");
  EXPECT_EQ(r.values[0].flags, kFlagDeviceTime | kFlagSpot);
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"user_unknown"});

  r = Decode(0x2A35, hex, {{"utc_offset_minutes", 60}});
  EXPECT_EQ(Ts(r.values.at(0)), "2024-03-15T07:30:00.000Z");
  r = Decode(0x2A35, hex, {{"utc_offset_minutes", -300}});
  EXPECT_EQ(Ts(r.values.at(0)), "2024-03-15T13:30:00.000Z");
  r = Decode(0x2A35, hex, {{"timestamps", "receive"}});
  EXPECT_FALSE(r.values.at(0).ts_ms);
  EXPECT_EQ(r.values.at(0).flags, kFlagSpot);

  r = Decode(0x2A35, "18 78 00 50 00 5D 00 2A 08 00");  // user 42, pulse above range
  EXPECT_EQ(Status(r.values.at(0)), (std::vector<std::string>{"pulse_above_range", "user_42"}));
  EXPECT_EQ(r.values[0].flags, kFlagSpot);  // a finding, not an artifact
  r = Decode(0x2A35, "18 78 00 50 00 5D 00 00 04 00");  // irregular pulse only
  EXPECT_EQ(Status(r.values.at(0)), (std::vector<std::string>{"irregular_pulse", "user_0"}));
  EXPECT_EQ(r.values[0].flags, kFlagSpot);
}

TEST(BloodPressureTest, MalformedValues) {
  auto r = Decode(0x2A35, "03 02 03 04 05 06 07");  // time stamp flagged, absent
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.hard_errors(), 1u);
  EXPECT_EQ(r.errors[0].offset, 7u);
  EXPECT_NE(r.errors[0].message.find("time stamp"), std::string::npos);

  r = Decode(0x2A35, "02 78 00 50 00 5D 00 E8 07 0D 0F 08 1E 00");  // month 13
  ASSERT_EQ(r.values.size(), 3u);
  EXPECT_FALSE(r.values[0].ts_ms);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_EQ(r.errors[0].offset, 7u);

  r = Decode(0x2A35, "02 78 00 50 00 5D 00 E7 07 02 1D 08 1E 00");  // 29 Feb 2023
  EXPECT_FALSE(r.values.at(0).ts_ms);
  r = Decode(0x2A35, "02 78 00 50 00 5D 00 E8 07 02 1D 08 1E 00");  // 29 Feb 2024
  EXPECT_EQ(Ts(r.values.at(0)), "2024-02-29T08:30:00.000Z");
  r = Decode(0x2A35, "02 78 00 50 00 5D 00 E8 07 02 1C 18 00 00");  // hour 24
  EXPECT_FALSE(r.values.at(0).ts_ms);
}

// ---- 2A1C Temperature Measurement ----------------------------------------------------------

TEST(TemperatureTest, NordicVector) {
  auto r = Decode(0x2A1C, "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].metric, Metric::kTemperature);
  EXPECT_EQ(r.values[0].value, 37.6);
  EXPECT_EQ(Ts(r.values[0]), "2012-12-05T11:50:27.000Z");
  EXPECT_TRUE(r.values[0].flags & kFlagDeviceTime);
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"site_finger"});
  EXPECT_TRUE(r.errors.empty());

  r = Decode(0x2A1C, "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B");  // type byte missing
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.hard_errors(), 1u);
  EXPECT_EQ(r.errors[0].offset, 12u);
}

TEST(TemperatureTest, UnitsTypesAndSpecialValues) {
  auto r = Decode(0x2A1C, "01 DA 03 00 FF");  // 98.6 °F
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].value, 37.0);
  EXPECT_EQ(Printed(r.values[0].value), "37");
  EXPECT_EQ(Decode(0x2A1C, "01 EC 03 00 FF").values.at(0).value, 38.0);  // 100.4 °F
  r = Decode(0x2A1C, "04 72 01 00 FF 06");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].value, 37.0);
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"site_mouth"});
  EXPECT_EQ(Status(Decode(0x2A1C, "04 72 01 00 FF 01").values.at(0)),
            std::vector<std::string>{"site_armpit"});
  EXPECT_EQ(Status(Decode(0x2A1C, "04 72 01 00 FF 09").values.at(0)),
            std::vector<std::string>{"site_tympanum"});
  EXPECT_EQ(Decode(0x2A1C, "04 72 01 00 FF 0A").values.at(0).status_count, 0);  // reserved
  EXPECT_EQ(Decode(0x2A1C, "04 72 01 00 FF 00").values.at(0).status_count, 0);
  for (const char* special :
       {"00 FF FF 7F 00", "00 00 00 80 00", "00 FE FF 7F 00", "00 02 00 80 00", "01 01 00 80 00"}) {
    r = Decode(0x2A1C, special);
    EXPECT_TRUE(r.values.empty()) << special;
    EXPECT_TRUE(r.errors.empty()) << special;
  }
  r = Decode(0x2A1C, "03 DA 03 00 FF E8 07 03 0F 08 1E 00");  // °F with a time stamp
  EXPECT_EQ(r.values.at(0).value, 37.0);
  EXPECT_EQ(Ts(r.values[0]), "2024-03-15T08:30:00.000Z");
}

// The one-decimal-finer rule for °F: 99.09 °F is 37.2722 °C, step 0.01 °F = 0.0056 °C → 4 places.
TEST(TemperatureTest, FahrenheitKeepsItsPrecision) {
  EXPECT_EQ(Decode(0x2A1C, "01 B5 26 00 FE").values.at(0).value, 37.2722);
}

// ---- 2A5E / 2A5F Pulse oximetry ------------------------------------------------------------

TEST(PlxSpotCheckTest, MinimalAndFullVectors) {
  auto r = Decode(0x2A5E, "00 62 00 48 00");
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_EQ(r.values[0].metric, Metric::kSpo2);
  EXPECT_EQ(r.values[0].value, 98);
  EXPECT_EQ(r.values[1].metric, Metric::kPulseRate);
  EXPECT_EQ(r.values[1].value, 72);
  EXPECT_TRUE(r.conditions.empty());

  r = Decode(0x2A5E, "0F 61 00 41 00 E8 07 03 0F 08 1E 00 80 00 20 00 00 23 F0");
  ASSERT_EQ(r.values.size(), 3u);
  EXPECT_EQ(r.values[0].value, 97);
  EXPECT_EQ(r.values[1].value, 65);
  EXPECT_EQ(r.values[2].metric, Metric::kPerfusionIndex);
  EXPECT_EQ(r.values[2].value, 3.5);
  EXPECT_EQ(Ts(r.values[0]), "2024-03-15T08:30:00.000Z");
  EXPECT_EQ(r.values[0].flags, kFlagDeviceTime | kFlagQuestionable | kFlagSpot);
  EXPECT_EQ(Status(r.values[0]), (std::vector<std::string>{"low_perfusion", "validated"}));
  ASSERT_EQ(r.conditions.size(), 1u);
  EXPECT_EQ(r.conditions[0], std::make_pair(DeviceCondition::kLowPerfusion, true));
  EXPECT_TRUE(r.errors.empty());
}

TEST(PlxSpotCheckTest, UnavailableMeasurementIsOutOfTrackWithoutReadings) {
  auto r = Decode(0x2A5E, "02 FF 07 FF 07 00 20");
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.conditions.size(), 1u);
  EXPECT_EQ(r.conditions[0], std::make_pair(DeviceCondition::kOutOfTrack, true));
  r = Decode(0x2A5E, "02 62 00 48 00 00 80");  // invalid measurement: numbers not used
  EXPECT_TRUE(r.values.empty());
  EXPECT_EQ(r.conditions.size(), 1u);
}

TEST(PlxSpotCheckTest, ExponentTrapIsNotNinetyEight) {
  auto r = Decode(0x2A5E, "00 62 80 48 80");
  ASSERT_EQ(r.values.size(), 2u);
  // Decoded as the spec says. Note that 9.8e-7 lies inside spo2's plausible range (0-100 %),
  // so a device with this encoding bug would report ~0 %: docs/ble.md warns about it.
  EXPECT_EQ(r.values[0].value, 9.8e-7);
  EXPECT_EQ(r.values[1].value, 7.2e-7);
}

TEST(PlxSpotCheckTest, ClockNotSetDropsTheTimeStamp) {
  auto r = Decode(0x2A5E, "11 62 00 48 00 E8 07 03 0F 08 1E 00");
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_FALSE(r.values[0].ts_ms);
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"clock_not_set"});
}

TEST(PlxSpotCheckTest, ProbeOffIsSensorOffWithoutReadingsAndEndsOnce) {
  auto codec = MakeGatt();
  RecordingSink sink;
  const auto feed = [&](const std::string& hex) {
    const std::string b = Hex(hex);
    codec->FeedCharacteristic(0x2A5E, Bytes(b), sink);
  };
  feed("04 62 00 48 00 00 80 00");  // sensor disconnected
  feed("04 62 00 48 00 00 08 00");  // sensor unconnected to user
  EXPECT_TRUE(sink.rec.values.empty());
  ASSERT_EQ(sink.rec.conditions.size(), 1u);
  EXPECT_EQ(sink.rec.conditions[0], std::make_pair(DeviceCondition::kSensorOff, true));
  feed("04 62 00 48 00 00 00 00");
  ASSERT_EQ(sink.rec.conditions.size(), 2u);
  EXPECT_EQ(sink.rec.conditions[1], std::make_pair(DeviceCondition::kSensorOff, false));
  EXPECT_EQ(sink.rec.values.size(), 2u);
  feed("00 62 00 48 00");
  EXPECT_EQ(sink.rec.conditions.size(), 2u);
}

TEST(PlxSpotCheckTest, QuestionableSignalAndDemoData) {
  auto r =
      Decode(0x2A5E, "06 62 00 48 00 00 40 10 00 00");  // questionable measurement, poor signal
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_TRUE(r.values[0].flags & kFlagQuestionable);
  EXPECT_EQ(Status(r.values[0]),
            (std::vector<std::string>{"poor_signal", "questionable_measurement"}));
  r = Decode(0x2A5E, "02 62 00 48 00 40 00");  // early estimate: a value, not an artifact
  EXPECT_EQ(r.values.at(0).flags, kFlagSpot);
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"early_estimate"});
  r = Decode(0x2A5E, "02 62 00 48 00 00 04");  // demonstration data
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.conditions.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_EQ(r.errors[0].offset, 5u);
}

TEST(PlxContinuousTest, Vectors) {
  auto r = Decode(0x2A5F, "00 60 00 4E 00");
  ASSERT_EQ(r.values.size(), 2u);
  EXPECT_EQ(r.values[0].value, 96);
  EXPECT_EQ(r.values[1].value, 78);
  EXPECT_FALSE(r.values[0].ts_ms);

  r = Decode(0x2A5F, "03 61 00 48 00 62 00 49 00 60 00 47 00");  // + fast + slow
  ASSERT_EQ(r.values.size(), 2u);  // only the normal averages become readings
  EXPECT_EQ(r.values[0].value, 97);
  EXPECT_EQ(r.values[1].value, 72);

  r = Decode(0x2A5F, "1C 5F 00 50 00 00 01 00 00 00 1E F0");
  ASSERT_EQ(r.values.size(), 3u);
  EXPECT_EQ(r.values[0].value, 95);
  EXPECT_EQ(r.values[1].value, 80);
  EXPECT_EQ(r.values[2].metric, Metric::kPerfusionIndex);
  EXPECT_EQ(r.values[2].value, 3.0);
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"fully_qualified"});

  // "Sensor unconnected to user" set: a probe off the patient, no readings.
  r = Decode(0x2A5F, "1C 5F 00 50 00 00 01 00 08 00 1E F0");
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.conditions.size(), 1u);
  EXPECT_EQ(r.conditions[0], std::make_pair(DeviceCondition::kSensorOff, true));

  r = Decode(0x2A5F, "04 60 00 4E 00 80");  // status flagged, one byte of two
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.hard_errors(), 1u);
  EXPECT_EQ(r.errors[0].offset, 5u);

  r = Decode(0x2A5F, "10 60 00 4E 00 FF 07");  // PAI NaN
  ASSERT_EQ(r.values.size(), 2u);
}

TEST(PlxContinuousTest, LowPerfusionStartsAndEnds) {
  auto codec = MakeGatt();
  RecordingSink sink;
  const auto feed = [&](const std::string& hex) {
    const std::string b = Hex(hex);
    codec->FeedCharacteristic(0x2A5F, Bytes(b), sink);
  };
  feed("08 60 00 4E 00 20 00 00");
  feed("08 60 00 4E 00 20 00 00");
  feed("08 60 00 4E 00 00 00 00");
  feed("00 60 00 4E 00");
  ASSERT_EQ(sink.rec.conditions.size(), 2u);
  EXPECT_EQ(sink.rec.conditions[0], std::make_pair(DeviceCondition::kLowPerfusion, true));
  EXPECT_EQ(sink.rec.conditions[1], std::make_pair(DeviceCondition::kLowPerfusion, false));
  EXPECT_EQ(sink.rec.values.size(), 8u);
}

// ---- 2A18 Glucose Measurement --------------------------------------------------------------

TEST(GlucoseTest, NordicVector) {
  auto r = Decode(0x2A18, "1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].metric, Metric::kGlucose);
  EXPECT_EQ(r.values[0].value, 3000000);  // synthetic 30 kg/L: decoded, then implausible
  EXPECT_FALSE(IsPlausible(Metric::kGlucose, r.values[0].value));
  EXPECT_EQ(Ts(r.values[0]), "2019-02-27T11:05:30.000Z");  // base time − 5 min
  EXPECT_EQ(r.values[0].flags, kFlagDeviceTime | kFlagQuestionable | kFlagStored);
  EXPECT_EQ(
      Status(r.values[0]),
      (std::vector<std::string>{"sample_size_insufficient", "temperature_too_low", "battery_low",
                                "capillary_plasma", "finger", "context_follows"}));
  EXPECT_TRUE(r.errors.empty());

  r = Decode(0x2A18, "1B 00 00 E2 07 04 1A 0B 09 1E 1E 00 12 05 01");  // 15 of 17 bytes
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.hard_errors(), 1u);
  EXPECT_EQ(r.errors[0].offset, 15u);
}

TEST(GlucoseTest, KgPerLitreAndMolPerLitre) {
  auto r = Decode(0x2A18, "02 05 00 E8 07 03 0F 08 1E 00 5F B0 11");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].value, 95);
  EXPECT_EQ(Ts(r.values[0]), "2024-03-15T08:30:00.000Z");
  EXPECT_EQ(Status(r.values[0]), (std::vector<std::string>{"capillary_whole_blood", "finger"}));

  r = Decode(0x2A18, "07 06 00 E8 07 03 0F 08 1E 00 1E 00 35 C0 11");  // 5.3 mmol/L, +30 min
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].value, 95.48);
  EXPECT_EQ(Ts(r.values[0]), "2024-03-15T09:00:00.000Z");

  r = Decode(0x2A18, "02 07 00 E8 07 03 0F 08 1E 00 FF 07 11");  // NaN concentration
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.errors.empty());
  r = Decode(0x2A18, "00 08 00 E8 07 03 0F 08 1E 00");  // a record without a result
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.errors.empty());
}

TEST(GlucoseTest, TimeOffsetCrossesMidnightBackwards) {
  auto r = Decode(0x2A18, "03 05 00 E8 07 01 01 00 0A 00 C4 FF 5F B0 F1");  // 00:10 − 60 min
  EXPECT_EQ(Ts(r.values.at(0)), "2023-12-31T23:10:00.000Z");
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"capillary_whole_blood"});  // loc 15
}

TEST(GlucoseTest, ControlSolutionAndTimeFaultAndUnknownDate) {
  auto r = Decode(0x2A18, "02 05 00 E8 07 03 0F 08 1E 00 5F B0 1A");  // type 10
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_EQ(r.errors[0].offset, 10u);
  r = Decode(0x2A18, "02 05 00 E8 07 03 0F 08 1E 00 5F B0 41");  // location 4
  EXPECT_TRUE(r.values.empty());

  r = Decode(0x2A18, "0A 05 00 E8 07 03 0F 08 1E 00 5F B0 11 00 08");  // time fault
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_FALSE(r.values[0].ts_ms);
  EXPECT_EQ(r.values[0].flags, kFlagStored);  // a record from the meter's memory
  EXPECT_TRUE(HasStatus(r.values[0], "time_fault"));

  r = Decode(0x2A18, "0A 05 00 00 00 00 00 08 1E 00 5F B0 11 20 00");  // unknown date, high
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_FALSE(r.values[0].ts_ms);
  EXPECT_TRUE(r.values[0].flags & kFlagQuestionable);
  EXPECT_EQ(Status(r.values[0]),
            (std::vector<std::string>{"result_above_range", "capillary_whole_blood", "finger",
                                      "time_unknown"}));
}

// ---- 2A9D Weight Measurement ---------------------------------------------------------------

TEST(WeightTest, Vectors) {
  auto r = Decode(0x2A9D, "00 B0 36");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].metric, Metric::kWeight);
  EXPECT_EQ(r.values[0].value, 70.0);
  EXPECT_EQ(Decode(0x2A9D, "01 54 3D").values.at(0).value, 71.214);  // 157.00 lb
  EXPECT_EQ(Decode(0x2A9D, "00 01 00").values.at(0).value, 0.005);
  EXPECT_EQ(Decode(0x2A9D, "01 01 00").values.at(0).value, 0.0045);  // 0.01 lb

  r = Decode(0x2A9D, "02 B0 36 E7 07 0C 19 0E 1E 2D");
  EXPECT_EQ(r.values.at(0).value, 70.0);
  EXPECT_EQ(Ts(r.values[0]), "2023-12-25T14:30:45.000Z");

  r = Decode(0x2A9D, "0F 54 3D E7 07 0C 19 0E 1E 2D 03 F5 00 A8 02");
  EXPECT_EQ(r.values.at(0).value, 71.214);
  EXPECT_EQ(Ts(r.values[0]), "2023-12-25T14:30:45.000Z");
  EXPECT_EQ(Status(r.values[0]), std::vector<std::string>{"user_3"});
  EXPECT_TRUE(r.errors.empty());

  r = Decode(0x2A9D, "08 B0 36 F5 00 D6 06");
  EXPECT_EQ(r.values.at(0).value, 70.0);
  EXPECT_TRUE(r.errors.empty());
}

TEST(WeightTest, UnsuccessfulAndMalformed) {
  auto r = Decode(0x2A9D, "00 FF FF");
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.errors.empty());

  r = Decode(0x2A9D, "0C B0 36 05 F5 00");  // BMI and height are one flag: height missing
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.hard_errors(), 1u);
  EXPECT_EQ(r.errors[0].offset, 6u);
  EXPECT_NE(r.errors[0].message.find("height"), std::string::npos);

  r = Decode(0x2A9D, "10 B0 36");  // reserved bit 4
  EXPECT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.hard_errors(), 0u);
  EXPECT_EQ(r.errors.size(), 1u);
}

// ---- 2A19 Battery Level --------------------------------------------------------------------

TEST(BatteryTest, Vectors) {
  auto r = Decode(0x2A19, "64");
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_EQ(r.values[0].metric, Metric::kBattery);
  EXPECT_EQ(r.values[0].value, 100);
  EXPECT_EQ(Decode(0x2A19, "4B").values.at(0).value, 75);
  EXPECT_EQ(Decode(0x2A19, "00").values.at(0).value, 0);

  r = Decode(0x2A19, "65");
  EXPECT_TRUE(r.values.empty());
  EXPECT_EQ(r.hard_errors(), 1u);
  r = Decode(0x2A19, "");
  EXPECT_TRUE(r.values.empty());
  EXPECT_EQ(r.hard_errors(), 1u);
  r = Decode(0x2A19, "64 00");
  EXPECT_EQ(r.values.size(), 1u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_TRUE(r.errors[0].warning);
  EXPECT_EQ(r.errors[0].offset, 1u);
}

// ---- Truncation and robustness -------------------------------------------------------------

struct FullFrame {
  std::uint16_t uuid;
  const char* hex;
  std::size_t first_complete;  // shortest prefix that decodes (later fields are optional)
};

// One frame of each type with every field its flags allow. Every shorter prefix must be one
// error at an offset inside the prefix, with nothing else reported.
TEST(TruncationTest, EveryPrefixOfAFullFrameIsOneErrorAndNoReading) {
  const FullFrame frames[] = {
      {0x2A37, "1F 01 01 32 01 01 00 02 01 FF FF", 5},  // from 5 bytes on: RR warnings only
      {0x2A35, "1E 8A 00 58 00 78 00 E8 07 03 0F 08 1E 00 3C 00 01 27 00", 19},
      {0x2A1C, "06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04", 13},
      {0x2A5E, "0F 61 00 41 00 E8 07 03 0F 08 1E 00 80 00 20 00 00 23 F0", 19},
      {0x2A5F, "1F 61 00 48 00 62 00 49 00 60 00 47 00 80 00 20 00 00 23 F0", 20},
      {0x2A18, "1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01", 17},
      {0x2A9D, "0F 54 3D E7 07 0C 19 0E 1E 2D 03 F5 00 A8 02", 15},
      {0x2A19, "64", 1},
  };
  for (const FullFrame& f : frames) {
    const std::string full = Hex(f.hex);
    for (std::size_t n = 0; n <= full.size(); ++n) {
      auto codec = MakeGatt();
      RecordingSink sink;
      codec->FeedCharacteristic(f.uuid, Bytes(full.substr(0, n)), sink);
      SCOPED_TRACE(::testing::Message() << std::hex << f.uuid << std::dec << " prefix " << n);
      if (n < f.first_complete) {
        EXPECT_TRUE(sink.rec.values.empty());
        EXPECT_TRUE(sink.rec.conditions.empty());
        ASSERT_EQ(sink.rec.errors.size(), 1u);
        EXPECT_FALSE(sink.rec.errors[0].warning);
        EXPECT_LE(sink.rec.errors[0].offset, n);
        EXPECT_NE(sink.rec.errors[0].message.find("missing or cut short"), std::string::npos);
      } else {
        EXPECT_FALSE(sink.rec.values.empty());
        EXPECT_EQ(sink.rec.hard_errors(), 0u);
      }
    }
  }
}

// Random values for every UUID: never a crash, never a non-finite value, and a rejected value
// yields nothing but its error.
TEST(RobustnessTest, RandomValuesKeepTheInvariants) {
  std::mt19937 rng(20240315);
  const std::uint16_t uuids[] = {0x2A37, 0x2A35, 0x2A1C, 0x2A5E, 0x2A5F,
                                 0x2A18, 0x2A9D, 0x2A19, 0x2A00};
  auto codec = MakeGatt();
  for (int i = 0; i < 20000; ++i) {
    const std::uint16_t uuid = uuids[rng() % std::size(uuids)];
    std::string value(rng() % 24, '\0');
    for (char& c : value) c = static_cast<char>(rng() & 0xFF);
    RecordingSink sink;
    codec->FeedCharacteristic(uuid, Bytes(value), sink);
    for (const DecodedValue& v : sink.rec.values) {
      ASSERT_TRUE(std::isfinite(v.value));
      ASSERT_LE(v.status_count, v.status.size());
    }
    if (sink.rec.hard_errors() > 0) {
      ASSERT_EQ(sink.rec.errors.size(), 1u);
      ASSERT_TRUE(sink.rec.values.empty());
      ASSERT_TRUE(sink.rec.conditions.empty());
      ASSERT_LE(sink.rec.errors[0].offset, value.size());
    }
    for (const DecodeError& e : sink.rec.errors) ASSERT_LE(e.offset, value.size());
  }
}

}  // namespace
}  // namespace vg
