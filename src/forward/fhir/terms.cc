#include "terms.h"

#include <array>

namespace vg::fhir {
namespace {

constexpr std::string_view kHeartRateProfile = "http://hl7.org/fhir/StructureDefinition/heartrate";
constexpr std::string_view kOxygenSatProfile = "http://hl7.org/fhir/StructureDefinition/oxygensat";
constexpr std::string_view kRespRateProfile = "http://hl7.org/fhir/StructureDefinition/resprate";
constexpr std::string_view kBodyTempProfile = "http://hl7.org/fhir/StructureDefinition/bodytemp";
constexpr std::string_view kBodyWeightProfile = "http://hl7.org/fhir/StructureDefinition/bodyweight";

// Indexed by Metric.
constexpr std::array<MetricTerms, kMetricCount> kTerms{{
    {kHeartRateProfile, "", "", "147842", "MDC_ECG_HEART_RATE", "vital-signs", "Heart rate"},
    {kHeartRateProfile, "8867-4", "Heart rate", "149530", "MDC_PULS_OXIM_PULS_RATE", "vital-signs",
     "Pulse rate (pulse oximetry)"},
    {kOxygenSatProfile, "2708-6", "Oxygen saturation in Arterial blood", "150456",
     "MDC_PULS_OXIM_SAT_O2", "vital-signs", "SpO2"},
    {kRespRateProfile, "", "", "151562", "MDC_RESP_RATE", "vital-signs", "Respiratory rate"},
    {kBodyTempProfile, "", "", "150364", "MDC_TEMP_BODY", "vital-signs", "Body temperature"},
    {"", "", "", "150021", "MDC_PRESS_BLD_NONINV_SYS", "vital-signs", "Systolic blood pressure"},
    {"", "", "", "150022", "MDC_PRESS_BLD_NONINV_DIA", "vital-signs", "Diastolic blood pressure"},
    {"", "", "", "150023", "MDC_PRESS_BLD_NONINV_MEAN", "vital-signs", "Mean blood pressure"},
    {"", "", "", "160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD", "laboratory", "Glucose"},
    {kBodyWeightProfile, "", "", "188736", "MDC_MASS_BODY_ACTUAL", "vital-signs", "Body weight"},
    {"", "", "", "150448", "MDC_PULS_OXIM_PERF_REL", "vital-signs", "Perfusion index"},
    {"", "", "", "", "", "exam", "ACVPU level of consciousness"},
    {"", "", "", "", "", "therapy", "Air or oxygen"},
    {"", "", "", "67996", "MDC_ATTR_VAL_BATT_CHARGE", "", "Battery level"},
}};

constexpr std::array<AnswerCode, 5> kAcvpu{{
    {"248234008", "Mentally alert", "A: alert"},
    {"130987000", "Acute confusion", "C: new confusion"},
    {"300202002", "Responds to voice", "V: responds to voice"},
    {"450847001", "Responds to pain", "P: responds to pain"},
    {"422768004", "Unresponsive", "U: unresponsive"},
}};

constexpr AnswerCode kRoomAir{"722742002", "Breathing room air", "Air"};
constexpr AnswerCode kOnOxygen{"371825009", "Patient on oxygen", "Supplemental oxygen"};

constexpr std::array<News2Part, 7> kNews2{{
    {"resp_rate", "1104301000000104",
     "Royal College of Physicians NEWS2 (National Early Warning Score 2) - respiration rate score"},
    {"spo2", "1104311000000102",
     "Royal College of Physicians NEWS2 (National Early Warning Score 2) - oxygen saturation scale 1 "
     "score"},
    {"air_or_oxygen", "1104331000000105",
     "Royal College of Physicians NEWS2 (National Early Warning Score 2) - air or oxygen score"},
    {"bp_systolic", "1104341000000101",
     "Royal College of Physicians NEWS2 (National Early Warning Score 2) - systolic blood pressure "
     "score"},
    {"pulse", "1104351000000103",
     "Royal College of Physicians NEWS2 (National Early Warning Score 2) - pulse score"},
    {"consciousness", "1104361000000100",
     "Royal College of Physicians NEWS2 (National Early Warning Score 2) - consciousness score"},
    {"temperature", "1104371000000107",
     "Royal College of Physicians NEWS2 (National Early Warning Score 2) - temperature score"},
}};

}  // namespace

const MetricTerms& TermsOf(Metric m) { return kTerms[static_cast<std::size_t>(m)]; }

GlucoseCode GlucoseCodeFor(std::string_view codec) {
  // A GATT Glucose Measurement (2A18) comes from a blood glucose meter: capillary blood.
  if (codec == "gatt") {
    return {"41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer", "160184",
            "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"};
  }
  return {"2339-0", "Glucose [Mass/volume] in Blood", "", ""};
}

const AnswerCode& AcvpuAnswer(char letter) {
  switch (letter) {
    case 'C': return kAcvpu[1];
    case 'V': return kAcvpu[2];
    case 'P': return kAcvpu[3];
    case 'U': return kAcvpu[4];
    default: return kAcvpu[0];
  }
}

const AnswerCode& OxygenAnswer(bool on_oxygen) { return on_oxygen ? kOnOxygen : kRoomAir; }

std::span<const News2Part> News2Parts() { return kNews2; }

std::vector<Specialization> SpecializationsOf(std::span<const Metric> metrics) {
  std::vector<Specialization> out;
  auto add = [&out](Specialization s) {
    for (const Specialization& have : out) {
      if (have.code == s.code) return;
    }
    out.push_back(s);
  };
  for (Metric m : metrics) {
    switch (m) {
      case Metric::kSpo2:
      case Metric::kPulseRate:
      case Metric::kPerfusionIndex:
        add({"528388", "MDC_DEV_SPEC_PROFILE_PULS_OXIM"});
        break;
      case Metric::kBpSystolic:
      case Metric::kBpDiastolic:
      case Metric::kBpMean:
        add({"528391", "MDC_DEV_SPEC_PROFILE_BP"});
        break;
      case Metric::kTemperature: add({"528392", "MDC_DEV_SPEC_PROFILE_TEMP"}); break;
      case Metric::kRespRate: add({"528397", "MDC_DEV_SPEC_PROFILE_RESP_RATE"}); break;
      case Metric::kWeight: add({"528399", "MDC_DEV_SPEC_PROFILE_SCALE"}); break;
      case Metric::kGlucose: add({"528401", "MDC_DEV_SPEC_PROFILE_GLUCOSE"}); break;
      case Metric::kHeartRate: add({"528457", "MDC_DEV_SPEC_PROFILE_GENERIC"}); break;
      default: break;
    }
  }
  return out;
}

std::string_view FlagPriorityCode(std::string_view priority) {
  if (priority == "high") return "PH";
  if (priority == "medium") return "PM";
  if (priority == "low") return "PL";
  return "PN";
}

}  // namespace vg::fhir
