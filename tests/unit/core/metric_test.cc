#include "vitalgate/core/metric.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace vg {
namespace {

TEST(MetricCatalogueTest, EveryMetricHasUniqueNameAndIndexMatchesEnum) {
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < AllMetrics().size(); ++i) {
    const MetricInfo& m = AllMetrics()[i];
    EXPECT_EQ(static_cast<std::size_t>(m.metric), i);
    EXPECT_TRUE(names.insert(m.name).second) << m.name;
    EXPECT_EQ(MetricFromName(m.name), m.metric);
    EXPECT_LE(m.plausible_min, m.plausible_max);
  }
  EXPECT_EQ(AllMetrics().size(), kMetricCount);
}

// Codes as published: LOINC (loinc.org) and IEEE 11073-10101 context-free codes
// (partition 2 * 65536 + term code). See docs/metrics.md for the sources.
TEST(MetricCatalogueTest, CodesMatchTheStandards) {
  struct Expected {
    Metric m;
    const char* unit;
    const char* loinc;
    const char* mdc;
    std::uint32_t code;
  };
  const Expected table[] = {
      {Metric::kHeartRate, "/min", "8867-4", "MDC_ECG_HEART_RATE", 147842},
      {Metric::kPulseRate, "/min", "8889-8", "MDC_PULS_OXIM_PULS_RATE", 149530},
      {Metric::kSpo2, "%", "59408-5", "MDC_PULS_OXIM_SAT_O2", 150456},
      {Metric::kRespRate, "/min", "9279-1", "MDC_RESP_RATE", 151562},
      {Metric::kTemperature, "Cel", "8310-5", "MDC_TEMP_BODY", 150364},
      {Metric::kBpSystolic, "mm[Hg]", "8480-6", "MDC_PRESS_BLD_NONINV_SYS", 150021},
      {Metric::kBpDiastolic, "mm[Hg]", "8462-4", "MDC_PRESS_BLD_NONINV_DIA", 150022},
      {Metric::kBpMean, "mm[Hg]", "8478-0", "MDC_PRESS_BLD_NONINV_MEAN", 150023},
      {Metric::kGlucose, "mg/dL", "2339-0", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", 160184},
      {Metric::kWeight, "kg", "29463-7", "MDC_MASS_BODY_ACTUAL", 188736},
      {Metric::kPerfusionIndex, "%", "61006-3", "MDC_PULS_OXIM_PERF_REL", 150448},
      {Metric::kConsciousness, "", "67775-7", "", 0},
  };
  for (const Expected& e : table) {
    const MetricInfo& info = Info(e.m);
    EXPECT_EQ(info.unit, e.unit) << info.name;
    EXPECT_EQ(info.loinc, e.loinc) << info.name;
    EXPECT_EQ(info.mdc, e.mdc) << info.name;
    EXPECT_EQ(info.mdc_code, e.code) << info.name;
  }
}

TEST(MetricCatalogueTest, ConvertsToCanonicalUnits) {
  EXPECT_DOUBLE_EQ(*ToCanonical(Metric::kTemperature, "[degF]", 98.6), 37.0);
  EXPECT_DOUBLE_EQ(*ToCanonical(Metric::kTemperature, "[degF]", 100.4), 38.0);
  EXPECT_NEAR(*ToCanonical(Metric::kBpSystolic, "kPa", 16.0), 120.01, 0.01);
  EXPECT_NEAR(*ToCanonical(Metric::kWeight, "[lb_av]", 150.0), 68.0389, 1e-4);
  EXPECT_NEAR(*ToCanonical(Metric::kGlucose, "mmol/L", 5.5), 99.088, 1e-3);
  EXPECT_DOUBLE_EQ(*ToCanonical(Metric::kHeartRate, "/min", 72), 72);
  EXPECT_DOUBLE_EQ(*ToCanonical(Metric::kHeartRate, "bpm", 72), 72);
  EXPECT_FALSE(ToCanonical(Metric::kSpo2, "mmHg", 97).has_value());
  EXPECT_FALSE(ToCanonical(Metric::kTemperature, "K", 310).has_value());
}

TEST(MetricCatalogueTest, PlausibleRangesRejectArtifactsAndNaN) {
  EXPECT_TRUE(IsPlausible(Metric::kHeartRate, 0));
  EXPECT_TRUE(IsPlausible(Metric::kHeartRate, 350));
  EXPECT_FALSE(IsPlausible(Metric::kHeartRate, 351));
  EXPECT_FALSE(IsPlausible(Metric::kHeartRate, -1));
  EXPECT_TRUE(IsPlausible(Metric::kSpo2, 100));
  EXPECT_FALSE(IsPlausible(Metric::kSpo2, 100.5));
  EXPECT_FALSE(IsPlausible(Metric::kSpo2, std::nan("")));
  EXPECT_FALSE(IsPlausible(Metric::kSpo2, INFINITY));
  EXPECT_FALSE(IsPlausible(Metric::kTemperature, 98.6));  // Fahrenheit sent as Celsius
  EXPECT_FALSE(IsPlausible(Metric::kConsciousness, 1.5));
  EXPECT_FALSE(IsPlausible(Metric::kConsciousness, 5));
  EXPECT_TRUE(IsPlausible(Metric::kOnOxygen, 1));
  EXPECT_FALSE(IsPlausible(Metric::kOnOxygen, 2));
}

TEST(MetricCatalogueTest, AcvpuLetters) {
  EXPECT_EQ(AcvpuFromLetter("A"), 0);
  EXPECT_EQ(AcvpuFromLetter("C"), 1);
  EXPECT_EQ(AcvpuFromLetter("U"), 4);
  EXPECT_FALSE(AcvpuFromLetter("a").has_value());
  EXPECT_FALSE(AcvpuFromLetter("AV").has_value());
  EXPECT_EQ(AcvpuLetter(3), 'P');
}

}  // namespace
}  // namespace vg
