// Alarm lifecycle: acknowledgement, escalation, technical alarms, reloads, determinism.
#include <gtest/gtest.h>

#include "unit/engine/engine_test_util.h"

namespace vg {
namespace {

using nlohmann::json;
using testing::EngineHarness;
using testing::Only;
using testing::Rules;

json Spo2Low(double medium_after_s = 0) {
  return Only({{"thresholds", {{"spo2", {{"low", {{{"limit", 90}, {"priority", "medium"}},
                                                  {{"limit", 85}, {"priority", "high"}}}},
                                         {"hysteresis", 1}, {"delay_s", 0}}}}},
               {"escalation", {{"medium_after_s", medium_after_s}, {"low_after_s", 0}}}});
}

TEST(AckTest, AcknowledgeByAnyEventIdOnceThenNothing) {
  EngineHarness h(Rules(Spo2Low()));
  const auto raised = h.Feed(Metric::kSpo2, 88, 0);
  ASSERT_EQ(raised.size(), 1u);
  EXPECT_EQ(h.engine.Acknowledge(raised[0].id, "nurse-7", testing::kT0 + 5000, h.sink),
            Engine::AckResult::kAcknowledged);
  const AlertEvent& ack = h.sink.events.back();
  EXPECT_EQ(ack.state, AlertState::kAcknowledged);
  EXPECT_EQ(ack.acked_by, "nurse-7");
  EXPECT_EQ(ack.alarm_id, raised[0].alarm_id);
  EXPECT_EQ(ack.ts_ms, testing::kT0 + 5000);
  // Acknowledging again (by the ack event's own id) publishes nothing.
  EXPECT_EQ(h.engine.Acknowledge(ack.id, "nurse-8", testing::kT0 + 6000, h.sink),
            Engine::AckResult::kAlreadyAcknowledged);
  EXPECT_EQ(h.sink.events.size(), 2u);
  EXPECT_EQ(h.engine.Acknowledge(12345, "x", 0, h.sink), Engine::AckResult::kUnknown);
  // An acknowledged alarm that gets worse is active again, at the higher priority.
  auto worse = h.Feed(Metric::kSpo2, 80, 10);
  ASSERT_EQ(worse.size(), 1u);
  EXPECT_EQ(worse[0].state, AlertState::kActive);
  EXPECT_EQ(worse[0].priority, Priority::kHigh);
  // Clearing an alarm forgets its ids.
  h.Feed(Metric::kSpo2, 97, 20);
  EXPECT_EQ(h.sink.events.back().state, AlertState::kCleared);
  EXPECT_EQ(h.engine.Acknowledge(raised[0].id, "x", 0, h.sink), Engine::AckResult::kUnknown);
}

TEST(AckTest, AnAckForAnEventSeenAtALowerPriorityDoesNotSilenceTheRiseOrEscalation) {
  EngineHarness h(Rules(Spo2Low(/*medium_after_s=*/300)));
  const auto medium = h.Feed(Metric::kSpo2, 88, 0);
  ASSERT_EQ(medium.size(), 1u);
  // Worse: high now. An acknowledgement naming the medium event (a dashboard that saw only
  // that, or a redelivered message) does not count; one naming the high event does.
  const auto high = h.Feed(Metric::kSpo2, 80, 10);
  ASSERT_EQ(high.size(), 1u);
  ASSERT_EQ(high[0].priority, Priority::kHigh);
  EXPECT_EQ(h.engine.Acknowledge(medium[0].id, "nurse-1", testing::kT0 + 11000, h.sink),
            Engine::AckResult::kStale);
  EXPECT_EQ(h.sink.events.back().state, AlertState::kActive);
  EXPECT_EQ(h.engine.Acknowledge(high[0].id, "nurse-1", testing::kT0 + 12000, h.sink),
            Engine::AckResult::kAcknowledged);

  // The same for an escalation of an alarm nobody acknowledged.
  EngineHarness e(Rules(Spo2Low(/*medium_after_s=*/300)));
  const auto raised = e.Feed(Metric::kSpo2, 88, 0);
  const auto escalated = e.Feed(Metric::kSpo2, 88, 300);
  ASSERT_EQ(escalated.size(), 1u);
  EXPECT_EQ(e.engine.Acknowledge(raised[0].id, "nurse-2", testing::kT0 + 301000, e.sink),
            Engine::AckResult::kStale);
  EXPECT_EQ(e.engine.Acknowledge(escalated[0].id, "nurse-2", testing::kT0 + 302000, e.sink),
            Engine::AckResult::kAcknowledged);
}

TEST(TechnicalTest, ADeviceSendingOnlyQuestionableValuesRaisesNoData) {
  EngineHarness h(Rules(Only({{"technical", {{"no_data_s", 30}}}})));
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 97, 0).empty());
  // Flagged by the device (artifact, sensor off): forwarded, not evaluated, and no data to
  // watch the patient by.
  for (int s = 10; s <= 40; s += 10) {
    h.Tick(10);
    h.Feed(Metric::kSpo2, 60, s, 0, kFlagQuestionable);
  }
  ASSERT_FALSE(h.sink.events.empty());
  const AlertEvent& nodata = h.sink.events.back();
  EXPECT_EQ(nodata.condition, DeviceCondition::kNoData);
  EXPECT_EQ(nodata.state, AlertState::kActive);
  // A usable reading clears it.
  auto cleared = h.Feed(Metric::kSpo2, 97, 41);
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0].state, AlertState::kCleared);
}

