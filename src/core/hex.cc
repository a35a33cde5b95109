#include "vitalgate/core/hex.h"

namespace vg {

Result<std::string> ParseHex(std::string_view text) {
  std::string out;
  int high = -1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == ',' || c == ':' || c == '\t') {
      if (high >= 0) return InvalidArgument("hex: odd number of digits before offset " + std::to_string(i));
      continue;
    }
    if (c == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X') && high < 0) {
      ++i;
      continue;
    }
    const int v = HexDigit(c);
    if (v < 0) {
      return InvalidArgument("hex: unexpected character at offset " + std::to_string(i) +
                             ", expected 0-9 or a-f");
    }
    if (high < 0) {
      high = v;
    } else {
      out += static_cast<char>((high << 4) | v);
      high = -1;
    }
  }
  if (high >= 0) return InvalidArgument("hex: odd number of digits");
  return out;
}

}  // namespace vg
