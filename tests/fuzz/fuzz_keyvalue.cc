// libFuzzer target: the keyvalue codec. `map` has no default, so the specs map fields of every
// value type (numbers with and without unit conversion, ACVPU letters, booleans) and a time field.
#include "fuzz_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const nlohmann::json kMap = {
      {"SPO2", "spo2"},
      {"HR", "pulse_rate"},
      {"T", {{"metric", "temperature"}, {"unit", "[degF]"}}},
      {"BP", {{"metric", "bp_systolic"}, {"unit", "kPa"}}},
      {"AVPU", "consciousness"},
      {"O2", "on_oxygen"},
  };
  static const nlohmann::json kSpecs[] = {
      {{"type", "keyvalue"}, {"map", kMap}, {"ts_field", "TS"}},
      {{"type", "keyvalue"},
       {"map", kMap},
       {"separator", ":"},
       {"delimiter", "comma"},
       {"max_line", 64}},
  };
  for (const nlohmann::json& spec : kSpecs) vg::fuzz::Run(spec, data, size);
  return 0;
}