TEST(EscalationTest, UnacknowledgedMediumBecomesHighAfterTheEscalationTime) {
  EngineHarness h(Rules(Spo2Low(/*medium_after_s=*/300)));
  ASSERT_EQ(h.Feed(Metric::kSpo2, 88, 0).size(), 1u);
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 88, 299).empty());
  auto ev = h.Feed(Metric::kSpo2, 88, 300);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].priority, Priority::kHigh);
  EXPECT_EQ(ev[0].state, AlertState::kActive);
  EXPECT_NE(ev[0].message.find("escalated"), std::string::npos);
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 88, 900).empty());  // high is the top: no more
}

TEST(EscalationTest, AcknowledgedAlarmsDoNotEscalate) {
  EngineHarness h(Rules(Spo2Low(300)));
  const auto raised = h.Feed(Metric::kSpo2, 88, 0);
  h.engine.Acknowledge(raised[0].id, "nurse", testing::kT0 + 1000, h.sink);
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 88, 1000).empty());
}

TEST(TechnicalTest, NoDataAfterTheConfiguredTimeClearedByTheNextReading) {
  EngineHarness h(Rules(Only({{"technical", {{"no_data_s", 30}}}})));
  EXPECT_TRUE(h.Tick(29).empty());
  auto ev = h.Tick(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, AlertKind::kTechnical);
  EXPECT_EQ(ev[0].condition, DeviceCondition::kNoData);
  EXPECT_EQ(ev[0].device, 0);
  EXPECT_EQ(ev[0].priority, Priority::kMedium);
  EXPECT_TRUE(h.Tick(60).empty());  // no repeat
  auto cleared = h.Feed(Metric::kSpo2, 97, 0);
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0].state, AlertState::kCleared);
}

TEST(TechnicalTest, DisconnectAlarmAfterDelaySuppressesNoData) {
  EngineHarness h(Rules(Only({{"technical", {{"no_data_s", 5}, {"disconnect_alarm_s", 10}}}})));
  h.engine.OnCondition(0, DeviceCondition::kDisconnected, true, h.wall_ms, h.mono_ns, h.sink);
  EXPECT_TRUE(h.Tick(9).empty());  // no no_data alarm while the link is known to be down
  auto ev = h.Tick(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].condition, DeviceCondition::kDisconnected);
  const std::size_t before = h.sink.events.size();
  h.engine.OnCondition(0, DeviceCondition::kDisconnected, false, h.wall_ms, h.mono_ns, h.sink);
  ASSERT_EQ(h.sink.events.size(), before + 1);
  EXPECT_EQ(h.sink.events.back().state, AlertState::kCleared);
  EXPECT_NE(h.sink.events.back().message.find("reconnected"), std::string::npos);
}

TEST(TechnicalTest, ShortDisconnectRaisesNothing) {
  EngineHarness h(Rules(Only({{"technical", {{"disconnect_alarm_s", 10}}}})));
  h.engine.OnCondition(0, DeviceCondition::kDisconnected, true, h.wall_ms, h.mono_ns, h.sink);
  h.Tick(5);
  h.engine.OnCondition(0, DeviceCondition::kDisconnected, false, h.wall_ms, h.mono_ns, h.sink);
  h.Tick(20);
  EXPECT_TRUE(h.sink.events.empty());
}

