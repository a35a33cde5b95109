// Temperature Measurement (0x2A1C), Health Thermometer Service.
#include "characteristics.h"
#include "sfloat.h"

namespace vg::gatt {
namespace {

constexpr std::uint8_t kFlagFahrenheit = 1 << 0;
constexpr std::uint8_t kFlagTimeStamp = 1 << 1;
constexpr std::uint8_t kFlagTemperatureType = 1 << 2;
constexpr std::uint8_t kReservedFlags = 0xF8;

// Temperature Type (0x2A1D) values 1..9; 0 and 10..255 are reserved.
constexpr std::string_view kSiteWords[] = {
    "site_armpit", "site_body",   "site_ear", "site_finger",   "site_gastrointestinal",
    "site_mouth",  "site_rectum", "site_toe", "site_tympanum",
};

}  // namespace

GattFrame DecodeTemperature(Bytes value, const TimeOptions& time) {
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 1, "flags (1 byte)", frame)) return frame;
  const std::uint8_t flags = r.U8();
  CheckReservedFlags(flags, kReservedFlags, frame);

  if (!Need(r, 4, "temperature (FLOAT)", frame)) return frame;
  const std::uint32_t raw = r.U32();
  TimeStampField stamp;
  if (!ReadTimeStamp(r, (flags & kFlagTimeStamp) != 0, stamp, frame)) return frame;
  std::optional<std::uint8_t> type;
  if ((flags & kFlagTemperatureType) != 0) {
    if (!Need(r, 1, "temperature type (1 byte)", frame)) return frame;
    type = r.U8();
  }
  CheckTrailing(r, frame);

  if (type && *type >= 1 && *type <= std::size(kSiteWords)) frame.AddStatus(kSiteWords[*type - 1]);
  if (stamp.value) ApplyDeviceTime(*stamp.value, 0, stamp.offset, time, frame);
  // One measurement taken when the user asks, not a stream: no condition delay.
  frame.flags |= kFlagSpot;

  const auto f = ParseFloat(raw);
  if (!f) return frame;  // NaN, NRes, ±INF: no reading
  if ((flags & kFlagFahrenheit) != 0) {
    constexpr double kCelPerFahrenheit = 5.0 / 9.0;
    frame.Add(Metric::kTemperature, RoundConverted((ToDouble(*f) - 32.0) * kCelPerFahrenheit,
                                                   Resolution(*f) * kCelPerFahrenheit));
  } else {
    frame.Add(Metric::kTemperature, ToDouble(*f));
  }
  return frame;
}

}  // namespace vg::gatt
