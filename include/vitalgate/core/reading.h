// Reading: one normalized vital-sign value of one patient from one device.
//
// A Reading is a trivially copyable value so it can travel through lock-free rings without
// allocation. Patient and device are indices into the PatientDirectory and the device table;
// the engine assigns `id` when it accepts the reading, and the id is the reading's identity on
// every (re)delivery.
#pragma once

#include <cstdint>
#include <type_traits>

#include "vitalgate/core/metric.h"

namespace vg {

using PatientIndex = std::uint32_t;
using DeviceIndex = std::uint16_t;

struct Reading {
  std::uint64_t id = 0;     // gateway-unique identity; 0 until the engine accepts the reading
  std::int64_t ts_ms = 0;   // event time: when the value was measured (Unix ms)
  std::int64_t rx_ms = 0;   // receive time: when the gateway got it (Unix ms)
  double value = 0;         // canonical unit; see ValueType for letters and booleans
  PatientIndex patient = 0;
  DeviceIndex device = 0;
  Metric metric = Metric::kHeartRate;
  std::uint8_t flags = 0;   // ReadingFlag bits
};
static_assert(std::is_trivially_copyable_v<Reading>);

// Bits of Reading::flags.
enum ReadingFlag : std::uint8_t {
  kFlagDeviceTime = 1 << 0,  // ts_ms came from the device; otherwise it is the receive time
  kFlagQuestionable = 1 << 1,  // the device marked the value questionable (e.g. artifact)
};

// Conditions a device (or its link) reports that are not readings. Each becomes a `technical`
// alert in the engine when it holds; see docs/rules.md.
enum class DeviceCondition : std::uint8_t {
  kDisconnected,   // transport link down (serial unplugged, BLE disconnected, child exited)
  kSensorOff,      // sensor off the patient / no finger / probe disconnected
  kOutOfTrack,     // searching, out of track, no usable signal
  kLowPerfusion,   // signal quality too low for a trustworthy value
  kLowBattery,     // device battery below its limit
  kBadFrames,      // frames failing checksum or syntax
  kNoData,         // no reading for longer than the configured time (raised by the engine)
  kReadingsDropped,  // the gateway had to drop readings (queue or storage full)
  kStorage,        // the local store was damaged or failing
};
inline constexpr std::size_t kDeviceConditionCount = 9;

// What transports hand to the engine: a reading, or a device condition change.
struct IngressItem {
  enum class Kind : std::uint8_t { kReading, kCondition };
  Kind kind = Kind::kReading;
  DeviceCondition condition = DeviceCondition::kDisconnected;
  bool active = false;  // kCondition: the condition started (true) or ended (false)
  Reading reading;      // kCondition: only device, patient and rx_ms are meaningful
};
static_assert(std::is_trivially_copyable_v<IngressItem>);

}  // namespace vg
