// Vectors NON2-n / NON8-n: tests/vectors/README.md names the source of each (PUFF-T = the
// Pufferfish project's unit tests, [C] = constructed with the arithmetic shown in the comment).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "unit/codec/codec_test_util.h"
#include "unit/codec/serial_test_util.h"

namespace vg {
namespace {

using testing::FeedByteByByte;
using testing::FeedWhole;
using testing::HasStatus;
using testing::Hex;
using testing::MakeFromSpec;
using testing::MakeStatus;
using testing::Recorded;
using testing::Summary;

using Conditions = std::vector<std::pair<DeviceCondition, bool>>;

std::unique_ptr<Codec> Nonin(int format = 2) {
  return MakeFromSpec({{"type", "nonin"}, {"format", format}});
}

// One format 2 frame with its checksum.
std::string Frame2(std::uint8_t status, std::uint8_t pleth, std::uint8_t value) {
  std::string f;
  f += '\x01';
  f += static_cast<char>(status);
  f += static_cast<char>(pleth);
  f += static_cast<char>(value);
  f += static_cast<char>(static_cast<std::uint8_t>(1 + status + pleth + value));
  return f;
}

// A 25-frame packet carrying HR and SpO2, every frame with `status` (plus SYNC on frame 1).
std::string Packet2(unsigned hr, unsigned spo2, std::uint8_t status = 0x80) {
  std::string p;
  for (int i = 1; i <= 25; ++i) {
    std::uint8_t value = 0;
    if (i == 1) value = static_cast<std::uint8_t>(hr >> 7);
    if (i == 2) value = static_cast<std::uint8_t>(hr & 0x7F);
    if (i == 3) value = static_cast<std::uint8_t>(spo2);
    p += Frame2(static_cast<std::uint8_t>(status | (i == 1 ? 0x01 : 0)), 0x40, value);
  }
  return p;
}

// NON2-3 [S] PUFF-T: a full 125-byte packet.
const std::string kNon2Packet =
    Hex("01 81 01 00 83  01 80 01 48 CA  01 80 01 61 E3  01 80 01 30 B2  01 80 01 00 82"
        "01 80 01 00 82  01 80 01 00 82  01 80 01 00 82  01 80 01 61 E3  01 80 01 61 E3"
        "01 80 01 61 E3  01 80 01 00 82  01 80 01 00 82  01 80 01 00 82  01 80 01 48 CA"
        "01 80 01 61 E3  01 80 01 61 E3  01 80 01 00 82  01 80 01 00 82  01 80 01 00 82"
        "01 80 01 48 CA  01 80 01 00 82  01 80 01 48 CA  01 80 01 00 82  01 80 01 00 82");

void ExpectValue(const DecodedValue& v, Metric m, double value) {
  EXPECT_EQ(v.metric, m);
  EXPECT_DOUBLE_EQ(v.value, value);
}

TEST(NoninFormat2Test, Non2FullPacketFromPufferfishTests) {
  ASSERT_EQ(kNon2Packet.size(), 125u);
  auto codec = Nonin();
  auto r = FeedWhole(*codec, kNon2Packet + kNon2Packet.substr(0, 5));
  ASSERT_EQ(r.values.size(), 2u);
  ExpectValue(r.values[0], Metric::kPulseRate, 72);
  ExpectValue(r.values[1], Metric::kSpo2, 97);
  EXPECT_EQ(r.values[0].flags, 0);
  EXPECT_FALSE(r.values[0].ts_ms.has_value());
  EXPECT_TRUE(r.errors.empty());
  EXPECT_TRUE(r.conditions.empty());
}

TEST(NoninFormat2Test, Non1And2FirstThreeFramesAreEnoughForHrAndSpo2) {
  // NON2-1 and NON2-2 [S] PUFF-T: what `vitalgate decode nonin` is given.
  auto codec = Nonin();
  auto hr_only = FeedWhole(*codec, Hex("01 81 01 00 83 01 80 01 48 CA"));
  ASSERT_EQ(hr_only.values.size(), 1u);
  ExpectValue(hr_only.values[0], Metric::kPulseRate, 72);
  auto spo2 = FeedWhole(*codec, Hex("01 80 01 61 E3"));
  ASSERT_EQ(spo2.values.size(), 1u);
  ExpectValue(spo2.values[0], Metric::kSpo2, 97);
}

TEST(NoninFormat2Test, Non7HeartRateAbove127UsesTheMsbFrame) {
  // NON2-7 [C]: HR 150 = MSB 1, LSB 22.
  auto codec = Nonin();
  auto r = FeedWhole(*codec, Hex("01 81 40 01 C3 01 80 42 16 D9"));
  ASSERT_EQ(r.values.size(), 1u);
  ExpectValue(r.values[0], Metric::kPulseRate, 150);
  auto full = FeedWhole(*Nonin(), Packet2(300, 88));
  ASSERT_EQ(full.values.size(), 2u);
  ExpectValue(full.values[0], Metric::kPulseRate, 300);
  ExpectValue(full.values[1], Metric::kSpo2, 88);
}

TEST(NoninFormat2Test, Non4WrongChecksumIsAnErrorAtTheFrameOffset) {
  // NON2-4 [S] PUFF-T.
  auto r = FeedWhole(*Nonin(), Hex("01 81 01 00 83 01 80 01 48 CB"));
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].offset, 5u);
  EXPECT_NE(r.errors[0].message.find("checksum mismatch"), std::string::npos);
  EXPECT_EQ(r.errors[0].detail, "01 80 01 48 CB");
  EXPECT_FALSE(r.errors[0].warning);
}

