// Blood Pressure Measurement (0x2A35), Blood Pressure Service.
#include "characteristics.h"
#include "sfloat.h"

namespace vg::gatt {
namespace {

constexpr std::uint8_t kFlagKpa = 1 << 0;
constexpr std::uint8_t kFlagTimeStamp = 1 << 1;
constexpr std::uint8_t kFlagPulseRate = 1 << 2;
constexpr std::uint8_t kFlagUserId = 1 << 3;
constexpr std::uint8_t kFlagMeasurementStatus = 1 << 4;
constexpr std::uint8_t kReservedFlags = 0xE0;

// Measurement Status bits.
constexpr std::uint16_t kBodyMovement = 1 << 0;
constexpr std::uint16_t kCuffTooLoose = 1 << 1;
constexpr std::uint16_t kIrregularPulse = 1 << 2;
constexpr unsigned kPulseRangeShift = 3;  // 2 bits: 0 in range, 1 above, 2 below, 3 reserved
constexpr std::uint16_t kImproperPosition = 1 << 5;

// 1 mmHg = 133.322387415 Pa (the conventional millimetre of mercury).
constexpr double kMmHgPerKpa = 1000.0 / 133.322387415;

}  // namespace

GattFrame DecodeBloodPressure(Bytes value, const TimeOptions& time) {
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 1, "flags (1 byte)", frame)) return frame;
  const std::uint8_t flags = r.U8();
  CheckReservedFlags(flags, kReservedFlags, frame);

  if (!Need(r, 2, "systolic (SFLOAT)", frame)) return frame;
  const std::uint16_t systolic = r.U16();
  if (!Need(r, 2, "diastolic (SFLOAT)", frame)) return frame;
  const std::uint16_t diastolic = r.U16();
  if (!Need(r, 2, "mean arterial pressure (SFLOAT)", frame)) return frame;
  const std::uint16_t mean = r.U16();

  TimeStampField stamp;
  if (!ReadTimeStamp(r, (flags & kFlagTimeStamp) != 0, stamp, frame)) return frame;
  std::optional<std::uint16_t> pulse;
  if ((flags & kFlagPulseRate) != 0) {
    if (!Need(r, 2, "pulse rate (SFLOAT)", frame)) return frame;
    pulse = r.U16();
  }
  std::optional<std::uint8_t> user;
  if ((flags & kFlagUserId) != 0) {
    if (!Need(r, 1, "user id (1 byte)", frame)) return frame;
    user = r.U8();
  }
  std::optional<std::uint16_t> status;
  if ((flags & kFlagMeasurementStatus) != 0) {
    if (!Need(r, 2, "measurement status (2 bytes)", frame)) return frame;
    status = r.U16();
  }
  CheckTrailing(r, frame);

  if (status) {
    // Movement, a loose cuff and a wrong position make the oscillometric result unreliable;
    // an irregular pulse and the pulse-range bits are findings about the patient, not artifacts.
    if ((*status & kBodyMovement) != 0) {
      frame.AddStatus("body_movement");
      frame.flags |= kFlagQuestionable;
    }
    if ((*status & kCuffTooLoose) != 0) {
      frame.AddStatus("cuff_too_loose");
      frame.flags |= kFlagQuestionable;
    }
    if ((*status & kImproperPosition) != 0) {
      frame.AddStatus("improper_position");
      frame.flags |= kFlagQuestionable;
    }
    if ((*status & kIrregularPulse) != 0) frame.AddStatus("irregular_pulse");
    switch ((*status >> kPulseRangeShift) & 0x3u) {
      case 1:
        frame.AddStatus("pulse_above_range");
        break;
      case 2:
        frame.AddStatus("pulse_below_range");
        break;
      default:
        break;  // 0 within range, 3 reserved
    }
  }
  if (user) frame.AddStatus(UserIdWord(*user));
  if (stamp.value) ApplyDeviceTime(*stamp.value, 0, stamp.offset, time, frame);
  // One measurement taken when the user asks, not a stream: no condition delay.
  frame.flags |= kFlagSpot;

  const bool kpa = (flags & kFlagKpa) != 0;
  const auto add_pressure = [&](Metric metric, std::uint16_t raw) {
    const auto f = ParseSfloat(raw);
    if (!f) return;  // NaN, NRes, ±INF: no reading for this component only
    frame.Add(metric, kpa ? RoundConverted(ToDouble(*f) * kMmHgPerKpa, Resolution(*f) * kMmHgPerKpa)
                          : ToDouble(*f));
  };
  add_pressure(Metric::kBpSystolic, systolic);
  add_pressure(Metric::kBpDiastolic, diastolic);
  add_pressure(Metric::kBpMean, mean);
  if (pulse) {
    if (const auto f = ParseSfloat(*pulse)) frame.Add(Metric::kPulseRate, ToDouble(*f));
  }
  return frame;
}

}  // namespace vg::gatt
