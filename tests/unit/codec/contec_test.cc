// Vectors CMS5-n / CMS9-n: tests/vectors/README.md names the source of each (ATB = atbrask's
// unit tests, HEAD = headrotor's real CMS50D+ capture, MARK = MarkMLl's fw 4.6 frame,
// [C] = constructed with the arithmetic shown in the comment).
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

std::unique_ptr<Codec> Contec(const std::string& frame = "auto", int emit_every = 1) {
  return MakeFromSpec({{"type", "contec"}, {"frame", frame}, {"emit_every", emit_every}});
}

void ExpectValue(const DecodedValue& v, Metric m, double value) {
  EXPECT_EQ(v.metric, m);
  EXPECT_DOUBLE_EQ(v.value, value);
}

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

const std::string kCms5Normal = Hex("85 40 03 48 61");         // CMS5-2 [C]: PR 72, SpO2 97
const std::string kCms5Pr150 = Hex("C7 30 45 16 5F");          // CMS5-3 [C]: PR 150, SpO2 95
const std::string kCms5NoFinger = Hex("90 00 70 7F 7F");       // CMS5-4 [C][U]
const std::string kCms9a = Hex("01 E0 85 B3 96 C1 E1 FF FF");  // CMS9-1 [S] HEAD
const std::string kCms9b = Hex("01 E0 85 AA 95 C1 E1 FF FF");  // CMS9-2 [S] HEAD
const std::string kCms9c = Hex("01 e0 85 d5 9a bd e3 ff ff");  // CMS9-3 [S] MARK

TEST(ContecFrame5Test, Cms5NormalAndHighPulseRate) {
  for (const std::string mode : {"auto", "5"}) {
    auto r = FeedWhole(*Contec(mode), kCms5Normal + kCms5Pr150);
    ASSERT_EQ(r.values.size(), 4u) << mode;
    ExpectValue(r.values[0], Metric::kPulseRate, 72);
    ExpectValue(r.values[1], Metric::kSpo2, 97);
    ExpectValue(r.values[2], Metric::kPulseRate, 150);
    ExpectValue(r.values[3], Metric::kSpo2, 95);
    EXPECT_EQ(r.values[0].flags, 0);
    EXPECT_TRUE(r.errors.empty());
    EXPECT_TRUE(r.conditions.empty());
  }
}

TEST(ContecFrame5Test, Cms5AtbFormulaVectorAndZeroSpo2IsNoValue) {
  // CMS5-1 [S] ATB: PR = 128 + 72 = 200; SpO2 0 is treated as "no value".
  auto r = FeedWhole(*Contec(), Hex("80 00 40 48 00"));
  ASSERT_EQ(r.values.size(), 1u);
  ExpectValue(r.values[0], Metric::kPulseRate, 200);
}

TEST(ContecFrame5Test, Cms5NoFingerRaisesConditionsAndNoValues) {
  auto codec = Contec();
  auto r = FeedWhole(*codec, kCms5NoFinger);
  EXPECT_TRUE(r.values.empty());
  EXPECT_EQ(r.conditions, (Conditions{{DeviceCondition::kSensorOff, true},
                                      {DeviceCondition::kOutOfTrack, true}}));
  auto again = FeedWhole(*codec, kCms5NoFinger);
  EXPECT_TRUE(again.conditions.empty());  // on change only
  auto back = FeedWhole(*codec, kCms5Normal);
  EXPECT_EQ(back.conditions, (Conditions{{DeviceCondition::kSensorOff, false},
                                         {DeviceCondition::kOutOfTrack, false}}));
  EXPECT_EQ(back.values.size(), 2u);
}

TEST(ContecFrame5Test, ProbeErrorSuppressesValuesAndSearchingFlagsThem) {
  // Probe error with plausible-looking numbers: still no reading.
  auto probe = FeedWhole(*Contec(), Hex("85 40 13 48 61"));
  EXPECT_TRUE(probe.values.empty());
  EXPECT_EQ(probe.conditions, (Conditions{{DeviceCondition::kSensorOff, true}}));
  // Searching (byte 3 bit 5): out of track, values kept but questionable.
  auto search = FeedWhole(*Contec(), Hex("A5 40 23 48 61"));
  ASSERT_EQ(search.values.size(), 2u);
  EXPECT_TRUE(search.values[0].flags & kFlagQuestionable);
  EXPECT_TRUE(HasStatus(search.values[0], "searching"));
  EXPECT_TRUE(HasStatus(search.values[0], "spo2_dropping"));
  EXPECT_EQ(search.conditions, (Conditions{{DeviceCondition::kOutOfTrack, true}}));
}