TEST(NoninFormat2Test, Non5StatusBit7ClearIsAnError) {
  // NON2-5 [S] PUFF-T.
  auto r = FeedWhole(*Nonin(), Hex("01 81 01 00 83 01 7F 01 48 CA"));
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].offset, 5u);
  EXPECT_NE(r.errors[0].message.find("bit 7"), std::string::npos);
}

TEST(NoninFormat2Test, Non6LostFramesAreReportedWhenTheNextSyncArrives) {
  // NON2-6 [S] PUFF-T: 23 frames of a packet, then a new SYNC frame.
  const std::string text = kNon2Packet.substr(0, 115) + Packet2(80, 95);
  auto r = FeedWhole(*Nonin(), text);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].offset, 115u);
  EXPECT_NE(r.errors[0].message.find("cut short"), std::string::npos);
  ASSERT_EQ(r.values.size(), 4u);  // the new packet still decodes
  ExpectValue(r.values[2], Metric::kPulseRate, 80);
  ExpectValue(r.values[3], Metric::kSpo2, 95);
}

TEST(NoninFormat2Test, MissingSyncAfter25FramesIsAnError) {
  const std::string text = kNon2Packet + Frame2(0x80, 0, 0) + Packet2(70, 96);
  auto r = FeedWhole(*Nonin(), text);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].offset, 125u);
  EXPECT_NE(r.errors[0].message.find("SYNC"), std::string::npos);
  EXPECT_EQ(r.values.size(), 4u);
}

TEST(NoninFormat2Test, Non8SensorOffRaisesTheConditionAndMissingValuesGiveNoReading) {
  // NON2-8 [C]: SNSD + SNSA, HR 511 and SpO2 127 (missing).
  auto codec = Nonin();
  auto r = FeedWhole(*codec, Hex("01 C9 00 03 CD 01 C8 00 7F 48 01 C8 00 7F 48"));
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.conditions, (Conditions{{DeviceCondition::kSensorOff, true}}));
  // Sensor back: the condition ends and readings resume.
  auto back = FeedWhole(*codec, Packet2(72, 97));
  EXPECT_EQ(back.conditions, (Conditions{{DeviceCondition::kSensorOff, false}}));
  EXPECT_EQ(back.values.size(), 2u);
}

TEST(NoninFormat2Test, SensorDisconnectSuppressesEvenValidLookingValues) {
  auto r = FeedWhole(*Nonin(), Packet2(72, 97, 0xC0));
  EXPECT_TRUE(r.values.empty());
  EXPECT_EQ(r.conditions, (Conditions{{DeviceCondition::kSensorOff, true}}));
}

TEST(NoninFormat2Test, MissingDataValuesGiveNoReadingAndNoError) {
  auto r = FeedWhole(*Nonin(), Packet2(511, 127));
  EXPECT_TRUE(r.values.empty());
  EXPECT_TRUE(r.errors.empty());
  auto hr_only = FeedWhole(*Nonin(), Packet2(64, 127));
  ASSERT_EQ(hr_only.values.size(), 1u);
  ExpectValue(hr_only.values[0], Metric::kPulseRate, 64);
}

TEST(NoninFormat2Test, ArtifactFlagsTheReadingQuestionable) {
  // Artifact on frame 2 only: HR (frame 2) and SpO2 (frame 3) of this packet are questionable.
  std::string p = Packet2(72, 97);
  p.replace(5, 5, Frame2(0xA0, 0x40, 72));
  auto r = FeedWhole(*Nonin(), p + Packet2(73, 98));
  ASSERT_EQ(r.values.size(), 4u);
  EXPECT_TRUE(r.values[0].flags & kFlagQuestionable);
  EXPECT_TRUE(HasStatus(r.values[0], "artifact"));
  EXPECT_TRUE(r.values[1].flags & kFlagQuestionable);
  EXPECT_FALSE(r.values[2].flags & kFlagQuestionable);  // next packet is clean
  EXPECT_TRUE(r.conditions.empty());                    // artifact is not a condition
}

