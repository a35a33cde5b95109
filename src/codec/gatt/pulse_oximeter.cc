// PLX Spot-check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F), Pulse Oximeter
// Service. Both share the Measurement Status and Device and Sensor Status fields, which decide
// whether the numbers are readings at all.
#include "characteristics.h"
#include "sfloat.h"

namespace vg::gatt {
namespace {

// Spot-check flags.
constexpr std::uint8_t kSpotTimeStamp = 1 << 0;
constexpr std::uint8_t kSpotMeasurementStatus = 1 << 1;
constexpr std::uint8_t kSpotDeviceStatus = 1 << 2;
constexpr std::uint8_t kSpotPai = 1 << 3;
constexpr std::uint8_t kSpotClockNotSet = 1 << 4;
constexpr std::uint8_t kSpotReserved = 0xE0;

// Continuous flags.
constexpr std::uint8_t kContFast = 1 << 0;
constexpr std::uint8_t kContSlow = 1 << 1;
constexpr std::uint8_t kContMeasurementStatus = 1 << 2;
constexpr std::uint8_t kContDeviceStatus = 1 << 3;
constexpr std::uint8_t kContPai = 1 << 4;
constexpr std::uint8_t kContReserved = 0xE0;

constexpr std::uint32_t Bit(unsigned n) { return 1u << n; }

// A status bit, the word `vitalgate decode` shows for it, and whether it makes the values
// questionable. Listed most important first: a frame keeps at most 8 status words.
struct StatusBit {
  std::uint32_t bit;
  std::string_view word;
  bool questionable;
};

// Device and Sensor Status (24 bits).
constexpr std::uint32_t kSensorUnconnected = Bit(11);
constexpr std::uint32_t kSensorDisconnected = Bit(15);
constexpr std::uint32_t kLowPerfusion = Bit(5);
constexpr StatusBit kDeviceBits[] = {
    {kSensorDisconnected, "sensor_disconnected", false},
    {kSensorUnconnected, "sensor_unconnected", false},
    {Bit(14), "sensor_malfunction", true},
    {Bit(13), "sensor_displaced", true},
    {Bit(12), "unknown_sensor", true},
    {Bit(1), "equipment_malfunction", true},
    {kLowPerfusion, "low_perfusion", true},
    {Bit(3), "inadequate_signal", true},
    {Bit(4), "poor_signal", true},
    {Bit(6), "erratic_signal", true},
    {Bit(7), "nonpulsatile_signal", true},
    {Bit(8), "questionable_pulse", true},
    {Bit(10), "sensor_interference", true},
    {Bit(2), "signal_processing_irregular", true},
    {Bit(9), "signal_analysis_ongoing", false},
    // Bit 0 (extended display update ongoing) concerns the display, not the measurement.
};

// Measurement Status (16 bits; bits 0-4 reserved).
constexpr std::uint32_t kMeasurementUnavailable = Bit(13);
constexpr std::uint32_t kInvalidMeasurement = Bit(15);
constexpr std::uint32_t kDemoData = Bit(10);
constexpr std::uint32_t kTestData = Bit(11);
constexpr StatusBit kMeasurementBits[] = {
    {kInvalidMeasurement, "invalid_measurement", false},
    {kMeasurementUnavailable, "measurement_unavailable", false},
    {kDemoData, "demo_data", false},
    {kTestData, "test_data", false},
    {Bit(14), "questionable_measurement", true},
    {Bit(12), "calibration_ongoing", true},
    {Bit(6), "early_estimate", false},
    {Bit(5), "measurement_ongoing", false},
    {Bit(9), "from_storage", false},
    {Bit(7), "validated", false},
    {Bit(8), "fully_qualified", false},
};

struct PlxFields {
  std::uint16_t spo2 = 0;
  std::uint16_t pulse = 0;
  std::optional<std::uint16_t> pai;
  std::optional<std::uint16_t> measurement;
  std::size_t measurement_offset = 0;
  std::optional<std::uint32_t> device;
};

void AddStatusBits(std::uint32_t value, std::span<const StatusBit> bits, GattFrame& frame) {
  for (const StatusBit& b : bits) {
    if ((value & b.bit) == 0) continue;
    frame.AddStatus(b.word);
    if (b.questionable) frame.flags |= kFlagQuestionable;
  }
}

// Decides, from the two status fields, whether SpO2, pulse rate and PAI are readings, and what
// the frame says about the sensor-off, out-of-track and low-perfusion conditions. A condition is
// set by the field that reports it; when the field is absent, a frame that yields a reading ends
// the condition (the device no longer indicates it).
void Evaluate(const PlxFields& f, GattFrame& frame) {
  const std::uint32_t device = f.device.value_or(0);
  const std::uint32_t measurement = f.measurement.value_or(0);
  if (f.device) AddStatusBits(device, kDeviceBits, frame);
  if (f.measurement) AddStatusBits(measurement, kMeasurementBits, frame);

  if ((measurement & (kDemoData | kTestData)) != 0) {
    // Not the patient's data: neither readings nor alarms.
    frame.Warn(f.measurement_offset,
               "demonstration or test data (measurement status); not a patient reading");
    return;
  }
  const bool sensor_off = (device & (kSensorUnconnected | kSensorDisconnected)) != 0;
  const bool unavailable = (measurement & (kMeasurementUnavailable | kInvalidMeasurement)) != 0;
  if (!sensor_off && !unavailable) {
    if (const auto v = ParseSfloat(f.spo2)) frame.Add(Metric::kSpo2, ToDouble(*v));
    if (const auto v = ParseSfloat(f.pulse)) frame.Add(Metric::kPulseRate, ToDouble(*v));
    if (f.pai) {
      if (const auto v = ParseSfloat(*f.pai)) frame.Add(Metric::kPerfusionIndex, ToDouble(*v));
    }
  }
  const bool produced = frame.measurement_count > 0;
  if (f.device) {
    frame.SetCondition(DeviceCondition::kSensorOff, sensor_off);
    frame.SetCondition(DeviceCondition::kLowPerfusion, (device & kLowPerfusion) != 0);
  } else if (produced) {
    frame.SetCondition(DeviceCondition::kSensorOff, false);
    frame.SetCondition(DeviceCondition::kLowPerfusion, false);
  }
  if (f.measurement) {
    frame.SetCondition(DeviceCondition::kOutOfTrack, unavailable);
  } else if (produced) {
    frame.SetCondition(DeviceCondition::kOutOfTrack, false);
  }
}

}  // namespace

GattFrame DecodePlxSpotCheck(Bytes value, const TimeOptions& time) {
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 1, "flags (1 byte)", frame)) return frame;
  const std::uint8_t flags = r.U8();
  CheckReservedFlags(flags, kSpotReserved, frame);

  PlxFields f;
  if (!Need(r, 2, "SpO2 (SFLOAT)", frame)) return frame;
  f.spo2 = r.U16();
  if (!Need(r, 2, "pulse rate (SFLOAT)", frame)) return frame;
  f.pulse = r.U16();
  TimeStampField stamp;
  if (!ReadTimeStamp(r, (flags & kSpotTimeStamp) != 0, stamp, frame)) return frame;
  if ((flags & kSpotMeasurementStatus) != 0) {
    if (!Need(r, 2, "measurement status (2 bytes)", frame)) return frame;
    f.measurement_offset = r.offset();
    f.measurement = r.U16();
  }
  if ((flags & kSpotDeviceStatus) != 0) {
    if (!Need(r, 3, "device and sensor status (3 bytes)", frame)) return frame;
    f.device = r.U24();
  }
  if ((flags & kSpotPai) != 0) {
    if (!Need(r, 2, "pulse amplitude index (SFLOAT)", frame)) return frame;
    f.pai = r.U16();
  }
  CheckTrailing(r, frame);

  Evaluate(f, frame);
  if ((flags & kSpotClockNotSet) != 0) {
    // The device says its clock was never set: its time stamp is meaningless.
    frame.AddStatus("clock_not_set");
  } else if (stamp.value) {
    ApplyDeviceTime(*stamp.value, 0, stamp.offset, time, frame);
  }
  // A spot-check measurement: one reading taken on request, no condition delay.
  frame.flags |= kFlagSpot;
  return frame;
}

