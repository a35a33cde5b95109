#include "vitalgate/forward/formats.h"

#include <nlohmann/json.hpp>

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/metric.h"
#include "vitalgate/core/patient_directory.h"
#include "vitalgate/forward/fhir.h"

namespace vg {

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

std::string BuildReadingsFhir(std::string_view gateway, std::string_view patient,
                              std::span<const OutboxRow* const> rows, std::vector<std::string>& row_errors) {
  RenderContext context;
  context.gateway_id = std::string(gateway);
  fhir::RenderedBundle out = fhir::RenderReadings(patient, rows, context, fhir::RenderOptions{});
  row_errors = std::move(out.row_error);
  row_errors.resize(rows.size());
  return std::move(out.json);
}

}  // namespace vg
