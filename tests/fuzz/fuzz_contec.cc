// libFuzzer target: the contec codec in each frame mode (auto is the default), and with every
// frame emitting so that the value path is exercised as often as the framing.
#include "fuzz_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const nlohmann::json kSpecs[] = {
      {{"type", "contec"}},
      {{"type", "contec"}, {"frame", "5"}},
      {{"type", "contec"}, {"frame", "9"}},
      {{"type", "contec"}, {"frame", "auto"}, {"emit_every", 1}},
  };
  for (const nlohmann::json& spec : kSpecs) vg::fuzz::Run(spec, data, size);
  return 0;
}
