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
  static constexpr std::size_t kMaxFrame = 5;
  // While out of sync, one error per this many skipped bytes (a wrong baud rate or format
  // produces nothing but garbage, and that must be visible without flooding the log).
  static constexpr std::uint64_t kSkipReportBytes = 512;

  std::size_t frame_size() const { return format_ == Format::k2 ? 5 : 4; }
  // Empty when the window holds a valid frame; else why not (a static string).
  std::string_view CheckFrame() const;
  void OnFrame(CodecSink& sink);
  void OnFormat2Frame(CodecSink& sink);
  void OnFormat8Frame(CodecSink& sink);
  bool CanStartFrame(std::uint8_t byte) const;
  // Looks for a frame at the start of the window; processes it or drops bytes that cannot be one.
  void Scan(CodecSink& sink);
  // Drops the window's first byte as garbage (counted, reported every kSkipReportBytes).
  void Skip(CodecSink& sink);
  void SetCondition(DeviceCondition condition, bool active, CodecSink& sink);

  const Format format_;
  std::array<std::uint8_t, kMaxFrame> window_{};
  std::size_t window_len_ = 0;
  std::uint64_t window_offset_ = 0;  // stream offset of window_[0]
  bool synced_ = false;              // the last frame was valid
  bool at_start_ = true;             // no valid frame since creation or Reset()
  bool skip_reported_ = false;       // the current run of skipped bytes was already reported
  std::uint64_t skipped_ = 0;        // bytes dropped since the last valid frame or report
  std::uint64_t skip_offset_ = 0;    // stream offset of the first of them

  // Format 2 packet state.
  std::uint8_t frame_index_ = 0;    // 1-25: position of the last frame; 0: unknown
  std::uint8_t hr_msb_ = 0;         // HR bits 8..7 from frame 1
  std::uint8_t packet_status_ = 0;  // STATUS bits seen so far in this packet (OR)
  std::uint8_t perfusion_ = 0;      // last non-zero perfusion indication (bits 2..1)

  // Last reported state per DeviceCondition: -1 never reported, 0 ended, 1 active.
  std::array<std::int8_t, kDeviceConditionCount> conditions_;
};

}  // namespace vg
