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

}  // namespace vg::gatt
