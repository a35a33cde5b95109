// Vectors MAS-n: tests/vectors/README.md names the source of each (YAH = real Rad-8 capture,
// OICE-C = OpenICE driver examples, NMENON = capture script comments, [C] = constructed).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "unit/codec/codec_test_util.h"
#include "unit/codec/serial_test_util.h"

namespace vg {
namespace {

using testing::FeedByteByByte;
using testing::FeedWhole;
using testing::HasStatus;
using testing::MakeFromSpec;
using testing::MakeStatus;
using testing::Recorded;
using testing::Summary;

// MAS-1 [S] YAH: real Rad-8 capture, no PVI field.
const std::string kMas1 =
    "02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% "
    "DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n";
// MAS-2 [S] OICE-C: EXC 0x820 = sensor off + SET.
const std::string kMas2 =
    "12/01/05 11:56:29 SN=0123456789 SPO2=098% BPM=240 PI=20.00% SPCO=01.0% SPMET=00.5% "
    "DESAT=01 PIDELTA=-02 PVI=027 ALARM=0000 EXC=000820\r\n";
// MAS-3 [S] OICE-C: Radical-5 short field set, 2-digit ALARM, 3-digit EXC.
const std::string kMas3 = "09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800\r\n";
// MAS-4 [S] NMENON: Radical-7 colour firmware, 17 tokens, PI without '%'.
const std::string kMas4 =
    "03/17/16 19:19:36 SN=---------- SPO2=098% BPM=123 PI=00.55 SPCO=--% SPMET=--.-% SPHB=--.- "
    "SPOC=-- RESVD=--- DESAT=-- PIDELTA=+-- PVI=--- ALARM=000000 EXC=0000C00 EXC1=00000000\r\n";
// MAS-5 [S] NMENON (from the Radical-7 service manual): no signal, every value dashed.
const std::string kMas5 =
    "05/15/07 08:12:21 SN=0000070986 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-% "
    "DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000000\r\n";
// MAS-6 [S] brief.
const std::string kMas6 =
    "02/15/13 12:33:13 SN=0000082424 SPO2=098% BPM=072 PI=01.15 SPCO=--.-% SPMET=--.-% DESAT=-- "
    "PIDELTA=+-- PVI=--- ALARM=0000 EXC=000000\r\n";
// MAS-8 [C]: ALARM 0x001A = active + SpO2 low + PR low; EXC 0x804 = low perfusion + SET.
const std::string kMas8 =
    "01/02/24 03:04:05 SN=0000000001 SPO2=085% BPM=041 PI=00.42% SPCO=--.-% SPMET=--.-% "
    "DESAT=-- PIDELTA=+-- PVI=--- ALARM=001A EXC=000804\r\n";

std::unique_ptr<Codec> Masimo(nlohmann::json options = nlohmann::json::object()) {
  options["type"] = "masimo";
  return MakeFromSpec(options);
}

Recorded Decode(const std::string& text) {
  auto codec = Masimo();
  return FeedWhole(*codec, text);
}

void ExpectValue(const DecodedValue& v, Metric m, double value) {
  EXPECT_EQ(v.metric, m);
  EXPECT_DOUBLE_EQ(v.value, value);
}

TEST(MasimoCodecTest, Mas1RealRad8LineDecodesSpo2PulseRateAndPi) {
  auto r = Decode(kMas1);
  ASSERT_EQ(r.values.size(), 3u);
  ExpectValue(r.values[0], Metric::kSpo2, 98);
  ExpectValue(r.values[1], Metric::kPulseRate, 97);
  ExpectValue(r.values[2], Metric::kPerfusionIndex, 3.60);
  EXPECT_TRUE(r.errors.empty());
  // EXC 0x800 is "Masimo SET" (normal operation): a status word, no condition.
  EXPECT_TRUE(r.conditions.empty());
  EXPECT_TRUE(HasStatus(r.values[0], "masimo_set"));
  EXPECT_EQ(r.values[0].flags, 0);
  EXPECT_FALSE(r.values[0].ts_ms.has_value());  // default: receive time
}

TEST(MasimoCodecTest, Mas2SensorOffRaisesTheConditionAndYieldsNoReadings) {
  auto r = Decode(kMas2);
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.conditions.size(), 1u);
  EXPECT_EQ(r.conditions[0], std::make_pair(DeviceCondition::kSensorOff, true));
  EXPECT_TRUE(r.errors.empty());
}

TEST(MasimoCodecTest, Mas3Radical5ShortLine) {
  auto r = Decode(kMas3);
  ASSERT_EQ(r.values.size(), 3u);
  ExpectValue(r.values[0], Metric::kSpo2, 97);
  ExpectValue(r.values[1], Metric::kPulseRate, 64);
  ExpectValue(r.values[2], Metric::kPerfusionIndex, 11.82);
  EXPECT_TRUE(HasStatus(r.values[0], "alarm_silenced"));
  EXPECT_TRUE(HasStatus(r.values[0], "masimo_set"));
  EXPECT_TRUE(r.errors.empty());
}

TEST(MasimoCodecTest, Mas4LowSignalIqIsLowPerfusionAndQuestionable) {
  auto r = Decode(kMas4);
  ASSERT_EQ(r.values.size(), 3u);
  ExpectValue(r.values[0], Metric::kSpo2, 98);
  ExpectValue(r.values[1], Metric::kPulseRate, 123);
  ExpectValue(r.values[2], Metric::kPerfusionIndex, 0.55);
  for (const DecodedValue& v : r.values) {
    EXPECT_TRUE(v.flags & kFlagQuestionable);
    EXPECT_TRUE(HasStatus(v, "low_signal_iq"));
  }
  ASSERT_EQ(r.conditions.size(), 1u);
  EXPECT_EQ(r.conditions[0], std::make_pair(DeviceCondition::kLowPerfusion, true));
  EXPECT_TRUE(r.errors.empty());
}

TEST(MasimoCodecTest, Mas5DashesAreNoValueNotErrors) {
  auto r = Decode(kMas5);
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.errors.empty());
  EXPECT_TRUE(r.conditions.empty());  // nothing was active, so nothing ends
}

