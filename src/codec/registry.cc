#include <nlohmann/json.hpp>

#include "gatt/gatt_codec.h"
#include "contec.h"
#include "jsonl.h"
#include "keyvalue.h"
#include "masimo.h"
#include "nonin.h"
#include "vitalgate/codec/codec.h"

namespace vg {
namespace {

const CodecDescriptor kCodecs[] = {
    {"jsonl", "one JSON object per line: {\"metric\",\"value\",\"unit\"?,\"ts\"?,\"patient\"?}",
     JsonlCodec::Options(), DecodeInput::kText, &JsonlCodec::Make},
    {"masimo", "Masimo Radical-7/Rad-8/Rad-87 serial ASCII 1 lines (date time KEY=VALUE ... ALARM EXC)",
     MasimoCodec::Options(), DecodeInput::kText, &MasimoCodec::Make},
    {"nonin", "Nonin binary serial data format 2 (5-byte frames, 25-frame packets) or 8 (4-byte frames)",
     NoninCodec::Options(), DecodeInput::kHex, &NoninCodec::Make},
    {"contec", "Contec CMS50D+-class live data, 5-byte or firmware 4.x 9-byte frames",
     ContecCodec::Options(), DecodeInput::kHex, &ContecCodec::Make},
    {"keyvalue", "ASCII NAME=VALUE lines, fields mapped to metrics by the \"map\" option",
     KeyValueCodec::Options(), DecodeInput::kText, &KeyValueCodec::Make},
    {"gatt", "Bluetooth LE health characteristics by 16-bit UUID (2A37 2A35 2A1C 2A5E 2A5F 2A18 2A9D 2A19)",
     GattCodec::Options(), DecodeInput::kCharacteristic, &GattCodec::Make,
     GattCodec::SupportedUuids()},
};

}  // namespace

void Codec::FeedCharacteristic(std::uint16_t /*uuid*/, std::span<const std::uint8_t> /*value*/,
                               CodecSink& sink) {
  sink.OnDecodeError(DecodeError{0, "this codec reads byte streams, not BLE characteristics", "", false});
}

std::span<const CodecDescriptor> AllCodecs() { return kCodecs; }

const CodecDescriptor* FindCodec(std::string_view name) {
  for (const CodecDescriptor& c : kCodecs) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Result<nlohmann::json> ValidateCodecSpec(const nlohmann::json& spec, std::string_view path) {
  const std::string where(path);
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgument(where + ": expected a codec name or {\"type\": name, ...}");
  }
  const auto& name = spec["type"].get_ref<const std::string&>();
  const CodecDescriptor* desc = FindCodec(name);
  if (desc == nullptr) {
    std::string known;
    for (const CodecDescriptor& c : kCodecs) {
      if (!known.empty()) known += ", ";
      known += c.name;
    }
    return InvalidArgument(where + ".type: unknown codec \"" + name + "\" (known: " + known + ")");
  }
  static constexpr std::string_view kIgnore[] = {"type"};
  auto validated = ApplyOptionSpecs(spec, desc->options, path, OptionContext{}, kIgnore);
  if (!validated.ok()) return validated;
  // Some options can only be checked by building the codec (e.g. a keyvalue map naming an
  // unknown metric); do it now so `vitalgate check` catches them, not the daemon's start.
  auto codec = desc->make(*validated);
  if (!codec.ok()) return codec.status().WithContext(where);
  return validated;
}

Result<std::unique_ptr<Codec>> MakeCodec(const nlohmann::json& spec) {
  const CodecDescriptor* desc = FindCodec(spec.at("type").get_ref<const std::string&>());
  if (desc == nullptr) return InvalidArgument("unknown codec");
  return desc->make(spec);
}


Result<TimeZone> ZoneOption(const nlohmann::json& options) {
  const std::string name = options.value("timezone", std::string());
  if (!name.empty()) {
    auto zone = TimeZone::Load(name);
    if (!zone.ok()) return zone.status().WithContext("timezone");
    return *zone;
  }
  return TimeZone::Fixed(options.value("utc_offset_minutes", 0));
}

}  // namespace vg
