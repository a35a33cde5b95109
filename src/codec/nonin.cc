#include "nonin.h"

#include <nlohmann/json.hpp>
#include <string>

namespace vg {
namespace {

constexpr OptionSpec kOptions[] = {
    {"format", OptionType::kInteger, "2",
     "Nonin serial data format: 2 (5-byte frames with checksum, 25-frame packets, 3 packets/s) "
     "or 8 (4-byte frames, one per second).",
     false, 2, 8},
};

// Format 2 STATUS bits (active high; bit 7 is always set).
constexpr std::uint8_t kStatusBit7 = 0x80;
constexpr std::uint8_t k2Snsd = 0x40;       // sensor disconnected or inoperable
constexpr std::uint8_t k2Artf = 0x20;       // artifact on this pulse
constexpr std::uint8_t k2Oot = 0x10;        // out of track: no consecutive good pulses
constexpr std::uint8_t k2Snsa = 0x08;       // sensor alarm: unusable data (e.g. finger removed)
constexpr std::uint8_t k2Perfusion = 0x06;  // 0x02 green, 0x04 red (low), 0x06 yellow (marginal)
constexpr std::uint8_t k2Sync = 0x01;       // frame 1 of a packet
constexpr std::uint8_t k2PerfusionRed = 0x04;
constexpr std::uint8_t k2PerfusionYellow = 0x06;
constexpr std::uint8_t k2PerfusionGreen = 0x02;
constexpr std::uint8_t kFramesPerPacket = 25;

// Format 8 STATUS and STATUS2 bits.
constexpr std::uint8_t k8Snsd = 0x40;
constexpr std::uint8_t k8Oot = 0x20;
constexpr std::uint8_t k8Lprf = 0x10;  // low perfusion (held while it lasts)
constexpr std::uint8_t k8Mprf = 0x08;  // marginal perfusion
constexpr std::uint8_t k8Artf = 0x04;
constexpr std::uint8_t k8HrHigh = 0x03;           // HR bits 8..7
constexpr std::uint8_t k8SmartPoint = 0x20;       // STATUS2
constexpr std::uint8_t k8Snsa = 0x08;             // STATUS2
constexpr std::uint8_t k8SpotCheck = 0x04;        // STATUS2
constexpr std::uint8_t k8BatteryCritical = 0x02;  // STATUS2
constexpr std::uint8_t k8BatteryLow = 0x01;       // STATUS2

constexpr unsigned kMissingHr = 511;
constexpr unsigned kMissingSpo2 = 127;

}  // namespace

std::span<const OptionSpec> NoninCodec::Options() { return kOptions; }

Result<std::unique_ptr<Codec>> NoninCodec::Make(const nlohmann::json& options) {
  const auto format = options.at("format").get<std::int64_t>();
  if (format != 2 && format != 8) {
    return InvalidArgument("format: " + std::to_string(format) +
                           " is not supported, expected 2 or 8");
  }
  return std::unique_ptr<Codec>(
      std::make_unique<NoninCodec>(format == 2 ? Format::k2 : Format::k8));
}

NoninCodec::NoninCodec(Format format) : format_(format) {}

void NoninCodec::Reset() {
  window_.Reset();
  synced_ = false;
  frame_index_ = 0;
  packet_status_ = 0;
}

std::string_view NoninCodec::CheckFrame() const {
  const auto& w = window_;
  if (format_ == Format::k2) {
    if (w[0] != 0x01) return "frame does not start with 0x01";
    if ((w[1] & kStatusBit7) == 0) return "status byte has bit 7 clear";
    const auto sum = static_cast<std::uint8_t>(w[0] + w[1] + w[2] + w[3]);
    if (sum != w[4]) return "checksum mismatch";
    return {};
  }
  // Format 8 has no checksum: only bit 7 frames it (set in STATUS, clear in the other bytes).
  if ((w[0] & kStatusBit7) == 0) return "status byte has bit 7 clear";
  if (((w[1] | w[2] | w[3]) & kStatusBit7) != 0) return "data byte has bit 7 set";
  return {};
}

bool NoninCodec::CanStartFrame(std::uint8_t byte) const {
  return format_ == Format::k2 ? byte == 0x01 : (byte & kStatusBit7) != 0;
}

void NoninCodec::Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) {
  for (const std::uint8_t b : bytes) {
    window_.Push(b);
    Scan(sink);
  }
}

void NoninCodec::Scan(CodecSink& sink) {
  const std::size_t size = frame_size();
  for (;;) {
    // Out of sync, bytes that cannot start a frame are dropped at once.
    while (!synced_ && window_.size() > 0 && !CanStartFrame(window_[0])) window_.DropFirst(sink);
    if (window_.size() < size) return;
    const std::string_view why = CheckFrame();
    if (why.empty()) {
      window_.FrameFound(size, sink);
      synced_ = true;
      OnFrame(sink);
      window_.Consume(size);
      return;
    }
    if (synced_) {
      window_.LostSync(why, size, sink);
      synced_ = false;
      frame_index_ = 0;
    }
    window_.DropFirst(sink);
  }
}

void NoninCodec::OnFrame(CodecSink& sink) {
  if (format_ == Format::k2) {
    OnFormat2Frame(sink);
  } else {
    OnFormat8Frame(sink);
  }
}

