// Battery Level (0x2A19), Battery Service.
#include "characteristics.h"

namespace vg::gatt {

GattFrame DecodeBatteryLevel(Bytes value, const TimeOptions& /*time: 2A19 carries none*/) {
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 1, "battery level (1 byte)", frame)) return frame;
  const std::uint8_t level = r.U8();
  if (level > 100) {
    frame.Fail(0, "battery level above 100 % (101-255 are reserved)");
    return frame;
  }
  CheckTrailing(r, frame);
  frame.Add(Metric::kBattery, level);
  return frame;
}

GattFrame DecodeCurrentTime(Bytes value, const TimeOptions& time) {
  // Exact Time 256: Day Date Time (Date Time, 7 bytes, + Day of Week) + Fractions256, then
  // Adjust Reason (Bluetooth CTS 1.1, section 3.1).
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 10, "current time (10 bytes)", frame)) return frame;
  const DateTime dt = ParseDateTime(r.Take(7));
  r.U8();  // day of week: follows from the date
  const std::uint8_t fractions = r.U8();
  r.U8();  // adjust reason
  CheckTrailing(r, frame);
  switch (dt.kind) {
    case DateTime::Kind::kValid: {
      GattFrame probe;
      ApplyDeviceTime(dt, 0, 0, TimeOptions{true, time.zone}, probe);
      if (probe.ts_ms) frame.device_clock_ms = *probe.ts_ms + fractions * 1000 / 256;
      break;
    }
    case DateTime::Kind::kUnknown:
      frame.AddStatus("time_unknown");
      break;
    case DateTime::Kind::kInvalid:
      frame.Warn(0, "date/time field out of range; device clock unknown");
      break;
  }
  return frame;
}

}  // namespace vg::gatt
