// NEWS2 against the RCP 2017 chart: every band edge of every parameter, both SpO2 scales,
// risk bands, and the engine's events.
#include "vitalgate/engine/news2.h"

#include <gtest/gtest.h>

#include "unit/engine/engine_test_util.h"

namespace vg {
namespace {

using nlohmann::json;
using testing::EngineHarness;
using testing::Only;
using testing::Rules;

struct Band {
  double value;
  int score;
};

TEST(News2ChartTest, RespirationRateEdges) {
  for (const Band& b : {Band{0, 3}, Band{8, 3}, Band{9, 1}, Band{11, 1}, Band{12, 0}, Band{20, 0},
                        Band{21, 2}, Band{24, 2}, Band{25, 3}, Band{60, 3}}) {
    EXPECT_EQ(News2RespRate(b.value), b.score) << b.value;
  }
}

TEST(News2ChartTest, Spo2Scale1Edges) {
  for (const Band& b : {Band{70, 3}, Band{91, 3}, Band{92, 2}, Band{93, 2}, Band{94, 1},
                        Band{95, 1}, Band{96, 0}, Band{100, 0}}) {
    EXPECT_EQ(News2Spo2(b.value, 1, false), b.score) << b.value;
    EXPECT_EQ(News2Spo2(b.value, 1, true), b.score) << b.value << " on oxygen";
  }
}

TEST(News2ChartTest, Spo2Scale2EdgesOnAirAndOnOxygen) {
  // Below 93 the row is the same on air and oxygen.
  for (const Band& b : {Band{80, 3}, Band{83, 3}, Band{84, 2}, Band{85, 2}, Band{86, 1},
                        Band{87, 1}, Band{88, 0}, Band{92, 0}}) {
    EXPECT_EQ(News2Spo2(b.value, 2, false), b.score) << b.value;
    EXPECT_EQ(News2Spo2(b.value, 2, true), b.score) << b.value << " on oxygen";
  }
  // >= 93 on air scores 0; on oxygen 93-94 -> 1, 95-96 -> 2, >= 97 -> 3.
  for (double v : {93.0, 94.0, 95.0, 96.0, 97.0, 100.0}) EXPECT_EQ(News2Spo2(v, 2, false), 0) << v;
  for (const Band& b : {Band{93, 1}, Band{94, 1}, Band{95, 2}, Band{96, 2}, Band{97, 3},
                        Band{100, 3}}) {
    EXPECT_EQ(News2Spo2(b.value, 2, true), b.score) << b.value << " on oxygen";
  }
}

TEST(News2ChartTest, AirOrOxygenSystolicPulseConsciousness) {
  EXPECT_EQ(News2AirOrOxygen(false), 0);
  EXPECT_EQ(News2AirOrOxygen(true), 2);
  for (const Band& b : {Band{60, 3}, Band{90, 3}, Band{91, 2}, Band{100, 2}, Band{101, 1},
                        Band{110, 1}, Band{111, 0}, Band{219, 0}, Band{220, 3}}) {
    EXPECT_EQ(News2Systolic(b.value), b.score) << b.value;
  }
  for (const Band& b : {Band{30, 3}, Band{40, 3}, Band{41, 1}, Band{50, 1}, Band{51, 0},
                        Band{90, 0}, Band{91, 1}, Band{110, 1}, Band{111, 2}, Band{130, 2},
                        Band{131, 3}}) {
    EXPECT_EQ(News2Pulse(b.value), b.score) << b.value;
  }
  EXPECT_EQ(News2Consciousness(0), 0);
  for (int c = 1; c <= 4; ++c) EXPECT_EQ(News2Consciousness(c), 3) << c;
}

TEST(News2ChartTest, TemperatureEdgesInTenths) {
  for (const Band& b : {Band{34.0, 3}, Band{35.0, 3}, Band{35.1, 1}, Band{36.0, 1},
                        Band{36.1, 0}, Band{38.0, 0}, Band{38.1, 1}, Band{39.0, 1},
                        Band{39.1, 2}, Band{41.0, 2}}) {
    EXPECT_EQ(News2Temperature(b.value), b.score) << b.value;
  }
}

TEST(News2ChartTest, ValuesBetweenChartedUnitsRoundHalfUp) {
  EXPECT_EQ(News2RespRate(8.4), 3);
  EXPECT_EQ(News2RespRate(8.5), 1);    // charted as 9
  EXPECT_EQ(News2RespRate(20.5), 2);   // charted as 21
  EXPECT_EQ(News2Temperature(35.05), 1);  // 35.1, although 35.05 is 35.0499... in binary
  EXPECT_EQ(News2Temperature(35.04), 3);
  EXPECT_EQ(News2Temperature(38.05), 1);
  EXPECT_EQ(News2Spo2(95.5, 1, false), 0);
  EXPECT_EQ(News2Pulse(90.4), 0);
  EXPECT_EQ(News2Pulse(90.5), 1);
}

News2Input Normal() {
  News2Input in;
  in.resp_rate = 16;
  in.spo2 = 97;
  in.bp_systolic = 120;
  in.pulse = 70;
  in.temperature = 37.0;
  return in;
}

TEST(News2ChartTest, AggregateAndRiskBands) {
  News2Input in = Normal();
  News2Score s = ScoreNews2(in);
  EXPECT_EQ(s.total, 0);
  EXPECT_EQ(s.risk, News2Risk::kLow);

  in.resp_rate = 25;  // a single 3: low-medium although the aggregate is 3
  s = ScoreNews2(in);
  EXPECT_EQ(s.total, 3);
  EXPECT_EQ(s.risk, News2Risk::kLowMedium);

  in = Normal();
  in.pulse = 115;     // 2
  in.temperature = 38.5;  // 1
  s = ScoreNews2(in);
  EXPECT_EQ(s.total, 3);
  EXPECT_EQ(s.risk, News2Risk::kLow);  // 3 from several parameters is not a red score

  in.bp_systolic = 105;  // +1 -> 4
  EXPECT_EQ(ScoreNews2(in).risk, News2Risk::kLow);
  in.resp_rate = 22;  // +2 -> 6
  s = ScoreNews2(in);
  EXPECT_EQ(s.total, 6);
  EXPECT_EQ(s.risk, News2Risk::kMedium);
  in.on_oxygen = true;  // +2 -> 8
  s = ScoreNews2(in);
  EXPECT_EQ(s.total, 8);
  EXPECT_EQ(s.risk, News2Risk::kHigh);
  EXPECT_EQ(s.sub[2], 2);

  in = Normal();
  in.consciousness = 1;  // new confusion
  s = ScoreNews2(in);
  EXPECT_EQ(s.total, 3);
  EXPECT_EQ(s.risk, News2Risk::kLowMedium);
  EXPECT_EQ(s.sub[5], 3);

  in = Normal();
  in.resp_rate = 30;  // 3
  in.spo2 = 91;       // 3
  in.bp_systolic = 85;  // 3
  in.pulse = 135;     // 3
  in.temperature = 34.5;  // 3
  in.consciousness = 4;   // 3
  in.on_oxygen = true;    // 2
  s = ScoreNews2(in);
  EXPECT_EQ(s.total, 20);  // the chart's maximum
  EXPECT_EQ(s.risk, News2Risk::kHigh);
}

TEST(News2ChartTest, Scale2PatientOnAirWithTargetSaturationScoresZero) {
  News2Input in = Normal();
  in.scale = 2;
  in.spo2 = 89;
  EXPECT_EQ(ScoreNews2(in).total, 0);
  in.spo2 = 97;
  in.on_oxygen = true;
  const News2Score s = ScoreNews2(in);
  EXPECT_EQ(s.sub[1], 3);  // over-oxygenated on scale 2
  EXPECT_EQ(s.total, 5);   // plus 2 for oxygen
}

// --- The engine's NEWS2 events -------------------------------------------------------------

json News2Only(double settle_s = 0, double average_s = 0) {
  return Only({{"news2", {{"enabled", true}, {"settle_s", settle_s}, {"average_s", average_s}}}});
}

void FeedAll(EngineHarness& h, double t, double rr, double spo2, double sbp, double hr, double temp) {
  h.Feed(Metric::kRespRate, rr, t);
  h.Feed(Metric::kSpo2, spo2, t);
  h.Feed(Metric::kBpSystolic, sbp, t);
  h.Feed(Metric::kHeartRate, hr, t);
  h.Feed(Metric::kTemperature, temp, t);
}

TEST(News2EngineTest, NoScoreUntilAllFiveParametersAreMeasured) {
  EngineHarness h(Rules(News2Only()));
  h.Feed(Metric::kRespRate, 16, 0);
  h.Feed(Metric::kSpo2, 97, 0);
  h.Feed(Metric::kBpSystolic, 120, 0);
  h.Feed(Metric::kHeartRate, 70, 0);
  EXPECT_TRUE(h.sink.Of(AlertKind::kNews2).empty());
  h.Feed(Metric::kTemperature, 37, 0);
  auto ev = h.sink.Of(AlertKind::kNews2);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].news2->score, 0);
  EXPECT_EQ(ev[0].news2->risk, "low");
  EXPECT_EQ(ev[0].state, AlertState::kCleared);  // low risk is a score update, not an alarm
}