TEST(MasimoCodecTest, Mas6AndMas8) {
  auto r = Decode(kMas6 + kMas8);
  ASSERT_EQ(r.values.size(), 6u);
  ExpectValue(r.values[0], Metric::kSpo2, 98);
  ExpectValue(r.values[1], Metric::kPulseRate, 72);
  ExpectValue(r.values[2], Metric::kPerfusionIndex, 1.15);
  ExpectValue(r.values[3], Metric::kSpo2, 85);
  ExpectValue(r.values[4], Metric::kPulseRate, 41);
  ExpectValue(r.values[5], Metric::kPerfusionIndex, 0.42);
  const DecodedValue& v = r.values[3];
  EXPECT_TRUE(HasStatus(v, "alarm_active"));
  EXPECT_TRUE(HasStatus(v, "spo2_low_alarm"));
  EXPECT_TRUE(HasStatus(v, "pulse_rate_low_alarm"));
  EXPECT_TRUE(HasStatus(v, "low_perfusion"));
  EXPECT_FALSE(HasStatus(v, "spo2_high_alarm"));
  EXPECT_TRUE(v.flags & kFlagQuestionable);
  EXPECT_FALSE(r.values[0].flags & kFlagQuestionable);
  ASSERT_EQ(r.conditions.size(), 1u);
  EXPECT_EQ(r.conditions[0], std::make_pair(DeviceCondition::kLowPerfusion, true));
}

TEST(MasimoCodecTest, ConditionsAreReportedOnChangeOnly) {
  auto codec = Masimo();
  testing::RecordingSink sink;
  const std::string search =
      "01/02/24 03:04:06 SPO2=---% BPM=--- PI=--.--% ALARM=0000 EXC=000808\r\n";
  for (const std::string& line : {kMas2, kMas2, search, search, kMas1}) {
    codec->Feed(testing::Bytes(line), sink);
  }
  const std::vector<std::pair<DeviceCondition, bool>> expected = {
      {DeviceCondition::kSensorOff, true},
      {DeviceCondition::kSensorOff, false},
      {DeviceCondition::kOutOfTrack, true},
      {DeviceCondition::kOutOfTrack, false},
  };
  EXPECT_EQ(sink.rec.conditions, expected);
  ASSERT_EQ(sink.rec.values.size(), 3u);  // only kMas1; sensor off and dashes give none
  EXPECT_TRUE(sink.rec.errors.empty());
}

