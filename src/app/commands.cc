#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "vitalgate/app/cli.h"
#include "vitalgate/app/loader.h"
#include "vitalgate/codec/codec.h"
#include "vitalgate/core/json_text.h"
#include "vitalgate/core/payload.h"
#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

// Prints decoded values as JSON lines.
class PrintingSink final : public CodecSink {
 public:
  void OnValue(const DecodedValue& v) override {
    const MetricInfo& info = Info(v.metric);
    std::string line = "{\"metric\":\"";
    line += info.name;
    line += "\",\"value\":";
    AppendReadingValue(line, v.metric, v.value);
    if (!info.unit.empty()) {
      line += ",\"unit\":\"";
      line += info.unit;
      line += '"';
    }
    if (v.ts_ms) {
      line += ",\"ts\":\"";
      AppendRfc3339(line, *v.ts_ms);
      line += '"';
    }
    if (!v.patient.empty()) {
      line += ",\"patient\":";
      AppendJsonString(line, v.patient);
    }
    if (v.status_count > 0) {
      line += ",\"status\":[";
      for (std::uint8_t i = 0; i < v.status_count; ++i) {
        if (i > 0) line += ',';
        AppendJsonString(line, v.status[i]);
      }
      line += ']';
    }
    std::string flags;
    for (const auto& [bit, word] : {std::pair<std::uint8_t, const char*>{kFlagQuestionable, "questionable"},
                                    {kFlagSpot, "spot"},
                                    {kFlagStored, "stored"}}) {
      if ((v.flags & bit) != 0) flags += std::string(flags.empty() ? "" : ",") + "\"" + word + "\"";
    }
    if (!flags.empty()) line += ",\"flags\":[" + flags + "]";
    if (v.record_seq) line += ",\"record\":" + std::to_string(*v.record_seq);
    if (!IsPlausible(v.metric, v.value)) line += ",\"plausible\":false";
    line += "}\n";
    std::fputs(line.c_str(), stdout);
    ++values;
  }
  void OnDeviceClock(std::int64_t device_now_ms) override {
    std::string line = "{\"device_clock\":\"";
    AppendRfc3339(line, device_now_ms);
    line += "\"}\n";
    std::fputs(line.c_str(), stdout);
    ++values;
  }
  void OnCondition(DeviceCondition c, bool active) override {
    std::fprintf(stderr, "vitalgate: decode: device condition %s %s\n",
                 std::string(Name(c)).c_str(), active ? "started" : "ended");
    ++conditions;
  }
  void OnDecodeError(const DecodeError& e) override {
    std::string detail = e.detail.empty() ? "" : " (near \"" + e.detail + "\")";
    std::fprintf(stderr, "vitalgate: decode: %s at byte %llu: %s%s\n",
                 e.warning ? "warning" : "error", static_cast<unsigned long long>(e.offset),
                 e.message.c_str(), detail.c_str());
    if (!e.warning) ++errors;
  }
  int values = 0;
  int conditions = 0;
  int errors = 0;
};

const char* kDecodeUsage =
    "usage: vitalgate decode CODEC [--OPTION VALUE]... INPUT\n"
    "       vitalgate decode gatt UUID HEX\n";

}  // namespace

int CommandCheck(const std::string& config_path, bool quiet) {
  PatientDirectory patients;
  auto loaded = LoadEverything(config_path, patients);
  if (!loaded.ok()) return PrintError(loaded.status());
  if (quiet) {
    // One line for the journal (the unit's ExecStartPre); warnings with their priority.
    std::printf("%s\n", SummaryLine(*loaded).c_str());
    std::fflush(stdout);
    for (const std::string& w : loaded->warnings) spdlog::warn("{}", w);
    return 0;
  }
  std::fputs(Summarize(*loaded).c_str(), stdout);
  std::fputs("effective config (defaults filled in):\n", stdout);
  std::fputs(loaded->effective.dump(2).c_str(), stdout);
  std::fputs("\n", stdout);
  return 0;
}

int CommandDecode(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fputs(kDecodeUsage, stderr);
    return 2;
  }
  const CodecDescriptor* desc = FindCodec(args[0]);
  if (desc == nullptr) {
    std::string known;
    for (const CodecDescriptor& c : AllCodecs()) known += (known.empty() ? "" : ", ") + std::string(c.name);
    return PrintError(InvalidArgument("decode: unknown codec \"" + args[0] + "\" (known: " + known + ")"));
  }
  nlohmann::json spec = {{"type", desc->name}};
  std::vector<std::string> positional;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 2 && a.rfind("--", 0) == 0) {
      const std::string name = a.substr(2);
      const OptionSpec* opt = nullptr;
      for (const OptionSpec& o : desc->options) {
        if (o.name == name) opt = &o;
      }
      if (opt == nullptr) {
        return PrintError(InvalidArgument("decode " + args[0] + ": unknown option --" + name));
      }
      if (i + 1 >= args.size()) return PrintError(InvalidArgument("decode: --" + name + " needs a value"));
      const std::string& value = args[++i];
      nlohmann::json parsed = nlohmann::json::parse(value, nullptr, false);
      if (opt->type == OptionType::kString || parsed.is_discarded()) parsed = value;
      spec[name] = parsed;
      continue;
    }
    positional.push_back(a);
  }
  auto validated = ValidateCodecSpec(spec, "decode " + args[0]);
  if (!validated.ok()) return PrintError(validated.status());
  auto codec = MakeCodec(*validated);
  if (!codec.ok()) return PrintError(codec.status());
  PrintingSink sink;
  const std::size_t wanted = desc->cli_input == DecodeInput::kCharacteristic ? 2 : 1;
  if (positional.size() != wanted) {
    std::fputs(kDecodeUsage, stderr);
    return 2;
  }
  switch (desc->cli_input) {
    case DecodeInput::kText: {
      const std::string line = positional[0] + "\n";
      (*codec)->Feed(std::span<const std::uint8_t>(
                         reinterpret_cast<const std::uint8_t*>(line.data()), line.size()),
                     sink);
      break;
    }
    case DecodeInput::kHex: {
      auto bytes = ParseHex(positional[0]);
      if (!bytes.ok()) return PrintError(bytes.status());
      (*codec)->Feed(std::span<const std::uint8_t>(
                         reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size()),
                     sink);
      break;
    }
    case DecodeInput::kCharacteristic: {
      auto uuid = ParseHex(positional[0]);
      if (!uuid.ok() || uuid->size() != 2) {
        return PrintError(InvalidArgument("decode gatt: UUID must be 16-bit hex such as 2A37"));
      }
      const auto u = static_cast<std::uint16_t>((static_cast<unsigned char>((*uuid)[0]) << 8) |
                                                static_cast<unsigned char>((*uuid)[1]));
      auto bytes = ParseHex(positional[1]);
      if (!bytes.ok()) return PrintError(bytes.status());
      (*codec)->FeedCharacteristic(
          u,
          std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes->data()),
                                        bytes->size()),
          sink);
      break;
    }
  }
  std::fflush(stdout);
  if (sink.errors > 0) return 2;
  if (sink.values == 0 && sink.conditions == 0) {
    std::fputs("vitalgate: decode: the input holds no complete frame with a value\n", stderr);
    return 2;
  }
  return 0;
}

}  // namespace vg
