// Code tables of the HL7 v2 renderer: IEEE 11073-10101 (MDC) units, device containment and
// alarm codes, SNOMED CT NEWS2 codes, and vitalgate's local codes (coding system "99VG").
// Sources and reasons for each choice are in docs/hl7.md ("Code tables"). Pure static data.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "vitalgate/core/metric.h"

namespace vg::hl7 {

inline constexpr std::string_view kLocalCodingSystem = "99VG";

// A coded concept (CWE components 1-3 and, when present, an alternate 4-6).
struct Coded {
  std::string_view code;
  std::string_view text;
  std::string_view system;
  std::string_view alt_code = {};
  std::string_view alt_text = {};
  std::string_view alt_system = {};
};

// Where a metric sits in a device's containment tree (OBX-4 "mds.vmd.channel.metric") and the
// VMD it belongs to. `vmd` 0 means an attribute of the MDS itself (battery).
struct Placement {
  int vmd;
  int metric;
  std::uint32_t vmd_code;  // 0: no VMD row is written (no published MDC code for the VMD)
  std::string_view vmd_name;
};

// OBX-3 of a metric: the MDC code with the LOINC code as alternate, or (no MDC code) LOINC or a
// local code.
Coded ObservationCode(Metric metric);
// OBX-6 of a numeric metric: the MDC unit with the UCUM unit as alternate.
std::optional<Coded> UnitCode(Metric metric);
Placement PlacementOf(Metric metric);

// Device rows.
inline constexpr Coded kMdsCode{"69965", "MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS", "MDC"};
inline constexpr Coded kManufacturerCode{"531970", "MDC_ID_MODEL_MANUFACTURER", "MDC"};
inline constexpr Coded kModelCode{"531969", "MDC_ID_MODEL_NUMBER", "MDC"};
inline constexpr int kManufacturerAttribute = 2;  // OBX-4 d.0.0.2
inline constexpr int kModelAttribute = 3;         // OBX-4 d.0.0.3

// OBR-4 of observation reports (SNOMED CT "monitoring of patient", as in the PCD examples).
inline constexpr Coded kMonitoringService{"182777000", "monitoring of patient", "SCT"};

// NEWS2 (SNOMED CT UK edition observable entities).
inline constexpr Coded kNews2Total{"1104051000000101",
                                   "Royal College of Physicians NEWS2 total score", "SCT"};
inline constexpr Coded kNews2Risk{"news2-risk", "NEWS2 clinical risk", kLocalCodingSystem};
// Sub-scores in the order of the alert event's "subscores" keys.
struct News2Part {
  std::string_view key;
  Coded code;
};
inline constexpr News2Part kNews2Parts[] = {
    {"resp_rate", {"1104301000000104", "NEWS2 respiration rate score", "SCT"}},
    // The event does not say which SpO2 scale was used; SNOMED has one code per scale.
    {"spo2", {"news2-spo2", "NEWS2 oxygen saturation score", kLocalCodingSystem}},
    {"air_or_oxygen", {"1104331000000105", "NEWS2 air or oxygen score", "SCT"}},
    {"bp_systolic", {"1104341000000101", "NEWS2 systolic blood pressure score", "SCT"}},
    {"pulse", {"1104351000000103", "NEWS2 pulse score", "SCT"}},
    {"consciousness", {"1104361000000100", "NEWS2 consciousness score", "SCT"}},
    {"temperature", {"1104371000000107", "NEWS2 temperature score", "SCT"}},
};

// PCD-04 (ACM) rows.
inline constexpr Coded kEventAlarm{"196616", "MDC_EVT_ALARM", "MDC"};
inline constexpr Coded kEventHigh{"196650", "MDC_EVT_HI_GT_LIM", "MDC"};
inline constexpr Coded kEventLow{"196672", "MDC_EVT_LO_LT_LIM", "MDC"};
inline constexpr Coded kEventBatteryLow{"196802", "MDC_EVT_BATT_LO", "MDC"};
inline constexpr Coded kAlertSource{"68480", "MDC_ATTR_ALERT_SOURCE", "MDC"};
inline constexpr Coded kEventPhase{"68481", "MDC_ATTR_EVENT_PHASE", "MDC"};
inline constexpr Coded kAlarmState{"68482", "MDC_ATTR_ALARM_STATE", "MDC"};
inline constexpr Coded kInactivationState{"68483", "MDC_ATTR_ALARM_INACTIVATION_STATE", "MDC"};
inline constexpr Coded kAlarmPriority{"68484", "MDC_ATTR_ALARM_PRIORITY", "MDC"};
inline constexpr Coded kAlertType{"68485", "MDC_ATTR_ALERT_TYPE", "MDC"};
inline constexpr Coded kGatewaySource{"gateway", "vitalgate gateway", kLocalCodingSystem};

// Plain-language name of a technical condition ("sensor_off" -> "Sensor off"); the condition
// itself when unknown.
std::string_view ConditionText(std::string_view condition);

}  // namespace vg::hl7
