#include "jsonl.h"

#include <nlohmann/json.hpp>
#include <tuple>

#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

constexpr OptionSpec kOptions[] = {
    {"max_line", OptionType::kInteger, "4096", "Longest accepted line in bytes.", false, 64,
     1048576},
};

void Error(CodecSink& sink, std::uint64_t offset, std::string message,
           std::string_view detail = {}) {
  sink.OnDecodeError(DecodeError{offset, "jsonl: " + std::move(message),
                                 std::string(detail.substr(0, 64)), false});
}

}  // namespace

std::span<const OptionSpec> JsonlCodec::Options() { return kOptions; }

Result<std::unique_ptr<Codec>> JsonlCodec::Make(const nlohmann::json& options) {
  return std::unique_ptr<Codec>(
      std::make_unique<JsonlCodec>(options.at("max_line").get<std::size_t>()));
}

void JsonlCodec::Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) {
  framer_.Feed(
      bytes, [&](std::string_view line, std::uint64_t offset) { DecodeLine(line, offset, sink); },
      [&](std::uint64_t offset) {
        Error(sink, offset, "line longer than max_line, discarded");
      });
}

void JsonlCodec::DecodeLine(std::string_view line, std::uint64_t offset, CodecSink& sink) {
  if (!object_.Parse(line)) {
    Error(sink, offset + object_.error_offset(), object_.error());
    return;
  }
  const FlatJsonValue* metric = nullptr;
  const FlatJsonValue* value = nullptr;
  const FlatJsonValue* unit = nullptr;
  const FlatJsonValue* ts = nullptr;
  const FlatJsonValue* patient = nullptr;
  const FlatJsonValue* spot = nullptr;
  const FlatJsonValue* stored = nullptr;
  for (const FlatJsonMember& m : object_.members()) {
    if (m.key == "metric") {
      metric = &m.value;
    } else if (m.key == "value") {
      value = &m.value;
    } else if (m.key == "unit") {
      unit = &m.value;
    } else if (m.key == "ts") {
      ts = &m.value;
    } else if (m.key == "patient") {
      patient = &m.value;
    } else if (m.key == "spot") {
      spot = &m.value;
    } else if (m.key == "stored") {
      stored = &m.value;
    } else {
      // Unknown keys are rejected: a misspelt "unit" or "ts" would otherwise be silently wrong.
      Error(sink, offset,
            "unknown key (expected metric, value, unit, ts, patient, spot, stored)", m.key);
      return;
    }
  }
  if (metric == nullptr || metric->type != FlatJsonValue::Type::kString) {
    Error(sink, offset, "\"metric\" must be a string naming a metric");
    return;
  }
  const auto m = MetricFromName(metric->text);
  if (!m) {
    Error(sink, offset, "unknown metric name", metric->text);
    return;
  }
  const MetricInfo& info = Info(*m);
  if (value == nullptr) {
    Error(sink, offset, "\"value\" is missing");
    return;
  }
  DecodedValue out;
  out.metric = *m;
  switch (info.type) {
    case ValueType::kNumber: {
      if (value->type != FlatJsonValue::Type::kNumber) {
        Error(sink, offset, "\"value\" of " + std::string(info.name) + " must be a number");
        return;
      }
      double v = value->number;
      if (unit != nullptr) {
        if (unit->type != FlatJsonValue::Type::kString) {
          Error(sink, offset, "\"unit\" must be a string");
          return;
        }
        const auto converted = ToCanonical(*m, unit->text, v);
        if (!converted) {
          Error(sink, offset,
                "unit not accepted for " + std::string(info.name) + " (canonical: " +
                    std::string(info.unit) + ")",
                unit->text);
          return;
        }
        v = *converted;
      }
      out.value = v;
      break;
    }
    case ValueType::kAcvpu: {
      const auto code = value->type == FlatJsonValue::Type::kString ? AcvpuFromLetter(value->text)
                                                                    : std::nullopt;
      if (!code) {
        Error(sink, offset, "\"value\" of consciousness must be one of \"A\",\"C\",\"V\",\"P\",\"U\"");
        return;
      }
      out.value = *code;
      break;
    }
    case ValueType::kBool:
      if (value->type != FlatJsonValue::Type::kBool) {
        Error(sink, offset, "\"value\" of " + std::string(info.name) + " must be true or false");
        return;
      }
      out.value = value->boolean ? 1 : 0;
      break;
  }
  if (info.type != ValueType::kNumber && unit != nullptr) {
    Error(sink, offset, std::string(info.name) + " takes no \"unit\"");
    return;
  }
  if (ts != nullptr) {
    if (ts->type != FlatJsonValue::Type::kString) {
      Error(sink, offset, "\"ts\" must be an RFC 3339 string");
      return;
    }
    auto parsed = ParseRfc3339(ts->text);
    if (!parsed.ok()) {
      Error(sink, offset, "\"ts\": " + parsed.status().message());
      return;
    }
    out.ts_ms = *parsed;
    out.flags |= kFlagDeviceTime;
  }
  if (patient != nullptr) {
    if (patient->type != FlatJsonValue::Type::kString || patient->text.empty()) {
      Error(sink, offset, "\"patient\" must be a non-empty string");
      return;
    }
    out.patient = patient->text;
  }
  for (const auto& [flag, value_of, name] :
       {std::tuple<std::uint8_t, const FlatJsonValue*, const char*>{kFlagSpot, spot, "spot"},
        {kFlagStored, stored, "stored"}}) {
    if (value_of == nullptr) continue;
    if (value_of->type != FlatJsonValue::Type::kBool) {
      Error(sink, offset, std::string("\"") + name + "\" must be true or false");
      return;
    }
    if (value_of->boolean) out.flags |= flag;
  }
  sink.OnValue(out);
}

}  // namespace vg
