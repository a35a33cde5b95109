// Hex byte strings as people type them: "16 4B 00", "164b00", "0x16,0x4b". Pure, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg {

// Errors name the character offset.
Result<std::string> ParseHex(std::string_view text);

}  // namespace vg
