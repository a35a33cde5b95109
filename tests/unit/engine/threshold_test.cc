// Threshold rules: levels, hysteresis, condition delay, event time, lifecycle.
#include <gtest/gtest.h>

#include "unit/engine/engine_test_util.h"

namespace vg {
namespace {

using nlohmann::json;
using testing::EngineHarness;
using testing::Only;
using testing::Rules;

json Spo2Rule(double delay_s = 10, double hysteresis = 1) {
  return Only({{"thresholds",
                {{"spo2",
                  {{"low", {{{"limit", 90}, {"priority", "medium"}}, {{"limit", 85}, {"priority", "high"}}}},
                   {"hysteresis", hysteresis},
                   {"delay_s", delay_s}}}}}});
}

TEST(ThresholdTest, RaisedOnlyAfterTheConditionHeldForTheDelay) {
  EngineHarness h(Rules(Spo2Rule(10)));
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 88, 0).empty());
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 88, 5).empty());
  auto ev = h.Feed(Metric::kSpo2, 88, 10);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, AlertKind::kThreshold);
  EXPECT_EQ(ev[0].state, AlertState::kActive);
  EXPECT_EQ(ev[0].priority, Priority::kMedium);
  EXPECT_EQ(ev[0].metric, Metric::kSpo2);
  EXPECT_EQ(ev[0].value, 88);
  EXPECT_EQ(ev[0].limit, 90);
  EXPECT_EQ(ev[0].message, "SpO2 88 % below 90 %");
  EXPECT_EQ(ev[0].ts_ms, testing::kT0 + 10000);
  EXPECT_EQ(ev[0].raised_ts_ms, testing::kT0 + 10000);
  EXPECT_EQ(ev[0].id, ev[0].alarm_id);
}

TEST(ThresholdTest, ABriefDipShorterThanTheDelayRaisesNothing) {
  EngineHarness h(Rules(Spo2Rule(10)));
  h.Feed(Metric::kSpo2, 88, 0);
  h.Feed(Metric::kSpo2, 88, 8);
  h.Feed(Metric::kSpo2, 95, 9);  // recovered: the pending condition restarts
  h.Feed(Metric::kSpo2, 88, 12);
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 88, 21).empty());
  EXPECT_EQ(h.Feed(Metric::kSpo2, 88, 22).size(), 1u);
}

TEST(ThresholdTest, DelayIsMeasuredInEventTimeNotArrivalTime) {
  // Ten readings arrive at once (a burst after a buffer flush) spanning 9 s of event time: no
  // alarm. The eleventh, at 10 s of event time, raises.
  EngineHarness h(Rules(Spo2Rule(10)));
  for (int s = 0; s < 10; ++s) EXPECT_TRUE(h.Feed(Metric::kSpo2, 87, s).empty());
  EXPECT_EQ(h.Feed(Metric::kSpo2, 87, 10).size(), 1u);
}

TEST(ThresholdTest, HysteresisKeepsTheAlarmUntilTheValueIsClearlyBack) {
  EngineHarness h(Rules(Spo2Rule(0, 2)));
  ASSERT_EQ(h.Feed(Metric::kSpo2, 89, 0).size(), 1u);
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 90, 1).empty());  // at the limit: not yet clear
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 91, 2).empty());  // inside the band
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 89, 3).empty());  // dips again: no repeat
  auto ev = h.Feed(Metric::kSpo2, 92, 4);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, AlertState::kCleared);
  EXPECT_EQ(ev[0].alarm_id, h.sink.events[0].alarm_id);
  EXPECT_NE(ev[0].id, h.sink.events[0].id);
  EXPECT_EQ(ev[0].value, 92);
  // A new excursion is a new alarm.
  auto again = h.Feed(Metric::kSpo2, 80, 5);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(again[0].alarm_id, h.sink.events[0].alarm_id);
}