TEST(NoninFormat2Test, OutOfTrackAndPerfusionConditions) {
  // NON2-9 [C]: perfusion bits 0x02 green, 0x04 red, 0x06 yellow; 0x10 out of track.
  auto codec = Nonin();
  testing::RecordingSink sink;
  codec->Feed(testing::Bytes(Packet2(72, 97, 0x90)), sink);  // out of track
  codec->Feed(testing::Bytes(Packet2(72, 97, 0x84)), sink);  // red = low perfusion
  codec->Feed(testing::Bytes(Packet2(72, 97, 0x80)), sink);  // between pulses: no change
  codec->Feed(testing::Bytes(Packet2(72, 97, 0x86)), sink);  // yellow: marginal, not low
  const Conditions expected = {
      {DeviceCondition::kOutOfTrack, true},
      {DeviceCondition::kOutOfTrack, false},
      {DeviceCondition::kLowPerfusion, true},
      {DeviceCondition::kLowPerfusion, false},
  };
  EXPECT_EQ(sink.rec.conditions, expected);
  ASSERT_EQ(sink.rec.values.size(), 8u);
  EXPECT_TRUE(sink.rec.values[0].flags & kFlagQuestionable);    // out of track
  EXPECT_TRUE(HasStatus(sink.rec.values[4], "low_perfusion"));  // latched between pulses
  EXPECT_TRUE(HasStatus(sink.rec.values[6], "marginal_perfusion"));
}

TEST(NoninFormat2Test, GarbageBetweenPacketsIsSkippedAndReportedOnce) {
  const std::string garbage = Hex("FF 00 13 37 01 02 03 01 80");
  const std::string text = Packet2(72, 97) + garbage + Packet2(74, 96);
  auto r = FeedWhole(*Nonin(), text);
  ASSERT_EQ(r.values.size(), 4u);
  ExpectValue(r.values[2], Metric::kPulseRate, 74);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].offset, 125u);
  EXPECT_EQ(r.errors[0].detail, "FF 00 13 37 01");
}

TEST(NoninFormat2Test, TruncatedFrameThenCompleteFrames) {
  const std::string text = Hex("01 81 01 00 83 01 80 01") + Packet2(66, 99);
  auto r = FeedWhole(*Nonin(), text);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].offset, 5u);
  ASSERT_EQ(r.values.size(), 2u);
  ExpectValue(r.values[0], Metric::kPulseRate, 66);
}

TEST(NoninFormat2Test, OpeningMidFrameIsNotAnErrorButLongGarbageIs) {
  auto mid = FeedWhole(*Nonin(), Hex("01 48 CA") + Packet2(72, 97));
  EXPECT_TRUE(mid.errors.empty());
  EXPECT_EQ(mid.values.size(), 2u);

  // A wrong baud rate gives only garbage: one error per 512 bytes, not one per byte.
  auto noise = FeedWhole(*Nonin(), std::string(1100, '\x55'));
  ASSERT_EQ(noise.errors.size(), 2u);
  EXPECT_EQ(noise.errors[0].offset, 0u);
  EXPECT_EQ(noise.errors[1].offset, 512u);
  EXPECT_NE(noise.errors[0].message.find("no valid frame"), std::string::npos);
}

TEST(NoninFormat2Test, SplitAcrossReadsGivesTheSameResult) {
  const std::string text = Hex("01 48") + kNon2Packet + Packet2(150, 90, 0xA0) +
                           Hex("DE AD BE EF") + Packet2(72, 97, 0xC8) + Packet2(511, 127) +
                           kNon2Packet.substr(0, 60) + Packet2(60, 95, 0x84);
  const Recorded a = FeedWhole(*Nonin(), text);
  const Recorded b = FeedByteByByte(*Nonin(), text);
  EXPECT_EQ(Summary(a), Summary(b));
  // 72/97, 150/90, the cut-short packet's frames 2-3 (72/97) and 60/95; the sensor-off and
  // missing-value packets give none.
  EXPECT_EQ(a.values.size(), 8u);
  EXPECT_EQ(a.hard_errors(), 2u);  // the garbage, and the cut-short packet
}

