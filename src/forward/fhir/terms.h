// Code systems, codes and profiles of the FHIR rendering; each is cited in docs/fhir.md.
// Immutable static data.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "vitalgate/core/metric.h"

namespace vg::fhir {

// Code systems.
inline constexpr std::string_view kLoinc = "http://loinc.org";
inline constexpr std::string_view kSnomed = "http://snomed.info/sct";
inline constexpr std::string_view kMdc = "urn:iso:std:iso:11073:10101";
inline constexpr std::string_view kUcum = "http://unitsofmeasure.org";
inline constexpr std::string_view kObservationCategory =
    "http://terminology.hl7.org/CodeSystem/observation-category";
inline constexpr std::string_view kDataAbsentReason =
    "http://terminology.hl7.org/CodeSystem/data-absent-reason";
inline constexpr std::string_view kMeasurementStatus =
    "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status";
inline constexpr std::string_view kContinuaDeviceIdentifiers =
    "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers";
inline constexpr std::string_view kFlagCategory = "http://terminology.hl7.org/CodeSystem/flag-category";
inline constexpr std::string_view kFlagPriorityCodes = "http://hl7.org/fhir/flag-priority-code";

// Identifier systems.
inline constexpr std::string_view kUriSystem = "urn:ietf:rfc:3986";
inline constexpr std::string_view kSystemIdSystem = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680";
inline constexpr std::string_view kBluetoothSystem = "http://hl7.org/fhir/sid/eui-48/bluetooth";

// Profiles and extensions.
inline constexpr std::string_view kBpProfile = "http://hl7.org/fhir/StructureDefinition/bp";
inline constexpr std::string_view kPhdNumericProfile =
    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdNumericObservation";
inline constexpr std::string_view kPhdCompoundProfile =
    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdCompoundNumericObservation";
inline constexpr std::string_view kPhdCoincidentProfile =
    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdCoincidentTimeStampObservation";
inline constexpr std::string_view kPhdDeviceProfile =
    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdDevice";
inline constexpr std::string_view kPhgDeviceProfile =
    "http://hl7.org/fhir/uv/phd/StructureDefinition/PhgDevice";
inline constexpr std::string_view kGatewayDeviceExtension =
    "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice";
inline constexpr std::string_view kFlagPriorityExtension =
    "http://hl7.org/fhir/StructureDefinition/flag-priority";

// IEEE 11073-10101 terms (context-free 32-bit codes, partition * 65536 + term code).
inline constexpr std::string_view kMdcPhdType = "65573";         // MDC_MOC_VMS_MDS_SIMP
inline constexpr std::string_view kMdcGatewayType = "531981";    // MDC_MOC_VMS_MDS_AHD
inline constexpr std::string_view kMdcSoftwareRevision = "531975";  // MDC_ID_PROD_SPEC_SW
inline constexpr std::string_view kMdcSupplementalTypes = "68193";  // MDC_ATTR_SUPPLEMENTAL_TYPES
inline constexpr std::string_view kMdcModalitySpot = "150588";      // MDC_MODALITY_SPOT
inline constexpr std::string_view kMdcTimeAbs = "67975";            // MDC_ATTR_TIME_ABS
inline constexpr std::string_view kMdcBattery = "67996";            // MDC_ATTR_VAL_BATT_CHARGE
inline constexpr std::string_view kMdcBpNoninv = "150020";          // MDC_PRESS_BLD_NONINV

inline constexpr std::string_view kBpPanelLoinc = "85354-9";
inline constexpr std::string_view kBpPanelDisplay = "Blood pressure panel with all children optional";

// NEWS2 (Royal College of Physicians) in SNOMED CT (UK edition).
inline constexpr std::string_view kNews2Total = "1104051000000101";
inline constexpr std::string_view kNews2TotalDisplay =
    "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score";
inline constexpr std::string_view kNews2Spo2Scale2 = "1104321000000108";
inline constexpr std::string_view kNews2Spo2Scale2Display =
    "Royal College of Physicians NEWS2 (National Early Warning Score 2) - oxygen saturation scale 2 "
    "score";

// What a metric becomes in FHIR besides the catalogue's LOINC code and unit.
struct MetricTerms {
  std::string_view vital_profile;     // R4 vital-signs profile claimed (with a patient); may be empty
  std::string_view profile_loinc;     // the LOINC code that profile requires, when not the catalogue's
  std::string_view profile_loinc_display;
  std::string_view mdc_code;          // IEEE 11073-10101 code, empty when none
  std::string_view mdc_reference_id;
  std::string_view category;          // observation-category code; empty: none
  std::string_view text;              // code.text
};
const MetricTerms& TermsOf(Metric m);

// Glucose: LOINC (and MDC) by specimen and method, from the device's codec.
struct GlucoseCode {
  std::string_view loinc;
  std::string_view display;
  std::string_view mdc_code;  // empty when the specimen is not known
  std::string_view mdc_reference_id;
};
GlucoseCode GlucoseCodeFor(std::string_view codec);

// An answer in SNOMED CT.
struct AnswerCode {
  std::string_view code;
  std::string_view display;
  std::string_view text;
};
const AnswerCode& AcvpuAnswer(char letter);  // REQUIRES: one of "ACVPU"
const AnswerCode& OxygenAnswer(bool on_oxygen);

// NEWS2 sub-scores: the key in the alert's "subscores" and its SNOMED CT code.
struct News2Part {
  std::string_view key;
  std::string_view code;
  std::string_view display;
};
std::span<const News2Part> News2Parts();

// PHD device specializations (MDC_DEV_SPEC_PROFILE_*), from the metrics a device measured.
struct Specialization {
  std::string_view code;
  std::string_view reference_id;
};
std::vector<Specialization> SpecializationsOf(std::span<const Metric> metrics);

// alert priority -> flag-priority code (PH, PM, PL; PN for anything else).
std::string_view FlagPriorityCode(std::string_view priority);

}  // namespace vg::fhir
