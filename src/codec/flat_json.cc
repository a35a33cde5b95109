#include "vitalgate/codec/flat_json.h"

#include <charconv>
#include <cmath>

#include "vitalgate/core/hex.h"

namespace vg {
namespace {

void SkipSpace(std::string_view s, std::size_t& pos) {
  while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\r' || s[pos] == '\n')) {
    ++pos;
  }
}

void AppendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

bool FlatJsonObject::Fail(std::size_t offset, std::string message) {
  error_offset_ = offset;
  error_ = std::move(message);
  return false;
}

bool FlatJsonObject::ParseString(std::string_view s, std::size_t& pos, std::string_view& out) {
  // REQUIRES: s[pos] == '"'
  const std::size_t start = ++pos;
  while (pos < s.size() && s[pos] != '"' && s[pos] != '\\') {
    if (static_cast<unsigned char>(s[pos]) < 0x20) return Fail(pos, "control character in string");
    ++pos;
  }
  if (pos >= s.size()) return Fail(start - 1, "unterminated string");
  if (s[pos] == '"') {
    out = s.substr(start, pos - start);
    ++pos;
    return true;
  }
  // Slow path: the string has escapes.
  if (unescaped_used_ == unescaped_.size()) unescaped_.emplace_back();
  std::string& buf = unescaped_[unescaped_used_++];
  buf.assign(s.substr(start, pos - start));
  while (pos < s.size() && s[pos] != '"') {
    const char c = s[pos];
    if (static_cast<unsigned char>(c) < 0x20) return Fail(pos, "control character in string");
    if (c != '\\') {
      buf += c;
      ++pos;
      continue;
    }
    if (pos + 1 >= s.size()) return Fail(pos, "unterminated escape");
    const char e = s[pos + 1];
    pos += 2;
    switch (e) {
      case '"': buf += '"'; break;
      case '\\': buf += '\\'; break;
      case '/': buf += '/'; break;
      case 'b': buf += '\b'; break;
      case 'f': buf += '\f'; break;
      case 'n': buf += '\n'; break;
      case 'r': buf += '\r'; break;
      case 't': buf += '\t'; break;
      case 'u': {
        auto read4 = [&](std::size_t at, std::uint32_t& v) {
          if (at + 4 > s.size()) return false;
          v = 0;
          for (std::size_t k = 0; k < 4; ++k) {
            const int h = HexDigit(s[at + k]);
            if (h < 0) return false;
            v = (v << 4) | static_cast<std::uint32_t>(h);
          }
          return true;
        };
        std::uint32_t cp = 0;
        if (!read4(pos, cp)) return Fail(pos - 2, "bad \\u escape");
        pos += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          std::uint32_t lo = 0;
          if (pos + 1 < s.size() && s[pos] == '\\' && s[pos + 1] == 'u' && read4(pos + 2, lo) &&
              lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            pos += 6;
          } else {
            return Fail(pos - 6, "unpaired surrogate in \\u escape");
          }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          return Fail(pos - 6, "unpaired surrogate in \\u escape");
        }
        AppendUtf8(buf, cp);
        break;
      }
      default:
        return Fail(pos - 2, "bad escape in string");
    }
  }
  if (pos >= s.size()) return Fail(start - 1, "unterminated string");
  ++pos;
  out = buf;
  return true;
}

bool FlatJsonObject::ParseNumber(std::string_view s, std::size_t& pos, FlatJsonValue& out) {
  const std::size_t start = pos;
  if (pos < s.size() && s[pos] == '-') ++pos;
  if (pos >= s.size()) return Fail(start, "bad number");
  if (s[pos] == '0') {
    ++pos;
  } else if (s[pos] >= '1' && s[pos] <= '9') {
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
  } else {
    return Fail(start, "bad number");
  }
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t digits = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == digits) return Fail(start, "bad number: digits expected after '.'");
  }
  if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
    ++pos;
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
    const std::size_t digits = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == digits) return Fail(start, "bad number: digits expected in exponent");
  }
  out.type = FlatJsonValue::Type::kNumber;
  out.text = s.substr(start, pos - start);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data() + start, s.data() + pos, v);
  if (ec != std::errc() || end != s.data() + pos || !std::isfinite(v)) {
    return Fail(start, "number out of range");
  }
  out.number = v;
  return true;
}

bool FlatJsonObject::Parse(std::string_view s) {
  members_.clear();
  unescaped_used_ = 0;
  error_.clear();
  error_offset_ = 0;
  std::size_t pos = 0;
  SkipSpace(s, pos);
  if (pos >= s.size() || s[pos] != '{') return Fail(pos, "expected '{' to start a JSON object");
  ++pos;
  SkipSpace(s, pos);
  if (pos < s.size() && s[pos] == '}') {
    ++pos;
  } else {
    while (true) {
      SkipSpace(s, pos);
      if (pos >= s.size() || s[pos] != '"') return Fail(pos, "expected a string key");
      FlatJsonMember m;
      if (!ParseString(s, pos, m.key)) return false;
      for (const FlatJsonMember& prev : members_) {
        if (prev.key == m.key) return Fail(pos, "duplicate key");
      }
      SkipSpace(s, pos);
      if (pos >= s.size() || s[pos] != ':') return Fail(pos, "expected ':' after key");
      ++pos;
      SkipSpace(s, pos);
      if (pos >= s.size()) return Fail(pos, "expected a value");
      const char c = s[pos];
      if (c == '"') {
        m.value.type = FlatJsonValue::Type::kString;
        if (!ParseString(s, pos, m.value.text)) return false;
      } else if (c == '-' || (c >= '0' && c <= '9')) {
        if (!ParseNumber(s, pos, m.value)) return false;
      } else if (s.substr(pos, 4) == "true") {
        m.value.type = FlatJsonValue::Type::kBool;
        m.value.boolean = true;
        pos += 4;
      } else if (s.substr(pos, 5) == "false") {
        m.value.type = FlatJsonValue::Type::kBool;
        m.value.boolean = false;
        pos += 5;
      } else if (s.substr(pos, 4) == "null") {
        m.value.type = FlatJsonValue::Type::kNull;
        pos += 4;
      } else if (c == '{' || c == '[') {
        return Fail(pos, "nested objects and arrays are not accepted");
      } else {
        return Fail(pos, "expected a value");
      }
      members_.push_back(m);
      SkipSpace(s, pos);
      if (pos < s.size() && s[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < s.size() && s[pos] == '}') {
        ++pos;
        break;
      }
      return Fail(pos, "expected ',' or '}'");
    }
  }
  SkipSpace(s, pos);
  if (pos != s.size()) return Fail(pos, "unexpected characters after the object");
  return true;
}

}  // namespace vg