void NoninCodec::OnFormat2Frame(CodecSink& sink) {
  const std::uint8_t status = window_[1];
  const std::uint8_t value = window_[3];

  conditions_.Set(DeviceCondition::kSensorOff, (status & (k2Snsd | k2Snsa)) != 0, sink);
  conditions_.Set(DeviceCondition::kOutOfTrack, (status & k2Oot) != 0, sink);
  // The perfusion bits are set only for about 160 ms per pulse and are 0 between pulses, so
  // the last indication holds until the next pulse.
  if ((status & k2Perfusion) != 0) {
    perfusion_ = status & k2Perfusion;
    conditions_.Set(DeviceCondition::kLowPerfusion, perfusion_ == k2PerfusionRed, sink);
  }

  if ((status & k2Sync) != 0) {
    if (frame_index_ != 0 && frame_index_ != kFramesPerPacket) {
      // Whole frames vanished without a damaged one (e.g. a receive overrun).
      window_.Report(sink, window_.offset(), "packet cut short: SYNC frame before frame 25");
    }
    frame_index_ = 1;
    packet_status_ = status;
  } else if (frame_index_ == 0) {
    return;  // packet position unknown until the next SYNC frame
  } else if (frame_index_ == kFramesPerPacket) {
    window_.Report(sink, window_.offset(),
                   "no SYNC frame after 25 frames, waiting for the next packet");
    frame_index_ = 0;
    return;
  } else {
    ++frame_index_;
    packet_status_ |= status;
  }

  DecodedValue out;
  const auto emit = [&](Metric metric, unsigned v) {
    if ((packet_status_ & (k2Snsd | k2Snsa)) != 0) return;  // no sensor: no reading
    out.metric = metric;
    out.value = v;
    if ((packet_status_ & (k2Artf | k2Oot)) != 0) out.flags |= kFlagQuestionable;
    if ((packet_status_ & k2Artf) != 0) out.AddStatus("artifact");
    if ((packet_status_ & k2Oot) != 0) out.AddStatus("out_of_track");
    if (perfusion_ == k2PerfusionRed) out.AddStatus("low_perfusion");
    if (perfusion_ == k2PerfusionYellow) out.AddStatus("marginal_perfusion");
    if (perfusion_ == k2PerfusionGreen) out.AddStatus("good_perfusion");
    if (conditions_.active(DeviceCondition::kLowBattery)) {
      out.AddStatus("low_battery");
    }
    sink.OnValue(out);
  };
  switch (frame_index_) {
    case 1:
      hr_msb_ = value & 0x03;
      break;
    case 2: {
      // HR is 9 bits: bits 8..7 from frame 1, bits 6..0 here; 511 = missing.
      const unsigned hr = (unsigned{hr_msb_} << 7) | (value & 0x7Fu);
      if (hr != kMissingHr) emit(Metric::kPulseRate, hr);
      break;
    }
    case 3: {
      const unsigned spo2 = value & 0x7Fu;
      if (spo2 != kMissingSpo2) emit(Metric::kSpo2, spo2);
      break;
    }
    case 8:
      // STAT2: bit 0 = low battery on battery-powered models (reserved on the OEM III).
      conditions_.Set(DeviceCondition::kLowBattery, (value & 0x01) != 0, sink);
      break;
    default:
      break;
  }
}

void NoninCodec::OnFormat8Frame(CodecSink& sink) {
  const std::uint8_t status = window_[0];
  const std::uint8_t status2 = window_[3];
  const bool sensor_off = (status & k8Snsd) != 0 || (status2 & k8Snsa) != 0;

  conditions_.Set(DeviceCondition::kSensorOff, sensor_off, sink);
  conditions_.Set(DeviceCondition::kOutOfTrack, (status & k8Oot) != 0, sink);
  conditions_.Set(DeviceCondition::kLowPerfusion, (status & k8Lprf) != 0, sink);
  conditions_.Set(DeviceCondition::kLowBattery, (status2 & (k8BatteryLow | k8BatteryCritical)) != 0,
                  sink);
  if (sensor_off) return;

  DecodedValue out;
  if ((status & (k8Artf | k8Oot)) != 0) out.flags |= kFlagQuestionable;
  if ((status & k8Artf) != 0) out.AddStatus("artifact");
  if ((status & k8Oot) != 0) out.AddStatus("out_of_track");
  if ((status & k8Lprf) != 0) out.AddStatus("low_perfusion");
  if ((status & k8Mprf) != 0) out.AddStatus("marginal_perfusion");
  if ((status2 & k8BatteryCritical) != 0) out.AddStatus("critical_battery");
  if ((status2 & k8BatteryLow) != 0) out.AddStatus("low_battery");
  if ((status2 & k8SpotCheck) != 0) out.AddStatus("spot_check");
  if ((status2 & k8SmartPoint) != 0) out.AddStatus("smartpoint");

  const unsigned hr = (static_cast<unsigned>(status & k8HrHigh) << 7) | window_[1];
  const unsigned spo2 = window_[2];
  if (hr != kMissingHr) {
    out.metric = Metric::kPulseRate;
    out.value = hr;
    sink.OnValue(out);
  }
  if (spo2 != kMissingSpo2) {
    out.metric = Metric::kSpo2;
    out.value = spo2;
    sink.OnValue(out);
  }
}

}  // namespace vg
