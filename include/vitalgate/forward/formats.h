// Payload formats of readings messages (docs/mqtt.md): the native JSON message and a FHIR R4
// Bundle of vital-signs Observations. Pure functions.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "vitalgate/core/status.h"
#include "vitalgate/store/outbox.h"

namespace vg {

// {"gateway":…,"patient":…,"readings":[<row bodies in order>]}
std::string BuildReadingsJson(std::string_view gateway, std::string_view patient,
                              std::span<const OutboxRow* const> rows);

// A FHIR R4 Bundle (type "collection") with one Observation per reading: LOINC and IEEE 11073
// codings, UCUM valueQuantity, subject Patient/{patient}, the reading id as Observation.id.
Result<std::string> BuildReadingsFhir(std::string_view gateway, std::string_view patient,
                                      std::span<const OutboxRow* const> rows);

}  // namespace vg
