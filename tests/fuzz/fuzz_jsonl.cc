// libFuzzer target: the jsonl codec with default options and with a short max_line.
#include "fuzz_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const nlohmann::json kDefault = {{"type", "jsonl"}};
  static const nlohmann::json kShort = {{"type", "jsonl"}, {"max_line", 64}};
  vg::fuzz::Run(kDefault, data, size);
  vg::fuzz::Run(kShort, data, size);
  return 0;
}
