#include "contec.h"

#include <nlohmann/json.hpp>
#include <string>

namespace vg {
namespace {

constexpr std::string_view kFrameChoices[] = {"auto", "5", "9"};

constexpr OptionSpec kOptions[] = {
    {"frame", OptionType::kString, "\"auto\"",
     "Frame layout: \"5\" (older firmware, 19200 baud), \"9\" (firmware 4.x, 115200 baud) or "
     "\"auto\" (detected from the stream).",
     false, -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
     kFrameChoices},
    {"emit_every", OptionType::kInteger, "60",
     "Emit values from at most one frame in this many (the device sends about 60 frames/s; "
     "60 gives about one reading per second). Conditions are checked on every frame.",
     false, 1, 3600},
};

// 5-byte frame bits.
constexpr std::uint8_t kSyncBit = 0x80;
constexpr std::uint8_t k5SpO2Dropping = 0x20;   // byte 1
constexpr std::uint8_t k5SearchTooLong = 0x10;  // byte 1
constexpr std::uint8_t k5PulseRateBit7 = 0x40;  // byte 3
constexpr std::uint8_t k5Searching = 0x20;      // byte 3
constexpr std::uint8_t k5ProbeError = 0x10;     // byte 3

// 9-byte frame, byte 2 (index 1) bits.
constexpr std::uint8_t k9FingerOut = 0x01;
constexpr std::uint8_t k9Searching = 0x02;
constexpr std::uint8_t k9PulseRateBit7 = 0x08;  // unverified: MSB-carrier reading of byte 2

constexpr unsigned kNoPulseRate = 0xFF;
constexpr unsigned kNoSpo2 = 0x7F;

}  // namespace

std::span<const OptionSpec> ContecCodec::Options() { return kOptions; }

Result<std::unique_ptr<Codec>> ContecCodec::Make(const nlohmann::json& options) {
  const auto& frame = options.at("frame").get_ref<const std::string&>();
  FrameMode mode = FrameMode::kAuto;
  if (frame == "5") mode = FrameMode::k5;
  if (frame == "9") mode = FrameMode::k9;
  return std::unique_ptr<Codec>(
      std::make_unique<ContecCodec>(mode, options.at("emit_every").get<std::uint32_t>()));
}

ContecCodec::ContecCodec(FrameMode mode, std::uint32_t emit_every)
    : mode_(mode), emit_every_(emit_every < 1 ? 1 : emit_every), frames_since_emit_(emit_every_) {}

void ContecCodec::Reset() {
  window_.Reset();
  synced_ = Kind::kNone;
  frames_since_emit_ = emit_every_;
}

ContecCodec::Kind ContecCodec::CandidateKind(std::uint8_t first) const {
  if (mode_ != FrameMode::k9 && (first & kSyncBit) != 0) return Kind::k5;
  if (mode_ != FrameMode::k5 && first == 0x01) return Kind::k9;
  return Kind::kNone;
}

std::string_view ContecCodec::CheckFrame(Kind kind) const {
  const auto& w = window_;
  if (kind == Kind::k5) {
    if ((w[0] & kSyncBit) == 0) return "first byte has bit 7 clear";
    for (std::size_t i = 1; i < 5; ++i) {
      if ((w[i] & kSyncBit) != 0) return "data byte has bit 7 set";
    }
    return {};
  }
  if (w[0] != 0x01) return "frame does not start with 0x01";
  if (w[7] != 0xFF || w[8] != 0xFF) return "frame does not end with FF FF";
  for (std::size_t i = 1; i < 7; ++i) {
    if ((w[i] & kSyncBit) == 0) return "data byte has bit 7 clear";
  }
  return {};
}

void ContecCodec::Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) {
  for (const std::uint8_t b : bytes) {
    window_.Push(b);
    Scan(sink);
  }
}

