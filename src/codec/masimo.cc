#include "masimo.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

constexpr std::string_view kTimestampChoices[] = {"receive", "device"};

constexpr OptionSpec kOptions[] = {
    {"timestamps", OptionType::kString, "\"receive\"",
     "Time of the readings: \"receive\" (when the line arrived; monitor clocks are often wrong) "
     "or \"device\" (the line's date and time, read in `timezone` or with utc_offset_minutes).",
     false, -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
     kTimestampChoices},
    {"utc_offset_minutes", OptionType::kInteger, "0",
     "With timestamps \"device\": the monitor clock's offset from UTC in minutes (e.g. 60 for "
     "UTC+01:00). Fixed: daylight saving needs `timezone` instead.",
     false, -720, 840},
    {"timezone", OptionType::kString, "\"\"",
     "With timestamps \"device\": the monitor clock's tz database zone (e.g. \"Europe/Berlin\"), "
     "right across daylight-saving changes; replaces utc_offset_minutes. Usually set as "
     "devices[].timezone."},
    {"max_line", OptionType::kInteger, "1024", "Longest accepted line in bytes.", false, 64, 65536},
};

// EXC bits (Masimo ASCII 1 exception word). Sources: OpenICE poxrad_discrete.h; the low 12 bits
// are confirmed by the Rad-8 manual's trend format. See docs/codecs.md.
constexpr std::uint32_t kExcNoSensor = 0x000001;
constexpr std::uint32_t kExcDefectiveSensor = 0x000002;
constexpr std::uint32_t kExcLowPerfusion = 0x000004;
constexpr std::uint32_t kExcPulseSearch = 0x000008;
constexpr std::uint32_t kExcInterference = 0x000010;
constexpr std::uint32_t kExcSensorOff = 0x000020;
constexpr std::uint32_t kExcAmbientLight = 0x000040;
constexpr std::uint32_t kExcUnrecognizedSensor = 0x000080;
constexpr std::uint32_t kExcIncompatibleSensor = 0x000100;
constexpr std::uint32_t kExcLowSignalIq = 0x000400;
constexpr std::uint32_t kExcMasimoSet = 0x000800;
constexpr std::uint32_t kExcNoCable = 0x001000;
constexpr std::uint32_t kExcCableExpired = 0x002000;
constexpr std::uint32_t kExcIncompatibleCable = 0x004000;
constexpr std::uint32_t kExcUnrecognizedCable = 0x008000;
constexpr std::uint32_t kExcDefectiveCable = 0x010000;
constexpr std::uint32_t kExcSensorInit = 0x020000;
constexpr std::uint32_t kExcSensorExpired = 0x040000;
constexpr std::uint32_t kExcEmitterTemp = 0x080000;
constexpr std::uint32_t kExcCurrentLimit = 0x100000;
constexpr std::uint32_t kExcSpcoLowConfidence = 0x200000;
constexpr std::uint32_t kExcSpmetLowConfidence = 0x400000;

// No usable sensor on the patient: the monitor cannot measure, so the line yields no readings.
constexpr std::uint32_t kSensorOffBits =
    kExcNoSensor | kExcDefectiveSensor | kExcSensorOff | kExcUnrecognizedSensor |
    kExcIncompatibleSensor | kExcNoCable | kExcCableExpired | kExcIncompatibleCable |
    kExcUnrecognizedCable | kExcDefectiveCable | kExcSensorExpired;
constexpr std::uint32_t kOutOfTrackBits = kExcPulseSearch | kExcInterference | kExcAmbientLight;
constexpr std::uint32_t kLowPerfusionBits = kExcLowPerfusion | kExcLowSignalIq;

// ALARM bits (OpenICE poxrad_discrete.h).
constexpr std::uint32_t kAlarmLowBattery = 0x0040;

struct StatusBit {
  bool exc;  // true: an EXC bit, false: an ALARM bit
  std::uint32_t mask;
  std::string_view word;
};

