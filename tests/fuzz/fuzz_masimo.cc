// libFuzzer target: the masimo codec with default options and with device time stamps.
#include "fuzz_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const nlohmann::json kDefault = {{"type", "masimo"}};
  static const nlohmann::json kDeviceTime = {
      {"type", "masimo"}, {"timestamps", "device"}, {"utc_offset_minutes", -300}, {"max_line", 64}};
  vg::fuzz::Run(kDefault, data, size);
  vg::fuzz::Run(kDeviceTime, data, size);
  return 0;
}
