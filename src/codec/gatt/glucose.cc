// Glucose Measurement (0x2A18), Glucose Service. Records usually arrive in bulk after a Record
// Access Control Point request, so the device time (base time + time offset) is what dates them.
#include "characteristics.h"
#include "sfloat.h"

namespace vg::gatt {
namespace {

constexpr std::uint8_t kFlagTimeOffset = 1 << 0;
constexpr std::uint8_t kFlagConcentration = 1 << 1;  // with type and sample location
constexpr std::uint8_t kFlagMolPerLitre = 1 << 2;    // else kg/L
constexpr std::uint8_t kFlagSensorStatus = 1 << 3;
constexpr std::uint8_t kFlagContextFollows = 1 << 4;
constexpr std::uint8_t kReservedFlags = 0xE0;

constexpr std::uint8_t kTypeControlSolution = 10;
constexpr std::uint8_t kLocationControlSolution = 4;

// Type (low nibble) 1..10 and sample location (high nibble) 1..4; others reserved or, for
// location 15, "not available".
constexpr std::string_view kTypeWords[] = {
    "capillary_whole_blood", "capillary_plasma", "venous_whole_blood",       "venous_plasma",
    "arterial_whole_blood",  "arterial_plasma",  "undetermined_whole_blood", "undetermined_plasma",
    "interstitial_fluid",    "control_solution",
};
constexpr std::string_view kLocationWords[] = {
    "finger",
    "alternate_site",
    "earlobe",
    "control_solution",
};

// Sensor Status Annunciation bits, most important first, and whether the value is questionable.
struct AnnunciationBit {
  std::uint16_t bit;
  std::string_view word;
  bool questionable;
};
constexpr std::uint16_t kTimeFault = 1 << 11;
// clang-format off
constexpr AnnunciationBit kAnnunciationBits[] = {
    {1 << 1, "sensor_malfunction", true},
    {1 << 10, "device_fault", true},
    {1 << 5, "result_above_range", true},
    {1 << 6, "result_below_range", true},
    {1 << 2, "sample_size_insufficient", true},
    {1 << 3, "strip_insertion_error", true},
    {1 << 4, "strip_type_incorrect", true},
    {1 << 9, "read_interrupted", true},
    {1 << 7, "temperature_too_high", true},
    {1 << 8, "temperature_too_low", true},
    {kTimeFault, "time_fault", false},
    {1 << 0, "battery_low", false},
};
// clang-format on

// 1 kg/L = 10^6 mg / 10 dL = 10^5 mg/dL, an exact decimal shift.
constexpr std::int32_t kKgPerLitreToMgPerDlExponent = 5;
// mol/L → mmol/L is ×10^3; mmol/L → mg/dL is ×18.016 (glucose, M = 180.16 g/mol).
constexpr std::int32_t kMolToMmolExponent = 3;
constexpr double kMgPerDlPerMmol = 18.016;

}  // namespace

GattFrame DecodeGlucose(Bytes value, const TimeOptions& time) {
  GattFrame frame;
  ByteReader r(value);
  if (!Need(r, 1, "flags (1 byte)", frame)) return frame;
  const std::uint8_t flags = r.U8();
  CheckReservedFlags(flags, kReservedFlags, frame);

  if (!Need(r, 2, "sequence number (2 bytes)", frame)) return frame;
  // Identifies the record: a record the meter sends again (a second RACP transfer) is
  // recognised by it.
  frame.record_seq = r.U16();
  // Every glucose measurement is a record from the meter's memory, with its own time.
  frame.flags |= kFlagStored;
  if (!Need(r, 7, "base time (7 bytes)", frame)) return frame;
  const std::size_t stamp_offset = r.offset();
  const DateTime base = ParseDateTime(r.Take(7));
  std::int16_t time_offset = 0;
  if ((flags & kFlagTimeOffset) != 0) {
    if (!Need(r, 2, "time offset (2 bytes)", frame)) return frame;
    time_offset = static_cast<std::int16_t>(r.U16());
  }
  std::optional<std::uint16_t> concentration;
  std::uint8_t type_location = 0;
  if ((flags & kFlagConcentration) != 0) {
    if (!Need(r, 2, "glucose concentration (SFLOAT)", frame)) return frame;
    concentration = r.U16();
    if (!Need(r, 1, "type and sample location (1 byte)", frame)) return frame;
    type_location = r.U8();
  }
  std::optional<std::uint16_t> annunciation;
  if ((flags & kFlagSensorStatus) != 0) {
    if (!Need(r, 2, "sensor status annunciation (2 bytes)", frame)) return frame;
    annunciation = r.U16();
  }
  CheckTrailing(r, frame);

  const unsigned type = type_location & 0x0Fu;
  const unsigned location = type_location >> 4;
  if (annunciation) {
    for (const AnnunciationBit& b : kAnnunciationBits) {
      if ((*annunciation & b.bit) == 0) continue;
      frame.AddStatus(b.word);
      if (b.questionable) frame.flags |= kFlagQuestionable;
    }
  }
  if (concentration) {
    if (type >= 1 && type <= std::size(kTypeWords)) frame.AddStatus(kTypeWords[type - 1]);
    if (location >= 1 && location <= std::size(kLocationWords)) {
      frame.AddStatus(kLocationWords[location - 1]);
    }
  }
  if ((flags & kFlagContextFollows) != 0) frame.AddStatus("context_follows");
  // A device reporting a time fault does not know when the sample was taken.
  if (!annunciation || (*annunciation & kTimeFault) == 0) {
    ApplyDeviceTime(base, time_offset, stamp_offset, time, frame);
  }

  if (!concentration) return frame;  // a record without a result
  if (type == kTypeControlSolution || location == kLocationControlSolution) {
    // A meter check, not the patient's blood.
    frame.Warn(stamp_offset + 7 + ((flags & kFlagTimeOffset) != 0 ? 2 : 0),
               "control-solution result; not a patient reading");
    return frame;
  }
  const auto f = ParseSfloat(*concentration);
  if (!f) return frame;  // NaN, NRes, ±INF: no reading
  if ((flags & kFlagMolPerLitre) != 0) {
    const double mmol = DecimalToDouble(f->mantissa, f->exponent + kMolToMmolExponent);
    const double step = DecimalToDouble(1, f->exponent + kMolToMmolExponent) * kMgPerDlPerMmol;
    frame.Add(Metric::kGlucose, RoundConverted(mmol * kMgPerDlPerMmol, step));
  } else {
    frame.Add(Metric::kGlucose,
              DecimalToDouble(f->mantissa, f->exponent + kKgPerLitreToMgPerDlExponent));
  }
  return frame;
}

}  // namespace vg::gatt
