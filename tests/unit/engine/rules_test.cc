#include "vitalgate/engine/rules.h"

#include <gtest/gtest.h>

namespace vg {
namespace {

using nlohmann::json;

std::string Error(const json& global) {
  auto r = CompileRules(global, {});
  return r.ok() ? "(valid)" : r.status().message();
}

TEST(RulesTest, DefaultsCompileAndAreDocumentedAdultValues) {
  auto r = CompileRules(json::object(), {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  const PatientRules& d = (*r)->defaults();
  const ThresholdRule& spo2 = d.thresholds[static_cast<std::size_t>(Metric::kSpo2)];
  ASSERT_EQ(spo2.low.size(), 2u);
  EXPECT_EQ(spo2.low[0].limit, 90);
  EXPECT_EQ(spo2.low[1].limit, 85);
  EXPECT_EQ(spo2.delay_ms, 15000);
  EXPECT_TRUE(d.news2.enabled);
  EXPECT_EQ(d.news2.stale_ms, 900000);
  EXPECT_EQ(d.technical.no_data_ms, 60000);
  EXPECT_EQ(d.trends.size(), 3u);
}

TEST(RulesTest, InvalidRulesNameTheKey) {
  EXPECT_NE(Error({{"thresholds", {{"pulse", json::object()}}}}).find("rules.thresholds.pulse: unknown metric"),
            std::string::npos);
  EXPECT_NE(Error({{"thresholds", {{"spo2", {{"low", {{{"limit", 90}, {"priority", "urgent"}}}}}}}}})
                .find("rules.thresholds.spo2.low[0].priority"),
            std::string::npos);
  EXPECT_NE(Error({{"thresholds", {{"heart_rate", {{"low", {{{"limit", 130}, {"priority", "high"}}}},
                                                   {"high", {{{"limit", 120}, {"priority", "high"}}}}}}}}})
                .find("low limits must be below high limits"),
            std::string::npos);
  EXPECT_NE(Error({{"thresholds", {{"consciousness", {{"low", json::array()}}}}}}).find("numeric"),
            std::string::npos);
  EXPECT_NE(Error({{"trends", {{"x", {{"metric", "spo2"}, {"direction", "down"}, {"change", 3},
                                      {"window_s", 600}}}}}})
                .find("rules.trends.x.direction"),
            std::string::npos);
  EXPECT_NE(Error({{"technical", {{"priority", {{"cosmic_rays", "high"}}}}}}).find("unknown technical"),
            std::string::npos);
  EXPECT_NE(Error({{"news2", {{"priority", {{"extreme", "high"}}}}}}).find("unknown risk band"),
            std::string::npos);
  EXPECT_NE(Error({{"thresholds", {{"spo2", {{"low", {{{"limit", 90}, {"priority", "high"}},
                                                      {{"limit", 85}, {"priority", "low"}}}}}}}}})
                .find("lower priority"),
            std::string::npos);
}

TEST(RulesTest, MergePatchReplacesArraysAndMergesObjects) {
  const json target = {{"a", {{"b", 1}, {"c", {1, 2}}}}, {"d", 4}};
  const json patch = {{"a", {{"c", {3}}}}, {"d", nullptr}};
  const json out = MergePatch(target, patch);
  EXPECT_EQ(out["a"]["b"], 1);
  EXPECT_EQ(out["a"]["c"], json({3}));
  EXPECT_TRUE(out["d"].is_null());
}

}  // namespace
}  // namespace vg
