#include "vitalgate/core/timezone.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

constexpr std::size_t kMaxNameBytes = 128;
constexpr std::size_t kHeaderBytes = 44;
constexpr std::int64_t kSecondsPerDay = 86'400;
// Transition times in a footer rule may be -167..167 hours (RFC 8536 section 3.3.1).
constexpr int kMaxRuleHours = 167;
// A footer UTC offset is at most 24:59:59 (POSIX hours 0..24).
constexpr int kMaxOffsetHours = 24;

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if (a % b != 0 && (a < 0) != (b < 0)) --q;
  return q;
}

std::int64_t FloorMod(std::int64_t a, std::int64_t b) { return a - FloorDiv(a, b) * b; }

// "timezone \"Europe/Berlin\": " with the name escaped, so the message stays one line.
std::string ZonePrefix(std::string_view name) {
  std::string out = "timezone ";
  AppendJsonString(out, name);
  out += ": ";
  return out;
}

std::string DescribeByte(unsigned char c) {
  if (c > 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 0xf];
}

// ---------------------------------------------------------------------------------------------
// The POSIX TZ rule of a TZif footer, with the RFC 8536 extensions (hours -167..167 in rule
// times, daylight time all year when the rule says so).

// One end of the daylight-saving period.
struct RuleDate {
  enum class Kind : std::uint8_t { kJulianNoLeap, kZeroBasedDay, kMonthWeekDay };
  Kind kind = Kind::kMonthWeekDay;
  int day = 0;      // Jn: 1..365, February 29 never counted; n: 0..365, February 29 counted
  int month = 1;    // Mm.w.d: 1..12
  int week = 1;     // 1..5, 5 = the last such weekday of the month
  int weekday = 0;  // 0 = Sunday
  std::int32_t time = 2 * 3600;  // local time of day in seconds, -167 h..167 h

  // Days from 1970-01-01 of this date in `year`.
  std::int64_t EpochDay(std::int64_t year) const {
    const std::int64_t jan1 = DaysFromCivil(year, 1, 1);
    switch (kind) {
      case Kind::kJulianNoLeap: {
        const bool leap = DaysFromCivil(year, 3, 1) - DaysFromCivil(year, 2, 1) == 29;
        return jan1 + day - 1 + (leap && day >= 60 ? 1 : 0);
      }
      case Kind::kZeroBasedDay:
        return jan1 + day;
      case Kind::kMonthWeekDay:
        break;
    }
    const auto m = static_cast<unsigned>(month);
    const std::int64_t first = DaysFromCivil(year, m, 1);
    const std::int64_t next =
        m == 12 ? DaysFromCivil(year + 1, 1, 1) : DaysFromCivil(year, m + 1, 1);
    const std::int64_t first_weekday = FloorMod(first + 4, 7);  // 1970-01-01 was a Thursday
    std::int64_t d = FloorMod(weekday - first_weekday, 7) + 7 * (week - 1);
    while (first + d >= next) d -= 7;
    return first + d;
  }
};

struct PosixTz {
  std::int32_t std_offset = 0;  // seconds east of UTC
  std::int32_t dst_offset = 0;
  bool has_dst = false;
  RuleDate start;  // read in standard time
  RuleDate end;    // read in daylight time

  std::int32_t OffsetAt(std::int64_t t) const {
    if (!has_dst) return std_offset;
    std::int32_t offset = std_offset;
    for (const Event& e : EventsAround(t)) {
      if (e.at > t) break;
      offset = e.starts_dst ? dst_offset : std_offset;
    }
    return offset;
  }

  std::optional<std::int64_t> NextAfter(std::int64_t t) const {
    if (!has_dst) return std::nullopt;
    for (const Event& e : EventsAround(t)) {
      if (e.at > t) return e.at;
    }
    return std::nullopt;
  }

 private:
  struct Event {
    std::int64_t at;
    bool starts_dst;
  };