TEST(NoninFormat2Test, ResetDropsThePartialFrame) {
  auto codec = Nonin();
  testing::RecordingSink sink;
  codec->Feed(testing::Bytes(Hex("01 81 01 00 83 01 80 01")), sink);
  codec->Reset();
  codec->Feed(testing::Bytes(Packet2(72, 97)), sink);
  EXPECT_TRUE(sink.rec.errors.empty());
  ASSERT_EQ(sink.rec.values.size(), 2u);
  ExpectValue(sink.rec.values[0], Metric::kPulseRate, 72);
}

TEST(NoninFormat8Test, Non8VectorsDecode) {
  // NON8-1 [C], built on the MJL/DRPH layout.
  auto codec = Nonin(8);
  auto r = FeedWhole(*codec, Hex("80 48 61 00"));
  ASSERT_EQ(r.values.size(), 2u);
  ExpectValue(r.values[0], Metric::kPulseRate, 72);
  ExpectValue(r.values[1], Metric::kSpo2, 97);
  EXPECT_EQ(r.values[0].flags, 0);
  EXPECT_EQ(r.values[0].status_count, 0);
  EXPECT_TRUE(r.conditions.empty());
  EXPECT_TRUE(r.errors.empty());

  auto artifact = FeedWhole(*codec, Hex("85 16 5F 00"));
  ASSERT_EQ(artifact.values.size(), 2u);
  ExpectValue(artifact.values[0], Metric::kPulseRate, 150);
  ExpectValue(artifact.values[1], Metric::kSpo2, 95);
  EXPECT_TRUE(artifact.values[0].flags & kFlagQuestionable);
  EXPECT_TRUE(HasStatus(artifact.values[0], "artifact"));

  auto off = FeedWhole(*codec, Hex("E3 7F 7F 08"));
  EXPECT_TRUE(off.values.empty());
  EXPECT_EQ(off.conditions, (Conditions{{DeviceCondition::kSensorOff, true},
                                        {DeviceCondition::kOutOfTrack, true}}));
  auto back = FeedWhole(*codec, Hex("80 48 61 00"));
  EXPECT_EQ(back.conditions, (Conditions{{DeviceCondition::kSensorOff, false},
                                         {DeviceCondition::kOutOfTrack, false}}));
  EXPECT_EQ(back.values.size(), 2u);
}

TEST(NoninFormat8Test, PerfusionBatteryAndMissingValues) {
  auto codec = Nonin(8);
  auto r = FeedWhole(*codec, Hex("90 48 61 01  83 7F 7F 00  80 48 61 00"));
  const Conditions expected = {
      {DeviceCondition::kLowPerfusion, true},
      {DeviceCondition::kLowBattery, true},
      {DeviceCondition::kLowPerfusion, false},
      {DeviceCondition::kLowBattery, false},
  };
  EXPECT_EQ(r.conditions, expected);
  ASSERT_EQ(r.values.size(), 4u);  // the middle frame has HR 511 and SpO2 127: missing
  EXPECT_TRUE(HasStatus(r.values[0], "low_perfusion"));
  EXPECT_TRUE(HasStatus(r.values[0], "low_battery"));
  EXPECT_TRUE(r.errors.empty());
}

TEST(NoninFormat8Test, ResynchronisesAfterGarbage) {
  auto r = FeedWhole(*Nonin(8), Hex("80 48 61 00  48 61  80 4A 60 00"));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].offset, 4u);
  EXPECT_EQ(r.errors[0].detail, "48 61 80 4A");
  ASSERT_EQ(r.values.size(), 4u);
  ExpectValue(r.values[2], Metric::kPulseRate, 74);
  ExpectValue(r.values[3], Metric::kSpo2, 96);
}

TEST(NoninFormat8Test, SplitAcrossReadsGivesTheSameResult) {
  const std::string text = Hex("61 00 80 48 61 00 85 16 5F 00 FF FF E3 7F 7F 08 90 48 61 01 80");
  const Recorded a = FeedWhole(*Nonin(8), text);
  const Recorded b = FeedByteByByte(*Nonin(8), text);
  EXPECT_EQ(Summary(a), Summary(b));
  EXPECT_EQ(a.values.size(), 6u);
}

TEST(NoninCodecTest, FormatOptionIsValidated) {
  EXPECT_TRUE(MakeStatus({{"type", "nonin"}}).ok());
  EXPECT_TRUE(MakeStatus({{"type", "nonin"}, {"format", 8}}).ok());
  const Status five = MakeStatus({{"type", "nonin"}, {"format", 5}});
  EXPECT_FALSE(five.ok());
  EXPECT_NE(five.message().find("expected 2 or 8"), std::string::npos);
  EXPECT_FALSE(MakeStatus({{"type", "nonin"}, {"format", 13}}).ok());
  EXPECT_FALSE(MakeStatus({{"type", "nonin"}, {"format", "8"}}).ok());
}

}  // namespace
}  // namespace vg
