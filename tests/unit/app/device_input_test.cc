// Device input: plausibility, the device-time window, learned device clocks, patient routing,
// record keys, and moves between patients, with a simulated clock and a real ring.
#include "vitalgate/app/device_input.h"

#include <gtest/gtest.h>

#include <vector>

namespace vg {
namespace {

constexpr std::int64_t kNow = 1'796'000'000'000;  // 2026-11-30

class NullCodec final : public Codec {
 public:
  void Feed(std::span<const std::uint8_t>, CodecSink&) override {}
  void Reset() override {}
};

class DeviceInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    p1_ = *patients_.Intern("p-001");
    p2_ = *patients_.Intern("p-002");
    p3_ = *patients_.Intern("p-003");
  }
  DeviceInput& Make(DeviceTimePolicy time = {}, DeviceRouting routing = {}) {
    if (routing.patient == 0 && !routing.unassigned) routing.patient = p1_;
    input_ = std::make_unique<DeviceInput>(3, "ox-1", routing, std::make_unique<NullCodec>(),
                                           IngressPort{&ring_, &bell_}, patients_, stats_, clock_, time);
    return *input_;
  }
  std::vector<IngressItem> Drain() {
    std::vector<IngressItem> out;
    ring_.Drain([&](const IngressItem& i) { out.push_back(i); }, 1000);
    return out;
  }
  std::vector<Reading> Readings() {
    std::vector<Reading> out;
    for (const IngressItem& i : Drain()) {
      if (i.kind == IngressItem::Kind::kReading) out.push_back(i.reading);
    }
    return out;
  }
  static DecodedValue Value(Metric m, double v, std::optional<std::int64_t> ts = std::nullopt,
                            std::uint8_t flags = 0) {
    DecodedValue d;
    d.metric = m;
    d.value = v;
    d.ts_ms = ts;
    d.flags = static_cast<std::uint8_t>(flags | (ts ? kFlagDeviceTime : 0));
    return d;
  }

  PatientDirectory patients_;
  PatientIndex p1_ = 0, p2_ = 0, p3_ = 0;
  SpscRing<IngressItem> ring_{1024};
  Doorbell bell_;
  DeviceStats stats_;
  SimulatedClock clock_{kNow, 1'000'000'000};
  std::unique_ptr<DeviceInput> input_;
};

TEST_F(DeviceInputTest, APlausibleReadingCarriesItsDevicePatientAndTimes) {
  DeviceInput& in = Make();
  in.OnValue(Value(Metric::kSpo2, 97, kNow - 1000));
  auto r = Readings();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].device, 3);
  EXPECT_EQ(r[0].patient, p1_);
  EXPECT_EQ(r[0].ts_ms, kNow - 1000);
  EXPECT_EQ(r[0].rx_ms, kNow);
  EXPECT_EQ(r[0].flags & kFlagClock, 0);
  EXPECT_EQ(stats_.readings.load(), 1u);
}

TEST_F(DeviceInputTest, ImplausibleValuesAreCountedAndNeverReachTheEngine) {
  DeviceInput& in = Make();
  in.OnValue(Value(Metric::kSpo2, 127));
  in.OnValue(Value(Metric::kHeartRate, -3));
  in.OnValue(Value(Metric::kConsciousness, 2.5));
  std::size_t refused = 0, readings = 0;
  for (const IngressItem& i : Drain()) {
    if (i.kind == IngressItem::Kind::kReading) ++readings;
    if (i.kind == IngressItem::Kind::kCondition && i.condition == DeviceCondition::kBadFrames) ++refused;
  }
  EXPECT_EQ(readings, 0u);
  EXPECT_EQ(refused, 3u) << "each refused reading counts towards the bad_frames technical alarm";
  EXPECT_EQ(stats_.invalid.load(), 3u);
}

