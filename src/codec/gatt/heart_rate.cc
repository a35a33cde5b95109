// Heart Rate Measurement (0x2A37), Heart Rate Service.
#include "characteristics.h"

namespace vg::gatt {
namespace {

constexpr std::uint8_t kFlagUint16 = 1 << 0;
constexpr std::uint8_t kFlagContactDetected = 1 << 1;
constexpr std::uint8_t kFlagContactSupported = 1 << 2;
constexpr std::uint8_t kFlagEnergyExpended = 1 << 3;
constexpr std::uint8_t kFlagRrIntervals = 1 << 4;
constexpr std::uint8_t kReservedFlags = 0xE0;

}  // namespace

GattFrame DecodeHeartRate(Bytes value, const TimeOptions& /*time: 2A37 carries none*/) {
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 1, "flags (1 byte)", frame)) return frame;
  const std::uint8_t flags = r.U8();
  CheckReservedFlags(flags, kReservedFlags, frame);

  std::uint16_t rate = 0;
  if ((flags & kFlagUint16) != 0) {
    if (!Need(r, 2, "heart rate (uint16)", frame)) return frame;
    rate = r.U16();
  } else {
    if (!Need(r, 1, "heart rate (uint8)", frame)) return frame;
    rate = r.U8();
  }
  if ((flags & kFlagEnergyExpended) != 0) {
    // Energy expended (kJ) has no metric; it is checked for framing and otherwise ignored.
    if (!Need(r, 2, "energy expended (2 bytes)", frame)) return frame;
    r.Take(2);
  }
  if ((flags & kFlagRrIntervals) != 0) {
    // RR intervals fill the rest of the value. They have no metric and are only checked: a
    // missing or incomplete last interval costs nothing but itself, so the heart rate before it
    // is still reported and the defect is a warning.
    if (r.remaining() == 0) {
      frame.Warn(r.offset(), "RR-interval field announced by the flags is empty; ignored");
    } else if (r.remaining() % 2 != 0) {
      frame.Warn(r.offset() + r.remaining() - 1,
                 "incomplete RR interval (1 of 2 bytes) at the end of the value; ignored");
    }
    r.Take(r.remaining());
  }
  CheckTrailing(r, frame);

  const bool supported = (flags & kFlagContactSupported) != 0;
  const bool detected = (flags & kFlagContactDetected) != 0;
  if (supported && !detected) {
    // The strap is off the skin: the number it sends is not a heart rate.
    frame.SetCondition(DeviceCondition::kSensorOff, true);
    return frame;
  }
  // Bits 1-2 = 01 mean "contact not supported" per the spec: no statement about contact.
  frame.SetCondition(DeviceCondition::kSensorOff, false);
  if (supported) frame.AddStatus("contact_detected");
  frame.Add(Metric::kHeartRate, rate);
  return frame;
}

}  // namespace vg::gatt
