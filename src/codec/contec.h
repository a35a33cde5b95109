// contec codec: live data of Contec CMS50D+/CMS50E/CMS50F-class finger pulse oximeters.
//   5-byte frames (older firmware, 19200 baud, about 60 frames/s): bit 7 set only in byte 1;
//     byte 1 signal strength and flags, byte 2 pleth, byte 3 bar graph, probe error, searching
//     and PR bit 7, byte 4 PR bits 6..0, byte 5 SpO2.
//   9-byte frames (firmware 4.x, 115200 baud): 01, flags (0xE0 = valid), strength, two waveform
//     bytes, PR, SpO2, FF, FF; every byte after the first has bit 7 set.
// Option `frame` picks one, or "auto" detects it from the stream (the two layouts have opposite
// bit-7 patterns, so they cannot be confused). There is no checksum in either. No-value codes
// (PR 255 or 0, SpO2 127 or 0) yield no reading; probe error / finger out and searching become
// device conditions (reported on change only). Values are emitted at most once every
// `emit_every` frames. See docs/codecs.md.
//
// Promises: pure and bounded (one frame of look-ahead); resynchronises after garbage by sliding
// byte by byte to the next valid frame; never emits NaN.
// Thread-safety: one instance per device, driven by one thread at a time (see codec.h).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "binary_stream.h"
#include "vitalgate/codec/codec.h"

namespace vg {

class ContecCodec final : public Codec {
 public:
  enum class FrameMode : std::uint8_t { kAuto, k5, k9 };

  ContecCodec(FrameMode mode, std::uint32_t emit_every);
  void Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) override;
  // Drops the partial frame; in "auto" mode the layout is detected afresh. Condition state is
  // kept so that a condition that ended while the link was down is still reported as ended.
  void Reset() override;

  static std::span<const OptionSpec> Options();
  static Result<std::unique_ptr<Codec>> Make(const nlohmann::json& options);

 private:
  enum class Kind : std::uint8_t { kNone, k5, k9 };
  static constexpr std::size_t kMaxFrame = 9;

  // The frame layout a frame starting with `first` would have when out of sync; kNone if none.
  Kind CandidateKind(std::uint8_t first) const;
  // Empty when the window starts with a valid frame of `kind`; else why not (a static string).
  std::string_view CheckFrame(Kind kind) const;
  void Scan(CodecSink& sink);
  void OnFrame5(CodecSink& sink);
  void OnFrame9(CodecSink& sink);
  // Counts the frame and emits the values present if emit_every frames have passed.
  void Emit(DecodedValue& out, unsigned pulse_rate, bool pulse_rate_ok, unsigned spo2, bool spo2_ok,
            CodecSink& sink);

  const FrameMode mode_;
  const std::uint32_t emit_every_;
  FrameWindow window_{"contec", "wrong baud rate or frame layout?"};
  Kind synced_ = Kind::kNone;        // layout of the last frame while in sync
  std::uint32_t frames_since_emit_;  // saturates at emit_every_

  ConditionReporter conditions_;
};

}  // namespace vg
