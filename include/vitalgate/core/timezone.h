// TimeZone: the UTC offset of a tz database zone ("Europe/Berlin") at any instant, and the UTC
// instant of a local wall-clock time, so a device clock set to local time stays right across
// daylight-saving changes.
//
// A zone is loaded once from its TZif file (RFC 8536, versions 1 to 4; Debian's tzdata in
// /usr/share/zoneinfo, "fat" or "slim") and is then a pure function of time:
//   - instants before the first transition use the file's first local time type (type 0);
//   - instants from the last transition on follow the POSIX TZ rule in the file's footer
//     ("CET-1CEST,M3.5.0,M10.5.0/3"), which covers any year; a file without a footer keeps the
//     last transition's offset;
//   - a file without transitions uses its footer, else type 0, for all time.
// Leap-second files (the "right/" zones) are refused: vitalgate's clock is POSIX time.
//
// Untrusted bytes are parsed with every count and offset checked against the file size; a bad
// file gives a one-line error, never a crash, and never an allocation larger than the file.
//
// Thread-safety: immutable after Load(); const methods may be called from any thread. Copies
// share the loaded data and are cheap.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg {

class TimeZone;
namespace internal {
struct TimeZoneRules;  // the loaded data, defined in timezone.cc
}  // namespace internal

// Parses the bytes of a TZif file. `name` is used only in error messages, which read
// "timezone \"<name>\": <what is wrong> at byte N". Exposed for the fuzz target and tests;
// services call TimeZone::Load.
Result<TimeZone> ParseTzif(std::string_view bytes, std::string_view name);

class TimeZone {
 public:
  // Largest size of a zone file accepted (the biggest in tzdata is under 4 KiB).
  static constexpr std::size_t kMaxFileBytes = 1 << 20;
  // Largest |UTC offset| accepted from a file or a footer, in seconds (26 hours).
  static constexpr std::int32_t kMaxOffsetSeconds = 26 * 3600;

  // UTC, the same as Fixed(0).
  TimeZone();

  // Loads zone `name` ("Europe/Berlin", "UTC", "America/Santiago") from its TZif file under
  // `dir`. The name is checked before any file is opened: 1 to 128 bytes of [A-Za-z0-9_+-/],
  // no leading or trailing '/', no empty component, no "..". Errors are one line naming the zone:
  //   timezone "Europe/Berln": no such zone in /usr/share/zoneinfo        (kNotFound)
  //   timezone "../etc/passwd": name must not contain ".."                  (kInvalidArgument)
  //   timezone "zone.tab": not a TZif file                                  (kInvalidArgument)
  //   timezone "Europe/Berlin": truncated at byte 1200 (...)                (kInvalidArgument)
  static Result<TimeZone> Load(std::string_view name,
                               const std::string& dir = "/usr/share/zoneinfo");

  // A zone with a fixed offset (for the older utc_offset_minutes setting), named "UTC+hh:mm" or
  // "UTC-hh:mm". Offsets beyond ±26 hours are clamped to ±26 hours.
  static TimeZone Fixed(std::int32_t offset_minutes);

  // The UTC offset in seconds (local = UTC + offset) in effect at `utc_ms` (Unix ms).
  std::int32_t OffsetAt(std::int64_t utc_ms) const;

  // The UTC instant (Unix ms) of a local wall-clock time given as ms since 1970-01-01T00:00 local
  // (the local date and time encoded as if they were UTC).
  //   - A local time that occurs twice (clocks go back, e.g. 02:30 on the last Sunday of October
  //     in Berlin): the FIRST occurrence, i.e. the earlier instant, read with the offset in
  //     effect before the change (02:30 CEST = 00:30Z, not 02:30 CET = 01:30Z).
  //   - A local time that does not exist (clocks go forward, e.g. 02:30 on the last Sunday of
  //     March in Berlin): read with the offset in effect BEFORE the change, which lands as far
  //     after the change as the time was into the gap (02:30 read as CET = 01:30Z, which is
  //     03:30 CEST).
  // Results beyond the int64 range saturate.
  std::int64_t LocalToUtc(std::int64_t local_ms) const;

  const std::string& name() const;

 private:
  explicit TimeZone(std::shared_ptr<const internal::TimeZoneRules> rules);

  // The offset in seconds at Unix second `t`, and the first transition strictly after `t`.
  std::int32_t OffsetAtSecond(std::int64_t t) const;
  bool NextTransitionAfter(std::int64_t t, std::int64_t& next) const;

  friend Result<TimeZone> ParseTzif(std::string_view bytes, std::string_view name);

  std::shared_ptr<const internal::TimeZoneRules> rules_;
};

}  // namespace vg
