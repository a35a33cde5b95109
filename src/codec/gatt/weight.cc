// Weight Measurement (0x2A9D), Weight Scale Service.
#include "characteristics.h"
#include "sfloat.h"

namespace vg::gatt {
namespace {

constexpr std::uint8_t kFlagImperial = 1 << 0;
constexpr std::uint8_t kFlagTimeStamp = 1 << 1;
constexpr std::uint8_t kFlagUserId = 1 << 2;
constexpr std::uint8_t kFlagBmiAndHeight = 1 << 3;
constexpr std::uint8_t kReservedFlags = 0xF0;

// WSS: this weight value means "measurement unsuccessful".
constexpr std::uint16_t kUnsuccessful = 0xFFFF;
constexpr double kKgPerLb = 0.45359237;  // exact by definition
constexpr double kLbResolution = 0.01;

}  // namespace

GattFrame DecodeWeight(Bytes value, const TimeOptions& time) {
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 1, "flags (1 byte)", frame)) return frame;
  const std::uint8_t flags = r.U8();
  CheckReservedFlags(flags, kReservedFlags, frame);

  if (!Need(r, 2, "weight (2 bytes)", frame)) return frame;
  const std::uint16_t raw = r.U16();
  TimeStampField stamp;
  if (!ReadTimeStamp(r, (flags & kFlagTimeStamp) != 0, stamp, frame)) return frame;
  std::optional<std::uint8_t> user;
  if ((flags & kFlagUserId) != 0) {
    if (!Need(r, 1, "user id (1 byte)", frame)) return frame;
    user = r.U8();
  }
  if ((flags & kFlagBmiAndHeight) != 0) {
    // BMI and height have no metric; checked for framing and otherwise ignored.
    if (!Need(r, 2, "BMI (2 bytes)", frame)) return frame;
    r.Take(2);
    if (!Need(r, 2, "height (2 bytes)", frame)) return frame;
    r.Take(2);
  }
  CheckTrailing(r, frame);

  if (user) frame.AddStatus(UserIdWord(*user));
  if (stamp.value) ApplyDeviceTime(*stamp.value, 0, stamp.offset, time, frame);
  // One measurement taken when the user asks, not a stream: no condition delay.
  frame.flags |= kFlagSpot;
  if (raw == kUnsuccessful) return frame;
  if ((flags & kFlagImperial) != 0) {
    frame.Add(Metric::kWeight,
              RoundConverted(raw * kLbResolution * kKgPerLb, kLbResolution * kKgPerLb));
  } else {
    frame.Add(Metric::kWeight, DecimalToDouble(std::int64_t{raw} * 5, -3));  // 0.005 kg steps
  }
  return frame;
}

}  // namespace vg::gatt
