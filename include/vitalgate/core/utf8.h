// UTF-8 as outside input arrives in it: strict decoding (no overlong forms, surrogates or values
// past U+10FFFF) and the code points that must never reach a person's screen as themselves.
// Pure, thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace vg {

// The code point that starts at s[i], advancing i past it; nullopt (i unchanged) if the bytes
// there are not valid UTF-8. REQUIRES: i < s.size().
std::optional<char32_t> NextCodePoint(std::string_view s, std::size_t& i);

// C0 controls, DEL and C1 controls.
constexpr bool IsControl(char32_t c) { return c < 0x20 || (c >= 0x7F && c <= 0x9F); }

// Bidirectional marks, embeddings, overrides and isolates (Trojan Source, CVE-2021-42574).
constexpr bool IsBidiControl(char32_t c) {
  return c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069);
}

}  // namespace vg