  // The starts and ends of daylight time from two years before to two years after the year of
  // `t`, in time order. A rule date lies within its year give or take 167 hours plus the offset,
  // so these hold the last event at or before `t` and the first after it. When an end and a
  // start coincide (daylight time all year), the end sorts first: daylight time continues.
  std::array<Event, 10> EventsAround(std::int64_t t) const {
    const std::int64_t year = CivilFromDays(FloorDiv(t + std_offset, kSecondsPerDay)).year;
    std::array<Event, 10> events{};
    std::size_t n = 0;
    for (std::int64_t y = year - 2; y <= year + 2; ++y) {
      events[n++] = {start.EpochDay(y) * kSecondsPerDay + start.time - std_offset, true};
      events[n++] = {end.EpochDay(y) * kSecondsPerDay + end.time - dst_offset, false};
    }
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      return a.at != b.at ? a.at < b.at : (!a.starts_dst && b.starts_dst);
    });
    return events;
  }
};

// Parses a footer TZ string: std offset [dst [offset] ,start[/time],end[/time]].
class PosixTzParser {
 public:
  explicit PosixTzParser(std::string_view text) : s_(text) {}

  // On failure returns false and sets `error` to what is wrong and where.
  bool Parse(PosixTz& tz, std::string& error) {
    // POSIX offsets count west of Greenwich ("CET-1" is UTC+01:00).
    std::int32_t west = 0;
    if (!Designation("standard time name") || !Duration(kMaxOffsetHours, "UTC offset", west)) {
      error = error_;
      return false;
    }
    tz.std_offset = -west;
    if (AtEnd()) return true;
    tz.has_dst = true;
    tz.dst_offset = tz.std_offset + 3600;
    bool ok = Designation("daylight time name");
    if (ok && !AtEnd() && (IsDigit(Peek()) || Peek() == '+' || Peek() == '-')) {
      ok = Duration(kMaxOffsetHours, "daylight UTC offset", west);
      tz.dst_offset = -west;
    }
    if (ok && AtEnd()) ok = Fail("daylight time without a rule");
    ok = ok && Expect(',') && Date(tz.start) && Expect(',') && Date(tz.end);
    if (ok && !AtEnd()) ok = Fail("unexpected " + DescribeByte(static_cast<unsigned char>(Peek())));
    if (!ok) error = error_;
    return ok;
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  static bool IsAlpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
  bool AtEnd() const { return pos_ >= s_.size(); }
  char Peek() const { return s_[pos_]; }

  bool Fail(std::string what) {
    error_ = what + " at character " + std::to_string(pos_);
    return false;
  }

  bool Expect(char c) {
    if (!AtEnd() && Peek() == c) {
      ++pos_;
      return true;
    }
    return Fail(std::string("expected '") + c + "'");
  }

  // "CET" or "<+0545>": at least three characters.
  bool Designation(const char* what) {
    const std::size_t begin = pos_;
    if (!AtEnd() && Peek() == '<') {
      ++pos_;
      while (!AtEnd() && (IsAlpha(Peek()) || IsDigit(Peek()) || Peek() == '+' || Peek() == '-'))
        ++pos_;
      const std::size_t length = pos_ - begin - 1;
      if (!Expect('>')) return false;
      if (length < 3) return Fail(std::string(what) + " shorter than 3 characters");
      return true;
    }
    while (!AtEnd() && IsAlpha(Peek())) ++pos_;
    if (pos_ - begin < 3) return Fail(std::string("missing or short ") + what);
    return true;
  }

  // 1 to `max_digits` decimal digits with a value in [min, max].
  bool Number(int max_digits, int min, int max, const char* what, int& value) {
    const std::size_t begin = pos_;
    int v = 0;
    while (!AtEnd() && IsDigit(Peek()) && pos_ - begin < static_cast<std::size_t>(max_digits)) {
      v = v * 10 + (Peek() - '0');
      ++pos_;
    }
    if (pos_ == begin) return Fail(std::string("expected the ") + what);
    if (v < min || v > max) {
      pos_ = begin;
      return Fail(std::string(what) + " " + std::to_string(v) + " outside " + std::to_string(min) +
                  ".." + std::to_string(max));
    }
    value = v;
    return true;
  }

  // [+-]hh[:mm[:ss]] in seconds, hours at most `max_hours`.
  bool Duration(int max_hours, const char* what, std::int32_t& seconds) {
    int sign = 1;
    if (!AtEnd() && (Peek() == '+' || Peek() == '-')) {
      if (Peek() == '-') sign = -1;
      ++pos_;
    }
    int hours = 0;
    int minutes = 0;
    int secs = 0;
    if (!Number(3, 0, max_hours, what, hours)) return false;
    if (!AtEnd() && Peek() == ':') {
      ++pos_;
      if (!Number(2, 0, 59, "minutes", minutes)) return false;
      if (!AtEnd() && Peek() == ':') {
        ++pos_;
        if (!Number(2, 0, 59, "seconds", secs)) return false;
      }
    }
    seconds = sign * (hours * 3600 + minutes * 60 + secs);
    return true;
  }

  bool Date(RuleDate& date) {
    if (AtEnd()) return Fail("expected a rule date");
    if (Peek() == 'J') {
      ++pos_;
      date.kind = RuleDate::Kind::kJulianNoLeap;
      if (!Number(3, 1, 365, "Julian day", date.day)) return false;
    } else if (IsDigit(Peek())) {
      date.kind = RuleDate::Kind::kZeroBasedDay;
      if (!Number(3, 0, 365, "day of year", date.day)) return false;
    } else if (Peek() == 'M') {
      ++pos_;
      date.kind = RuleDate::Kind::kMonthWeekDay;
      if (!Number(2, 1, 12, "month", date.month) || !Expect('.') ||
          !Number(1, 1, 5, "week", date.week) || !Expect('.') ||
          !Number(1, 0, 6, "weekday", date.weekday)) {
        return false;
      }
    } else {
      return Fail("expected a rule date (Jn, n or Mm.w.d)");
    }
    date.time = 2 * 3600;
    if (!AtEnd() && Peek() == '/') {
      ++pos_;
      return Duration(kMaxRuleHours, "transition hour", date.time);
    }
    return true;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
  std::string error_;
};

// ---------------------------------------------------------------------------------------------
// TZif reading (RFC 8536 section 3): big-endian fields, every read bounds-checked by the caller.

class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : b_(bytes) {}
  std::size_t pos() const { return pos_; }
  std::size_t size() const { return b_.size(); }
  std::size_t remaining() const { return b_.size() - pos_; }
  // REQUIRES: n <= remaining() for all reads and skips.
  void Skip(std::size_t n) { pos_ += n; }
  std::uint8_t U8() { return static_cast<std::uint8_t>(b_[pos_++]); }
  std::uint32_t U32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | U8();
    return v;
  }
  std::int64_t I64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | U8();
    return static_cast<std::int64_t>(v);
  }
  std::int32_t I32() { return static_cast<std::int32_t>(U32()); }
  std::string_view View(std::size_t n) const { return b_.substr(pos_, n); }

 private:
  std::string_view b_;
  std::size_t pos_ = 0;
};

