// Test helpers for HL7 v2: a deliberately small message reader (default delimiters only) and
// the check that escaped text holds no delimiter or control character.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/forward/hl7.h"

namespace vg::hl7::testing {

// True when no delimiter, CR, LF or other control character appears outside an escape sequence.
inline bool OnlySafeCharacters(const std::string& escaped) {
  bool in_sequence = false;
  for (const char c : escaped) {
    if (c == '\\') {
      in_sequence = !in_sequence;
      continue;
    }
    const auto b = static_cast<unsigned char>(c);
    if (c == '|' || c == '^' || c == '~' || c == '&' || b < 0x20 || b == 0x7F) return false;
  }
  return !in_sequence;
}

struct Segment {
  std::vector<std::string> fields;  // fields[0] is the id; for MSH fields[1] is "|"
  const std::string& id() const { return fields[0]; }
  std::string field(std::size_t n) const { return n < fields.size() ? fields[n] : std::string(); }
  // Component c (1-based) of field n, unescaped.
  std::string component(std::size_t n, std::size_t c) const {
    const std::string f = field(n);
    std::size_t start = 0;
    for (std::size_t i = 1; i < c; ++i) {
      start = f.find('^', start);
      if (start == std::string::npos) return {};
      ++start;
    }
    const std::size_t end = f.find('^', start);
    return Unescape(f.substr(start, end == std::string::npos ? end : end - start));
  }
  std::string text(std::size_t n) const { return Unescape(field(n)); }
};

inline std::vector<std::string> SplitAll(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

inline std::vector<Segment> ParseMessage(std::string_view message) {
  std::vector<Segment> out;
  for (const std::string& line : SplitAll(message, '\r')) {
    if (line.empty()) continue;
    Segment s;
    s.fields = SplitAll(line, '|');
    if (s.fields[0] == "MSH") s.fields.insert(s.fields.begin() + 1, "|");
    out.push_back(std::move(s));
  }
  return out;
}

inline std::vector<Segment> SegmentsOf(const std::vector<Segment>& all, std::string_view id) {
  std::vector<Segment> out;
  for (const Segment& s : all) {
    if (s.id() == id) out.push_back(s);
  }
  return out;
}

}  // namespace vg::hl7::testing