TEST(TechnicalTest, SensorOffAndLowBatteryAndBadFrames) {
  EngineHarness h(Rules(Only(
      {{"technical", {{"low_battery_pct", 20}, {"bad_frames_per_min", 3}, {"no_data_s", 3600}}}})));
  h.engine.OnCondition(0, DeviceCondition::kSensorOff, true, h.wall_ms, h.mono_ns, h.sink);
  ASSERT_EQ(h.sink.events.size(), 1u);
  EXPECT_EQ(h.sink.events[0].condition, DeviceCondition::kSensorOff);
  h.engine.OnCondition(0, DeviceCondition::kSensorOff, true, h.wall_ms, h.mono_ns, h.sink);
  EXPECT_EQ(h.sink.events.size(), 1u);  // still off: no repeat
  h.engine.OnCondition(0, DeviceCondition::kSensorOff, false, h.wall_ms, h.mono_ns, h.sink);
  EXPECT_EQ(h.sink.events.back().state, AlertState::kCleared);

  auto low = h.Feed(Metric::kBattery, 15, 1);
  ASSERT_EQ(low.size(), 1u);
  EXPECT_EQ(low[0].condition, DeviceCondition::kLowBattery);
  EXPECT_EQ(low[0].priority, Priority::kLow);
  EXPECT_TRUE(h.Feed(Metric::kBattery, 22, 2).empty());  // inside the 5 % band
  EXPECT_EQ(h.Feed(Metric::kBattery, 26, 3).size(), 1u);

  const std::size_t before = h.sink.events.size();
  for (int i = 0; i < 2; ++i) h.engine.OnDecodeError(0, h.wall_ms, h.mono_ns, h.sink);
  EXPECT_EQ(h.sink.events.size(), before);
  h.engine.OnDecodeError(0, h.wall_ms, h.mono_ns, h.sink);
  ASSERT_EQ(h.sink.events.size(), before + 1);
  EXPECT_EQ(h.sink.events.back().condition, DeviceCondition::kBadFrames);
  EXPECT_EQ(h.Tick(61).size(), 1u);  // a quiet minute clears it
}

TEST(ReloadTest, NewLimitsApplyAndOpenAlarmsAreNeitherRepeatedNorDropped) {
  EngineHarness h(Rules(Spo2Low()));
  ASSERT_EQ(h.Feed(Metric::kSpo2, 88, 0).size(), 1u);
  // Reload with the same rules: nothing changes, nothing is published.
  h.engine.SetRules(Rules(Spo2Low()), h.wall_ms, h.sink);
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 88, 1).empty());
  // Tighter limit from now on: 88 is now high priority.
  h.engine.SetRules(Rules(Only({{"thresholds", {{"spo2", {{"low", {{{"limit", 89}, {"priority", "high"}}}},
                                                          {"delay_s", 0}}}}}})),
                    h.wall_ms, h.sink);
  auto ev = h.Feed(Metric::kSpo2, 88, 2);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].priority, Priority::kHigh);
  // Rule switched off: the open alarm is cleared once.
  h.engine.SetRules(Rules(Only(json::object())), h.wall_ms, h.sink);
  EXPECT_EQ(h.sink.events.back().state, AlertState::kCleared);
  EXPECT_TRUE(h.Feed(Metric::kSpo2, 80, 3).empty());
}

TEST(DeterminismTest, SameReadingsGiveTheSameAlerts) {
  auto run = [] {
    EngineHarness h(Rules(json::object()));  // every default rule on
    for (int s = 0; s < 3600; s += 5) {
      const double p = s / 3600.0;
      h.Feed(Metric::kHeartRate, 76 + 52 * p, s);
      h.Feed(Metric::kRespRate, 15 + 13 * p, s);
      h.Feed(Metric::kSpo2, 97 - 6 * p, s);
      if (s % 60 == 0) {
        h.Feed(Metric::kBpSystolic, 124 - 38 * p, s);
        h.Feed(Metric::kTemperature, 37 + 2.4 * p, s);
      }
    }
    std::vector<std::string> out;
    for (const AlertEvent& e : h.sink.events) {
      out.push_back(std::string(Name(e.kind)) + "|" + std::string(Name(e.state)) + "|" +
                    std::string(Name(e.priority)) + "|" + std::to_string(e.ts_ms) + "|" + e.message);
    }
    return out;
  };
  const auto a = run();
  const auto b = run();
  EXPECT_GT(a.size(), 5u);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace vg