TEST_F(DeviceInputTest, ALiveReadingOutsideTheWindowIsEvaluatedAtItsReceiveTimeAndFlagged) {
  DeviceInput& in = Make();
  for (std::int64_t ts : {kNow + 120'000, kNow - 86'400'000, std::int64_t{0}, std::int64_t{86'400'000}}) {
    in.OnValue(Value(Metric::kSpo2, 80, ts));
    clock_.AdvanceMs(1500);  // a report per reading (they are rate-limited to one a second)
  }
  std::vector<IngressItem> items = Drain();
  std::vector<Reading> readings;
  std::vector<IngressItem> clock_items;
  for (const IngressItem& i : items) {
    if (i.kind == IngressItem::Kind::kReading) readings.push_back(i.reading);
    if (i.kind == IngressItem::Kind::kCondition && i.condition == DeviceCondition::kClock) clock_items.push_back(i);
  }
  ASSERT_EQ(readings.size(), 4u);
  for (const Reading& r : readings) {
    EXPECT_NE(r.flags & kFlagClock, 0);
    EXPECT_EQ(r.ts_ms, r.rx_ms) << "a live reading is evaluated at its receive time";
    EXPECT_NE(r.device_ts_ms, r.ts_ms);
  }
  EXPECT_EQ(readings[0].device_ts_ms, kNow + 120'000);
  EXPECT_EQ(stats_.clock_implausible.load(), 4u);
  ASSERT_EQ(clock_items.size(), 4u);
  EXPECT_DOUBLE_EQ(clock_items[0].reading.value, 120.0) << "the offset, in seconds";
}

TEST_F(DeviceInputTest, TheWindowsEdgesAreAcceptedAndConfigurable) {
  DeviceTimePolicy p;
  p.max_ahead_ms = 5000;
  p.max_behind_ms = 20'000;
  DeviceInput& in = Make(p);
  in.OnValue(Value(Metric::kSpo2, 97, kNow - 20'000));
  in.OnValue(Value(Metric::kSpo2, 97, kNow + 5000));
  in.OnValue(Value(Metric::kSpo2, 97, kNow + 5001));
  auto r = Readings();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].flags & kFlagClock, 0);
  EXPECT_EQ(r[1].flags & kFlagClock, 0);
  EXPECT_NE(r[2].flags & kFlagClock, 0);
}

TEST_F(DeviceInputTest, ALiveStreamGoingBackwardsIsImplausibleButRecordsMayComeInAnyOrder) {
  DeviceInput& in = Make();
  in.OnValue(Value(Metric::kSpo2, 97, kNow - 1000));
  in.OnValue(Value(Metric::kSpo2, 97, kNow - 5000));
  in.OnValue(Value(Metric::kGlucose, 90, kNow - 1000, kFlagStored));
  in.OnValue(Value(Metric::kGlucose, 95, kNow - 86'400'000, kFlagStored));
  auto r = Readings();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].flags & kFlagClock, 0);
  EXPECT_NE(r[1].flags & kFlagClock, 0);
  EXPECT_EQ(r[2].flags & kFlagClock, 0);
  EXPECT_EQ(r[3].flags & kFlagClock, 0) << "a day-old stored record is within its window";
  EXPECT_EQ(r[3].ts_ms, kNow - 86'400'000);
}

TEST_F(DeviceInputTest, AStoredRecordWithAnImpossibleTimeKeepsItAndIsFlagged) {
  DeviceInput& in = Make();
  in.OnValue(Value(Metric::kGlucose, 90, std::int64_t{0}, kFlagStored));
  auto r = Readings();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].flags & kFlagClock, 0);
  EXPECT_EQ(r[0].ts_ms, 0) << "never made to look current";
}

TEST_F(DeviceInputTest, ALearnedDeviceClockCorrectsItsTimeStamps) {
  DeviceInput& in = Make();
  in.OnDeviceClock(kNow + 3'600'000);  // the device's clock is an hour fast
  in.OnValue(Value(Metric::kHeartRate, 70, kNow + 3'600'000 - 2000));
  auto r = Readings();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].ts_ms, kNow - 2000);
  EXPECT_EQ(r[0].flags & kFlagClock, 0);
  EXPECT_EQ(stats_.clock_offset_ms.load(), 3'600'000);
}

TEST_F(DeviceInputTest, AReadingMayNameOnlyAPatientTheDeviceMayFeed) {
  DeviceRouting routing;
  routing.patient = p1_;
  routing.allowed = {p2_};
  DeviceInput& in = Make({}, routing);
  DecodedValue to_p2 = Value(Metric::kHeartRate, 70);
  to_p2.patient = "p-002";
  DecodedValue to_p3 = to_p2;
  to_p3.patient = "p-003";
  DecodedValue unknown = to_p2;
  unknown.patient = "p-999";
  in.OnValue(to_p2);
  in.OnValue(to_p3);
  in.OnValue(unknown);
  std::vector<Reading> r;
  std::size_t refused = 0;
  for (const IngressItem& i : Drain()) {
    if (i.kind == IngressItem::Kind::kReading) r.push_back(i.reading);
    if (i.kind == IngressItem::Kind::kCondition && i.condition == DeviceCondition::kBadFrames) ++refused;
  }
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].patient, p2_);
  EXPECT_EQ(stats_.invalid.load(), 2u);
  EXPECT_EQ(refused, 2u) << "each refused reading counts towards the bad_frames technical alarm";
}