TEST(MasimoCodecTest, LowBatteryAlarmBitIsACondition) {
  auto r =
      Decode("01/02/24 03:04:05 SPO2=097% BPM=070 PI=02.00% ALARM=0040 EXC=000800\r\n" + kMas6);
  const std::vector<std::pair<DeviceCondition, bool>> expected = {
      {DeviceCondition::kLowBattery, true}, {DeviceCondition::kLowBattery, false}};
  EXPECT_EQ(r.conditions, expected);
  EXPECT_TRUE(HasStatus(r.values[0], "low_battery"));
}

TEST(MasimoCodecTest, DeviceTimestampsUseTheConfiguredUtcOffset) {
  auto codec = Masimo({{"timestamps", "device"}, {"utc_offset_minutes", 60}});
  auto r = FeedWhole(*codec, kMas1);
  ASSERT_EQ(r.values.size(), 3u);
  // 2016-02-22 22:47:45 at UTC+01:00 = 2016-02-22T21:47:45Z.
  EXPECT_EQ(r.values[0].ts_ms, 1456177665000);
  EXPECT_TRUE(r.values[0].flags & kFlagDeviceTime);

  auto utc = Masimo({{"timestamps", "device"}});
  auto leap = FeedWhole(*utc, "02/29/24 23:59:59 SPO2=097%\r\n");
  ASSERT_EQ(leap.values.size(), 1u);
  EXPECT_EQ(leap.values[0].ts_ms, 1709251199000);  // 2024-02-29T23:59:59Z
}

TEST(MasimoCodecTest, FieldsAreFoundByKeyNotPosition) {
  auto r = Decode("02/22/16 22:47:45 EXC=000800 PI=03.60% bpm=097 NEW=1 SPO2=098%\r\n");
  ASSERT_EQ(r.values.size(), 3u);
  ExpectValue(r.values[0], Metric::kSpo2, 98);
  ExpectValue(r.values[1], Metric::kPulseRate, 97);
  ExpectValue(r.values[2], Metric::kPerfusionIndex, 3.6);
  EXPECT_TRUE(r.errors.empty());
}

TEST(MasimoCodecTest, ImplausibleValuesAreStillEmitted) {
  // The pipeline, not the codec, rejects implausible values; negative is read as a sign.
  auto r = Decode("02/22/16 22:47:45 SPO2=-01% BPM=400\r\n");
  ASSERT_EQ(r.values.size(), 2u);
  ExpectValue(r.values[0], Metric::kSpo2, -1);
  ExpectValue(r.values[1], Metric::kPulseRate, 400);
}

TEST(MasimoCodecTest, BadFieldIsAnErrorAndTheOtherFieldsStillDecode) {
  const std::string line =
      "02/22/16 22:47:45 SPO2=9x8% BPM=097 PI=1.2.3 ALARM=0000 EXC=00G800 lonely\r\n";
  auto r = Decode(kMas6 + line);
  ASSERT_EQ(r.values.size(), 4u);  // kMas6's three and BPM
  ExpectValue(r.values[3], Metric::kPulseRate, 97);
  ASSERT_EQ(r.hard_errors(), 3u);
  ASSERT_EQ(r.errors.size(), 4u);  // + the warning for "lonely"
  EXPECT_EQ(r.errors[0].offset, kMas6.size() + line.find("SPO2"));
  EXPECT_NE(r.errors[0].message.find("SPO2 value is not a number"), std::string::npos);
  EXPECT_EQ(r.errors[0].detail, "SPO2=9x8%");
  EXPECT_EQ(r.errors[1].offset, kMas6.size() + line.find("PI="));
  EXPECT_NE(r.errors[2].message.find("EXC"), std::string::npos);
  EXPECT_TRUE(r.errors[3].warning);
  for (const DecodeError& e : r.errors) {
    EXPECT_EQ(e.message.find("9x8"), std::string::npos);  // no device text in the message
    EXPECT_EQ(e.message.find("00G800"), std::string::npos);
  }
  // An unreadable EXC leaves the conditions as they were.
  EXPECT_TRUE(r.conditions.empty());
}