TEST(News2EngineTest, PulseRateStandsInForHeartRate) {
  EngineHarness h(Rules(News2Only()));
  h.Feed(Metric::kRespRate, 16, 0);
  h.Feed(Metric::kSpo2, 97, 0);
  h.Feed(Metric::kBpSystolic, 120, 0);
  h.Feed(Metric::kTemperature, 37, 0);
  h.Feed(Metric::kPulseRate, 135, 0);
  auto ev = h.sink.Of(AlertKind::kNews2);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].news2->sub[4], 3);
}

TEST(News2EngineTest, OneEventPerScoreChangeAndAlarmFromLowMedium) {
  EngineHarness h(Rules(News2Only()));
  FeedAll(h, 0, 16, 97, 120, 70, 37);
  h.Feed(Metric::kRespRate, 17, 1);  // same score: nothing
  EXPECT_EQ(h.sink.Of(AlertKind::kNews2).size(), 1u);
  h.Feed(Metric::kRespRate, 25, 2);  // 3 -> low-medium: an alarm
  auto ev = h.sink.Of(AlertKind::kNews2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].news2->score, 3);
  EXPECT_EQ(ev[1].news2->risk, "low-medium");
  EXPECT_EQ(ev[1].state, AlertState::kActive);
  EXPECT_EQ(ev[1].priority, Priority::kMedium);
  h.Feed(Metric::kHeartRate, 115, 3);  // 5: medium risk, same alarm
  h.Feed(Metric::kOnOxygen, 1, 4);     // 7: high
  ev = h.sink.Of(AlertKind::kNews2);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[2].news2->score, 5);
  EXPECT_EQ(ev[2].news2->risk, "medium");
  EXPECT_EQ(ev[3].news2->score, 7);
  EXPECT_EQ(ev[3].priority, Priority::kHigh);
  EXPECT_EQ(ev[3].alarm_id, ev[1].alarm_id);
  h.Feed(Metric::kOnOxygen, 0, 5);
  h.Feed(Metric::kHeartRate, 70, 5);
  h.Feed(Metric::kRespRate, 16, 5);  // back to 0: cleared
  ev = h.sink.Of(AlertKind::kNews2);
  EXPECT_EQ(ev.back().state, AlertState::kCleared);
  EXPECT_EQ(ev.back().news2->score, 0);
  EXPECT_EQ(ev.back().alarm_id, ev[1].alarm_id);
}