TEST(ContecFrame5Test, NoValueCodes) {
  // PR 255 (bit 7 + 0x7F) and SpO2 127: no readings, no errors.
  auto r = FeedWhole(*Contec(), Hex("85 40 43 7F 7F  85 40 03 00 61"));
  ASSERT_EQ(r.values.size(), 1u);  // only SpO2 97 of the second frame (PR 0 = none)
  ExpectValue(r.values[0], Metric::kSpo2, 97);
  EXPECT_TRUE(r.errors.empty());
}

TEST(ContecFrame5Test, Cms5BadSyncAndIncompleteFrame) {
  // CMS5-5 [S] ATB: bit 7 in the wrong byte is not a frame; 4 bytes are incomplete.
  auto r = FeedWhole(*Contec("5"), Hex("00 80 00 00 00"));
  EXPECT_TRUE(r.values.empty());
  auto four = FeedWhole(*Contec("5"), Hex("80 00 00 00"));
  EXPECT_TRUE(four.values.empty());
  EXPECT_TRUE(four.errors.empty());
}

TEST(ContecFrame5Test, EmitEveryLimitsTheReadingRate) {
  auto codec = Contec("auto", 60);
  auto r = FeedWhole(*codec, Repeat(kCms5Normal, 121));
  // Frames 1, 61 and 121 emit; conditions would still be checked on every frame.
  EXPECT_EQ(r.values.size(), 6u);
  auto every = FeedWhole(*Contec("5", 1), Repeat(kCms5Normal, 10));
  EXPECT_EQ(every.values.size(), 20u);
}

TEST(ContecFrame5Test, GarbageAndTruncatedFramesResynchronise) {
  const std::string text = kCms5Normal + Hex("85 40 03") + kCms5Pr150 + Hex("FF FF") + kCms5Normal;
  auto r = FeedWhole(*Contec(), text);
  ASSERT_EQ(r.values.size(), 6u);
  ExpectValue(r.values[0], Metric::kPulseRate, 72);
  ExpectValue(r.values[2], Metric::kPulseRate, 150);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].offset, 5u);
  EXPECT_EQ(r.errors[0].detail, "85 40 03 C7 30");
  EXPECT_EQ(r.errors[1].offset, 13u);
  EXPECT_NE(r.errors[1].message.find("bit 7"), std::string::npos);
}

TEST(ContecFrame9Test, Cms9RealCaptures) {
  for (const std::string mode : {"auto", "9"}) {
    auto r = FeedWhole(*Contec(mode), kCms9a + kCms9b + kCms9c);
    ASSERT_EQ(r.values.size(), 6u) << mode;
    ExpectValue(r.values[0], Metric::kPulseRate, 65);
    ExpectValue(r.values[1], Metric::kSpo2, 97);
    ExpectValue(r.values[2], Metric::kPulseRate, 65);
    ExpectValue(r.values[4], Metric::kPulseRate, 61);  // 0xBD & 0x7F, not 53 (see docs/codecs.md)
    ExpectValue(r.values[5], Metric::kSpo2, 99);
    EXPECT_EQ(r.values[0].flags, 0);
    EXPECT_TRUE(r.errors.empty());
    EXPECT_TRUE(r.conditions.empty());
  }
}

TEST(ContecFrame9Test, Cms9InvalidStatesAndTrailer) {
  // CMS9-4 [C][U].
  auto codec = Contec();
  auto r =
      FeedWhole(*codec, Hex("01 E1 80 80 80 80 80 FF FF  01 E2 80 80 80 80 80 FF FF") + kCms9a);
  const Conditions expected = {
      {DeviceCondition::kSensorOff, true},
      {DeviceCondition::kSensorOff, false},
      {DeviceCondition::kOutOfTrack, true},
      {DeviceCondition::kOutOfTrack, false},
  };
  EXPECT_EQ(r.conditions, expected);
  ASSERT_EQ(r.values.size(), 2u);
  ExpectValue(r.values[0], Metric::kPulseRate, 65);

  // Finger out with numbers present: still no readings.
  auto out = FeedWhole(*Contec(), Hex("01 E1 85 B3 96 C1 E1 FF FF"));
  EXPECT_TRUE(out.values.empty());

  // A frame not ending in FF FF is rejected (MARK validates on it).
  auto trailer = FeedWhole(*Contec(), kCms9a + Hex("01 E0 85 B3 96 C1 E1 FF 00") + kCms9b);
  ASSERT_EQ(trailer.errors.size(), 1u);
  EXPECT_EQ(trailer.errors[0].offset, 9u);
  EXPECT_NE(trailer.errors[0].message.find("FF FF"), std::string::npos);
  EXPECT_EQ(trailer.values.size(), 4u);
}

