// libFuzzer target for the `gatt` codec. Input: 2 bytes selecting the characteristic UUID and the
// codec options, then the characteristic value. The sink checks what the codec promises: finite
// values of known metrics, offsets inside the value, a rejected value yields nothing but its
// error, and conditions are reported only when they change.
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>

#include "vitalgate/codec/codec.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

class CheckingSink final : public vg::CodecSink {
 public:
  void Begin(std::size_t size) {
    size_ = size;
    values_ = 0;
    hard_errors_ = 0;
    other_ = 0;
  }
  void End() {
    // A rejected value reports its error and nothing else.
    if (hard_errors_ > 0) Check(hard_errors_ == 1 && values_ == 0 && other_ == 0);
  }

  void OnValue(const vg::DecodedValue& v) override {
    Check(static_cast<std::size_t>(v.metric) < vg::kMetricCount);
    Check(std::isfinite(v.value));
    Check(v.status_count <= v.status.size());
    for (std::uint8_t i = 0; i < v.status_count; ++i) Check(!v.status[i].empty());
    Check(v.patient.empty());
    // A codec says where the time came from, whether the device doubts the value, and whether
    // it is a spot check or a stored record; clock and routing flags are the pipeline's.
    Check((v.flags & ~(vg::kFlagDeviceTime | vg::kFlagQuestionable | vg::kFlagSpot | vg::kFlagStored)) == 0);
    Check(((v.flags & vg::kFlagDeviceTime) != 0) == v.ts_ms.has_value());
    // Date Time covers 1582-01-01..9999-12-31T23:59:59; the glucose time offset (±32767 min,
    // under 23 days) and the UTC offset (under a day) move that by less than 40 days.
    constexpr std::int64_t kMargin = 40LL * 86'400'000;
    constexpr std::int64_t kFirstMs = -12'244'089'600'000;  // 1582-01-01T00:00:00
    constexpr std::int64_t kLastMs = 253'402'300'799'000;   // 9999-12-31T23:59:59
    if (v.ts_ms) {
      Check(*v.ts_ms >= kFirstMs - kMargin && *v.ts_ms <= kLastMs + kMargin);
    }
    ++values_;
  }
  void OnCondition(vg::DeviceCondition c, bool active) override {
    const auto i = static_cast<std::size_t>(c);
    Check(i < vg::kDeviceConditionCount);
    Check(active_[i] != active);  // reported on change only
    active_[i] = active;
    ++other_;
  }
  void OnDecodeError(const vg::DecodeError& e) override {
    Check(!e.message.empty());
    Check(e.detail.size() <= 64);
    Check(e.offset <= size_);
    if (e.warning) {
      ++other_;
    } else {
      ++hard_errors_;
    }
  }

 private:
  std::size_t size_ = 0;
  int values_ = 0;
  int hard_errors_ = 0;
  int other_ = 0;
  std::array<bool, vg::kDeviceConditionCount> active_{};
};

std::unique_ptr<vg::Codec> MakeGatt(const char* timestamps, int utc_offset_minutes) {
  auto spec = vg::ValidateCodecSpec(
      nlohmann::json{
          {"type", "gatt"}, {"timestamps", timestamps}, {"utc_offset_minutes", utc_offset_minutes}},
      "fuzz");
  Check(spec.ok());
  auto codec = vg::MakeCodec(*spec);
  Check(codec.ok());
  return std::move(*codec);
}

// Codecs live across inputs, like a device's codec lives across notifications, so the fuzzer
// also explores condition state; each has its own sink to check change-only reporting.
struct Harness {
  std::unique_ptr<vg::Codec> codec;
  CheckingSink sink;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::array<Harness, 3> harnesses = {
      Harness{MakeGatt("device", 0), {}},
      Harness{MakeGatt("device", 840), {}},
      Harness{MakeGatt("receive", -720), {}},
  };
  static constexpr std::uint16_t kUuids[] = {
      0x2A37, 0x2A35, 0x2A1C, 0x2A5E, 0x2A5F, 0x2A18, 0x2A9D, 0x2A19,  // supported
      0x2A38, 0x2A34, 0x2A52, 0x0000, 0xFFFF,                          // not supported
  };
  if (size < 2) return 0;
  const std::uint16_t uuid = kUuids[data[0] % std::size(kUuids)];
  Harness& h = harnesses[data[1] % harnesses.size()];
  const std::span<const std::uint8_t> value(data + 2, size - 2);
  h.sink.Begin(value.size());
  h.codec->FeedCharacteristic(uuid, value, h.sink);
  h.sink.End();
  if ((data[1] & 0x80) != 0) h.codec->Reset();
  return 0;
}
