#include "gatt_codec.h"

#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "characteristics.h"

namespace vg {
namespace {

constexpr std::string_view kTimestampChoices[] = {"device", "receive"};

constexpr OptionSpec kOptions[] = {
    {.name = "timestamps",
     .type = OptionType::kString,
     .default_json = "\"device\"",
     .help = "Event time of a reading: \"device\" uses the Date Time in the value when it has a "
             "valid one (stored records, spot checks), else the receive time; \"receive\" always "
             "uses the receive time.",
     .choices = kTimestampChoices},
    {.name = "utc_offset_minutes",
     .type = OptionType::kInteger,
     .default_json = "0",
     .help = "Offset of the device's clock from UTC in minutes (BLE Date Time has no zone), "
             "e.g. 60 for a device set to CET.",
     .min = -720,
     .max = 840},
    {.name = "timezone",
     .type = OptionType::kString,
     .default_json = "\"\"",
     .help = "tz database zone of the device's clock (e.g. \"Europe/Berlin\"), right across "
             "daylight-saving changes; replaces utc_offset_minutes. Usually set as "
             "devices[].timezone."},
};

constexpr gatt::CharacteristicDecoder kDecoders[] = {
    {gatt::kUuidHeartRateMeasurement, "heart rate measurement", &gatt::DecodeHeartRate},
    {gatt::kUuidBloodPressureMeasurement, "blood pressure measurement", &gatt::DecodeBloodPressure},
    {gatt::kUuidTemperatureMeasurement, "temperature measurement", &gatt::DecodeTemperature},
    {gatt::kUuidPlxSpotCheck, "PLX spot-check measurement", &gatt::DecodePlxSpotCheck},
    {gatt::kUuidPlxContinuous, "PLX continuous measurement", &gatt::DecodePlxContinuous},
    {gatt::kUuidGlucoseMeasurement, "glucose measurement", &gatt::DecodeGlucose},
    {gatt::kUuidWeightMeasurement, "weight measurement", &gatt::DecodeWeight},
    {gatt::kUuidBatteryLevel, "battery level", &gatt::DecodeBatteryLevel},
    {gatt::kUuidCurrentTime, "current time", &gatt::DecodeCurrentTime},
};

constexpr std::uint16_t kSupportedUuids[] = {
    gatt::kUuidHeartRateMeasurement,   gatt::kUuidBloodPressureMeasurement,
    gatt::kUuidTemperatureMeasurement, gatt::kUuidPlxSpotCheck,
    gatt::kUuidPlxContinuous,          gatt::kUuidGlucoseMeasurement,
    gatt::kUuidWeightMeasurement,      gatt::kUuidBatteryLevel,
    gatt::kUuidCurrentTime,
};
static_assert(std::size(kSupportedUuids) == std::size(kDecoders));

std::string UuidText(std::uint16_t uuid) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04X", static_cast<unsigned>(uuid));
  return buf;
}

}  // namespace

namespace gatt {

std::span<const CharacteristicDecoder> AllCharacteristics() { return kDecoders; }

const CharacteristicDecoder* FindCharacteristic(std::uint16_t uuid) {
  for (const CharacteristicDecoder& d : kDecoders) {
    if (d.uuid == uuid) return &d;
  }
  return nullptr;
}

}  // namespace gatt

std::span<const OptionSpec> GattCodec::Options() { return kOptions; }

std::span<const std::uint16_t> GattCodec::SupportedUuids() { return kSupportedUuids; }

Result<std::unique_ptr<Codec>> GattCodec::Make(const nlohmann::json& options) {
  gatt::TimeOptions time;
  time.use_device_time = options.at("timestamps").get<std::string>() == "device";
  auto zone = ZoneOption(options);
  if (!zone.ok()) return zone.status();
  time.zone = *zone;
  return std::unique_ptr<Codec>(std::make_unique<GattCodec>(time));
}

void GattCodec::Feed(std::span<const std::uint8_t> /*bytes*/, CodecSink& sink) {
  sink.OnDecodeError(DecodeError{
      0, "gatt: reads BLE characteristic values, not a byte stream (use transport \"ble\")", "",
      false});
}

void GattCodec::FeedCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> value,
                                   CodecSink& sink) {
  const gatt::CharacteristicDecoder* decoder = gatt::FindCharacteristic(uuid);
  if (decoder == nullptr) {
    std::string known;
    for (const gatt::CharacteristicDecoder& d : kDecoders) {
      known += known.empty() ? "" : ", ";
      known += UuidText(d.uuid);
    }
    sink.OnDecodeError(DecodeError{
        0, "gatt: unsupported characteristic " + UuidText(uuid) + " (supported: " + known + ")", "",
        false});
    return;
  }
  gatt::GattFrame frame = decoder->decode(value, time_);
  const std::string prefix = "gatt " + UuidText(uuid) + " " + std::string(decoder->name) + ": ";
  if (frame.error) {
    DecodeError e = std::move(*frame.error);
    e.message = prefix + e.message;
    sink.OnDecodeError(e);
    return;
  }
  for (std::size_t c = 0; c < kDeviceConditionCount; ++c) {
    const std::optional<bool> said = frame.conditions[c];
    if (!said || *said == active_[c]) continue;
    active_[c] = *said;
    sink.OnCondition(static_cast<DeviceCondition>(c), *said);
  }
  for (std::size_t i = 0; i < frame.measurement_count; ++i) sink.OnValue(frame.ValueAt(i));
  if (frame.device_clock_ms) sink.OnDeviceClock(*frame.device_clock_ms);
  for (DecodeError& w : frame.warnings) {
    w.message = prefix + w.message;
    sink.OnDecodeError(w);
  }
}

}  // namespace vg
