#include "vitalgate/core/metric.h"

#include <array>
#include <cmath>

namespace vg {
namespace {

// Plausible ranges are deliberately wide: they reject values no human body and no working sensor
// can produce (artifact, corrupt frames, wrong units), not abnormal ones. Sources in
// docs/rules.md.
constexpr std::array<MetricInfo, kMetricCount> kCatalogue{{
    {Metric::kHeartRate, "heart_rate", "/min", "HR", "8867-4", "Heart rate",
     "MDC_ECG_HEART_RATE", 147842, ValueType::kNumber, 0, 350},
    {Metric::kPulseRate, "pulse_rate", "/min", "PR", "8889-8", "Heart rate by Pulse oximetry",
     "MDC_PULS_OXIM_PULS_RATE", 149530, ValueType::kNumber, 0, 350},
    {Metric::kSpo2, "spo2", "%", "SpO2", "59408-5",
     "Oxygen saturation in Arterial blood by Pulse oximetry", "MDC_PULS_OXIM_SAT_O2", 150456,
     ValueType::kNumber, 0, 100},
    {Metric::kRespRate, "resp_rate", "/min", "RR", "9279-1", "Respiratory rate", "MDC_RESP_RATE",
     151562, ValueType::kNumber, 0, 150},
    {Metric::kTemperature, "temperature", "Cel", "Temp", "8310-5", "Body temperature",
     "MDC_TEMP_BODY", 150364, ValueType::kNumber, 25, 45},
    {Metric::kBpSystolic, "bp_systolic", "mm[Hg]", "SBP", "8480-6", "Systolic blood pressure",
     "MDC_PRESS_BLD_NONINV_SYS", 150021, ValueType::kNumber, 0, 300},
    {Metric::kBpDiastolic, "bp_diastolic", "mm[Hg]", "DBP", "8462-4", "Diastolic blood pressure",
     "MDC_PRESS_BLD_NONINV_DIA", 150022, ValueType::kNumber, 0, 300},
    {Metric::kBpMean, "bp_mean", "mm[Hg]", "MAP", "8478-0", "Mean blood pressure",
     "MDC_PRESS_BLD_NONINV_MEAN", 150023, ValueType::kNumber, 0, 300},
    {Metric::kGlucose, "glucose", "mg/dL", "Glu", "2339-0", "Glucose [Mass/volume] in Blood",
     "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", 160184, ValueType::kNumber, 5, 2000},
    {Metric::kWeight, "weight", "kg", "Wt", "29463-7", "Body weight", "MDC_MASS_BODY_ACTUAL",
     188736, ValueType::kNumber, 0.2, 650},
    {Metric::kPerfusionIndex, "perfusion_index", "%", "PI", "61006-3",
     "Perfusion index Tissue by Pulse oximetry", "MDC_PULS_OXIM_PERF_REL", 150448,
     ValueType::kNumber, 0, 20},
    {Metric::kConsciousness, "consciousness", "", "ACVPU", "67775-7", "Level of responsiveness",
     "", 0, ValueType::kAcvpu, 0, 4},
    {Metric::kOnOxygen, "on_oxygen", "", "O2", "", "", "", 0, ValueType::kBool, 0, 1},
    {Metric::kBattery, "battery", "%", "Batt", "", "", "", 0, ValueType::kNumber, 0, 100},
}};

struct UnitAlias {
  Metric metric;
  std::string_view unit;
  double scale;
  double offset;  // canonical = value * scale + offset
};

// Glucose: 1 mmol/L = 18.016 mg/dL (molar mass of glucose 180.16 g/mol).
constexpr std::array<UnitAlias, 27> kUnitAliases{{
    {Metric::kHeartRate, "{beats}/min", 1, 0},
    {Metric::kHeartRate, "bpm", 1, 0},
    {Metric::kPulseRate, "{beats}/min", 1, 0},
    {Metric::kPulseRate, "bpm", 1, 0},
    {Metric::kRespRate, "{breaths}/min", 1, 0},
    {Metric::kRespRate, "brpm", 1, 0},
    {Metric::kTemperature, "[degF]", 5.0 / 9.0, -32.0 * 5.0 / 9.0},
    {Metric::kTemperature, "degF", 5.0 / 9.0, -32.0 * 5.0 / 9.0},
    {Metric::kTemperature, "Cel", 1, 0},
    {Metric::kTemperature, "degC", 1, 0},
    {Metric::kBpSystolic, "mmHg", 1, 0},
    {Metric::kBpSystolic, "kPa", 7.50061683, 0},
    {Metric::kBpDiastolic, "mmHg", 1, 0},
    {Metric::kBpDiastolic, "kPa", 7.50061683, 0},
    {Metric::kBpMean, "mmHg", 1, 0},
    {Metric::kBpMean, "kPa", 7.50061683, 0},
    {Metric::kGlucose, "mmol/L", 18.016, 0},
    {Metric::kGlucose, "mg/dl", 1, 0},
    {Metric::kWeight, "[lb_av]", 0.45359237, 0},
    {Metric::kWeight, "lb", 0.45359237, 0},
    {Metric::kWeight, "g", 0.001, 0},
    {Metric::kSpo2, "%{SpO2}", 1, 0},
    {Metric::kPerfusionIndex, "%{PI}", 1, 0},
    {Metric::kBattery, "%{battery}", 1, 0},
    {Metric::kConsciousness, "{ACVPU}", 1, 0},
    {Metric::kOnOxygen, "{bool}", 1, 0},
    {Metric::kHeartRate, "1/min", 1, 0},
}};

}  // namespace

const MetricInfo& Info(Metric m) { return kCatalogue[static_cast<std::size_t>(m)]; }

std::span<const MetricInfo> AllMetrics() { return kCatalogue; }

std::optional<Metric> MetricFromName(std::string_view name) {
  for (const MetricInfo& info : kCatalogue) {
    if (info.name == name) return info.metric;
  }
  return std::nullopt;
}

std::optional<double> ToCanonical(Metric m, std::string_view unit, double value) {
  if (unit == Info(m).unit) return value;
  for (const UnitAlias& alias : kUnitAliases) {
    if (alias.metric == m && alias.unit == unit) {
      if (alias.scale == 1 && alias.offset == 0) return value;
      // Round away binary noise of the conversion (100.4 [degF] -> 38, not 38.00000000000001);
      // 1e-6 of the canonical unit is far below any device's resolution.
      return std::round((value * alias.scale + alias.offset) * 1e6) / 1e6;
    }
  }
  return std::nullopt;
}

bool IsPlausible(Metric m, double value) {
  const MetricInfo& info = Info(m);
  if (!std::isfinite(value)) return false;
  if (value < info.plausible_min || value > info.plausible_max) return false;
  if (info.type != ValueType::kNumber && value != std::floor(value)) return false;
  return true;
}

std::optional<double> AcvpuFromLetter(std::string_view letter) {
  static constexpr std::string_view kLetters = "ACVPU";
  if (letter.size() != 1) return std::nullopt;
  const std::size_t pos = kLetters.find(letter[0]);
  if (pos == std::string_view::npos) return std::nullopt;
  return static_cast<double>(pos);
}

char AcvpuLetter(double encoded) {
  static constexpr std::string_view kLetters = "ACVPU";
  // Compared as a double first: converting one out of long's range is undefined.
  if (!(encoded >= 0 && encoded < static_cast<double>(kLetters.size()))) return '?';
  return kLetters[static_cast<std::size_t>(encoded)];
}

}  // namespace vg