TEST(MasimoCodecTest, LineWithoutDateAndTimeIsAnErrorExceptTheFirstLine) {
  const std::string partial = "96% BPM=097 PI=03.60% ALARM=0000 EXC=000800\r\n";
  const std::string bad_month = "13/22/16 22:47:45 SPO2=098%\r\n";
  const std::string bad_sep = "02-22-16 22:47:45 SPO2=098%\r\n";
  const std::string glued = "02/22/16 22:47:45SPO2=098%\r\n";
  const std::string feb30 = "02/30/16 22:47:45 SPO2=098%\r\n";
  auto r = Decode(partial + kMas1 + bad_month + bad_sep + glued + feb30 + "short\r\n");
  EXPECT_EQ(r.values.size(), 3u);
  ASSERT_EQ(r.errors.size(), 6u);
  EXPECT_TRUE(r.errors[0].warning);  // the port was opened mid-line
  EXPECT_EQ(r.errors[0].offset, 0u);
  std::uint64_t offset = partial.size() + kMas1.size();
  EXPECT_FALSE(r.errors[1].warning);
  EXPECT_EQ(r.errors[1].offset, offset);
  EXPECT_NE(r.errors[1].message.find("date and time"), std::string::npos);
  EXPECT_EQ(r.errors[1].message.find("13/22"), std::string::npos);
  EXPECT_EQ(r.errors[1].detail, "13/22/16 22:47:45 SPO2=098%");
  offset += bad_month.size();
  EXPECT_EQ(r.errors[2].offset, offset);
  EXPECT_EQ(r.hard_errors(), 5u);
}

TEST(MasimoCodecTest, SplitAcrossReadsGivesTheSameResult) {
  const std::string text = kMas1 + kMas2 + kMas3 + kMas4 + kMas5 + kMas8 + "garbage\r\n" + kMas1;
  auto whole = Masimo();
  auto bytes = Masimo();
  const Recorded a = FeedWhole(*whole, text);
  const Recorded b = FeedByteByByte(*bytes, text);
  EXPECT_EQ(Summary(a), Summary(b));
  EXPECT_EQ(a.values.size(), 15u);
}

TEST(MasimoCodecTest, OversizedLineIsDiscardedWithOneError) {
  auto codec = Masimo();
  testing::RecordingSink sink;
  codec->Feed(testing::Bytes(kMas1), sink);
  const std::string huge = "02/22/16 22:47:45 " + std::string(5000, 'X');
  codec->Feed(testing::Bytes(huge), sink);
  codec->Feed(testing::Bytes(huge), sink);
  codec->Feed(testing::Bytes("\r\n" + kMas6), sink);
  ASSERT_EQ(sink.rec.errors.size(), 1u);
  EXPECT_EQ(sink.rec.errors[0].offset, kMas1.size());
  EXPECT_NE(sink.rec.errors[0].message.find("max_line"), std::string::npos);
  EXPECT_EQ(sink.rec.values.size(), 6u);
}

TEST(MasimoCodecTest, ResetDropsThePartialLine) {
  auto codec = Masimo();
  testing::RecordingSink sink;
  codec->Feed(testing::Bytes(kMas1), sink);
  codec->Feed(testing::Bytes(kMas6.substr(0, 30)), sink);
  codec->Reset();
  codec->Feed(testing::Bytes(kMas8), sink);
  ASSERT_EQ(sink.rec.values.size(), 6u);
  ExpectValue(sink.rec.values[3], Metric::kSpo2, 85);
  EXPECT_TRUE(sink.rec.errors.empty());
}

TEST(MasimoCodecTest, ResetKeepsConditionStateSoAnEndIsStillReported) {
  auto codec = Masimo();
  testing::RecordingSink sink;
  codec->Feed(testing::Bytes(kMas2), sink);
  codec->Reset();
  codec->Feed(testing::Bytes(kMas6), sink);
  const std::vector<std::pair<DeviceCondition, bool>> expected = {
      {DeviceCondition::kSensorOff, true}, {DeviceCondition::kSensorOff, false}};
  EXPECT_EQ(sink.rec.conditions, expected);
}

TEST(MasimoCodecTest, OptionsAreValidated) {
  EXPECT_TRUE(MakeStatus({{"type", "masimo"}}).ok());
  const Status bad = MakeStatus({{"type", "masimo"}, {"timestamps", "local"}});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("codec.timestamps"), std::string::npos);
  EXPECT_FALSE(MakeStatus({{"type", "masimo"}, {"utc_offset_minutes", 10000}}).ok());
  EXPECT_FALSE(MakeStatus({{"type", "masimo"}, {"utc_offset_minutes", "60"}}).ok());
}

}  // namespace
}  // namespace vg
