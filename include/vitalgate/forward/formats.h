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

// A FHIR R4 Bundle (type "collection") of the readings as docs/fhir.md describes them
// (vital-signs profiles, blood pressure panels, PHD IG Devices). `row_errors` gets, per row,
// why it is not a valid reading (empty when it is); the Bundle holds the valid ones.
std::string BuildReadingsFhir(std::string_view gateway, std::string_view patient,
                              std::span<const OutboxRow* const> rows, std::vector<std::string>& row_errors);

}  // namespace vg
