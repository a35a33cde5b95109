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
  // The device's own time when the gateway did not use it as ts_ms (kFlagClock); else 0.
  std::int64_t device_ts_ms = 0;
  // Identity of a record the device may send again (stored records, spot checks), so a repeat
  // is recognised: its record number, or a hash of metric, device time and value. 0: none.
  std::uint64_t record_key = 0;
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
  kFlagSpot = 1 << 2,        // a spot check: one measurement, not part of a stream
  kFlagStored = 1 << 3,      // a record the device kept and sent later (device memory, RACP)
  kFlagClock = 1 << 4,       // the device time was implausible (see device_ts_ms)
  kFlagUnassigned = 1 << 5,  // the device had no patient (patient is its placeholder)
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
  kClock,          // the device's time is implausible or moved backwards (raised by input)
  kUnassigned,     // the device has no patient: its readings are not evaluated
  kCertificate,    // a TLS certificate expires soon, expired or was rejected (gateway)
  kDestination,    // a destination's backlog is too old or it refused items for good (gateway)
};
inline constexpr std::size_t kDeviceConditionCount = 13;

// What transports hand to the engine: a reading, or a device condition change.
// kAssign: the device now feeds reading.patient (or none: kFlagUnassigned); every reading it
// sends after this item carries the new patient.
struct IngressItem {
  enum class Kind : std::uint8_t { kReading, kCondition, kAssign };
  Kind kind = Kind::kReading;
  DeviceCondition condition = DeviceCondition::kDisconnected;
  bool active = false;  // kCondition: the condition started (true) or ended (false)
  // kCondition: only device, patient and rx_ms are meaningful (kClock: value is the device
  // clock's offset from the gateway's in seconds); kAssign: device, patient, flags.
  Reading reading;
};
static_assert(std::is_trivially_copyable_v<IngressItem>);

}  // namespace vg
