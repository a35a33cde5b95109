// The metric catalogue: canonical names, UCUM units, LOINC and IEEE 11073-10101 codes, plausible
// ranges and unit conversions for every vital sign vitalgate understands.
//
// The catalogue is immutable static data; every function here is pure and thread-safe.
// Codes are checked against their standards in docs/metrics.md.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace vg {

enum class Metric : std::uint8_t {
  kHeartRate,
  kPulseRate,
  kSpo2,
  kRespRate,
  kTemperature,
  kBpSystolic,
  kBpDiastolic,
  kBpMean,
  kGlucose,
  kWeight,
  kPerfusionIndex,
  kConsciousness,
  kOnOxygen,
  kBattery,
};
inline constexpr std::size_t kMetricCount = 14;

// How a metric's value is represented. Readings carry a double; letters and booleans are
// encoded as small integers so that Reading stays a trivially copyable value.
enum class ValueType : std::uint8_t {
  kNumber,  // a measured quantity in the canonical unit
  kAcvpu,   // consciousness: 0=A, 1=C, 2=V, 3=P, 4=U
  kBool,    // 0 = false, 1 = true
};

struct MetricInfo {
  Metric metric;
  std::string_view name;         // canonical name, e.g. "heart_rate"
  std::string_view unit;         // canonical UCUM unit, e.g. "/min"; empty when unitless
  std::string_view display;      // short human label, e.g. "HR"
  std::string_view loinc;        // LOINC code, empty when none
  std::string_view loinc_display;
  std::string_view mdc;          // IEEE 11073-10101 reference id, empty when none
  std::uint32_t mdc_code;        // its context-free numeric code, 0 when none
  ValueType type;
  double plausible_min;          // inclusive plausible range in the canonical unit
  double plausible_max;
};

const MetricInfo& Info(Metric m);
std::span<const MetricInfo> AllMetrics();
std::optional<Metric> MetricFromName(std::string_view name);

// Converts `value` given in `unit` to the metric's canonical unit. Accepts the UCUM code of the
// canonical unit, UCUM codes of common alternatives (e.g. [degF], kPa, [lb_av], mmol/L for
// glucose) and a few widespread spellings (bpm, mmHg, lb). Returns nullopt for an unknown unit.
std::optional<double> ToCanonical(Metric m, std::string_view unit, double value);

// True when `value` (canonical unit) is a possible reading of the metric: inside its plausible
// range and of its value type (an integer code for ACVPU, 0/1 for booleans). NaN is never valid.
bool IsPlausible(Metric m, double value);

// ACVPU letters <-> encoded values.
std::optional<double> AcvpuFromLetter(std::string_view letter);
char AcvpuLetter(double encoded);

}  // namespace vg