// In order of importance: DecodedValue holds 8 words, the rest are dropped.
constexpr StatusBit kStatusBits[] = {
    {true, kExcNoSensor, "no_sensor"},
    {true, kExcSensorOff, "sensor_off_patient"},
    {true, kExcDefectiveSensor, "defective_sensor"},
    {true, kExcPulseSearch, "pulse_search"},
    {true, kExcInterference, "interference"},
    {true, kExcLowPerfusion, "low_perfusion"},
    {true, kExcLowSignalIq, "low_signal_iq"},
    {true, kExcAmbientLight, "ambient_light"},
    {false, 0x0010, "alarm_active"},
    {false, 0x0002, "spo2_low_alarm"},
    {false, 0x0001, "spo2_high_alarm"},
    {false, 0x0008, "pulse_rate_low_alarm"},
    {false, 0x0004, "pulse_rate_high_alarm"},
    {false, 0x0020, "alarm_silenced"},
    {false, kAlarmLowBattery, "low_battery"},
    {false, 0x1000, "desat_alarm"},
    {false, 0x2000, "pi_delta_alarm"},
    {false, 0x0100, "spco_high_alarm"},
    {false, 0x0200, "spco_low_alarm"},
    {false, 0x0400, "spmet_high_alarm"},
    {false, 0x0800, "spmet_low_alarm"},
    {true, kExcUnrecognizedSensor, "unrecognized_sensor"},
    {true, kExcIncompatibleSensor, "incompatible_sensor"},
    {true, kExcNoCable, "no_cable"},
    {true, kExcCableExpired, "cable_expired"},
    {true, kExcIncompatibleCable, "incompatible_cable"},
    {true, kExcUnrecognizedCable, "unrecognized_cable"},
    {true, kExcDefectiveCable, "defective_cable"},
    {true, kExcSensorExpired, "sensor_expired"},
    {true, kExcSensorInit, "sensor_initializing"},
    {true, kExcEmitterTemp, "emitter_temperature"},
    {true, kExcCurrentLimit, "sensor_current_limit"},
    {true, kExcSpcoLowConfidence, "spco_low_confidence"},
    {true, kExcSpmetLowConfidence, "spmet_low_confidence"},
    {true, kExcMasimoSet, "masimo_set"},
};

constexpr std::size_t kDetailMax = 64;

void Report(CodecSink& sink, std::uint64_t offset, std::string_view message,
            std::string_view detail = {}, bool warning = false) {
  sink.OnDecodeError(DecodeError{offset, "masimo: " + std::string(message),
                                 std::string(detail.substr(0, kDetailMax)), warning});
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool EqualsUpper(std::string_view text, std::string_view upper) {
  if (text.size() != upper.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c != upper[i]) return false;
  }
  return true;
}

unsigned TwoDigits(std::string_view s, std::size_t pos) {
  return static_cast<unsigned>((s[pos] - '0') * 10 + (s[pos + 1] - '0'));
}

// Parses "MM/DD/YY HH:MM:SS" at the start of `line` into Unix ms of that wall-clock time read as
// UTC. Two-digit years are 2000-2099 (the monitors postdate 2000).
std::optional<std::int64_t> ParseLineTime(std::string_view line) {
  constexpr std::string_view kShape = "nn/nn/nn nn:nn:nn";
  if (line.size() < kShape.size()) return std::nullopt;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] == 'n' ? !IsDigit(line[i]) : line[i] != kShape[i]) return std::nullopt;
  }
  const unsigned month = TwoDigits(line, 0);
  const unsigned day = TwoDigits(line, 3);
  const unsigned year = 2000 + TwoDigits(line, 6);
  const unsigned hour = TwoDigits(line, 9);
  const unsigned minute = TwoDigits(line, 12);
  const unsigned second = TwoDigits(line, 15);
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  const bool leap = year % 4 == 0;  // exact for 2000-2099
  if (day > kDays[month - 1] + (month == 2 && leap ? 1u : 0u)) return std::nullopt;
  const std::int64_t days = DaysFromCivil(year, month, day);
  return ((days * 24 + hour) * 60 + minute) * 60'000 + std::int64_t{second} * 1000;
}

