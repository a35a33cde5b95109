#include "vitalgate/core/timefmt.h"

#include <array>

namespace vg {
namespace {

void AppendDigits(std::string& out, std::int64_t value, int width) {
  std::array<char, 20> buf{};
  for (int i = width - 1; i >= 0; --i) {
    buf[static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(buf.data(), static_cast<std::size_t>(width));
}

bool IsLeap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(std::int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `pos`.
bool ReadDigits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

}  // namespace

CivilDate CivilFromDays(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {m <= 2 ? y + 1 : y, m, d};
}

std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void AppendRfc3339(std::string& out, std::int64_t unix_ms) {
  std::int64_t days = unix_ms / 86'400'000;
  std::int64_t rem = unix_ms % 86'400'000;
  if (rem < 0) {
    rem += 86'400'000;
    --days;
  }
  const CivilDate c = CivilFromDays(days);
  AppendDigits(out, c.year, 4);
  out += '-';
  AppendDigits(out, c.month, 2);
  out += '-';
  AppendDigits(out, c.day, 2);
  out += 'T';
  AppendDigits(out, rem / 3'600'000, 2);
  out += ':';
  AppendDigits(out, rem / 60'000 % 60, 2);
  out += ':';
  AppendDigits(out, rem / 1000 % 60, 2);
  out += '.';
  AppendDigits(out, rem % 1000, 3);
  out += 'Z';
}

std::string FormatRfc3339(std::int64_t unix_ms) {
  std::string s;
  s.reserve(24);
  AppendRfc3339(s, unix_ms);
  return s;
}

Result<std::int64_t> ParseRfc3339(std::string_view s) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!ReadDigits(s, 0, 4, year) || s.size() < 5 || s[4] != '-') {
    return InvalidArgument("time stamp: expected RFC 3339 'YYYY-MM-DDTHH:MM:SS.sssZ'");
  }
  if (!ReadDigits(s, 5, 2, month) || s.size() < 8 || s[7] != '-' || !ReadDigits(s, 8, 2, day)) {
    return InvalidArgument("time stamp: bad date, expected YYYY-MM-DD");
  }
  if (s.size() < 11 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ')) {
    return InvalidArgument("time stamp: expected 'T' between date and time");
  }
  if (!ReadDigits(s, 11, 2, hour) || s.size() < 14 || s[13] != ':' ||
      !ReadDigits(s, 14, 2, minute) || s.size() < 17 || s[16] != ':' ||
      !ReadDigits(s, 17, 2, second)) {
    return InvalidArgument("time stamp: bad time of day, expected HH:MM:SS");
  }
  if (month < 1 || month > 12) return InvalidArgument("time stamp: month out of range");
  if (day < 1 || static_cast<unsigned>(day) > DaysInMonth(year, static_cast<unsigned>(month))) {
    return InvalidArgument("time stamp: day out of range");
  }
  if (hour > 23 || minute > 59 || second > 59) {
    return InvalidArgument("time stamp: time of day out of range");
  }
  std::size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) {
      return InvalidArgument("time stamp: fraction must have 1 to 9 digits");
    }
  }
  int offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh = 0, om = 0;
    if (!ReadDigits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ReadDigits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return InvalidArgument("time stamp: bad UTC offset, expected +hh:mm");
    }
    offset_min = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return InvalidArgument("time stamp: missing time zone ('Z' or +hh:mm)");
  }
  if (pos != s.size()) return InvalidArgument("time stamp: unexpected characters after zone");
  const std::int64_t days =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60;
  return secs * 1000 + millis;
}

}  // namespace vg