TEST(ContecFrame9Test, PulseRateBit7HypothesisIsFlagged) {
  auto r = FeedWhole(*Contec(), Hex("01 E8 85 B3 96 96 E1 FF FF"));
  ASSERT_EQ(r.values.size(), 2u);
  ExpectValue(r.values[0], Metric::kPulseRate, 150);
  EXPECT_TRUE(r.values[0].flags & kFlagQuestionable);
  EXPECT_TRUE(HasStatus(r.values[0], "pulse_rate_bit7_unverified"));
}

TEST(ContecFrameTest, FixedModeIgnoresTheOtherLayout) {
  // A 9-byte stream read as 5-byte frames never syncs: one error per 512 bytes, no values.
  auto r = FeedWhole(*Contec("5"), Repeat(kCms9a, 60));
  EXPECT_TRUE(r.values.empty());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("no valid frame"), std::string::npos);
  auto nine = FeedWhole(*Contec("9"), Repeat(kCms5Normal, 120));
  EXPECT_TRUE(nine.values.empty());
  EXPECT_EQ(nine.errors.size(), 1u);
}

TEST(ContecFrameTest, AutoModeFollowsALayoutChangeAfterReset) {
  auto codec = Contec();
  testing::RecordingSink sink;
  codec->Feed(testing::Bytes(Hex("48 61") + kCms5Normal + Hex("85 40")), sink);
  codec->Reset();
  codec->Feed(testing::Bytes(Hex("96 C1") + kCms9a), sink);
  ASSERT_EQ(sink.rec.values.size(), 4u);
  ExpectValue(sink.rec.values[2], Metric::kPulseRate, 65);
  EXPECT_TRUE(sink.rec.errors.empty());  // less than a frame skipped after each (re)start
}

TEST(ContecFrameTest, BytesAfterAFrameFoundWhileResynchronisingAreKept) {
  // A stray 0x01 looks like the start of a 9-byte frame; when that fails, the 5-byte frame
  // inside it is found and the bytes after it, the start of the next frame, must not be lost.
  auto r = FeedWhole(*Contec(), Hex("01") + kCms5Normal + kCms5Pr150 + kCms5Normal);
  ASSERT_EQ(r.values.size(), 6u);
  ExpectValue(r.values[0], Metric::kPulseRate, 72);
  ExpectValue(r.values[2], Metric::kPulseRate, 150);
  ExpectValue(r.values[4], Metric::kPulseRate, 72);
  EXPECT_TRUE(r.errors.empty()) << r.errors[0].message;  // one byte skipped at start
  const Recorded b = FeedByteByByte(*Contec(), Hex("01") + kCms5Normal + kCms5Pr150 + kCms5Normal);
  EXPECT_EQ(Summary(r), Summary(b));
}

TEST(ContecFrameTest, SplitAcrossReadsGivesTheSameResult) {
  const std::string text5 = Hex("03 48") + kCms5Normal + kCms5NoFinger + Hex("FF 81 82") +
                            kCms5Pr150 + Repeat(kCms5Normal, 70);
  const std::string text9 = Hex("FF") + kCms9a + Hex("01 E1 80 80 80 80 80 FF FF 01 E0") + kCms9b +
                            kCms9c + Repeat(kCms9a, 65);
  for (const std::string& text : {text5, text9}) {
    for (int every : {1, 60}) {
      const Recorded a = FeedWhole(*Contec("auto", every), text);
      const Recorded b = FeedByteByByte(*Contec("auto", every), text);
      EXPECT_EQ(Summary(a), Summary(b));
      EXPECT_FALSE(a.values.empty());
      EXPECT_EQ(a.hard_errors(), 1u);
    }
  }
}

TEST(ContecCodecTest, OptionsAreValidated) {
  EXPECT_TRUE(MakeStatus({{"type", "contec"}}).ok());
  const Status bad = MakeStatus({{"type", "contec"}, {"frame", "7"}});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("codec.frame"), std::string::npos);
  EXPECT_FALSE(MakeStatus({{"type", "contec"}, {"frame", 5}}).ok());
  EXPECT_FALSE(MakeStatus({{"type", "contec"}, {"emit_every", 0}}).ok());
}

}  // namespace
}  // namespace vg
