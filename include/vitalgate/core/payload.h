// The canonical JSON form of a reading and of an alert event, as published (docs/mqtt.md) and as
// printed by `vitalgate decode` and `vitalgate replay`. Pure functions; thread-safe as long as the
// context objects are not being modified.
#pragma once

#include <span>
#include <string>

#include "vitalgate/core/alert.h"
#include "vitalgate/core/ids.h"
#include "vitalgate/core/patient_directory.h"
#include "vitalgate/core/reading.h"

namespace vg {

struct PayloadContext {
  const PatientDirectory* patients = nullptr;
  const DeviceDirectory* devices = nullptr;  // device ids by DeviceIndex
  const IdFormat* ids = nullptr;
};

// Appends a reading's value in JSON: a number, an ACVPU letter string, or true/false.
void AppendReadingValue(std::string& out, Metric metric, double value);

// {"id":…,"device":…,"metric":…,"value":…,"unit":…,"ts":…}; "unit" is left out for unitless
// metrics (consciousness, on_oxygen); "device_ts" when the device's own time was not used as
// "ts"; "flags" lists questionable, spot, stored and clock when they apply.
void AppendReadingJson(std::string& out, const Reading& r, const PayloadContext& ctx);

// The alert event object of docs/mqtt.md.
void AppendAlertJson(std::string& out, const AlertEvent& e, const PayloadContext& ctx);

}  // namespace vg
