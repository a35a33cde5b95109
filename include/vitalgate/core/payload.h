// The canonical JSON form of a reading and of an alert event, as published (docs/mqtt.md) and as
// printed by `vitalgate decode` and `vitalgate replay`. Pure functions; thread-safe as long as the
// context objects are not being modified.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "vitalgate/core/alert.h"
#include "vitalgate/core/ids.h"
#include "vitalgate/core/metric.h"
#include "vitalgate/core/patient_directory.h"
#include "vitalgate/core/reading.h"

namespace vg {

struct PayloadContext {
  const PatientDirectory* patients = nullptr;
  const DeviceDirectory* devices = nullptr;  // device ids by DeviceIndex
  const IdFormat* ids = nullptr;
};

// Appends a reading's value in JSON: a number, an ACVPU letter string, or true/false.
void AppendReadingValue(std::string& out, ValueType type, double value);
inline void AppendReadingValue(std::string& out, Metric metric, double value) {
  AppendReadingValue(out, Info(metric).type, value);
}

// The flags a reading's JSON object lists.
constexpr std::uint8_t kShownFlags = kFlagQuestionable | kFlagSpot | kFlagStored | kFlagClock;

// A reading's JSON fields resolved to text: what AppendReadingJson writes, and what a compact
// stored row (compact_row.h) keeps of a reading.
struct ReadingText {
  std::string_view instance;  // the issuing gateway's id prefix (IdFormat)
  std::uint64_t id = 0;
  std::string_view device;
  std::string_view metric;
  std::string_view unit;      // empty: left out
  ValueType type = ValueType::kNumber;
  double value = 0;
  std::int64_t ts_ms = 0;
  std::int64_t device_ts_ms = 0;  // written with kFlagClock when not 0
  std::uint8_t flags = 0;         // kShownFlags bits
};

ReadingText TextOf(const Reading& r, const PayloadContext& ctx);
void AppendReadingJson(std::string& out, const ReadingText& t);

// {"id":…,"device":…,"metric":…,"value":…,"unit":…,"ts":…}; "unit" is left out for unitless
// metrics (consciousness, on_oxygen); "device_ts" when the device's own time was not used as
// "ts"; "flags" lists questionable, spot, stored and clock when they apply.
inline void AppendReadingJson(std::string& out, const Reading& r, const PayloadContext& ctx) {
  AppendReadingJson(out, TextOf(r, ctx));
}

// The alert event object of docs/mqtt.md.
void AppendAlertJson(std::string& out, const AlertEvent& e, const PayloadContext& ctx);

}  // namespace vg