struct TzifHeader {
  char version = 0;  // 0 for version 1, else '2', '3', '4'
  std::uint32_t isutcnt = 0;
  std::uint32_t isstdcnt = 0;
  std::uint32_t leapcnt = 0;
  std::uint32_t timecnt = 0;
  std::uint32_t typecnt = 0;
  std::uint32_t charcnt = 0;

  // Bytes of the data block that follows, with 4- or 8-byte times.
  std::uint64_t BlockBytes(std::uint64_t time_size) const {
    return std::uint64_t{timecnt} * (time_size + 1) + std::uint64_t{typecnt} * 6 + charcnt +
           std::uint64_t{leapcnt} * (time_size + 4) + isstdcnt + isutcnt;
  }
};

}  // namespace

namespace internal {

struct TimeZoneRules {
  std::string name;
  std::int32_t initial_offset = 0;    // before the first transition, or always if none
  std::vector<std::int64_t> times;    // transition instants, strictly ascending
  std::vector<std::int32_t> offsets;  // offsets[i] is in effect from times[i]
  std::optional<PosixTz> footer;      // from the last transition on (or always if none)
};

}  // namespace internal

namespace {

using internal::TimeZoneRules;

class TzifParser {
 public:
  TzifParser(std::string_view bytes, std::string_view name) : in_(bytes), name_(name) {}