enum class Parsed : std::uint8_t { kValue, kAbsent, kInvalid };

// A decimal value as the monitor prints it: zero-padded digits with an optional sign and an
// optional trailing '%'. Dashes in place of the digits ("---%", "--.--", "+--") mean no value.
Parsed ParseNumber(std::string_view text, double& out) {
  if (!text.empty() && text.back() == '%') text.remove_suffix(1);
  bool negative = false;
  if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
    // A lone "-" or "--" is a no-value filler, not a sign.
    if (text.size() > 1 && IsDigit(text[1])) {
      negative = text.front() == '-';
      text.remove_prefix(1);
    } else if (text.front() == '+') {
      text.remove_prefix(1);
    }
  }
  if (text.empty()) return Parsed::kInvalid;
  bool digits = false;
  bool dashes = false;
  for (char c : text) {
    if (IsDigit(c)) {
      digits = true;
    } else if (c == '-') {
      dashes = true;
    } else if (c != '.') {
      return Parsed::kInvalid;
    }
  }
  if (!digits) return dashes ? Parsed::kAbsent : Parsed::kInvalid;
  // Digits only, at most one '.', not at either end (the monitor always zero-pads).
  const std::size_t dot = text.find('.');
  if (dashes || text.front() == '.' || text.back() == '.' ||
      (dot != std::string_view::npos && text.find('.', dot + 1) != std::string_view::npos)) {
    return Parsed::kInvalid;
  }
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return Parsed::kInvalid;
  out = negative ? -v : v;
  return Parsed::kValue;
}

// 1 to 8 hex digits (the monitors print 2 to 7).
std::optional<std::uint32_t> ParseHexWord(std::string_view text) {
  if (text.empty() || text.size() > 8) return std::nullopt;
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 16);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

struct Field {
  std::string_view key;
  Metric metric;
};
constexpr Field kNumericFields[] = {
    {"SPO2", Metric::kSpo2},
    {"BPM", Metric::kPulseRate},
    {"PI", Metric::kPerfusionIndex},
};

}  // namespace

std::span<const OptionSpec> MasimoCodec::Options() { return kOptions; }

Result<std::unique_ptr<Codec>> MasimoCodec::Make(const nlohmann::json& options) {
  Settings s;
  s.device_time = options.at("timestamps").get<std::string>() == "device";
  auto zone = ZoneOption(options);
  if (!zone.ok()) return zone.status();
  s.zone = *zone;
  s.max_line = options.at("max_line").get<std::size_t>();
  return std::unique_ptr<Codec>(std::make_unique<MasimoCodec>(s));
}

MasimoCodec::MasimoCodec(const Settings& settings)
    : settings_(settings), framer_(settings.max_line) {}

void MasimoCodec::Reset() {
  framer_.Reset();
  first_line_ = true;
}

void MasimoCodec::Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) {
  framer_.Feed(
      bytes,
      [&](std::string_view line, std::uint64_t offset) {
        DecodeLine(line, offset, sink);
        first_line_ = false;
      },
      [&](std::uint64_t offset) {
        Report(sink, offset, "line longer than max_line, discarded");
        first_line_ = false;
      });
}

