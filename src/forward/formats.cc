#include "vitalgate/forward/formats.h"

#include <nlohmann/json.hpp>

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/metric.h"
#include "vitalgate/core/patient_directory.h"

namespace vg {
namespace {

using nlohmann::json;

json Coding(const char* system, std::string_view code, std::string_view display) {
  json c = {{"system", system}, {"code", code}};
  if (!display.empty()) c["display"] = display;
  return c;
}

// FHIR R4 vital-signs profiles require these LOINC codes besides the more specific ones.
std::string_view ProfileLoinc(Metric m) {
  switch (m) {
    case Metric::kSpo2: return "2708-6";
    case Metric::kPulseRate: return "8867-4";
    default: return "";
  }
}

bool IsVitalSign(Metric m) {
  switch (m) {
    case Metric::kGlucose:
    case Metric::kBattery:
    case Metric::kPerfusionIndex:
    case Metric::kOnOxygen:
      return false;
    default:
      return true;
  }
}

Result<json> Observation(std::string_view patient, const OutboxRow& row) {
  const json r = json::parse(row.body, nullptr, /*allow_exceptions=*/false);
  if (r.is_discarded() || !r.is_object() || !r.contains("metric") || !r["metric"].is_string()) {
    return DataLoss("outbox row " + std::to_string(row.seq) + " is not a reading object");
  }
  const auto metric = MetricFromName(r["metric"].get<std::string>());
  if (!metric) return DataLoss("outbox row " + std::to_string(row.seq) + " has an unknown metric");
  const MetricInfo& info = Info(*metric);
  json obs = {{"resourceType", "Observation"}, {"status", "final"}};
  if (r.contains("id") && r["id"].is_string()) {
    obs["id"] = r["id"];
    obs["identifier"] = json::array({{{"system", "urn:ietf:rfc:3986"},
                                      {"value", "urn:vitalgate:reading:" + r["id"].get<std::string>()}}});
  }
  obs["meta"] = {{"profile", json::array({"http://hl7.org/fhir/StructureDefinition/vitalsigns"})}};
  if (!IsVitalSign(*metric)) obs.erase("meta");
  json category = {{"coding", json::array({Coding(
                       "http://terminology.hl7.org/CodeSystem/observation-category",
                       *metric == Metric::kGlucose ? "laboratory" : "vital-signs",
                       *metric == Metric::kGlucose ? "Laboratory" : "Vital Signs")})}};
  obs["category"] = json::array({category});
  json codings = json::array();
  if (!ProfileLoinc(*metric).empty()) {
    codings.push_back(Coding("http://loinc.org", ProfileLoinc(*metric), ""));
  }
  if (!info.loinc.empty()) codings.push_back(Coding("http://loinc.org", info.loinc, info.loinc_display));
  if (info.mdc_code != 0) {
    codings.push_back(Coding("urn:iso:std:iso:11073:10101", std::to_string(info.mdc_code), info.mdc));
  }
  obs["code"] = {{"coding", codings}, {"text", info.name}};
  obs["subject"] = {{"reference", "Patient/" + std::string(patient)}};
  if (r.contains("ts")) obs["effectiveDateTime"] = r["ts"];
  if (r.contains("device")) obs["device"] = {{"display", r["device"]}};
  const json& v = r.contains("value") ? r["value"] : json();
  switch (info.type) {
    case ValueType::kNumber:
      obs["valueQuantity"] = {{"value", v},
                              {"unit", info.unit},
                              {"system", "http://unitsofmeasure.org"},
                              {"code", info.unit}};
      break;
    case ValueType::kAcvpu:
      obs["valueCodeableConcept"] = {{"text", v}};
      break;
    case ValueType::kBool:
      obs["valueBoolean"] = v;
      break;
  }
  return obs;
}

}  // namespace

std::string BuildReadingsJson(std::string_view gateway, std::string_view patient,
                              std::span<const OutboxRow* const> rows) {
  std::size_t size = 64 + gateway.size() + patient.size();
  for (const OutboxRow* r : rows) size += r->body.size() + 1;
  std::string out;
  out.reserve(size);
  out += "{\"gateway\":";
  AppendJsonString(out, gateway);
  out += ",\"patient\":";
  if (IsPlaceholderPatient(patient)) {
    // A device without a patient: "unassigned/<device>".
    out += "null,\"device\":";
    AppendJsonString(out, patient.substr(patient.find('/') + 1));
  } else {
    AppendJsonString(out, patient);
  }
  out += ",\"readings\":[";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) out += ',';
    out += rows[i]->body;
  }
  out += "]}";
  return out;
}

Result<std::string> BuildReadingsFhir(std::string_view gateway, std::string_view patient,
                                      std::span<const OutboxRow* const> rows) {
  json bundle = {{"resourceType", "Bundle"}, {"type", "collection"}};
  bundle["meta"] = {{"source", "urn:vitalgate:gateway:" + std::string(gateway)}};
  json entries = json::array();
  for (const OutboxRow* row : rows) {
    auto obs = Observation(patient, *row);
    if (!obs.ok()) return obs.status();
    json entry = {{"resource", std::move(*obs)}};
    if (entry["resource"].contains("id") && entry["resource"]["id"].is_string()) {
      entry["fullUrl"] = "urn:vitalgate:reading:" + entry["resource"]["id"].get<std::string>();
    }
    entries.push_back(std::move(entry));
  }
  bundle["entry"] = std::move(entries);
  return bundle.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace vg