  Status Parse(TimeZoneRules& rules) {
    rules.name = std::string(name_);
    if (in_.size() == 0) return Fail("empty file, not a TZif file");
    if (in_.size() > TimeZone::kMaxFileBytes) {
      return Fail("file is " + std::to_string(in_.size()) + " bytes, more than the " +
                  std::to_string(TimeZone::kMaxFileBytes) + " a zone file may have");
    }
    TzifHeader header;
    VG_RETURN_IF_ERROR(Header(header));
    if (header.version == 0) {
      VG_RETURN_IF_ERROR(Block(header, 4, rules));
      return ExpectEnd();
    }
    // Version 2 and later: skip the 32-bit block, then read the 64-bit one and the footer.
    const std::uint64_t v1_bytes = header.BlockBytes(4);
    VG_RETURN_IF_ERROR(Need(v1_bytes, "the version 1 data block"));
    in_.Skip(static_cast<std::size_t>(v1_bytes));
    TzifHeader header64;
    VG_RETURN_IF_ERROR(Header(header64));
    if (header64.version != header.version) {
      return Fail("second header's version differs from the first at byte " +
                  std::to_string(in_.pos() - kHeaderBytes + 4));
    }
    VG_RETURN_IF_ERROR(Block(header64, 8, rules));
    VG_RETURN_IF_ERROR(Footer(rules));
    return ExpectEnd();
  }

 private:
  Status Fail(const std::string& what) const { return InvalidArgument(ZonePrefix(name_) + what); }

  Status Need(std::uint64_t n, const char* what) const {
    if (n <= in_.remaining()) return Status::Ok();
    return Fail("truncated at byte " + std::to_string(in_.size()) + " (" + what + " needs " +
                std::to_string(n) + " bytes from byte " + std::to_string(in_.pos()) + ")");
  }

  Status Header(TzifHeader& h) {
    const std::size_t at = in_.pos();
    const bool magic = in_.remaining() >= 4 && in_.View(4) == "TZif";
    if (!magic && at == 0) return Fail("not a TZif file");
    if (!magic && in_.remaining() >= 4) {
      return Fail("no second TZif header at byte " + std::to_string(at));
    }
    VG_RETURN_IF_ERROR(Need(kHeaderBytes, "the header"));
    in_.Skip(4);
    const std::uint8_t version = in_.U8();
    if (version != 0 && (version < '2' || version > '4')) {
      return Fail("unsupported TZif version " + DescribeByte(version) + " at byte " +
                  std::to_string(at + 4));
    }
    h.version = static_cast<char>(version);
    in_.Skip(15);
    h.isutcnt = in_.U32();
    h.isstdcnt = in_.U32();
    h.leapcnt = in_.U32();
    h.timecnt = in_.U32();
    h.typecnt = in_.U32();
    h.charcnt = in_.U32();
    const auto field = [at](std::size_t index) {
      return " at byte " + std::to_string(at + 20 + 4 * index);
    };
    if (h.typecnt == 0 || h.typecnt > 256) {
      return Fail("typecnt " + std::to_string(h.typecnt) + field(4) + " is not 1..256");
    }
    if (h.charcnt == 0) return Fail("charcnt 0" + field(5) + " (must be at least 1)");
    if (h.isutcnt != 0 && h.isutcnt != h.typecnt) {
      return Fail("isutcnt " + std::to_string(h.isutcnt) + field(0) + " is neither 0 nor typecnt");
    }
    if (h.isstdcnt != 0 && h.isstdcnt != h.typecnt) {
      return Fail("isstdcnt " + std::to_string(h.isstdcnt) + field(1) +
                  " is neither 0 nor typecnt");
    }
    if (h.leapcnt != 0) {
      return Fail("leap-second records (leapcnt " + std::to_string(h.leapcnt) + field(2) +
                  ") are not supported; use a zone outside right/");
    }
    return Status::Ok();
  }

