// libFuzzer target for the TZif parser (vg::ParseTzif). Input: the bytes of a zone file. A
// rejected file yields a one-line error; an accepted one must keep TimeZone's promises at any
// instant: offsets within 26 hours, and LocalToUtc of a local time that exists returns its first
// occurrence (an instant showing that local time, no later than any other).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>

#include "vitalgate/core/timezone.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckInstant(const vg::TimeZone& zone, std::int64_t utc_ms) {
  const std::int32_t offset = zone.OffsetAt(utc_ms);
  Check(offset >= -vg::TimeZone::kMaxOffsetSeconds && offset <= vg::TimeZone::kMaxOffsetSeconds);
  const std::int64_t local = utc_ms + std::int64_t{offset} * 1000;
  const std::int64_t first = zone.LocalToUtc(local);
  Check(first <= utc_ms);
  Check(first + std::int64_t{zone.OffsetAt(first)} * 1000 == local);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto zone = vg::ParseTzif(bytes, "Fuzz/Zone");
  if (!zone.ok()) {
    const std::string& message = zone.status().message();
    Check(message.rfind("timezone \"Fuzz/Zone\": ", 0) == 0);
    Check(message.find('\n') == std::string::npos);
    return 0;
  }
  // The ends of the range must not overflow.
  for (const std::int64_t extreme :
       {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
    (void)zone->OffsetAt(extreme);
    (void)zone->LocalToUtc(extreme);
  }
  constexpr std::int64_t kProbes[] = {
      0,
      -1,
      1'000,
      -2'208'988'800'000,
      1'790'000'000'000,
      2'147'483'647'000,
      2'524'608'000'000,
      32'503'680'000'000,
      -62'135'596'800'000,
      253'402'300'799'000,
  };
  for (const std::int64_t probe : kProbes) CheckInstant(*zone, probe);
  // Instants taken from the input's last bytes, so the fuzzer can aim at its own transitions:
  // seconds within about ±280,000 years.
  for (std::size_t end = size; end >= 8 && end + 32 > size; end -= 8) {
    std::int64_t seconds = 0;
    std::memcpy(&seconds, data + end - 8, 8);
    seconds %= std::int64_t{1} << 43;
    for (const std::int64_t delta : {-1001, 0, 999}) CheckInstant(*zone, seconds * 1000 + delta);
  }
  return 0;
}