void ContecCodec::Scan(CodecSink& sink) {
  for (;;) {
    // Out of sync, bytes that cannot start a frame are dropped at once.
    while (synced_ == Kind::kNone && window_.size() > 0 &&
           CandidateKind(window_[0]) == Kind::kNone) {
      window_.DropFirst(sink);
    }
    if (window_.size() == 0) return;
    const Kind kind = synced_ != Kind::kNone ? synced_ : CandidateKind(window_[0]);
    const std::size_t size = kind == Kind::k9 ? 9 : 5;
    if (window_.size() < size) return;
    const std::string_view why = CheckFrame(kind);
    if (why.empty()) {
      // Opening the port mid-frame costs less than a frame: that is not an error.
      const std::size_t tolerated = mode_ == FrameMode::k5 ? 5 : kMaxFrame;
      window_.FrameFound(tolerated, sink);
      synced_ = kind;
      if (kind == Kind::k5) {
        OnFrame5(sink);
      } else {
        OnFrame9(sink);
      }
      // A layout change while resynchronising can leave bytes after the frame: scan them too.
      window_.Consume(size);
      continue;
    }
    if (synced_ != Kind::kNone) {
      window_.LostSync(why, size, sink);
      synced_ = Kind::kNone;
    }
    window_.DropFirst(sink);
  }
}

void ContecCodec::Emit(DecodedValue& out, unsigned pulse_rate, bool pulse_rate_ok, unsigned spo2,
                       bool spo2_ok, CodecSink& sink) {
  if (frames_since_emit_ < emit_every_) ++frames_since_emit_;
  if (!pulse_rate_ok && !spo2_ok) return;
  if (frames_since_emit_ < emit_every_) return;
  frames_since_emit_ = 0;
  if (pulse_rate_ok) {
    out.metric = Metric::kPulseRate;
    out.value = pulse_rate;
    sink.OnValue(out);
  }
  if (spo2_ok) {
    out.metric = Metric::kSpo2;
    out.value = spo2;
    sink.OnValue(out);
  }
}

void ContecCodec::OnFrame5(CodecSink& sink) {
  const auto& w = window_;
  const bool probe_error = (w[2] & k5ProbeError) != 0;
  const bool searching = (w[2] & k5Searching) != 0;
  const bool too_long = (w[0] & k5SearchTooLong) != 0;
  conditions_.Set(DeviceCondition::kSensorOff, probe_error, sink);
  conditions_.Set(DeviceCondition::kOutOfTrack, searching || too_long, sink);

  DecodedValue out;
  if (searching || too_long) out.flags |= kFlagQuestionable;
  if (searching) out.AddStatus("searching");
  if (too_long) out.AddStatus("searching_too_long");
  if ((w[0] & k5SpO2Dropping) != 0) out.AddStatus("spo2_dropping");
  // PR is 8 bits: bit 7 in byte 3 bit 6, bits 6..0 in byte 4. 0 and 255 mean no pulse found.
  const unsigned pr = ((w[2] & k5PulseRateBit7) != 0 ? 0x80u : 0u) | w[3];
  const unsigned spo2 = w[4];
  const bool pr_ok = !probe_error && pr != kNoPulseRate && pr != 0;
  const bool spo2_ok = !probe_error && spo2 != kNoSpo2 && spo2 != 0;
  Emit(out, pr, pr_ok, spo2, spo2_ok, sink);
}

void ContecCodec::OnFrame9(CodecSink& sink) {
  const auto& w = window_;
  const bool finger_out = (w[1] & k9FingerOut) != 0;
  const bool searching = (w[1] & k9Searching) != 0;
  conditions_.Set(DeviceCondition::kSensorOff, finger_out, sink);
  conditions_.Set(DeviceCondition::kOutOfTrack, searching, sink);

  DecodedValue out;
  const bool pr_bit7 = (w[1] & k9PulseRateBit7) != 0;
  if (pr_bit7) {
    // Only the (unconfirmed) MSB-carrier reading of byte 2 explains this bit; flag the value.
    out.flags |= kFlagQuestionable;
    out.AddStatus("pulse_rate_bit7_unverified");
  }
  // PR and SpO2 are valid only while neither finger-out nor searching is set.
  const bool valid = !finger_out && !searching;
  const unsigned pr = (pr_bit7 ? 0x80u : 0u) | (w[5] & 0x7Fu);
  const unsigned spo2 = w[6] & 0x7Fu;
  Emit(out, pr, valid && pr != kNoPulseRate && pr != 0, spo2, valid && spo2 != kNoSpo2 && spo2 != 0,
       sink);
}

}  // namespace vg