  Status Block(const TzifHeader& h, std::size_t time_size, TimeZoneRules& rules) {
    VG_RETURN_IF_ERROR(Need(h.BlockBytes(time_size), "the data block"));
    // Every count now fits in the (size-capped) file, so these allocations are bounded by it.
    const std::size_t times_at = in_.pos();
    std::vector<std::int64_t> times(h.timecnt);
    for (std::size_t i = 0; i < times.size(); ++i) {
      times[i] = time_size == 8 ? in_.I64() : std::int64_t{in_.I32()};
      if (i > 0 && times[i] <= times[i - 1]) {
        return Fail("transition times not ascending at byte " +
                    std::to_string(times_at + i * time_size));
      }
    }
    const std::size_t indices_at = in_.pos();
    std::vector<std::uint8_t> indices(h.timecnt);
    for (std::size_t i = 0; i < indices.size(); ++i) {
      indices[i] = in_.U8();
      if (indices[i] >= h.typecnt) {
        return Fail("transition type " + std::to_string(indices[i]) + " at byte " +
                    std::to_string(indices_at + i) + " is not below typecnt " +
                    std::to_string(h.typecnt));
      }
    }
    std::vector<std::int32_t> type_offsets(h.typecnt);
    for (std::size_t i = 0; i < type_offsets.size(); ++i) {
      const std::size_t at = in_.pos();
      const std::int32_t utoff = in_.I32();
      const std::uint8_t isdst = in_.U8();
      const std::uint8_t desigidx = in_.U8();
      if (utoff < -TimeZone::kMaxOffsetSeconds || utoff > TimeZone::kMaxOffsetSeconds) {
        return Fail("local time type " + std::to_string(i) + " at byte " + std::to_string(at) +
                    " has UTC offset " + std::to_string(utoff) + " s, beyond 26 hours");
      }
      if (isdst > 1) {
        return Fail("local time type " + std::to_string(i) + " at byte " + std::to_string(at + 4) +
                    " has isdst " + std::to_string(isdst));
      }
      if (desigidx >= h.charcnt) {
        return Fail("local time type " + std::to_string(i) + " at byte " + std::to_string(at + 5) +
                    " has designation index " + std::to_string(desigidx) + " beyond charcnt " +
                    std::to_string(h.charcnt));
      }
      type_offsets[i] = utoff;
    }
    in_.Skip(h.charcnt);  // designations: not needed for offsets
    // leapcnt is 0 (checked in the header).
    for (std::uint32_t i = 0; i < h.isstdcnt + h.isutcnt; ++i) {
      const std::size_t at = in_.pos();
      if (in_.U8() > 1)
        return Fail("standard/UT indicator at byte " + std::to_string(at) + " is not 0 or 1");
    }
    rules.initial_offset = type_offsets[0];
    rules.offsets.resize(indices.size());
    for (std::size_t i = 0; i < indices.size(); ++i) rules.offsets[i] = type_offsets[indices[i]];
    rules.times = std::move(times);
    return Status::Ok();
  }

  Status Footer(TimeZoneRules& rules) {
    const std::size_t at = in_.pos();
    if (in_.remaining() == 0)
      return Fail("truncated at byte " + std::to_string(at) + " (no footer)");
    if (in_.U8() != '\n')
      return Fail("footer at byte " + std::to_string(at) + " does not start with a newline");
    const std::string_view rest = in_.View(in_.remaining());
    const std::size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) {
      return Fail("truncated at byte " + std::to_string(in_.size()) + " (footer from byte " +
                  std::to_string(at) + " has no closing newline)");
    }
    const std::string_view text = rest.substr(0, newline);
    in_.Skip(newline + 1);
    if (text.empty()) return Status::Ok();  // no rule for times after the last transition
    PosixTz tz;
    std::string error;
    if (!PosixTzParser(text).Parse(tz, error)) {
      std::string quoted;
      AppendJsonString(quoted, text);
      return Fail("footer TZ string " + quoted + " at byte " + std::to_string(at + 1) + ": " +
                  error);
    }
    rules.footer = tz;
    return Status::Ok();
  }