void MasimoCodec::DecodeLine(std::string_view line, std::uint64_t offset, CodecSink& sink) {
  const std::optional<std::int64_t> local_ms = ParseLineTime(line);
  if (!local_ms || (line.size() > 17 && line[17] != ' ' && line[17] != '\t')) {
    if (first_line_) {
      // The port was opened in the middle of a line.
      Report(sink, offset, "first line is incomplete, dropped", line, true);
    } else {
      Report(sink, offset, "line does not start with a valid date and time MM/DD/YY HH:MM:SS",
             line);
    }
    return;
  }

  std::optional<double> values[std::size(kNumericFields)];
  bool seen[std::size(kNumericFields)] = {};
  std::optional<std::uint32_t> exc;
  std::optional<std::uint32_t> alarm;
  bool seen_exc = false;
  bool seen_alarm = false;

  std::size_t pos = 17;
  while (pos < line.size()) {
    if (line[pos] == ' ' || line[pos] == '\t') {
      ++pos;
      continue;
    }
    std::size_t end = pos;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
    const std::string_view token = line.substr(pos, end - pos);
    const std::uint64_t token_offset = offset + pos;
    pos = end;

    const std::size_t eq = token.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      Report(sink, token_offset, "field is not KEY=VALUE, ignored", token, true);
      continue;
    }
    const std::string_view key = token.substr(0, eq);
    const std::string_view value = token.substr(eq + 1);

    if (EqualsUpper(key, "EXC") || EqualsUpper(key, "ALARM")) {
      const bool is_exc = EqualsUpper(key, "EXC");
      bool& seen_word = is_exc ? seen_exc : seen_alarm;
      if (seen_word) {
        Report(sink, token_offset,
               is_exc ? "EXC field repeated, ignored" : "ALARM field repeated, ignored", token,
               true);
        continue;
      }
      seen_word = true;
      const auto word = ParseHexWord(value);
      if (!word) {
        Report(sink, token_offset,
               is_exc ? "EXC value is not a hex word of up to 8 digits"
                      : "ALARM value is not a hex word of up to 8 digits",
               token);
        continue;
      }
      (is_exc ? exc : alarm) = word;
      continue;
    }
    for (std::size_t f = 0; f < std::size(kNumericFields); ++f) {
      if (!EqualsUpper(key, kNumericFields[f].key)) continue;
      if (seen[f]) {
        Report(sink, token_offset, std::string(kNumericFields[f].key) + " field repeated, ignored",
               token, true);
        break;
      }
      seen[f] = true;
      double v = 0;
      switch (ParseNumber(value, v)) {
        case Parsed::kValue:
          values[f] = v;
          break;
        case Parsed::kAbsent:
          break;
        case Parsed::kInvalid:
          Report(sink, token_offset, std::string(kNumericFields[f].key) + " value is not a number",
                 token);
          break;
      }
      break;
    }
    // Other keys (SN, SPCO, SPMET, SPHB, DESAT, PVI, EXC1, ...) carry nothing vitalgate maps.
  }

  // Conditions first, so that the engine knows the device state when the values arrive.
  if (exc) {
    conditions_.Set(DeviceCondition::kSensorOff, (*exc & kSensorOffBits) != 0, sink);
    conditions_.Set(DeviceCondition::kOutOfTrack, (*exc & kOutOfTrackBits) != 0, sink);
    conditions_.Set(DeviceCondition::kLowPerfusion, (*exc & kLowPerfusionBits) != 0, sink);
  }
  if (alarm) conditions_.Set(DeviceCondition::kLowBattery, (*alarm & kAlarmLowBattery) != 0, sink);
  if (exc && (*exc & kSensorOffBits) != 0) return;

  DecodedValue out;
  if (settings_.device_time) {
    out.ts_ms = settings_.zone.LocalToUtc(*local_ms);
    out.flags |= kFlagDeviceTime;
  }
  if (exc && (*exc & (kOutOfTrackBits | kLowPerfusionBits)) != 0) out.flags |= kFlagQuestionable;
  for (const StatusBit& b : kStatusBits) {
    const std::optional<std::uint32_t>& word = b.exc ? exc : alarm;
    if (word && (*word & b.mask) != 0) out.AddStatus(b.word);
  }
  for (std::size_t f = 0; f < std::size(kNumericFields); ++f) {
    if (!values[f]) continue;
    out.metric = kNumericFields[f].metric;
    out.value = *values[f];
    sink.OnValue(out);
  }
}

}  // namespace vg
