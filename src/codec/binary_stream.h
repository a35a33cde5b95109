// Shared parts of the codecs for binary serial streams (nonin, contec) and of the codecs that
// report device conditions (nonin, contec, masimo).
//
// ConditionReporter: reports a device condition on change only; an end only for a condition that
// was reported active, so a healthy device does not announce "ended" for every condition at
// start.
// FrameWindow: the look-ahead window of a frame-synchronising decoder with the stream offset of
// its first byte and the accounting of garbage bytes dropped while looking for a frame (one
// report per run, or per kSkipReportBytes while no frame is found at all).
// Thread-safety: owned by one codec instance (see codec.h).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "vitalgate/codec/codec.h"

namespace vg {

// "01 8A FF": bytes as upper-case hex for decode error details.
std::string HexBytes(std::span<const std::uint8_t> bytes);

class ConditionReporter {
 public:
  ConditionReporter() { state_.fill(-1); }
  // Called for every frame, so the unchanged case stays inline.
  void Set(DeviceCondition condition, bool active, CodecSink& sink) {
    std::int8_t& state = state_[static_cast<std::size_t>(condition)];
    const std::int8_t now = active ? 1 : 0;
    if (state == now || (state == -1 && !active)) {
      state = now;
      return;
    }
    state = now;
    sink.OnCondition(condition, active);
  }
  // True while the condition was last reported active.
  bool active(DeviceCondition condition) const {
    return state_[static_cast<std::size_t>(condition)] == 1;
  }

 private:
  // Last reported state per DeviceCondition: -1 never reported, 0 ended, 1 active.
  std::array<std::int8_t, kDeviceConditionCount> state_;
};

class FrameWindow {
 public:
  static constexpr std::size_t kCapacity = 16;
  // While out of sync, one error per this many skipped bytes (a wrong baud rate or format
  // produces nothing but garbage, and that must be visible without flooding the log).
  static constexpr std::uint64_t kSkipReportBytes = 512;

  // `codec` prefixes every message; `hint` names the likely cause of a stream with no frame.
  FrameWindow(std::string_view codec, std::string_view hint) : codec_(codec), hint_(hint) {}

  // Appends one byte; the caller keeps the window at most one frame long (by consuming or
  // dropping) so that it never exceeds kCapacity.
  void Push(std::uint8_t byte) { bytes_[size_++] = byte; }
  std::uint8_t operator[](std::size_t i) const { return bytes_[i]; }
  std::size_t size() const { return size_; }
  std::uint64_t offset() const { return offset_; }  // stream offset of the first byte

  // Drops the first byte as garbage (counted and reported as described above).
  void DropFirst(CodecSink& sink);
  // The window starts with a valid frame: reports the garbage dropped before it, unless it is
  // fewer than `tolerated` bytes at the very start (opening a port mid-frame is not an error).
  void FrameFound(std::size_t tolerated, CodecSink& sink) {
    if (skipped_ > 0) EndSkipRun(tolerated, sink);
    skip_reported_ = false;
    at_start_ = false;
  }
  // The first `n` bytes (a processed frame) leave the window; the rest stays for the next frame.
  void Consume(std::size_t n) {
    for (std::size_t i = n; i < size_; ++i) bytes_[i - n] = bytes_[i];
    size_ -= n;
    offset_ += n;
  }
  // A frame failed its check (`why`) while in sync: reported once with its `size` bytes; the
  // bytes dropped while resynchronising are covered by this report.
  void LostSync(std::string_view why, std::size_t size, CodecSink& sink);
  // Drops the partial frame (the stream offsets keep counting) and forgets the garbage run.
  void Reset();
  // Emits a decode error prefixed with the codec name.
  void Report(CodecSink& sink, std::uint64_t offset, std::string message, std::string detail = {},
              bool warning = false) const;

 private:
  void EndSkipRun(std::size_t tolerated, CodecSink& sink);

  const std::string_view codec_;
  const std::string_view hint_;
  std::array<std::uint8_t, kCapacity> bytes_{};
  std::size_t size_ = 0;
  std::uint64_t offset_ = 0;
  bool at_start_ = true;           // no valid frame since creation or Reset()
  bool skip_reported_ = false;     // the current run of dropped bytes was already reported
  std::uint64_t skipped_ = 0;      // bytes dropped since the last valid frame or report
  std::uint64_t skip_offset_ = 0;  // stream offset of the first of them
};

}  // namespace vg