  Status ExpectEnd() const {
    if (in_.remaining() == 0) return Status::Ok();
    return Fail(std::to_string(in_.remaining()) + " unexpected bytes after the zone data at byte " +
                std::to_string(in_.pos()));
  }

  ByteReader in_;
  std::string_view name_;
};

Status CheckZoneName(std::string_view name) {
  const auto fail = [name](const std::string& what) {
    return InvalidArgument(ZonePrefix(name) + what);
  };
  if (name.empty()) return fail("name is empty");
  if (name.size() > kMaxNameBytes) {
    return fail("name is " + std::to_string(name.size()) + " bytes, more than " +
                std::to_string(kMaxNameBytes));
  }
  if (name.find("..") != std::string_view::npos) return fail("name must not contain \"..\"");
  if (name.front() == '/') return fail("name must not start with '/'");
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '_' || c == '+' || c == '-' || c == '/';
    if (!allowed) {
      return fail("name has " + DescribeByte(static_cast<unsigned char>(c)) + " at byte " +
                  std::to_string(i) + "; only letters, digits, '_', '+', '-' and '/' are allowed");
    }
  }
  if (name.back() == '/' || name.find("//") != std::string_view::npos) {
    return fail("name has an empty path component");
  }
  return Status::Ok();
}

class FileCloser {
 public:
  explicit FileCloser(int fd) : fd_(fd) {}
  ~FileCloser() { ::close(fd_); }
  FileCloser(const FileCloser&) = delete;
  FileCloser& operator=(const FileCloser&) = delete;

 private:
  int fd_;
};

