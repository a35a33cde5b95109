#include "vitalgate/core/compact_row.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include <nlohmann/json.hpp>

#include "vitalgate/core/patient_directory.h"

namespace vg {
namespace {

// What the readings' JSON text is when written directly: the row's expected expansion.
std::string JsonOf(const std::vector<ReadingText>& readings) {
  std::string out;
  for (const ReadingText& t : readings) {
    if (!out.empty()) out += '\n';
    AppendReadingJson(out, t);
  }
  return out;
}

std::string Encode(const std::vector<ReadingText>& readings) {
  CompactRowEncoder encoder;
  std::string body;
  encoder.Begin(body);
  for (const ReadingText& t : readings) encoder.Append(body, t);
  return body;
}

// How many readings an expanded row holds, each a valid JSON object (else 0).
std::size_t ValidLines(const std::string& text) {
  std::size_t n = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (!nlohmann::json::accept(text.substr(start, end - start))) return 0;
    ++n;
    start = end + 1;
  }
  return n;
}

std::uint32_t Count(const std::vector<ReadingText>& readings) {
  return static_cast<std::uint32_t>(readings.size());
}

ReadingText Typical(std::uint64_t id, std::int64_t ts_ms, double value) {
  ReadingText t;
  t.instance = "gw7f3a";
  t.id = id;
  t.device = "monitor-1";
  t.metric = "heart_rate";
  t.unit = "/min";
  t.value = value;
  t.ts_ms = ts_ms;
  return t;
}

TEST(CompactRowTest, ExpandsToExactlyTheJsonOfEachReading) {
  std::vector<ReadingText> readings;
  readings.push_back(Typical(0x10, 1'764'590'400'123, 72));
  // Ids and times that go backwards, a fraction, a negative number, -0 and a number too large
  // for an exact integer.
  readings.push_back(Typical(0x0F, 1'764'590'399'000, 36.6));
  readings.push_back(Typical(0xFFFF'FFFF'FFFF'FFF0, 1'764'590'401'000, -4.25));
  readings.push_back(Typical(0x11, 0, -0.0));
  readings.push_back(Typical(0x12, -86'400'000, 1e300));
  readings.push_back(Typical(0x13, 1'764'590'401'000, 9007199254740993.0));
  readings.push_back(Typical(0x14, 1'764'590'401'000, -9007199254740992.0));
  // Another device (with characters JSON escapes), another instance, no unit, each value type,
  // every shown flag, a device time.
  ReadingText other = Typical(0x15, 1'764'590'402'000, 3);
  other.device = "bed \"4\" \\ \xC2\xB0";
  other.instance = "gw0001";
  other.metric = "consciousness";
  other.unit = "";
  other.type = ValueType::kAcvpu;
  other.flags = kFlagQuestionable | kFlagSpot | kFlagStored | kFlagClock;
  other.device_ts_ms = 1'000;
  readings.push_back(other);
  ReadingText oxygen = Typical(0x16, 1'764'590'402'000, 1);
  oxygen.metric = "on_oxygen";
  oxygen.unit = "";
  oxygen.type = ValueType::kBool;
  oxygen.device = "";
  oxygen.flags = kFlagClock;  // without a device time: no "device_ts"
  readings.push_back(oxygen);
  readings.push_back(Typical(0x17, 1'764'590'402'000, 73));  // the first strings again

  const std::string body = Encode(readings);
  ASSERT_TRUE(IsCompactRow(body));
  auto text = ExpandCompactRow(body, Count(readings));
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text, JsonOf(readings));
}

TEST(CompactRowTest, RandomRowsExpandToTheirJson) {
  std::mt19937_64 rng(20261201);
  const std::vector<std::string> devices = {"monitor-1", "oximeter-22", "thermo"};
  for (int round = 0; round < 200; ++round) {
    std::vector<ReadingText> readings;
    const std::size_t n = 1 + rng() % 120;
    std::uint64_t id = rng();
    std::int64_t ts = 1'700'000'000'000 + static_cast<std::int64_t>(rng() % 100'000'000'000);
    for (std::size_t i = 0; i < n; ++i) {
      const MetricInfo& info = AllMetrics()[rng() % kMetricCount];
      ReadingText t;
      t.instance = "gw7f3a";
      t.id = id += 1 + rng() % 3;
      t.device = devices[rng() % devices.size()];
      t.metric = info.name;
      t.unit = info.unit;
      t.type = info.type;
      const std::uint64_t pick = rng() % 3;
      t.value = pick == 0   ? static_cast<double>(rng() % 300)
                : pick == 1 ? static_cast<double>(rng() % 4000) / 10.0
                            : std::ldexp(static_cast<double>(rng() % 1'000'000),
                                         -static_cast<int>(rng() % 40));
      if (info.type == ValueType::kAcvpu) t.value = static_cast<double>(rng() % 5);
      if (info.type == ValueType::kBool) t.value = static_cast<double>(rng() % 2);
      t.ts_ms = ts += static_cast<std::int64_t>(rng() % 2000) - 500;
      t.flags = static_cast<std::uint8_t>(rng() & kShownFlags);
      if ((t.flags & kFlagClock) != 0 && rng() % 2 == 0) {
        t.device_ts_ms = t.ts_ms - static_cast<std::int64_t>(rng() % 10'000'000'000);
      }
      readings.push_back(t);
    }
    const std::string body = Encode(readings);
    auto text = ExpandCompactRow(body, Count(readings));
    ASSERT_TRUE(text.ok()) << "round " << round << ": " << text.status().message();
    ASSERT_EQ(*text, JsonOf(readings)) << "round " << round;
  }
}

TEST(CompactRowTest, TypicalReadingsTakeAFractionOfTheirJson) {
  // One patient's readings of one commit as the store writes them: a few devices, the usual
  // metrics, whole and one-decimal values, times close together.
  std::vector<ReadingText> readings;
  const char* metrics[][2] = {{"heart_rate", "/min"},
                              {"spo2", "%"},
                              {"resp_rate", "/min"},
                              {"temperature", "Cel"},
                              {"bp_systolic", "mm[Hg]"}};
  for (std::uint64_t i = 0; i < 100; ++i) {
    ReadingText t = Typical(
        0x1000 + i, 1'764'590'400'000 + static_cast<std::int64_t>(i) * 10,
        i % 5 == 3 ? 36.5 + static_cast<double>(i % 7) / 10 : 60 + static_cast<double>(i % 40));
    t.metric = metrics[i % 5][0];
    t.unit = metrics[i % 5][1];
    t.device = i % 2 == 0 ? "monitor-1" : "oximeter-2";
    readings.push_back(t);
  }
  const std::string body = Encode(readings);
  const std::string json = JsonOf(readings);
  EXPECT_LT(body.size() * 6, json.size()) << body.size() << " bytes against " << json.size();
}

TEST(CompactRowTest, DamagedRowsAreErrorsNamingTheByte) {
  std::vector<ReadingText> readings = {Typical(0x10, 1'764'590'400'123, 72),
                                       Typical(0x11, 1'764'590'400'200, 36.6)};
  const std::string body = Encode(readings);

  auto wrong_count = ExpandCompactRow(body, 3);
  ASSERT_FALSE(wrong_count.ok());
  EXPECT_EQ(wrong_count.status().code(), StatusCode::kDataLoss);

  std::string version = body;
  version[0] = '\x02';
  auto v = ExpandCompactRow(version, 2);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("at byte 0"), std::string::npos) << v.status().message();

  // The second reading refers to a string that was never given (byte 2 is the first
  // reading's instance reference, 0 for the first new string).
  std::string reference = body;
  ASSERT_EQ(reference[2], '\x00');
  reference[2] = '\x05';
  auto r = ExpandCompactRow(reference, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("instance at byte 2"), std::string::npos)
      << r.status().message();

  // Every truncation is an error, never a crash or a shorter row taken for whole.
  for (std::size_t n = 0; n < body.size(); ++n) {
    EXPECT_FALSE(ExpandCompactRow(std::string_view(body).substr(0, n), 2).ok()) << n << " bytes";
  }
  // Every single changed byte either still reads as two readings of valid JSON text or is an
  // error; none reads past the row (the sanitizers watch this test).
  for (std::size_t i = 0; i < body.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = body;
      flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
      auto f = ExpandCompactRow(flipped, 2);
      if (f.ok()) {
        EXPECT_EQ(ValidLines(*f), 2u) << "byte " << i << " bit " << bit;
      }
    }
  }
}

TEST(CompactRowTest, TextThatJsonWouldEscapeIsRefusedOutsideTheDeviceName) {
  ReadingText t = Typical(0x10, 1'764'590'400'123, 72);
  t.metric = "heart\"rate";
  const std::string body = Encode({t});
  auto e = ExpandCompactRow(body, 1);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("text in the reading at byte 1"), std::string::npos)
      << e.status().message();
}

TEST(CompactRowTest, ReadingsOfTheDirectoriesRenderAsTheirJson) {
  PatientDirectory patients;
  DeviceDirectory devices;
  IdFormat ids("gw7f3a");
  const PayloadContext ctx{&patients, &devices, &ids};
  Reading r;
  r.id = 0x42;
  r.ts_ms = 1'764'590'400'123;
  r.patient = *patients.Intern("p-1");
  r.device = static_cast<DeviceIndex>(*devices.Intern("monitor-1"));
  r.metric = Metric::kConsciousness;
  r.value = 2;
  r.flags = kFlagDeviceTime | kFlagSpot;
  std::string json;
  AppendReadingJson(json, r, ctx);
  EXPECT_EQ(json,
            "{\"id\":\"gw7f3a-42\",\"device\":\"monitor-1\",\"metric\":\"consciousness\","
            "\"value\":\"V\",\"ts\":\"2025-12-01T12:00:00.123Z\",\"flags\":[\"spot\"]}");
  CompactRowEncoder encoder;
  std::string body;
  encoder.Begin(body);
  encoder.Append(body, TextOf(r, ctx));
  auto text = ExpandCompactRow(body, 1);
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(*text, json);
}

}  // namespace
}  // namespace vg
