// The `gatt` codec: decodes Bluetooth LE health characteristic values, one notification or
// indication at a time, by 16-bit characteristic UUID (2A37 heart rate, 2A35 blood pressure, 2A1C
// temperature, 2A5E/2A5F pulse oximetry, 2A18 glucose, 2A9D weight, 2A19 battery level).
// See docs/ble.md.
//
// Promises: every value in the canonical unit of its metric, never a number for an IEEE 11073
// special value; a malformed value yields one DecodeError (offset within the value, no device
// values in the message) and nothing else; a value decoded with something ignored yields its
// readings plus warnings. Device conditions (sensor off, out of track, low perfusion) are
// reported through OnCondition only when they change.
//
// State: only the last reported state of each condition. It survives Reset(), which has no
// framing to drop: after a reconnect, the first value that contradicts a held condition ends it.
// Thread-safety: as every Codec, one device, driven by one thread at a time.
#pragma once

#include <array>
#include <memory>
#include <span>

#include "gatt_fields.h"
#include "vitalgate/codec/codec.h"

namespace vg {

class GattCodec final : public Codec {
 public:
  explicit GattCodec(gatt::TimeOptions time) : time_(time) {}

  // GATT values are messages, not a stream: reports a decode error.
  void Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) override;
  void FeedCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> value,
                          CodecSink& sink) override;
  void Reset() override {}

  static std::span<const OptionSpec> Options();
  // REQUIRES: options validated against Options().
  static Result<std::unique_ptr<Codec>> Make(const nlohmann::json& options);
  // The characteristics a transport should subscribe to for this codec.
  static std::span<const std::uint16_t> SupportedUuids();

 private:
  gatt::TimeOptions time_;
  std::array<bool, kDeviceConditionCount> active_{};
};

}  // namespace vg
