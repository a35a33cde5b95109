#include "codes.h"

#include <array>
#include <string>

namespace vg::hl7 {
namespace {

constexpr std::string_view kMdc = "MDC";
constexpr std::string_view kUcum = "UCUM";

// VMD types with an MDC code seen in published PCD-01 device interfaces (docs/hl7.md).
constexpr Placement kSaturation{1, 0, 69642, "MDC_DEV_ANALY_SAT_O2_VMD"};
constexpr Placement kEcg{2, 0, 69798, "MDC_DEV_ECG_VMD"};
constexpr Placement kPressure{3, 0, 69854, "MDC_DEV_METER_PRESS_BLD_VMD"};
constexpr Placement kTemperature{4, 0, 69902, "MDC_DEV_METER_TEMP_VMD"};

constexpr Placement With(Placement p, int metric) {
  p.metric = metric;
  return p;
}

}  // namespace

Coded ObservationCode(Metric metric) {
  const MetricInfo& info = Info(metric);
  if (info.mdc_code != 0) {
    // The code text is the reference id; MDC codes are numbers, kept as static strings here.
    static const auto codes = [] {
      std::array<std::string, kMetricCount> c;
      for (const MetricInfo& m : AllMetrics()) {
        c[static_cast<std::size_t>(m.metric)] = std::to_string(m.mdc_code);
      }
      return c;
    }();
    Coded c{codes[static_cast<std::size_t>(metric)], info.mdc, kMdc};
    if (!info.loinc.empty()) {
      c.alt_code = info.loinc;
      c.alt_text = info.loinc_display;
      c.alt_system = "LN";
    }
    return c;
  }
  switch (metric) {
    case Metric::kConsciousness:
      // LOINC's level of responsiveness (AVPU) with the SNOMED CT ACVPU concept NEWS2 charts use.
      return {info.loinc, info.loinc_display, "LN", "1104441000000107", "ACVPU", "SCT"};
    case Metric::kBattery:
      // A device attribute in IEEE 11073-10101, written under the device's MDS.
      return {"67996", "MDC_ATTR_VAL_BATT_CHARGE", kMdc};
    case Metric::kOnOxygen:
      return {"on_oxygen", "Receiving supplemental oxygen", kLocalCodingSystem};
    default:
      return {info.name, info.display, kLocalCodingSystem};
  }
}

std::optional<Coded> UnitCode(Metric metric) {
  switch (metric) {
    case Metric::kHeartRate:
    case Metric::kPulseRate:
      return Coded{"264864", "MDC_DIM_BEAT_PER_MIN", kMdc, "/min", "/min", kUcum};
    case Metric::kRespRate:
      return Coded{"264928", "MDC_DIM_RESP_PER_MIN", kMdc, "/min", "/min", kUcum};
    case Metric::kSpo2:
    case Metric::kPerfusionIndex:
    case Metric::kBattery:
      return Coded{"262688", "MDC_DIM_PERCENT", kMdc, "%", "%", kUcum};
    case Metric::kTemperature:
      return Coded{"268192", "MDC_DIM_DEGC", kMdc, "Cel", "Cel", kUcum};
    case Metric::kBpSystolic:
    case Metric::kBpDiastolic:
    case Metric::kBpMean:
      return Coded{"266016", "MDC_DIM_MMHG", kMdc, "mm[Hg]", "mm[Hg]", kUcum};
    case Metric::kGlucose:
      return Coded{"264274", "MDC_DIM_MILLI_G_PER_DL", kMdc, "mg/dL", "mg/dL", kUcum};
    case Metric::kWeight:
      return Coded{"263875", "MDC_DIM_KILO_G", kMdc, "kg", "kg", kUcum};
    case Metric::kConsciousness:
    case Metric::kOnOxygen:
      return std::nullopt;
  }
  return std::nullopt;
}

Placement PlacementOf(Metric metric) {
  switch (metric) {
    case Metric::kSpo2: return With(kSaturation, 1);
    case Metric::kPulseRate: return With(kSaturation, 2);
    case Metric::kPerfusionIndex: return With(kSaturation, 3);
    case Metric::kHeartRate: return With(kEcg, 1);
    case Metric::kBpSystolic: return With(kPressure, 1);
    case Metric::kBpDiastolic: return With(kPressure, 2);
    case Metric::kBpMean: return With(kPressure, 3);
    case Metric::kTemperature: return With(kTemperature, 1);
    case Metric::kRespRate: return {5, 1, 0, {}};
    case Metric::kGlucose: return {6, 1, 0, {}};
    case Metric::kWeight: return {7, 1, 0, {}};
    case Metric::kConsciousness: return {8, 1, 0, {}};
    case Metric::kOnOxygen: return {8, 2, 0, {}};
    case Metric::kBattery: return {0, 1, 0, {}};
  }
  return {9, 1, 0, {}};
}

std::string_view ConditionText(std::string_view condition) {
  struct Entry {
    std::string_view name, text;
  };
  static constexpr Entry kTexts[] = {
      {"disconnected", "Device disconnected"},
      {"sensor_off", "Sensor off"},
      {"out_of_track", "Searching, no usable signal"},
      {"low_perfusion", "Low perfusion"},
      {"low_battery", "Low battery"},
      {"bad_frames", "Corrupt data from device"},
      {"no_data", "No data from device"},
      {"readings_dropped", "Readings dropped by the gateway"},
      {"storage", "Gateway storage failure"},
      {"clock", "Device clock implausible"},
      {"certificate", "Certificate expiring or rejected"},
      {"unassigned", "Device without patient"},
      {"destination", "Delivery to a destination failing"},
  };
  for (const Entry& e : kTexts) {
    if (e.name == condition) return e.text;
  }
  return condition;
}

}  // namespace vg::hl7
