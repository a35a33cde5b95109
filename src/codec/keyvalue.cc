#include "keyvalue.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

constexpr std::string_view kDelimiterChoices[] = {"any", "whitespace", "comma", "semicolon"};

constexpr OptionSpec kOptions[] = {
    {"map", OptionType::kObject, "",
     "Device field name -> metric name, or -> {\"metric\": name, \"unit\": UCUM unit}. Names are "
     "matched ignoring case; unmapped fields are ignored.",
     true},
    {"separator", OptionType::kString, "\"=\"", "Text between a field's name and its value.",
     false},
    {"delimiter", OptionType::kString, "\"any\"",
     "What separates fields: \"whitespace\" (spaces, tabs), \"comma\", \"semicolon\" (spaces "
     "around fields are trimmed) or \"any\" of these.",
     false, -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
     kDelimiterChoices},
    {"ts_field", OptionType::kString, "\"\"",
     "Name of a field holding the measurement time (RFC 3339, or Unix seconds); empty: readings "
     "get the time the line arrived.",
     false},
    {"max_line", OptionType::kInteger, "1024", "Longest accepted line in bytes.", false, 64, 65536},
};

constexpr std::size_t kDetailMax = 64;

void Report(CodecSink& sink, std::uint64_t offset, std::string message,
            std::string_view detail = {}, bool warning = false) {
  sink.OnDecodeError(DecodeError{offset, "keyvalue: " + std::move(message),
                                 std::string(detail.substr(0, kDetailMax)), warning});
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view DelimiterChars(KeyValueCodec::Delimiter d) {
  switch (d) {
    case KeyValueCodec::Delimiter::kAny:
      return " \t,;";
    case KeyValueCodec::Delimiter::kWhitespace:
      return " \t";
    case KeyValueCodec::Delimiter::kComma:
      return ",";
    case KeyValueCodec::Delimiter::kSemicolon:
      return ";";
  }
  return " \t";
}

// Dashes in place of digits ("---", "--.-", "+--") or nothing at all: the device has no value.
bool IsNoValue(std::string_view v) {
  if (v.empty()) return true;
  bool dash = false;
  for (char c : v) {
    if (c == '-') {
      dash = true;
    } else if (c != '.' && c != '+') {
      return false;
    }
  }
  return dash;
}

// [+-]digits[.digits] or [+-].digits; no exponent, no inf/nan, so the result is always finite
// (from_chars reports overflow as an error).
std::optional<double> ParseDecimal(std::string_view v) {
  bool negative = false;
  if (!v.empty() && (v.front() == '+' || v.front() == '-')) {
    negative = v.front() == '-';
    v.remove_prefix(1);
  }
  std::size_t digits = 0;
  std::size_t dots = 0;
  for (char c : v) {
    if (IsDigit(c)) {
      ++digits;
    } else if (c == '.') {
      ++dots;
    } else {
      return std::nullopt;
    }
  }
  if (digits == 0 || dots > 1) return std::nullopt;
  double out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(out)) return std::nullopt;
  return negative ? -out : out;
}

std::optional<double> ParseBool(std::string_view v) {
  for (std::string_view t : {"1", "true", "yes", "on"}) {
    if (EqualsIgnoreCase(v, t)) return 1.0;
  }
  for (std::string_view f : {"0", "false", "no", "off"}) {
    if (EqualsIgnoreCase(v, f)) return 0.0;
  }
  return std::nullopt;
}

