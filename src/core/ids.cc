#include "vitalgate/core/ids.h"

#include <charconv>

#include "vitalgate/core/json_text.h"

namespace vg {

void AppendId(std::string& out, std::string_view instance, std::uint64_t id) {
  out += instance;
  out += '-';
  AppendHex(out, id);
}

void IdFormat::Append(std::string& out, std::uint64_t id) const { AppendId(out, instance_, id); }

std::string IdFormat::Format(std::uint64_t id) const {
  std::string s;
  s.reserve(instance_.size() + 18);
  Append(s, id);
  return s;
}

std::optional<std::uint64_t> IdFormat::Parse(std::string_view text) const {
  if (text.size() <= instance_.size() + 1 || text.substr(0, instance_.size()) != instance_ ||
      text[instance_.size()] != '-') {
    return std::nullopt;
  }
  const std::string_view hex = text.substr(instance_.size() + 1);
  if (hex.size() > 16) return std::nullopt;
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), v, 16);
  if (ec != std::errc() || end != hex.data() + hex.size() || v == 0) return std::nullopt;
  return v;
}

}  // namespace vg
