// Fast JSON text building for payloads on the hot path (no DOM, no allocation beyond the output
// string). Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vg {

// Appends `s` as a JSON string literal (quotes included), escaping per RFC 8259. Invalid UTF-8
// bytes are replaced by U+FFFD so the output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);

// Appends the shortest decimal form that round-trips (75 -> "75", 36.6 -> "36.6").
// REQUIRES: std::isfinite(value).
void AppendJsonNumber(std::string& out, double value);

void AppendUint(std::string& out, std::uint64_t value);

// Appends `value` as lowercase hex without leading zeros.
void AppendHex(std::string& out, std::uint64_t value);

}  // namespace vg
