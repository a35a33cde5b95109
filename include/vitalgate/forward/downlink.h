// Parsing of inbound MQTT messages (the downlink). Every inbound byte is untrusted: size-limited,
// strictly schema-checked, errors name what was wrong. Pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg {

inline constexpr std::size_t kMaxDownlinkBytes = 1024;

struct AckCommand {
  std::string alert_id;
  std::string by;
};

// {"alert_id": "<id>", "by": "<who>"}: both non-empty strings, alert_id at most 64 bytes,
// by at most 128 bytes of printable UTF-8; no other keys.
Result<AckCommand> ParseAckCommand(std::string_view payload);

}  // namespace vg
