// libFuzzer target for the compact stored form of reading rows (vg::ExpandCompactRow). Input:
// two bytes of the row's reading count, then the row. A damaged row is a one-line error; an
// accepted one expands into exactly `count` lines, each valid JSON (none for a count of 0).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vitalgate/core/compact_row.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto count = static_cast<std::uint32_t>(data[0] | (data[1] << 8));
  const std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  auto text = vg::ExpandCompactRow(body, count);
  if (!text.ok()) {
    if (text.status().message().find('\n') != std::string::npos) __builtin_trap();
    return 0;
  }
  if (count == 0) {
    if (!text->empty()) __builtin_trap();
    return 0;
  }
  std::uint32_t lines = 0;
  std::size_t start = 0;
  while (start <= text->size()) {
    std::size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    const std::string_view line = std::string_view(*text).substr(start, end - start);
    if (!nlohmann::json::accept(line)) __builtin_trap();
    ++lines;
    start = end + 1;
  }
  if (lines != count) __builtin_trap();
  return 0;
}
