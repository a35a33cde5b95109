// TimeZone against glibc as an independent oracle: glibc reads the same TZif files and POSIX TZ
// strings with its own code (localtime_r, mktime), so agreement over every hour of several years
// and every minute around each change is strong evidence both read them right.
#include "vitalgate/core/timezone.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

constexpr std::int64_t kHour = 3600;
constexpr std::int64_t kDay = 86400;
constexpr const char* kZoneDir = "/usr/share/zoneinfo";

const std::vector<std::string> kZones = {
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "UTC",
};
const std::vector<int> kYears = {1970, 2026, 2037, 2050};

std::int64_t LocalSeconds(int y, unsigned mo, unsigned d, int h, int mi) {
  return DaysFromCivil(y, mo, d) * kDay + h * kHour + mi * 60;
}

// Sets TZ for glibc for the lifetime of the object (tests run on one thread).
class ScopedTz {
 public:
  explicit ScopedTz(const std::string& tz) {
    if (const char* old = std::getenv("TZ")) saved_ = old;
    had_ = std::getenv("TZ") != nullptr;
    ::setenv("TZ", tz.c_str(), 1);
    ::tzset();
  }
  ~ScopedTz() {
    if (had_) {
      ::setenv("TZ", saved_.c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  ScopedTz(const ScopedTz&) = delete;
  ScopedTz& operator=(const ScopedTz&) = delete;

 private:
  std::string saved_;
  bool had_ = false;
};

std::int32_t GlibcOffset(std::int64_t t) {
  const auto tt = static_cast<time_t>(t);
  struct tm out {};
  localtime_r(&tt, &out);
  return static_cast<std::int32_t>(out.tm_gmtoff);
}

std::int64_t GlibcMktime(std::int64_t local) {
  const auto tt = static_cast<time_t>(local);
  struct tm fields {};
  gmtime_r(&tt, &fields);
  fields.tm_isdst = -1;
  return static_cast<std::int64_t>(std::mktime(&fields));
}

enum class LocalKind { kNormal, kRepeated, kSkipped };

struct Expected {
  std::int64_t utc;  // seconds
  LocalKind kind;
  std::int64_t other;  // the second occurrence of a repeated time
};

// What LocalToUtc must return for `local`, derived from glibc's offsets only: find the (at most
// one, in these zones and years) change within 26 hours and apply the documented choice.
Expected ExpectedLocalToUtc(std::int64_t local) {
  const std::int64_t lo = local - 26 * kHour - 1;
  const std::int64_t hi = local + 26 * kHour;
  const std::int32_t before = GlibcOffset(lo);
  const std::int32_t after = GlibcOffset(hi);
  if (before == after) {
    EXPECT_EQ(GlibcOffset(local - before), before) << "oracle: two changes near " << local;
    return {local - before, LocalKind::kNormal, 0};
  }
  std::int64_t a = lo;
  std::int64_t b = hi;
  while (b - a > 1) {
    const std::int64_t mid = a + (b - a) / 2;
    (GlibcOffset(mid) == before ? a : b) = mid;
  }
  const std::int64_t change = b;
  EXPECT_EQ(GlibcOffset(change), after) << "oracle: two changes near " << local;
  const bool in_before = local - before < change;
  const bool in_after = local - after >= change;
  if (in_before && in_after) return {local - before, LocalKind::kRepeated, local - after};
  if (in_before) return {local - before, LocalKind::kNormal, 0};
  if (in_after) return {local - after, LocalKind::kNormal, 0};
  return {local - before, LocalKind::kSkipped, 0};  // the offset before the change
}

struct Counts {
  int normal = 0;
  int repeated = 0;
  int skipped = 0;
};

// Checks LocalToUtc(local) against the oracle, and against mktime where the answer is unique.
void CheckLocal(const TimeZone& zone, std::int64_t local, Counts& counts) {
  const Expected e = ExpectedLocalToUtc(local);
  const std::int64_t got = zone.LocalToUtc(local * 1000 + 250);
  EXPECT_EQ(got, e.utc * 1000 + 250) << zone.name() << " local " << FormatRfc3339(local * 1000);
  switch (e.kind) {
    case LocalKind::kNormal:
      ++counts.normal;
      EXPECT_EQ(GlibcMktime(local), e.utc)
          << zone.name() << " mktime " << FormatRfc3339(local * 1000);
      EXPECT_EQ(got + zone.OffsetAt(got) * 1000LL, local * 1000 + 250);
      break;
    case LocalKind::kRepeated: {
      ++counts.repeated;
      // glibc's mktime may pick either occurrence; ours is documented to be the first.
      const std::int64_t m = GlibcMktime(local);
      EXPECT_TRUE(m == e.utc || m == e.other) << zone.name() << " " << local;
      EXPECT_LT(e.utc, e.other);
      EXPECT_EQ(got + zone.OffsetAt(got) * 1000LL, local * 1000 + 250);
      break;
    }
    case LocalKind::kSkipped:
      ++counts.skipped;
      // Read with the offset before the change: it lands after the change, as far as it was
      // into the gap, so the local time seen there is later than asked.
      EXPECT_GT(got + zone.OffsetAt(got) * 1000LL, local * 1000 + 250);
      break;
  }
}

TimeZone LoadOrDie(const std::string& name, const std::string& dir = kZoneDir) {
  auto zone = TimeZone::Load(name, dir);
  EXPECT_TRUE(zone.ok()) << zone.status().message();
  return zone.ok() ? *zone : TimeZone();
}

TEST(TimeZoneTest, OffsetsMatchGlibcEveryHour) {
  for (const std::string& name : kZones) {
    const TimeZone zone = LoadOrDie(name);
    ASSERT_EQ(zone.name(), name);
    ScopedTz tz(":" + name);
    for (const int year : kYears) {
      const std::int64_t from = DaysFromCivil(year, 1, 1) * kDay;
      const std::int64_t to = DaysFromCivil(year + 1, 1, 1) * kDay;
      for (std::int64_t t = from; t < to; t += kHour) {
        ASSERT_EQ(zone.OffsetAt(t * 1000), GlibcOffset(t))
            << name << " " << FormatRfc3339(t * 1000);
        ASSERT_EQ(zone.OffsetAt(t * 1000 + 999), GlibcOffset(t)) << name;
      }
    }
  }
}

TEST(TimeZoneTest, LocalToUtcMatchesGlibcEveryLocalHour) {
  for (const std::string& name : kZones) {
    const TimeZone zone = LoadOrDie(name);
    ScopedTz tz(":" + name);
    Counts counts;
    for (const int year : kYears) {
      const std::int64_t from = DaysFromCivil(year, 1, 1) * kDay;
      const std::int64_t to = DaysFromCivil(year + 1, 1, 1) * kDay;
      for (std::int64_t local = from; local < to; local += kHour) CheckLocal(zone, local, counts);
    }
    EXPECT_GT(counts.normal, 30000) << name;
  }
}

// Every minute from three hours before to three hours after each change of offset, in UTC for
// OffsetAt and in local time for LocalToUtc, so both the repeated and the skipped interval are
// walked through.
TEST(TimeZoneTest, AroundEveryChangeMatchesGlibc) {
  for (const std::string& name : kZones) {
    const TimeZone zone = LoadOrDie(name);
    ScopedTz tz(":" + name);
    Counts counts;
    int changes = 0;
    for (const int year : kYears) {
      const std::int64_t from = DaysFromCivil(year, 1, 1) * kDay;
      const std::int64_t to = DaysFromCivil(year + 1, 1, 1) * kDay;
      for (std::int64_t t = from; t < to; t += kHour) {
        if (GlibcOffset(t) == GlibcOffset(t + kHour)) continue;
        std::int64_t a = t;
        std::int64_t b = t + kHour;
        while (b - a > 1) {
          const std::int64_t mid = a + (b - a) / 2;
          (GlibcOffset(mid) == GlibcOffset(t) ? a : b) = mid;
        }
        ++changes;
        const std::int64_t change = b;
        EXPECT_EQ(zone.OffsetAt(change * 1000 - 1), GlibcOffset(change - 1))
            << name << " " << change;
        EXPECT_EQ(zone.OffsetAt(change * 1000), GlibcOffset(change)) << name << " " << change;
        for (std::int64_t u = change - 3 * kHour; u <= change + 3 * kHour; u += 60) {
          EXPECT_EQ(zone.OffsetAt(u * 1000), GlibcOffset(u)) << name << " " << u;
        }
        const std::int64_t local_change = change + GlibcOffset(change - 1);
        for (std::int64_t l = local_change - 3 * kHour; l <= local_change + 3 * kHour; l += 60) {
          CheckLocal(zone, l, counts);
        }
      }
    }
    if (name == "Asia/Kolkata" || name == "UTC") {
      EXPECT_EQ(changes, 0) << name;
    } else {
      // Both directions seen in each zone with daylight saving time (Berlin and New York had
      // none in 1970; the others still have changes in the footer years).
      EXPECT_GE(changes, 6) << name;
      EXPECT_GT(counts.repeated, 0) << name;
      EXPECT_GT(counts.skipped, 0) << name;
    }
  }
}

// The documented choices, spelled out: the first occurrence of a repeated time, and the offset
// before the change for a skipped one (glibc's mktime differs in some of these).
TEST(TimeZoneTest, RepeatedAndSkippedLocalTimesFollowTheDocumentedChoice) {
  struct Case {
    const char* zone;
    std::int64_t local;
    const char* utc;
  };
  const Case cases[] = {
      // Clocks go back 03:00 -> 02:00: 02:30 happens twice; the first is CEST.
      {"Europe/Berlin", LocalSeconds(2026, 10, 25, 2, 30), "2026-10-25T00:30:00.000Z"},
      // Clocks go forward 02:00 -> 03:00: 02:30 read as CET, which is 03:30 CEST.
      {"Europe/Berlin", LocalSeconds(2026, 3, 29, 2, 30), "2026-03-29T01:30:00.000Z"},
      {"America/New_York", LocalSeconds(2026, 11, 1, 1, 30), "2026-11-01T05:30:00.000Z"},
      {"America/New_York", LocalSeconds(2026, 3, 8, 2, 30), "2026-03-08T07:30:00.000Z"},
      // Half-hour daylight saving time: 01:30-02:00 repeats, 02:00-02:30 is skipped.
      {"Australia/Lord_Howe", LocalSeconds(2026, 4, 5, 1, 45), "2026-04-04T14:45:00.000Z"},
      {"Australia/Lord_Howe", LocalSeconds(2026, 10, 4, 2, 15), "2026-10-03T15:45:00.000Z"},
      // Changes at 24:00 local (the footer's "/24").
      {"America/Santiago", LocalSeconds(2026, 4, 4, 23, 30), "2026-04-05T02:30:00.000Z"},
      {"America/Santiago", LocalSeconds(2026, 9, 6, 0, 30), "2026-09-06T04:30:00.000Z"},
      // Changes at 02:45 and 03:45 local.
      {"Pacific/Chatham", LocalSeconds(2026, 4, 5, 3, 0), "2026-04-04T13:15:00.000Z"},
      {"Pacific/Chatham", LocalSeconds(2026, 9, 27, 3, 0), "2026-09-26T14:15:00.000Z"},
      // 2050: beyond the last transition in the file, the footer decides.
      {"Europe/Berlin", LocalSeconds(2050, 10, 30, 2, 30), "2050-10-30T00:30:00.000Z"},
      {"Europe/Berlin", LocalSeconds(2050, 3, 27, 2, 30), "2050-03-27T01:30:00.000Z"},
  };
  for (const Case& c : cases) {
    const TimeZone zone = LoadOrDie(c.zone);
    EXPECT_EQ(FormatRfc3339(zone.LocalToUtc(c.local * 1000)), c.utc) << c.zone;
  }
}

TEST(TimeZoneTest, FixedOffsets) {
  const TimeZone cet = TimeZone::Fixed(60);
  EXPECT_EQ(cet.name(), "UTC+01:00");
  EXPECT_EQ(cet.OffsetAt(0), 3600);
  EXPECT_EQ(cet.OffsetAt(LocalSeconds(2026, 7, 1, 0, 0) * 1000), 3600);
  EXPECT_EQ(cet.LocalToUtc(LocalSeconds(2026, 7, 1, 12, 0) * 1000),
            LocalSeconds(2026, 7, 1, 11, 0) * 1000);
  const TimeZone nst = TimeZone::Fixed(-210);
  EXPECT_EQ(nst.name(), "UTC-03:30");
  EXPECT_EQ(nst.OffsetAt(-5), -12600);
  EXPECT_EQ(nst.LocalToUtc(0), 12'600'000);
  EXPECT_EQ(TimeZone().name(), "UTC+00:00");
  EXPECT_EQ(TimeZone().LocalToUtc(123), 123);
  EXPECT_EQ(TimeZone::Fixed(100000).OffsetAt(0), 26 * 3600);
  // Saturates instead of overflowing at the ends of the range.
  EXPECT_EQ(cet.LocalToUtc(INT64_MIN + 5), INT64_MIN);
  EXPECT_EQ(nst.LocalToUtc(INT64_MAX - 5), INT64_MAX);
}

// ---------------------------------------------------------------------------------------------
// Synthetic TZif files.

struct TzifType {
  std::int32_t utoff;
  std::uint8_t isdst;
};

struct TzifSpec {
  char version = '2';  // 0 for version 1
  std::vector<std::int64_t> times;
  std::vector<std::uint8_t> indices;
  std::vector<TzifType> types = {{0, 0}};
  std::string footer = "UTC0";
};

void Put32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}
void Put64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void PutHeader(std::string& out, char version, std::uint32_t timecnt, std::uint32_t typecnt) {
  out += "TZif";
  out += version;
  out.append(15, '\0');
  for (std::uint32_t count : {0U, 0U, 0U, timecnt, typecnt, 4U}) Put32(out, count);
}

void PutBlock(std::string& out, const TzifSpec& spec, bool wide) {
  for (std::int64_t t : spec.times) {
    if (wide) {
      Put64(out, static_cast<std::uint64_t>(t));
    } else {
      Put32(out, static_cast<std::uint32_t>(t));
    }
  }
  for (std::uint8_t i : spec.indices) out += static_cast<char>(i);
  for (const TzifType& type : spec.types) {
    Put32(out, static_cast<std::uint32_t>(type.utoff));
    out += static_cast<char>(type.isdst);
    out += '\0';
  }
  out.append("ABC\0", 4);
}

// A file as zic writes it; version 2+ files get a minimal version 1 block, like zic's "slim".
std::string MakeTzif(const TzifSpec& spec) {
  std::string out;
  const auto timecnt = static_cast<std::uint32_t>(spec.times.size());
  const auto typecnt = static_cast<std::uint32_t>(spec.types.size());
  if (spec.version == 0) {
    PutHeader(out, 0, timecnt, typecnt);
    PutBlock(out, spec, false);
    return out;
  }
  PutHeader(out, spec.version, 0, 1);
  PutBlock(out, TzifSpec{.times = {}, .indices = {}, .types = {{0, 0}}}, false);
  PutHeader(out, spec.version, timecnt, typecnt);
  PutBlock(out, spec, true);
  out += '\n' + spec.footer + '\n';
  return out;
}

TEST(TimeZoneTest, VersionOneFileKeepsTheLastOffset) {
  TzifSpec spec;
  spec.version = 0;
  spec.times = {-100000, 0, 1'000'000};
  spec.indices = {1, 2, 1};
  spec.types = {{-1800, 0}, {3600, 0}, {7200, 1}};
  auto zone = ParseTzif(MakeTzif(spec), "Test/V1");
  ASSERT_TRUE(zone.ok()) << zone.status().message();
  EXPECT_EQ(zone->OffsetAt(-100'001'000), -1800);  // before the first: type 0
  EXPECT_EQ(zone->OffsetAt(-100'000'000), 3600);
  EXPECT_EQ(zone->OffsetAt(-1), 3600);
  EXPECT_EQ(zone->OffsetAt(0), 7200);
  EXPECT_EQ(zone->OffsetAt(1'000'000'000), 3600);
  EXPECT_EQ(zone->OffsetAt(4'000'000'000'000), 3600);  // no footer: the last type stays
  // At 0 clocks go forward from 01:00 to 02:00 local: 01:30 is skipped, read with +01:00.
  EXPECT_EQ(zone->LocalToUtc(1800'000 + 3600'000), 1800'000);
}

TEST(TimeZoneTest, NoTransitionsUsesTheFooterForAllTime) {
  TzifSpec spec;
  spec.types = {{3600, 0}};
  spec.footer = "CET-1CEST,M3.5.0,M10.5.0/3";
  auto zone = ParseTzif(MakeTzif(spec), "Test/FooterOnly");
  ASSERT_TRUE(zone.ok()) << zone.status().message();
  EXPECT_EQ(zone->OffsetAt(LocalSeconds(1900, 7, 1, 0, 0) * 1000), 7200);
  EXPECT_EQ(zone->OffsetAt(LocalSeconds(1900, 1, 1, 0, 0) * 1000), 3600);
  EXPECT_EQ(zone->OffsetAt(LocalSeconds(2400, 7, 1, 0, 0) * 1000), 7200);
  spec.footer = "";  // an empty footer: type 0
  zone = ParseTzif(MakeTzif(spec), "Test/NoFooter");
  ASSERT_TRUE(zone.ok()) << zone.status().message();
  EXPECT_EQ(zone->OffsetAt(LocalSeconds(2026, 7, 1, 0, 0) * 1000), 3600);
}

// POSIX TZ strings in footers, compared with glibc reading the same string from TZ.
TEST(TimeZoneTest, FooterRulesMatchGlibc) {
  const char* footers[] = {
      "CET-1CEST,M3.5.0,M10.5.0/3",
      "<-04>4<-03>,M9.1.6/24,M4.1.6/24",
      "EST5EDT,M3.2.0,M11.1.0",
      "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
      "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
      "IST-5:30",
      "UTC0",
      "EST5EDT,J60/2,J300/2",              // Jn: February 29 not counted
      "EST5EDT,59/2,299/2",                // n: zero-based, February 29 counted
      "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",   // negative transition time (America/Nuuk)
      "<+00>0<+02>-2,M3.5.0/1,M10.5.0/3",  // Antarctica/Troll: two hours of DST
      "AAA+3:30:15BBB+2,M2.5.3/26:30,M11.4.6/-20",
      "WGT3WGST,M3.5.0/-2,M10.5.0/-1",
      "XXX-14YYY-13,M1.1.0/167,M12.5.6/-167",
  };
  for (const char* footer : footers) {
    TzifSpec spec;
    spec.footer = footer;
    auto zone = ParseTzif(MakeTzif(spec), "Test/Footer");
    ASSERT_TRUE(zone.ok()) << footer << ": " << zone.status().message();
    ScopedTz tz(footer);
    Counts counts;
    for (const int year : {1970, 2024, 2026, 2100}) {
      const std::int64_t from = DaysFromCivil(year, 1, 1) * kDay;
      const std::int64_t to = DaysFromCivil(year + 1, 1, 1) * kDay;
      for (std::int64_t t = from; t < to; t += 1800) {
        ASSERT_EQ(zone->OffsetAt(t * 1000), GlibcOffset(t))
            << footer << " " << FormatRfc3339(t * 1000);
      }
      for (std::int64_t local = from; local < to; local += kHour) CheckLocal(*zone, local, counts);
    }
  }
}

// RFC 8536 section 3.3.1: daylight time all year when it starts January 1 at 00:00 and ends
// December 31 at 24:00 plus the daylight saving (here 25:00).
TEST(TimeZoneTest, FooterWithDaylightTimeAllYear) {
  TzifSpec spec;
  spec.footer = "EST5EDT4,0/0,J365/25";
  auto zone = ParseTzif(MakeTzif(spec), "Test/AllYear");
  ASSERT_TRUE(zone.ok()) << zone.status().message();
  for (std::int64_t t = DaysFromCivil(2023, 12, 25) * kDay; t < DaysFromCivil(2026, 1, 8) * kDay;
       t += 600) {
    ASSERT_EQ(zone->OffsetAt(t * 1000), -4 * 3600) << FormatRfc3339(t * 1000);
  }
  EXPECT_EQ(zone->LocalToUtc(LocalSeconds(2025, 1, 1, 0, 0) * 1000),
            LocalSeconds(2025, 1, 1, 4, 0) * 1000);
}

// Debian ships "fat" files; zic -b slim writes few transitions and lets the footer do the work.
// Both must give the same answers.
TEST(TimeZoneTest, SlimFilesAgreeWithFatOnes) {
  if (::access("/usr/sbin/zic", X_OK) != 0 ||
      ::access("/usr/share/zoneinfo/tzdata.zi", R_OK) != 0) {
    GTEST_SKIP() << "needs /usr/sbin/zic (libc-bin) and tzdata.zi (tzdata)";
  }
  std::string dir = ::testing::TempDir() + "vg-tz-slim-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string command =
      "/usr/sbin/zic -b slim -d '" + dir + "' /usr/share/zoneinfo/tzdata.zi 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  for (const std::string& name : kZones) {
    const TimeZone fat = LoadOrDie(name);
    const TimeZone slim = LoadOrDie(name, dir);
    const auto fat_size = std::filesystem::file_size(std::string(kZoneDir) + "/" + name);
    const auto slim_size = std::filesystem::file_size(dir + "/" + name);
    EXPECT_LE(slim_size, fat_size) << name;
    // Every 7 hours, so the hour of day cycles through all 24.
    for (std::int64_t t = DaysFromCivil(1960, 1, 1) * kDay; t < DaysFromCivil(2060, 1, 1) * kDay;
         t += 7 * kHour) {
      ASSERT_EQ(slim.OffsetAt(t * 1000), fat.OffsetAt(t * 1000))
          << name << " " << FormatRfc3339(t * 1000);
      ASSERT_EQ(slim.LocalToUtc(t * 1000 + 1800'000), fat.LocalToUtc(t * 1000 + 1800'000)) << name;
    }
  }
  std::filesystem::remove_all(dir);
}

// Every zone Debian installs loads and agrees with glibc at midnight UTC and local on the first of
// every other month 1970..2060 (odd months in even years, even months in odd years).
TEST(TimeZoneTest, EveryInstalledZoneLoadsAndMatchesGlibc) {
  namespace fs = std::filesystem;
  int zones = 0;
  const fs::path root(kZoneDir);
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string rel = fs::relative(it->path(), root).string();
    if (it->is_directory() && (rel == "right" || rel == "posix")) {
      it.disable_recursion_pending();  // leap-second and duplicate copies
      continue;
    }
    if (!it->is_regular_file()) continue;
    std::ifstream in(it->path(), std::ios::binary);
    char magic[4] = {};
    if (!in.read(magic, 4) || std::string_view(magic, 4) != "TZif") continue;  // zone.tab etc.
    auto zone = TimeZone::Load(rel);
    ASSERT_TRUE(zone.ok()) << zone.status().message();
    ++zones;
    ScopedTz tz(":" + rel);
    for (int year = 1970; year <= 2060; ++year) {
      for (auto month = static_cast<unsigned>(1 + year % 2); month <= 12; month += 2) {
        const std::int64_t t = DaysFromCivil(year, month, 1) * kDay;
        ASSERT_EQ(zone->OffsetAt(t * 1000), GlibcOffset(t))
            << rel << " " << FormatRfc3339(t * 1000);
        ASSERT_EQ(zone->LocalToUtc(t * 1000), ExpectedLocalToUtc(t).utc * 1000) << rel << " " << t;
      }
    }
  }
  EXPECT_GT(zones, 300);
}

// ---------------------------------------------------------------------------------------------
// Bad names and bad files: each a clear, one-line error.

class TimeZoneFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "vg-tz-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ + "/Test");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ + "/" + name, std::ios::binary) << bytes;
  }

  static std::string RealFile(const std::string& name) {
    std::ifstream in(std::string(kZoneDir) + "/" + name, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  // Loads `name` from the temp dir and returns the error message ("" if it loaded).
  std::string LoadError(const std::string& name) {
    auto zone = TimeZone::Load(name, dir_);
    if (zone.ok()) return "";
    EXPECT_EQ(zone.status().message().find('\n'), std::string::npos) << zone.status().message();
    return zone.status().message();
  }

  static std::string ParseError(const std::string& bytes) {
    auto zone = ParseTzif(bytes, "Test/Zone");
    if (zone.ok()) return "";
    EXPECT_EQ(zone.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(zone.status().message().find('\n'), std::string::npos) << zone.status().message();
    return zone.status().message();
  }

  std::string dir_;
};

TEST_F(TimeZoneFileTest, MissingZone) {
  auto zone = TimeZone::Load("Europe/Berln");
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(zone.status().message(),
            "timezone \"Europe/Berln\": no such zone in /usr/share/zoneinfo");
  EXPECT_EQ(LoadError("Europe/Berlin"), "timezone \"Europe/Berlin\": no such zone in " + dir_);
  EXPECT_EQ(LoadError("Test/Zone/Deeper"),
            "timezone \"Test/Zone/Deeper\": no such zone in " + dir_);
}

TEST_F(TimeZoneFileTest, BadNamesAreRefusedBeforeAnyFileIsOpened) {
  struct Case {
    std::string name;
    std::string message;
  };
  const Case cases[] = {
      {"../etc/passwd", "timezone \"../etc/passwd\": name must not contain \"..\""},
      {"Europe/../../etc/passwd", "name must not contain \"..\""},
      {"/etc/localtime", "timezone \"/etc/localtime\": name must not start with '/'"},
      {"Europe/Berlin\n", "timezone \"Europe/Berlin\\n\": name has byte 0x0A at byte 13"},
      {"Europe/Ber lin", "name has byte 0x20 at byte 10"},
      {"Europe/Berlin.gz", "name has '.' at byte 13"},
      {"", "name is empty"},
      {std::string(129, 'A'), "name is 129 bytes, more than 128"},
      {"Europe/", "empty path component"},
      {"Europe//Berlin", "empty path component"},
      {std::string("Europe/Ber\0lin", 14), "name has byte 0x00 at byte 10"},
  };
  for (const Case& c : cases) {
    auto zone = TimeZone::Load(c.name, dir_);
    ASSERT_FALSE(zone.ok()) << c.name;
    EXPECT_EQ(zone.status().code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(zone.status().message().find(c.message), std::string::npos)
        << zone.status().message();
    EXPECT_EQ(zone.status().message().find('\n'), std::string::npos) << zone.status().message();
  }
  // The longest accepted name is 128 bytes (and simply does not exist).
  EXPECT_EQ(TimeZone::Load(std::string(128, 'A'), dir_).status().code(), StatusCode::kNotFound);
}

TEST_F(TimeZoneFileTest, NotAZoneFile) {
  Write("Test/Garbage", "# tz zone descriptions\nDE\t+5230+01322\tEurope/Berlin\n");
  EXPECT_EQ(LoadError("Test/Garbage"), "timezone \"Test/Garbage\": not a TZif file");
  Write("Test/Empty", "");
  EXPECT_EQ(LoadError("Test/Empty"), "timezone \"Test/Empty\": empty file, not a TZif file");
  EXPECT_NE(LoadError("Test").find("is a directory"), std::string::npos);
  ASSERT_EQ(::mkfifo((dir_ + "/Test/Fifo").c_str(), 0600), 0);
  EXPECT_NE(LoadError("Test/Fifo").find("not a regular file"), std::string::npos);
  Write("Test/Huge", std::string(TimeZone::kMaxFileBytes + 10, 'x'));
  EXPECT_NE(LoadError("Test/Huge").find("more than the 1048576 a zone file may have"),
            std::string::npos)
      << LoadError("Test/Huge");
}

TEST_F(TimeZoneFileTest, TruncatedCopiesOfARealFile) {
  const std::string berlin = RealFile("Europe/Berlin");
  ASSERT_GT(berlin.size(), 1000U);
  Write("Test/Berlin", berlin);
  EXPECT_EQ(LoadError("Test/Berlin"), "");
  Write("Test/Half", berlin.substr(0, 1200));
  EXPECT_NE(LoadError("Test/Half").find("timezone \"Test/Half\": truncated at byte 1200"),
            std::string::npos)
      << LoadError("Test/Half");
  // Every proper prefix is refused with a message saying where the file ends.
  for (std::size_t n = 1; n < berlin.size(); ++n) {
    const std::string error = ParseError(berlin.substr(0, n));
    ASSERT_FALSE(error.empty()) << n;
    if (n < 4) {
      EXPECT_EQ(error, "timezone \"Test/Zone\": not a TZif file") << n;
    } else {
      EXPECT_NE(error.find("truncated at byte " + std::to_string(n)), std::string::npos) << error;
    }
  }
}

TEST_F(TimeZoneFileTest, AbsurdCountsAreRefusedWithoutAllocating) {
  TzifSpec spec;
  spec.times = {0, 1000};
  spec.indices = {1, 0};
  spec.types = {{0, 0}, {3600, 1}};
  const std::string good = MakeTzif(spec);
  ASSERT_EQ(ParseError(good), "");
  // Header fields: isutcnt 20, isstdcnt 24, leapcnt 28, timecnt 32, typecnt 36, charcnt 40; the
  // version 1 block (one type, four designation bytes) ends at 54, where the second header starts.
  ASSERT_EQ(good.size(), 138U);
  const auto with = [&good](std::size_t at, std::uint32_t value) {
    std::string bytes = good;
    std::string field;
    Put32(field, value);
    bytes.replace(at, 4, field);
    return bytes;
  };
  EXPECT_EQ(ParseError(with(32, 0xFFFFFFF0)),
            "timezone \"Test/Zone\": truncated at byte 138 (the version 1 data block needs "
            "21474836410 bytes from byte 44)");
  EXPECT_EQ(ParseError(with(54 + 32, 0xFFFFFFF0)),
            "timezone \"Test/Zone\": truncated at byte 138 (the data block needs 38654705536 "
            "bytes from byte 98)");
  EXPECT_NE(ParseError(with(54 + 40, 0x7FFFFFFF)).find("truncated at byte 138"), std::string::npos);
  EXPECT_NE(ParseError(with(54 + 36, 0)).find("typecnt 0 at byte 90 is not 1..256"),
            std::string::npos);
  EXPECT_NE(ParseError(with(54 + 36, 100000)).find("typecnt 100000"), std::string::npos);
  EXPECT_NE(ParseError(with(54 + 40, 0)).find("charcnt 0 at byte 94"), std::string::npos);
  EXPECT_NE(ParseError(with(54 + 20, 7)).find("isutcnt 7 at byte 74 is neither 0 nor typecnt"),
            std::string::npos);
  EXPECT_NE(ParseError(with(54 + 28, 1)).find("leap-second records"), std::string::npos);
  EXPECT_NE(ParseError(with(55, 0x5a696633)).find("second header's version differs"),
            std::string::npos);
  EXPECT_NE(ParseError(with(54, 0)).find("no second TZif header at byte 54"), std::string::npos);
}

TEST_F(TimeZoneFileTest, MalformedContents) {
  TzifSpec spec;
  spec.times = {0, 1000};
  spec.indices = {1, 0};
  spec.types = {{0, 0}, {3600, 1}};

  TzifSpec bad = spec;
  bad.indices = {1, 2};
  EXPECT_NE(ParseError(MakeTzif(bad)).find("transition type 2 at byte 115 is not below typecnt 2"),
            std::string::npos)
      << ParseError(MakeTzif(bad));
  bad = spec;
  bad.times = {1000, 1000};
  EXPECT_NE(ParseError(MakeTzif(bad)).find("transition times not ascending at byte 106"),
            std::string::npos)
      << ParseError(MakeTzif(bad));
  bad = spec;
  bad.types[1].utoff = 27 * 3600;
  EXPECT_NE(ParseError(MakeTzif(bad)).find("local time type 1 at byte 122 has UTC offset 97200 s"),
            std::string::npos)
      << ParseError(MakeTzif(bad));
  bad = spec;
  bad.types[1].utoff = INT32_MIN;
  EXPECT_NE(ParseError(MakeTzif(bad)).find("beyond 26 hours"), std::string::npos);
  bad = spec;
  bad.types[1].isdst = 2;
  EXPECT_NE(ParseError(MakeTzif(bad)).find("has isdst 2"), std::string::npos);
  bad = spec;
  bad.version = '5';
  EXPECT_NE(ParseError(MakeTzif(bad)).find("unsupported TZif version '5' at byte 4"),
            std::string::npos);

  std::string trailing = MakeTzif(spec) + "xyz";
  EXPECT_NE(ParseError(trailing).find("3 unexpected bytes after the zone data"), std::string::npos);
  std::string no_newline = MakeTzif(spec);
  no_newline.back() = 'x';
  EXPECT_NE(ParseError(no_newline).find("has no closing newline"), std::string::npos);

  struct Footer {
    const char* text;
    const char* message;
  };
  const Footer footers[] = {
      {"CET-1CEST", "daylight time without a rule at character 9"},
      {"CET-1CEST,M3.5.0", "expected ',' at character 16"},
      {"CET-25", "UTC offset 25 outside 0..24 at character 4"},
      {"CET", "expected the UTC offset at character 3"},
      {"C-1", "missing or short standard time name at character 1"},
      {"<+1>-1", "standard time name shorter than 3 characters"},
      {"<+01-1", "expected '>'"},
      {"CET-1CEST,M13.5.0,M10.5.0", "month 13 outside 1..12"},
      {"CET-1CEST,M3.6.0,M10.5.0", "week 6 outside 1..5"},
      {"CET-1CEST,M3.5.7,M10.5.0", "weekday 7 outside 0..6"},
      {"CET-1CEST,J0,J365", "Julian day 0 outside 1..365"},
      {"CET-1CEST,366,0", "day of year 366 outside 0..365"},
      {"CET-1CEST,M3.5.0/168,M10.5.0", "transition hour 168 outside 0..167"},
      {"CET-1CEST,M3.5.0/2:60,M10.5.0", "minutes 60 outside 0..59"},
      {"CET-1CEST,X3,M10.5.0", "expected a rule date (Jn, n or Mm.w.d)"},
      {"CET-1CEST,M3.5.0,M10.5.0 ", "unexpected byte 0x20 at character 24"},
      {"CET-1\x01", "missing or short daylight time name at character 5"},
  };
  for (const Footer& f : footers) {
    bad = spec;
    bad.footer = f.text;
    const std::string error = ParseError(MakeTzif(bad));
    EXPECT_NE(error.find("footer TZ string"), std::string::npos) << error;
    EXPECT_NE(error.find(f.message), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace vg