TEST(News2EngineTest, StaleParameterStopsTheScore) {
  EngineHarness h(Rules(News2Only()));
  FeedAll(h, 0, 16, 97, 120, 70, 37);
  // Blood pressure is not measured again; 15 minutes later the score is no longer computable.
  h.Feed(Metric::kRespRate, 16, 900);
  EXPECT_EQ(h.sink.Of(AlertKind::kNews2).size(), 1u);
  h.Feed(Metric::kRespRate, 16, 901);
  auto ev = h.sink.Of(AlertKind::kNews2);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_FALSE(ev[1].news2.has_value());
  EXPECT_EQ(ev[1].state, AlertState::kCleared);
  EXPECT_NE(ev[1].message.find("bp_systolic"), std::string::npos) << ev[1].message;
  FeedAll(h, 902, 16, 97, 120, 70, 37);  // measured again: a new score event
  EXPECT_EQ(h.sink.Of(AlertKind::kNews2).size(), 3u);
  EXPECT_EQ(h.sink.Of(AlertKind::kNews2).back().news2->score, 0);
}

TEST(News2EngineTest, ConsciousnessAndOxygenDefaultsAndScale2) {
  EngineHarness h(Rules(News2Only()), 1);
  FeedAll(h, 0, 16, 90, 120, 70, 37);  // scale 1: spo2 90 scores 3
  EXPECT_EQ(h.sink.Of(AlertKind::kNews2).back().news2->score, 3);
  EngineHarness h2(Rules(News2Only(), json::object(), /*scale=*/2));
  FeedAll(h2, 0, 16, 90, 120, 70, 37);  // scale 2: 88-92 scores 0
  EXPECT_EQ(h2.sink.Of(AlertKind::kNews2).back().news2->score, 0);
  h2.Feed(Metric::kConsciousness, 2, 1);  // V
  EXPECT_EQ(h2.sink.Of(AlertKind::kNews2).back().news2->score, 3);
}

TEST(News2EngineTest, NoiseAcrossABandEdgeDoesNotFlapTheScore) {
  EngineHarness h(Rules(News2Only(/*settle_s=*/30, /*average_s=*/60)));
  FeedAll(h, 0, 16, 97, 120, 70, 37);
  ASSERT_EQ(h.sink.Of(AlertKind::kNews2).size(), 1u);
  // SpO2 alternates 95/96 every second for five minutes: the mean stays near 95.5 and the
  // score must not toggle with every reading.
  for (int s = 1; s <= 300; ++s) h.Feed(Metric::kSpo2, s % 2 ? 95 : 96, s);
  EXPECT_LE(h.sink.Of(AlertKind::kNews2).size(), 2u);
  // A real, lasting change is published once it has held for settle_s.
  const std::size_t before = h.sink.Of(AlertKind::kNews2).size();
  for (int s = 301; s <= 420; ++s) h.Feed(Metric::kSpo2, 91, s);
  auto ev = h.sink.Of(AlertKind::kNews2);
  ASSERT_EQ(ev.size(), before + 1);
  EXPECT_EQ(ev.back().news2->score, 3);
}

}  // namespace
}  // namespace vg