GattFrame DecodePlxContinuous(Bytes value, const TimeOptions& /*time: 2A5F carries none*/) {
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 1, "flags (1 byte)", frame)) return frame;
  const std::uint8_t flags = r.U8();
  CheckReservedFlags(flags, kContReserved, frame);

  PlxFields f;
  if (!Need(r, 2, "SpO2 normal (SFLOAT)", frame)) return frame;
  f.spo2 = r.U16();
  if (!Need(r, 2, "pulse rate normal (SFLOAT)", frame)) return frame;
  f.pulse = r.U16();
  // The fast and slow averages restate the same quantities; only the normal ones become
  // readings, so a device does not triple its SpO2 stream.
  if ((flags & kContFast) != 0) {
    if (!Need(r, 2, "SpO2 fast (SFLOAT)", frame)) return frame;
    r.Take(2);
    if (!Need(r, 2, "pulse rate fast (SFLOAT)", frame)) return frame;
    r.Take(2);
  }
  if ((flags & kContSlow) != 0) {
    if (!Need(r, 2, "SpO2 slow (SFLOAT)", frame)) return frame;
    r.Take(2);
    if (!Need(r, 2, "pulse rate slow (SFLOAT)", frame)) return frame;
    r.Take(2);
  }
  if ((flags & kContMeasurementStatus) != 0) {
    if (!Need(r, 2, "measurement status (2 bytes)", frame)) return frame;
    f.measurement_offset = r.offset();
    f.measurement = r.U16();
  }
  if ((flags & kContDeviceStatus) != 0) {
    if (!Need(r, 3, "device and sensor status (3 bytes)", frame)) return frame;
    f.device = r.U24();
  }
  if ((flags & kContPai) != 0) {
    if (!Need(r, 2, "pulse amplitude index (SFLOAT)", frame)) return frame;
    f.pai = r.U16();
  }
  CheckTrailing(r, frame);
  Evaluate(f, frame);
  return frame;
}

}  // namespace vg::gatt