TEST_F(DeviceInputTest, AMoveReachesTheEngineInOrderWithTheReadings) {
  DeviceInput& in = Make();
  in.OnValue(Value(Metric::kHeartRate, 70));
  DeviceRouting moved;
  moved.patient = p2_;
  in.SetRouting(moved);
  in.OnValue(Value(Metric::kHeartRate, 71));
  auto items = Drain();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].reading.patient, p1_);
  EXPECT_EQ(items[1].kind, IngressItem::Kind::kAssign);
  EXPECT_EQ(items[1].reading.patient, p2_);
  EXPECT_EQ(items[2].reading.patient, p2_);
}

TEST_F(DeviceInputTest, SpotChecksAndStoredRecordsGetARecordKeyThatRepeats) {
  DeviceTimePolicy p;
  p.spot = true;
  DeviceInput& in = Make(p);
  in.OnValue(Value(Metric::kBpSystolic, 120, kNow - 60'000));
  in.OnValue(Value(Metric::kBpSystolic, 120, kNow - 60'000));
  in.OnValue(Value(Metric::kBpSystolic, 121, kNow - 60'000));
  DecodedValue seq = Value(Metric::kGlucose, 90, kNow - 60'000, kFlagStored);
  seq.record_seq = 7;
  in.OnValue(seq);
  auto r = Readings();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_NE(r[0].flags & kFlagSpot, 0);
  EXPECT_NE(r[0].record_key, 0u);
  EXPECT_EQ(r[0].record_key, r[1].record_key);
  EXPECT_NE(r[0].record_key, r[2].record_key);
  EXPECT_EQ(r[3].record_key, RecordKeyOf(Metric::kGlucose, kNow - 60'000, 0, 7))
      << "with a record number, the value does not count";
  // A meter reset or replaced under the same id numbers its records from 1 again: a record with
  // a known number but another time is a new one.
  EXPECT_NE(RecordKeyOf(Metric::kGlucose, kNow - 60'000, 90, 7), RecordKeyOf(Metric::kGlucose, kNow, 90, 7));
}

TEST_F(DeviceInputTest, ARecordSentAgainAfterTheClockOffsetChangedIsTheSameRecord) {
  DeviceTimePolicy p;
  p.spot = true;
  DeviceInput& in = Make(p);
  in.OnValue(Value(Metric::kBpSystolic, 120, kNow - 60'000));
  in.OnDeviceClock(kNow + 30'000);  // the device's clock turns out 30 s fast
  in.OnValue(Value(Metric::kBpSystolic, 120, kNow - 60'000));
  auto r = Readings();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_NE(r[0].ts_ms, r[1].ts_ms) << "the offset moves the reading's time";
  EXPECT_EQ(r[0].record_key, r[1].record_key) << "but not the record's identity";
}

TEST_F(DeviceInputTest, AnUnassignedDevicesReadingsAreMarkedAndCounted) {
  DeviceRouting routing;
  routing.patient = *patients_.Intern(PlaceholderPatient("ox-1"));
  routing.unassigned = true;
  DeviceInput& in = Make({}, routing);
  in.OnValue(Value(Metric::kHeartRate, 70));
  auto r = Readings();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].flags & kFlagUnassigned, 0);
  EXPECT_EQ(stats_.unassigned.load(), 1u);
}

TEST_F(DeviceInputTest, AFullRingCostsTheReadingCountedNeverTheThread) {
  SpscRing<IngressItem> tiny(4);
  DeviceRouting routing;
  routing.patient = p1_;
  DeviceInput in(1, "ox-1", routing, std::make_unique<NullCodec>(), IngressPort{&tiny, &bell_},
                 patients_, stats_, clock_);
  for (int i = 0; i < 20; ++i) in.OnValue(Value(Metric::kHeartRate, 70));
  EXPECT_GT(stats_.dropped.load(), 0u);
  EXPECT_EQ(stats_.readings.load() + stats_.dropped.load(), 20u);
}

}  // namespace
}  // namespace vg