// RFC 3339, or Unix seconds (digits with an optional fraction).
std::optional<std::int64_t> ParseTime(std::string_view v) {
  if (!v.empty() && IsDigit(v.front()) && v.find_first_not_of("0123456789.") == v.npos) {
    const auto seconds = ParseDecimal(v);
    // Up to the year 5000: beyond that it is not a time, and ms would overflow sooner or later.
    if (!seconds || *seconds > 95'617'584'000.0) return std::nullopt;
    return static_cast<std::int64_t>(std::llround(*seconds * 1000));
  }
  auto parsed = ParseRfc3339(v);
  if (!parsed.ok()) return std::nullopt;
  return *parsed;
}

Result<KeyValueCodec::Field> ParseMapEntry(const std::string& key, const nlohmann::json& value) {
  const std::string where = "map." + key;
  KeyValueCodec::Field field;
  field.name = key;
  std::string metric_name;
  std::string metric_where = where;
  if (value.is_string()) {
    metric_name = value.get<std::string>();
  } else if (value.is_object()) {
    bool has_metric = false;
    for (const auto& [k, v] : value.items()) {
      if (k == "metric") {
        if (!v.is_string()) {
          return InvalidArgument(where + ".metric: expected a metric name, got " +
                                 std::string(JsonTypeName(v)));
        }
        metric_name = v.get<std::string>();
        metric_where = where + ".metric";
        has_metric = true;
      } else if (k == "unit") {
        if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
          return InvalidArgument(where + ".unit: expected a non-empty UCUM unit, got " +
                                 std::string(JsonTypeName(v)));
        }
        field.unit = v.get<std::string>();
      } else {
        return InvalidArgument(where + "." + k + ": unknown key (expected metric, unit)");
      }
    }
    if (!has_metric) return InvalidArgument(where + ".metric: required");
  } else {
    return InvalidArgument(where + ": expected a metric name or {\"metric\": name, \"unit\": " +
                           "unit}, got " + std::string(JsonTypeName(value)));
  }
  const auto metric = MetricFromName(metric_name);
  if (!metric) {
    std::string known;
    for (const MetricInfo& m : AllMetrics()) {
      if (!known.empty()) known += ", ";
      known += m.name;
    }
    return InvalidArgument(metric_where + ": unknown metric \"" + metric_name +
                           "\" (known: " + known + ")");
  }
  field.metric = *metric;
  const MetricInfo& info = Info(*metric);
  if (!field.unit.empty()) {
    if (info.type != ValueType::kNumber) {
      return InvalidArgument(where + ".unit: " + std::string(info.name) + " takes no unit");
    }
    if (!ToCanonical(*metric, field.unit, 1.0)) {
      return InvalidArgument(where + ".unit: \"" + field.unit + "\" is not accepted for " +
                             std::string(info.name) + " (canonical: " + std::string(info.unit) +
                             ")");
    }
  }
  return field;
}

}  // namespace

std::span<const OptionSpec> KeyValueCodec::Options() { return kOptions; }

Result<std::unique_ptr<Codec>> KeyValueCodec::Make(const nlohmann::json& options) {
  Settings s;
  s.separator = options.at("separator").get<std::string>();
  s.ts_field = options.at("ts_field").get<std::string>();
  s.max_line = options.at("max_line").get<std::size_t>();
  const auto& delimiter = options.at("delimiter").get_ref<const std::string&>();
  if (delimiter == "whitespace") s.delimiter = Delimiter::kWhitespace;
  if (delimiter == "comma") s.delimiter = Delimiter::kComma;
  if (delimiter == "semicolon") s.delimiter = Delimiter::kSemicolon;
  const std::string_view delimiters = DelimiterChars(s.delimiter);

  if (s.separator.empty()) return InvalidArgument("separator: must not be empty");
  if (s.separator.find_first_of(delimiters) != std::string::npos ||
      s.separator.find_first_of("\r\n") != std::string::npos) {
    return InvalidArgument("separator: must not contain a field delimiter or a line end");
  }

  const nlohmann::json& map = options.at("map");
  if (!map.is_object() || map.empty()) {
    return InvalidArgument("map: expected an object naming at least one field");
  }
  for (const auto& [key, value] : map.items()) {
    if (Trim(key).empty()) return InvalidArgument("map: field names must not be empty");
    if (key.find(s.separator) != std::string::npos || key.find_first_of(delimiters) != key.npos ||
        Trim(key) != key) {
      return InvalidArgument("map." + key +
                             ": field name contains the separator, a delimiter or blanks, so "
                             "it could never match");
    }
    for (const Field& f : s.fields) {
      if (EqualsIgnoreCase(f.name, key)) {
        return InvalidArgument("map." + key + ": same field as \"" + f.name +
                               "\" (names are matched ignoring case)");
      }
    }
    if (!s.ts_field.empty() && EqualsIgnoreCase(s.ts_field, key)) {
      return InvalidArgument("map." + key + ": is also the ts_field");
    }
    auto field = ParseMapEntry(key, value);
    if (!field.ok()) return field.status();
    s.fields.push_back(std::move(*field));
  }
  return std::unique_ptr<Codec>(std::make_unique<KeyValueCodec>(std::move(s)));
}

KeyValueCodec::KeyValueCodec(Settings settings)
    : settings_(std::move(settings)), framer_(settings_.max_line) {
  seen_.resize(settings_.fields.size());
  pending_.reserve(settings_.fields.size());
}