// Reads at most kMaxFileBytes + 1 bytes, so an oversized file is reported, not loaded.
Result<std::string> ReadZoneFile(std::string_view name, const std::string& dir) {
  const std::string prefix = ZonePrefix(name);
  const std::string path = dir + "/" + std::string(name);
  // O_NONBLOCK: opening a FIFO planted in the directory must not hang the caller.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return NotFound(prefix + "no such zone in " + dir);
    if (err == EACCES || err == EPERM) {
      return PermissionDenied(prefix + "cannot read " + path + ": " + std::strerror(err));
    }
    return Unavailable(prefix + "cannot open " + path + ": " + std::strerror(err));
  }
  FileCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Unavailable(prefix + "cannot stat " + path + ": " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return InvalidArgument(prefix + path + " is a directory, not a zone");
  if (!S_ISREG(st.st_mode)) return InvalidArgument(prefix + path + " is not a regular file");
  std::string bytes;
  bytes.resize(static_cast<std::size_t>(std::min<std::uint64_t>(
      static_cast<std::uint64_t>(std::max<off_t>(st.st_size, 0)), TimeZone::kMaxFileBytes + 1)));
  std::size_t filled = 0;
  for (;;) {
    if (filled == bytes.size()) {
      if (bytes.size() > TimeZone::kMaxFileBytes) break;
      bytes.resize(std::min(bytes.size() + 4096, TimeZone::kMaxFileBytes + 1));  // file grew
    }
    const ssize_t n = ::read(fd, bytes.data() + filled, bytes.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(prefix + "cannot read " + path + ": " + std::strerror(errno));
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  bytes.resize(filled);
  return bytes;
}

std::string FixedName(std::int32_t offset_minutes) {
  std::string out = offset_minutes < 0 ? "UTC-" : "UTC+";
  const std::int32_t m = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  const auto two = [&out](std::int32_t v) {
    out += static_cast<char>('0' + v / 10);
    out += static_cast<char>('0' + v % 10);
  };
  two(m / 60);
  out += ':';
  two(m % 60);
  return out;
}

}  // namespace

Result<TimeZone> ParseTzif(std::string_view bytes, std::string_view name) {
  auto rules = std::make_shared<TimeZoneRules>();
  VG_RETURN_IF_ERROR(TzifParser(bytes, name).Parse(*rules));
  return TimeZone(std::move(rules));
}

TimeZone::TimeZone() : TimeZone(Fixed(0)) {}

TimeZone::TimeZone(std::shared_ptr<const TimeZoneRules> rules) : rules_(std::move(rules)) {}

Result<TimeZone> TimeZone::Load(std::string_view name, const std::string& dir) {
  VG_RETURN_IF_ERROR(CheckZoneName(name));
  Result<std::string> bytes = ReadZoneFile(name, dir);
  if (!bytes.ok()) return bytes.status();
  return ParseTzif(*bytes, name);
}

TimeZone TimeZone::Fixed(std::int32_t offset_minutes) {
  constexpr std::int32_t kLimit = kMaxOffsetSeconds / 60;
  offset_minutes = std::clamp(offset_minutes, -kLimit, kLimit);
  auto rules = std::make_shared<TimeZoneRules>();
  rules->name = FixedName(offset_minutes);
  rules->initial_offset = offset_minutes * 60;
  return TimeZone(std::move(rules));
}

const std::string& TimeZone::name() const { return rules_->name; }

std::int32_t TimeZone::OffsetAtSecond(std::int64_t t) const {
  const TimeZoneRules& r = *rules_;
  if (r.times.empty()) return r.footer ? r.footer->OffsetAt(t) : r.initial_offset;
  if (t < r.times.front()) return r.initial_offset;
  // From the last transition on, the footer rules (zic writes it to agree with that transition).
  if (t >= r.times.back() && r.footer) return r.footer->OffsetAt(t);
  const auto it = std::upper_bound(r.times.begin(), r.times.end(), t);
  return r.offsets[static_cast<std::size_t>(it - r.times.begin()) - 1];
}

bool TimeZone::NextTransitionAfter(std::int64_t t, std::int64_t& next) const {
  const TimeZoneRules& r = *rules_;
  if (!r.times.empty() && t < r.times.back()) {
    next = *std::upper_bound(r.times.begin(), r.times.end(), t);
    return true;
  }
  if (!r.footer) return false;
  const std::optional<std::int64_t> at = r.footer->NextAfter(t);
  if (!at) return false;
  next = *at;
  return true;
}

std::int32_t TimeZone::OffsetAt(std::int64_t utc_ms) const {
  return OffsetAtSecond(FloorDiv(utc_ms, 1000));
}

std::int64_t TimeZone::LocalToUtc(std::int64_t local_ms) const {
  // Offsets are whole seconds and transitions fall on whole seconds, so work in seconds and keep
  // the milliseconds aside. Every instant with this local time lies within kMaxOffsetSeconds of
  // it; walk the periods between transitions in that window, earliest first.
  const std::int64_t local = FloorDiv(local_ms, 1000);
  std::int64_t period_start = local - kMaxOffsetSeconds - 1;
  std::int32_t offset = OffsetAtSecond(period_start);
  std::optional<std::int32_t> before_gap;
  std::optional<std::int32_t> found;
  for (;;) {
    std::int64_t next = 0;
    const bool has_next = NextTransitionAfter(period_start, next);
    const std::int64_t candidate = local - offset;
    if (candidate >= period_start && (!has_next || candidate < next)) {
      found = offset;  // the first period holding this local time: its first occurrence
      break;
    }
    // This period ends before the local time is reached: remember its offset in case the local
    // time falls into the gap after it.
    if (has_next && candidate >= next) before_gap = offset;
    if (!has_next || next > local + kMaxOffsetSeconds) break;
    period_start = next;
    offset = OffsetAtSecond(next);
  }
  const std::int64_t chosen = found ? *found : before_gap.value_or(offset);
  std::int64_t result = 0;
  if (__builtin_sub_overflow(local_ms, chosen * 1000, &result)) {
    return chosen > 0 ? std::numeric_limits<std::int64_t>::min()
                      : std::numeric_limits<std::int64_t>::max();
  }
  return result;
}

}  // namespace vg
