// nonin codec: Nonin pulse oximeter binary serial data formats (OEM III, Xpod, 9560, 3150).
//   format 2: 5-byte frames 0x01 STATUS PLETH FLOAT CHK (CHK = sum of the first four mod 256),
//             25 frames per packet (SYNC bit on frame 1), 3 packets per second; HR from the
//             FLOAT bytes of frames 1-2, SpO2 from frame 3.
//   format 8: 4-byte frames STATUS HR SPO2 STATUS2, one per second, no checksum.
// Missing-data values (HR 511, SpO2 127) yield no reading. Status bits become device conditions
// (reported on change only), the questionable flag and status words. See docs/codecs.md.
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

class NoninCodec final : public Codec {
 public:
  enum class Format : std::uint8_t { k2, k8 };

  explicit NoninCodec(Format format);
  void Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) override;
  // Drops the partial frame and the packet position. Condition state is kept so that a condition
  // that ended while the link was down is still reported as ended.
  void Reset() override;

  static std::span<const OptionSpec> Options();
  static Result<std::unique_ptr<Codec>> Make(const nlohmann::json& options);

 private:
  std::size_t frame_size() const { return format_ == Format::k2 ? 5 : 4; }
  // Empty when the window holds a valid frame; else why not (a static string).
  std::string_view CheckFrame() const;
  void OnFrame(CodecSink& sink);
  void OnFormat2Frame(CodecSink& sink);
  void OnFormat8Frame(CodecSink& sink);
  bool CanStartFrame(std::uint8_t byte) const;
  // Looks for a frame at the start of the window; processes it or drops bytes that cannot be one.
  void Scan(CodecSink& sink);

  const Format format_;
  FrameWindow window_{"nonin", "wrong baud rate or format?"};
  bool synced_ = false;  // the last frame was valid

  // Format 2 packet state.
  std::uint8_t frame_index_ = 0;    // 1-25: position of the last frame; 0: unknown
  std::uint8_t hr_msb_ = 0;         // HR bits 8..7 from frame 1
  std::uint8_t packet_status_ = 0;  // STATUS bits seen so far in this packet (OR)
  std::uint8_t perfusion_ = 0;      // last non-zero perfusion indication (bits 2..1)

  ConditionReporter conditions_;
};

}  // namespace vg
