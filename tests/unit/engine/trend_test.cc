#include "vitalgate/engine/trend.h"

#include <gtest/gtest.h>

#include "unit/engine/engine_test_util.h"

namespace vg {
namespace {

using nlohmann::json;
using testing::EngineHarness;
using testing::Only;
using testing::Rules;

TEST(TrendWindowTest, SlopeOfALineIsExact) {
  TrendWindow w(600'000);
  const std::int64_t t0 = testing::kT0;
  for (int s = 0; s < 600; s += 5) w.Add(t0 + s * 1000, 97.0 - 0.005 * s);  // -3 per 600 s
  const auto fit = w.Compute();
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->slope_per_ms * 600'000, -3.0, 1e-9);
  EXPECT_EQ(fit->samples, 120);
  EXPECT_EQ(fit->span_ms, 595'000);
}

TEST(TrendWindowTest, OldSamplesLeaveTheWindow) {
  TrendWindow w(100'000);
  // A steep fall long ago, then flat: the slope forgets the fall.
  for (int s = 0; s < 100; ++s) w.Add(s * 1000, 100.0 - s);
  for (int s = 300; s < 400; ++s) w.Add(s * 1000, 50.0);
  const auto fit = w.Compute();
  ASSERT_TRUE(fit);
  EXPECT_NEAR(fit->slope_per_ms, 0.0, 1e-12);
}

TEST(TrendWindowTest, PrecisionHoldsAtRealTimeStamps) {
  TrendWindow w(900'000);
  const std::int64_t t0 = 4'102'444'800'000;  // year 2100
  for (int s = 0; s < 900; ++s) w.Add(t0 + s * 1000, 70.0 + s * (20.0 / 900.0));
  EXPECT_NEAR(w.Compute()->slope_per_ms * 900'000, 20.0, 1e-6);
}

json Spo2Falling() {
  return Only({{"trends", {{"spo2_falling", {{"metric", "spo2"}, {"direction", "falling"},
                                             {"change", 3}, {"window_s", 600},
                                             {"priority", "medium"}}}}}});
}

TEST(TrendRuleTest, RaisesOnASustainedFallAndClearsWhenItEases) {
  EngineHarness h(Rules(Spo2Falling()));
  for (int s = 0; s <= 600; s += 10) h.Feed(Metric::kSpo2, 98.0 - 0.006 * s, s);  // -3.6 / 10 min
  auto trends = h.sink.Of(AlertKind::kTrend);
  ASSERT_EQ(trends.size(), 1u);
  EXPECT_EQ(trends[0].state, AlertState::kActive);
  EXPECT_EQ(trends[0].metric, Metric::kSpo2);
  EXPECT_LE(*trends[0].value, -3.0);
  EXPECT_EQ(*trends[0].limit, -3.0);
  EXPECT_NE(trends[0].message.find("SpO2 falling"), std::string::npos) << trends[0].message;
  // It stops falling: once the change over the window is below half the limit it clears.
  for (int s = 610; s <= 1500; s += 10) h.Feed(Metric::kSpo2, 94.4, s);
  trends = h.sink.Of(AlertKind::kTrend);
  ASSERT_EQ(trends.size(), 2u);
  EXPECT_EQ(trends[1].state, AlertState::kCleared);
}

TEST(TrendRuleTest, TwoCloseReadingsNeverExtrapolateToAnAlarm) {
  EngineHarness h(Rules(Spo2Falling()));
  h.Feed(Metric::kSpo2, 99, 0);
  h.Feed(Metric::kSpo2, 97, 1);
  h.Feed(Metric::kSpo2, 95, 2);  // -2 per second, but spanning 2 s of a 600 s window
  EXPECT_TRUE(h.sink.Of(AlertKind::kTrend).empty());
}

TEST(TrendRuleTest, RisingDirectionAndNoiseWithoutTrend) {
  EngineHarness h(Rules(Only({{"trends", {{"hr_up", {{"metric", "heart_rate"}, {"direction", "rising"},
                                                     {"change", 20}, {"window_s", 900}}}}}})));
  for (int s = 0; s <= 900; s += 5) h.Feed(Metric::kHeartRate, 75 + ((s / 5) % 2 ? 4 : -4), s);
  EXPECT_TRUE(h.sink.Of(AlertKind::kTrend).empty());
  for (int s = 905; s <= 1800; s += 5) h.Feed(Metric::kHeartRate, 75 + (s - 900) * (30.0 / 900), s);
  ASSERT_EQ(h.sink.Of(AlertKind::kTrend).size(), 1u);
  EXPECT_EQ(h.sink.Of(AlertKind::kTrend)[0].priority, Priority::kMedium);
}

}  // namespace
}  // namespace vg
