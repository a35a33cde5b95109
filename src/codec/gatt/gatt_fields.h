// Building blocks of the GATT characteristic decoders: a bounds-checked little-endian reader, the
// Date Time field (org.bluetooth.characteristic.date_time), and GattFrame, everything one
// characteristic value said: measurements in canonical units, device time, flags, status words,
// what it said about device conditions, and the error or warnings it produced.
//
// Decoders are pure: a GattFrame depends only on the bytes and the TimeOptions passed in. Keeping
// the condition state (report on change only) is GattCodec's job, not the decoders'.
// Thread-safety: value types, no shared state.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/codec/codec.h"
#include "vitalgate/core/timezone.h"

namespace vg::gatt {

// How the device's clock becomes DecodedValue::ts_ms. Passed in so decoders stay pure.
struct TimeOptions {
  // false: never report device time (the gateway then stamps the receive time).
  bool use_device_time = true;
  // BLE Date Time carries no zone: the zone of the device's clock (a tz database zone, which
  // follows daylight saving, or a fixed offset).
  TimeZone zone;
};

// Reads little-endian fields; every read is checked by the caller with Has() first.
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::uint8_t> data) : data_(data) {}

  std::size_t offset() const { return pos_; }
  std::size_t remaining() const { return data_.size() - pos_; }
  bool Has(std::size_t n) const { return remaining() >= n; }

  // REQUIRES: Has(1), Has(2), Has(3), Has(4) and Has(n) respectively.
  std::uint8_t U8();
  std::uint16_t U16();
  std::uint32_t U24();
  std::uint32_t U32();
  std::span<const std::uint8_t> Take(std::size_t n);

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

// A Date Time field (7 bytes: year uint16, month, day, hours, minutes, seconds).
struct DateTime {
  enum class Kind : std::uint8_t {
    kValid,    // local_ms is set
    kUnknown,  // year, month or day is 0, which the spec defines as "not known"
    kInvalid,  // a field is outside its range (e.g. month 13, 31 February, hour 24)
  };
  Kind kind = Kind::kUnknown;
  // The device's wall-clock time read as if it were UTC (Unix ms); see TimeOptions.
  std::int64_t local_ms = 0;
};

// REQUIRES: bytes.size() == 7.
DateTime ParseDateTime(std::span<const std::uint8_t> bytes);

// An optional Date Time field and where it starts in the characteristic value.
struct TimeStampField {
  std::optional<DateTime> value;
  std::size_t offset = 0;
};

// Everything one characteristic value said.
struct GattFrame {
  struct Measurement {
    Metric metric = Metric::kHeartRate;
    double value = 0;  // canonical unit, finite
  };
  static constexpr std::size_t kMaxMeasurements = 4;
  static constexpr std::size_t kMaxStatus = 8;  // as many as DecodedValue carries

  std::array<Measurement, kMaxMeasurements> measurements{};
  std::uint8_t measurement_count = 0;
  // Frame-wide: apply to every measurement of the frame.
  std::optional<std::int64_t> ts_ms;
  std::uint8_t flags = 0;                             // ReadingFlag bits
  std::optional<std::uint32_t> record_seq;            // the device's record number (glucose)
  std::optional<std::int64_t> device_clock_ms;        // what the device's clock reads (2A2B)
  std::array<std::string_view, kMaxStatus> status{};  // static strings
  std::uint8_t status_count = 0;
  // What the frame says about each DeviceCondition: nullopt = nothing.
  std::array<std::optional<bool>, kDeviceConditionCount> conditions{};
  // Set: the value is malformed and nothing of it may be used (no measurements, no conditions).
  std::optional<DecodeError> error;
  // The frame was decoded, but something in it was ignored (reserved bits, trailing bytes...).
  std::vector<DecodeError> warnings;

  // REQUIRES: value is finite; at most kMaxMeasurements calls.
  void Add(Metric metric, double value);
  // Words beyond kMaxStatus are dropped, so add the clinically important ones first.
  void AddStatus(std::string_view word);
  void SetCondition(DeviceCondition c, bool active) {
    conditions[static_cast<std::size_t>(c)] = active;
  }
  void Fail(std::size_t offset, std::string message);
  void Warn(std::size_t offset, std::string message);

  // The measurement as the codec hands it out, with the frame-wide ts, flags and status.
  DecodedValue ValueAt(std::size_t i) const;
};

// Checks that `r` holds the `size` bytes of a field; if not, fails the frame naming the field and
// the offset where the value ended. `field` is a static description such as "time stamp (7 bytes)".
bool Need(const ByteReader& r, std::size_t size, std::string_view field, GattFrame& frame);

// Reads the 7-byte time stamp at the reader's position when `present` (its flag bit is set).
// False when the value ends first; the frame then holds the error.
bool ReadTimeStamp(ByteReader& r, bool present, TimeStampField& out, GattFrame& frame);

// Warns about flag bits the specification reserves. Bluetooth specifications require receivers to
// ignore reserved bits, so they never reject a value.
void CheckReservedFlags(std::uint8_t flags, std::uint8_t reserved_mask, GattFrame& frame);

// Warns about bytes after the last field announced by the flags (later spec revisions append
// fields; the known fields before them still mean the same).
void CheckTrailing(const ByteReader& r, GattFrame& frame);

// Applies a Date Time field at byte `offset`: sets ts_ms (when options allow) and kFlagDeviceTime,
// adds "time_unknown" for an unknown date, and warns about an invalid one. `offset_minutes` is a
// device-side adjustment (the glucose Time Offset).
void ApplyDeviceTime(const DateTime& dt, std::int32_t offset_minutes, std::size_t offset,
                     const TimeOptions& options, GattFrame& frame);

// "user_0" .. "user_254", and "user_unknown" for 255 (the spec's "unknown user").
std::string_view UserIdWord(std::uint8_t user);

}  // namespace vg::gatt
