// libFuzzer target: the nonin codec in both data formats (2 is the default).
#include "fuzz_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const nlohmann::json kFormat2 = {{"type", "nonin"}};
  static const nlohmann::json kFormat8 = {{"type", "nonin"}, {"format", 8}};
  vg::fuzz::Run(kFormat2, data, size);
  vg::fuzz::Run(kFormat8, data, size);
  return 0;
}