bool KeyValueCodec::IsDelimiter(char c) const {
  return DelimiterChars(settings_.delimiter).find(c) != std::string_view::npos;
}

void KeyValueCodec::Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) {
  framer_.Feed(
      bytes, [&](std::string_view line, std::uint64_t offset) { DecodeLine(line, offset, sink); },
      [&](std::uint64_t offset) { Report(sink, offset, "line longer than max_line, discarded"); });
}

void KeyValueCodec::DecodeLine(std::string_view line, std::uint64_t offset, CodecSink& sink) {
  std::fill(seen_.begin(), seen_.end(), std::uint8_t{0});
  pending_.clear();
  std::optional<std::int64_t> ts;
  bool matched = false;

  std::size_t pos = 0;
  while (pos <= line.size()) {
    std::size_t end = pos;
    while (end < line.size() && !IsDelimiter(line[end])) ++end;
    std::string_view token = line.substr(pos, end - pos);
    std::size_t token_pos = pos;
    pos = end + 1;
    while (!token.empty() && IsBlank(token.front())) {
      token.remove_prefix(1);
      ++token_pos;
    }
    token = Trim(token);
    const std::uint64_t token_offset = offset + token_pos;
    const std::size_t sep = token.find(settings_.separator);
    // Tokens without a separator (time prefixes, flag letters such as Nonin's "F") carry nothing.
    if (token.empty() || sep == std::string_view::npos) continue;
    const std::string_view key = Trim(token.substr(0, sep));
    const std::string_view value = Trim(token.substr(sep + settings_.separator.size()));

    if (!settings_.ts_field.empty() && EqualsIgnoreCase(key, settings_.ts_field)) {
      matched = true;
      if (ts) {
        Report(sink, token_offset, "time field repeated, ignored", token, true);
        continue;
      }
      ts = ParseTime(value);
      if (!ts) {
        Report(sink, token_offset,
               "time field is not an RFC 3339 time or Unix seconds; the line's readings get "
               "the receive time",
               token);
      }
      continue;
    }
    std::size_t index = 0;
    while (index < settings_.fields.size() &&
           !EqualsIgnoreCase(settings_.fields[index].name, key)) {
      ++index;
    }
    if (index == settings_.fields.size()) continue;  // not mapped
    matched = true;
    const Field& field = settings_.fields[index];
    const MetricInfo& info = Info(field.metric);
    if (seen_[index] != 0) {
      Report(sink, token_offset, "field for " + std::string(info.name) + " repeated, ignored",
             token, true);
      continue;
    }
    seen_[index] = 1;

    std::string_view text = value;
    // A trailing '*' is an event marker (Nonin ASCII output); a trailing '%' a unit.
    if (!text.empty() && text.back() == '*') text.remove_suffix(1);
    if (info.type == ValueType::kNumber && !text.empty() && text.back() == '%') {
      text.remove_suffix(1);
    }
    if (IsNoValue(text)) continue;
    std::optional<double> v;
    switch (info.type) {
      case ValueType::kNumber:
        v = ParseDecimal(text);
        if (v && !field.unit.empty()) v = ToCanonical(field.metric, field.unit, *v);
        break;
      case ValueType::kAcvpu: {
        char upper = text.size() == 1 ? text[0] : '?';
        if (upper >= 'a' && upper <= 'z') upper = static_cast<char>(upper - 'a' + 'A');
        v = AcvpuFromLetter(std::string_view(&upper, 1));
        break;
      }
      case ValueType::kBool:
        v = ParseBool(text);
        break;
    }
    if (!v || !std::isfinite(*v)) {
      Report(sink, token_offset,
             "value of the field for " + std::string(info.name) +
                 (info.type == ValueType::kNumber  ? " is not a number"
                  : info.type == ValueType::kAcvpu ? " is not one of A, C, V, P, U"
                                                   : " is not a boolean (1/0, true/false)"),
             token);
      continue;
    }
    DecodedValue out;
    out.metric = field.metric;
    out.value = *v;
    pending_.push_back(out);
  }

  if (!matched) {
    // A header line, or a map that does not fit the device: visible with `vitalgate decode`.
    Report(sink, offset, "no mapped field in the line", line, true);
    return;
  }
  for (DecodedValue& out : pending_) {
    if (ts) {
      out.ts_ms = *ts;
      out.flags |= kFlagDeviceTime;
    }
    sink.OnValue(out);
  }
}

}  // namespace vg
