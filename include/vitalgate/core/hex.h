// Hex byte strings as people type them: "16 4B 00", "164b00", "0x16,0x4b". Pure, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg {

// The value of one hex digit (either case), or -1 for any other character.
constexpr int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Errors name the character offset.
Result<std::string> ParseHex(std::string_view text);

}  // namespace vg
