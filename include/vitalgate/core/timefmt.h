// RFC 3339 time stamps with millisecond precision, always written in UTC with a "Z" suffix:
// "2026-11-22T05:00:00.000Z". Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg {

// Appends the RFC 3339 UTC form of `unix_ms` to `out` (24 characters).
void AppendRfc3339(std::string& out, std::int64_t unix_ms);
std::string FormatRfc3339(std::int64_t unix_ms);

// Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)"; 't'/'z' and a space separator are
// accepted as RFC 3339 allows. Fractions beyond milliseconds are truncated. Leap second 60 and
// out-of-range fields are rejected with a message naming the field.
Result<std::int64_t> ParseRfc3339(std::string_view text);

// Days from 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d);

struct CivilDate {
  std::int64_t year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

// The proleptic Gregorian date `days` after 1970-01-01 (the inverse of DaysFromCivil).
CivilDate CivilFromDays(std::int64_t days);

}  // namespace vg
