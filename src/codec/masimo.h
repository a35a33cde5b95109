// masimo codec: Masimo Radical-7 / Rad-8 / Rad-87 / Radical-5 serial "ASCII 1" lines,
//   MM/DD/YY HH:MM:SS SN=... SPO2=098% BPM=072 PI=01.15 ... ALARM=0000 EXC=000800 CR LF
// one per second. Fields are looked up by key (the field set differs between models and
// firmware), dashes mean "no value", and the ALARM and EXC hex bitfields become device
// conditions (reported on change only) and status words. See docs/codecs.md.
//
// Promises: pure and bounded (one line of at most `max_line` bytes); never emits NaN; a line with
// the sensor off (no sensor, off patient, sensor or cable fault) yields no readings.
// Thread-safety: one instance per device, driven by one thread at a time (see codec.h).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "binary_stream.h"
#include "vitalgate/codec/codec.h"
#include "vitalgate/codec/line_framer.h"
#include "vitalgate/core/timezone.h"

namespace vg {

class MasimoCodec final : public Codec {
 public:
  struct Settings {
    bool device_time = false;             // stamp readings with the line's time (else receive time)
    TimeZone zone;  // the device clock's zone (utc_offset_minutes gives a fixed one)
    std::size_t max_line = 1024;
  };

  explicit MasimoCodec(const Settings& settings);
  void Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) override;
  // Drops the partial line. Condition state is kept so that a condition that ended while the
  // link was down is still reported as ended.
  void Reset() override;

  static std::span<const OptionSpec> Options();
  static Result<std::unique_ptr<Codec>> Make(const nlohmann::json& options);

 private:
  void DecodeLine(std::string_view line, std::uint64_t offset, CodecSink& sink);

  Settings settings_;
  LineFramer framer_;
  // The first line after opening the port is usually the tail of a line; it is dropped with a
  // warning rather than counted as an error when it lacks the date and time.
  bool first_line_ = true;
  ConditionReporter conditions_;
};

}  // namespace vg