TEST(ThresholdTest, PriorityFollowsTheMostSevereLevelOneEventPerChange) {
  EngineHarness h(Rules(Spo2Rule(0, 1)));
  auto a = h.Feed(Metric::kSpo2, 88, 0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].priority, Priority::kMedium);
  auto b = h.Feed(Metric::kSpo2, 84, 1);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].priority, Priority::kHigh);
  EXPECT_EQ(b[0].state, AlertState::kActive);
  EXPECT_EQ(b[0].limit, 85);
  EXPECT_EQ(b[0].alarm_id, a[0].alarm_id);
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 83, 2).empty());   // same priority: no event
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 85.5, 3).empty());  // inside the high level's band
  auto c = h.Feed(Metric::kSpo2, 87, 4);                // back to the medium level
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].priority, Priority::kMedium);
  auto d = h.Feed(Metric::kSpo2, 95, 5);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].state, AlertState::kCleared);
}

TEST(ThresholdTest, HighLimitsAndNoRepeatWhileTheStateHolds) {
  EngineHarness h(Rules(Only({{"thresholds",
                               {{"heart_rate",
                                 {{"high", {{{"limit", 120}, {"priority", "medium"}}}},
                                  {"delay_s", 0}}}}}})));
  EXPECT_TRUE(h.Feed(Metric::kHeartRate, 120, 0).empty());  // at the limit is not above it
  EXPECT_EQ(h.Feed(Metric::kHeartRate, 121, 1).size(), 1u);
  for (int i = 2; i < 50; ++i) EXPECT_TRUE(h.Feed(Metric::kHeartRate, 130, i).empty());
  EXPECT_EQ(h.sink.events.size(), 1u);
}

TEST(ThresholdTest, LateReadingsOfADeviceDoNotMoveItsRuleStateAndRaiseTheClockAlarm) {
  EngineHarness h(Rules(Spo2Rule(0)));
  h.Feed(Metric::kSpo2, 97, 10);
  // Older than the same device's latest: not evaluated, but never silently: counted, and the
  // technical alarm `clock` says so.
  auto ev = h.Feed(Metric::kSpo2, 80, 5);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, AlertKind::kTechnical);
  EXPECT_EQ(ev[0].condition, DeviceCondition::kClock);
  EXPECT_EQ(h.engine.counters().late, 1u);
}

TEST(ThresholdTest, EveryReadingGetsAUniqueIncreasingId) {
  EngineHarness h(Rules(Spo2Rule(0)));
  std::uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    Reading r;
    r.metric = Metric::kSpo2;
    r.value = 97;
    r.ts_ms = testing::kT0 + i;
    h.engine.OnReading(r, 0, h.sink);
    EXPECT_GT(r.id, last);
    last = r.id;
  }
}

TEST(ThresholdTest, PatientOverrideReplacesLevels) {
  const json patient = {{"thresholds", {{"spo2", {{"low", {{{"limit", 85}, {"priority", "high"}}}}}}}}};
  EngineHarness h(Rules(Spo2Rule(0), patient));
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 88, 0).empty());
  auto ev = h.Feed(Metric::kSpo2, 84, 1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].priority, Priority::kHigh);
}

}  // namespace
}  // namespace vg

namespace vg {
namespace {

TEST(ThresholdTest, QuestionableReadingsAreForwardedButNeverAlarmed) {
  testing::EngineHarness h(testing::Rules(testing::Only(
      {{"thresholds", {{"spo2", {{"low", {{{"limit", 90}, {"priority", "high"}}}}, {"delay_s", 0}}}}}})));
  Reading r;
  r.metric = Metric::kSpo2;
  r.value = 70;  // an artifact the oximeter itself flagged
  r.ts_ms = testing::kT0;
  r.flags = kFlagQuestionable;
  h.engine.OnReading(r, 0, h.sink);
  EXPECT_NE(r.id, 0u);  // still accepted (forwarded, with its flag)
  EXPECT_TRUE(h.sink.events.empty());
  EXPECT_EQ(h.engine.counters().questionable, 1u);
  EXPECT_EQ(h.Feed(Metric::kSpo2, 80, 1).size(), 1u);  // a trusted value alarms as usual
}

}  // namespace
}  // namespace vg
