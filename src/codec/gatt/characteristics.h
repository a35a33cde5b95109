// Decoders for the Bluetooth health characteristics vitalgate understands, one per 16-bit UUID.
// Layouts, flags, units and status bits follow the Bluetooth SIG GATT Specification Supplement
// and the service specifications (HRS, BLS, HTS, PLXS, GLS, WSS, BAS); docs/ble.md describes
// each one and the choices made where the specifications leave room.
//
// Each decoder turns one characteristic value into a GattFrame: measurements converted to their
// metric's canonical unit, the device time, status words and condition reports. Offsets in errors
// and warnings are byte offsets within the value; messages never contain device values.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "gatt_fields.h"

namespace vg::gatt {

inline constexpr std::uint16_t kUuidHeartRateMeasurement = 0x2A37;
inline constexpr std::uint16_t kUuidBloodPressureMeasurement = 0x2A35;
inline constexpr std::uint16_t kUuidTemperatureMeasurement = 0x2A1C;
inline constexpr std::uint16_t kUuidPlxSpotCheck = 0x2A5E;
inline constexpr std::uint16_t kUuidPlxContinuous = 0x2A5F;
inline constexpr std::uint16_t kUuidGlucoseMeasurement = 0x2A18;
inline constexpr std::uint16_t kUuidWeightMeasurement = 0x2A9D;
inline constexpr std::uint16_t kUuidBatteryLevel = 0x2A19;
// Current Time (Current Time Service 1.1, 3.1: Exact Time 256 + Adjust Reason, 10 bytes).
inline constexpr std::uint16_t kUuidCurrentTime = 0x2A2B;

using Bytes = std::span<const std::uint8_t>;

GattFrame DecodeHeartRate(Bytes value, const TimeOptions& time);
GattFrame DecodeBloodPressure(Bytes value, const TimeOptions& time);
GattFrame DecodeTemperature(Bytes value, const TimeOptions& time);
GattFrame DecodePlxSpotCheck(Bytes value, const TimeOptions& time);
GattFrame DecodePlxContinuous(Bytes value, const TimeOptions& time);
GattFrame DecodeGlucose(Bytes value, const TimeOptions& time);
GattFrame DecodeWeight(Bytes value, const TimeOptions& time);
GattFrame DecodeBatteryLevel(Bytes value, const TimeOptions& time);
// Current Time (CTS): what the device's clock reads now; no measurement.
GattFrame DecodeCurrentTime(Bytes value, const TimeOptions& time);

struct CharacteristicDecoder {
  std::uint16_t uuid;
  std::string_view name;  // e.g. "heart rate measurement"
  GattFrame (*decode)(Bytes value, const TimeOptions& time);
};

// Every supported characteristic, in the order of INTERFACE.md.
std::span<const CharacteristicDecoder> AllCharacteristics();
// nullptr for an unsupported UUID.
const CharacteristicDecoder* FindCharacteristic(std::uint16_t uuid);

}  // namespace vg::gatt
