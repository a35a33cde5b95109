#include "vitalgate/app/status_views.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <cstdlib>
#include <set>
#include <sstream>

#include "integration/ward_snapshot.h"

namespace vg {
namespace {

using nlohmann::json;
using testing::MakeWardSnapshot;

std::string Html(std::string_view s) {
  std::string out;
  AppendHtmlText(out, s);
  return out;
}

TEST(StatusViewsTest, HtmlEscapesMarkupQuotesAndBidiControls) {
  EXPECT_EQ(Html("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
  EXPECT_EQ(Html("a \"b\" & c"), "a &quot;b&quot; &amp; c");
  EXPECT_EQ(Html("\u202Eevil\u202C"), "[U+202E]evil[U+202C]");
  EXPECT_EQ(Html("\u2067x\u2069\u200F\u061C"), "[U+2067]x[U+2069][U+200F][U+061C]");
  EXPECT_EQ(Html("esc\x1b[31m"), "esc[U+001B][31m");
  EXPECT_EQ(Html("tab\tand\nline"), "tab\tand\nline");
  EXPECT_EQ(Html("\xFF\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(Html("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate is not UTF-8
  EXPECT_EQ(Html("37 \xC2\xB0" "C, \xE2\x9C\x93"), "37 \xC2\xB0" "C, \xE2\x9C\x93");
}

TEST(StatusViewsTest, TerminalTextShowsControlsInsteadOfObeyingThem) {
  EXPECT_EQ(TerminalSafe("a\x1b]0;title\x07z"), "a[U+001B]]0;title[U+0007]z");
  EXPECT_EQ(TerminalSafe("\u202Eabc"), "[U+202E]abc");
  EXPECT_EQ(TerminalSafe("line\nbreak"), "line[U+000A]break");
  EXPECT_EQ(TerminalSafe("\xC2\x9B" "2J"), "[U+009B]2J");  // C1 control sequence introducer
}

TEST(StatusViewsTest, PrometheusLabelValuesEscapeOnlyWhatTheFormatNames) {
  std::string out;
  AppendPrometheusLabelValue(out, "C:\\certs\\\"gw\".crt\nx\xFF");
  EXPECT_EQ(out, "C:\\\\certs\\\\\\\"gw\\\".crt\\nx\xEF\xBF\xBD");
}

TEST(StatusViewsTest, FormatsAgesForPeople) {
  EXPECT_EQ(FormatAge(-3), "0 s");
  EXPECT_EQ(FormatAge(0.9), "0 s");
  EXPECT_EQ(FormatAge(59.9), "59 s");
  EXPECT_EQ(FormatAge(125), "2 min");
  EXPECT_EQ(FormatAge(3600), "1 h");
  EXPECT_EQ(FormatAge(3 * 3600 + 12 * 60 + 5), "3 h 12 min");
  EXPECT_EQ(FormatAge(2 * 86400 + 4 * 3600), "2 d 4 h");
}

TEST(StatusViewsTest, WardIsDegradedForTheLateDestinationAndTheDisconnectedDevice) {
  const HealthVerdict v = JudgeHealth(MakeWardSnapshot());
  EXPECT_FALSE(v.healthy);
  ASSERT_EQ(v.reasons.size(), 2u) << ::testing::PrintToString(v.reasons);
  EXPECT_EQ(v.reasons[0], "destination ehr: oldest unsent item is 21 min old (limit 15 min)");
  EXPECT_EQ(v.reasons[1], "device temp-3: disconnected");
}

TEST(StatusViewsTest, HealthyWhenEveryConditionHolds) {
  StatusSnapshot s = MakeWardSnapshot();
  s.destinations[1].oldest_unsent_age_s = 899;  // within its limit, though the link is down
  s.devices[3].link_up = true;
  s.devices[3].last_reading_age_s = 5;
  const HealthVerdict v = JudgeHealth(s);
  EXPECT_TRUE(v.healthy) << ::testing::PrintToString(v.reasons);
  int code = 0;
  const json h = json::parse(HealthJson(s, nullptr, &code));
  EXPECT_EQ(code, 200);
  EXPECT_EQ(h["status"], "ok");
  EXPECT_TRUE(h["reasons"].empty());
}

TEST(StatusViewsTest, EachConditionAloneMakesHealthFail) {
  auto healthy = [] {
    StatusSnapshot s = MakeWardSnapshot();
    s.destinations.pop_back();
    s.devices.erase(s.devices.begin() + 3);  // temp-3
    return s;
  };
  ASSERT_TRUE(JudgeHealth(healthy()).healthy);

  StatusSnapshot broker = healthy();
  broker.destinations[0].connected = false;
  broker.destinations[0].last_error = "connection refused";
  EXPECT_EQ(JudgeHealth(broker).reasons, std::vector<std::string>{"broker: link down: connection refused"});

  StatusSnapshot storage = healthy();
  storage.storage_healthy = false;
  storage.storage_error = "disk full";
  EXPECT_EQ(JudgeHealth(storage).reasons, std::vector<std::string>{"storage: disk full"});

  StatusSnapshot silent = healthy();
  silent.devices[0].last_reading_age_s = 301;  // ox-1, no_data_s 300, link up
  EXPECT_EQ(JudgeHealth(silent).reasons,
            std::vector<std::string>{"device ox-1: no reading for 5 min (no-data time 5 min)"});

  // An intermittent device is judged by its no-data time only: down is its normal state.
  StatusSnapshot cuff = healthy();
  ASSERT_TRUE(cuff.devices[2].intermittent && !cuff.devices[2].link_up);
  EXPECT_TRUE(JudgeHealth(cuff).healthy);
  cuff.devices[2].last_reading_age_s = 3601;
  EXPECT_EQ(JudgeHealth(cuff).reasons,
            std::vector<std::string>{"device bp-1: no reading for 1 h (no-data time 1 h)"});

  // A device that never sent anything is silent from the start on.
  StatusSnapshot never = healthy();
  never.devices[0].last_reading_age_s.reset();
  EXPECT_EQ(JudgeHealth(never).reasons.size(), 1u);
  never.started_ms = never.now_ms - 10'000;
  EXPECT_TRUE(JudgeHealth(never).healthy);
}

TEST(StatusViewsTest, HealthJsonKeepsTheFieldsClientsUse) {
  int code = 0;
  const json h = json::parse(HealthJson(MakeWardSnapshot(), nullptr, &code));
  EXPECT_EQ(code, 503);
  EXPECT_EQ(h["status"], "degraded");
  EXPECT_EQ(h["reasons"].size(), 2u);
  EXPECT_EQ(h["broker"]["connected"], true);
  EXPECT_EQ(h["storage"]["healthy"], true);
  EXPECT_EQ(h["backlog"]["readings"], 412);
  EXPECT_EQ(h["backlog"]["alerts"], 3);
  EXPECT_EQ(h["backlog"]["bytes"], 96512);
  EXPECT_EQ(h["backlog"]["oldest_age_s"], 1260);
  ASSERT_EQ(h["devices"].size(), 5u);
  EXPECT_EQ(h["devices"][0]["id"], "ox-1");
  EXPECT_EQ(h["devices"][0]["link"], "up");
  EXPECT_EQ(h["devices"][0]["decode_errors"], 2);
  EXPECT_EQ(h["devices"][3]["healthy"], false);
}

TEST(StatusViewsTest, StatusJsonCarriesEverySection) {
  const json j = json::parse(StatusJson(MakeWardSnapshot()));
  EXPECT_EQ(j["gateway"]["id"], "ward7-gw1");
  EXPECT_EQ(j["gateway"]["now"], "2026-11-30T06:00:00.000Z");
  EXPECT_EQ(j["gateway"]["uptime_s"], 3 * 3600 + 12 * 60);
  EXPECT_EQ(j["health"]["status"], "degraded");
  EXPECT_EQ(j["destinations"][1]["late"], true);
  EXPECT_EQ(j["devices"][4]["patient"], nullptr);
  EXPECT_EQ(j["devices"][1]["rssi_dbm"], -61);
  EXPECT_EQ(j["devices"][0]["battery_pct"], nullptr);
  // Alarms most severe first.
  std::vector<std::string> priorities;
  for (const json& a : j["alarms"]) priorities.push_back(a["priority"]);
  EXPECT_EQ(priorities, (std::vector<std::string>{"high", "high", "medium", "low"}));
  EXPECT_EQ(j["alarms"][2]["acknowledged_by"], "nurse.kim");
  EXPECT_EQ(j["alarms"][0]["age_s"], 125);
  EXPECT_EQ(j["certificates"][1]["expires_in_s"], 21 * 86400);
  EXPECT_EQ(j["audit"][1]["detail"]["alarm_id"], "a-7e9");
  EXPECT_EQ(j["reload"]["ok"], true);
}

TEST(StatusViewsTest, StatusJsonStaysValidWithHostileText) {
  StatusSnapshot s = MakeWardSnapshot(true);
  s.audit[0].detail = "not json {";
  s.devices[0].location = std::string("\xFF\x00zero", 6);
  const json j = json::parse(StatusJson(s));
  EXPECT_EQ(j["audit"][0]["detail"], "not json {");
  EXPECT_EQ(j["alarms"][2]["acknowledged_by"], "<script>alert('by')</script>\"nurse\"");
}

TEST(StatusViewsTest, PageEscapesEveryOutsideString) {
  const std::string page = StatusHtml(MakeWardSnapshot(true));
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_EQ(page.find("<i>"), std::string::npos);
  EXPECT_EQ(page.find("\u202E"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(&#39;by&#39;)&lt;/script&gt;&quot;nurse&quot;"), std::string::npos);
  EXPECT_NE(page.find("&lt;/td&gt;&lt;/tr&gt;&lt;script&gt;"), std::string::npos);
  EXPECT_NE(page.find("[U+202E]evil[U+202C] admin"), std::string::npos);
  EXPECT_NE(page.find("Bed &quot;7&quot; &lt;i&gt;&amp;amp;&lt;/i&gt; &#39;x&#39;"), std::string::npos);
}

TEST(StatusViewsTest, PageIsForPhonesAndRefreshesItself) {
  const std::string page = StatusHtml(MakeWardSnapshot());
  EXPECT_NE(page.find("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"),
            std::string::npos);
  EXPECT_NE(page.find("<meta http-equiv=\"refresh\" content=\"5\">"), std::string::npos);
  EXPECT_NE(page.find("@media (max-width:600px)"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  // Alarms by priority, with age and acknowledgement.
  const auto high = page.find("SpO2 84 % below 85 %");
  const auto medium = page.find("NEWS2 5 (medium risk)");
  const auto low = page.find("sim-9 has no patient");
  EXPECT_LT(high, medium);
  EXPECT_LT(medium, low);
  EXPECT_NE(page.find("by nurse.kim"), std::string::npos);
  EXPECT_NE(page.find(">2 min<"), std::string::npos);
  // Certificates close to expiry are marked.
  EXPECT_NE(page.find("class=\"warn\"><bdi>2026-12-21 (in 21 d)"), std::string::npos);
}

bool IsNameChar(char c, bool first, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
         (!first && c >= '0' && c <= '9');
}

// Reads a metric or label name at line[*i]; empty if there is none.
std::string Name(std::string_view line, std::size_t* i, bool colon) {
  const std::size_t start = *i;
  while (*i < line.size() && IsNameChar(line[*i], *i == start, colon)) ++*i;
  return std::string(line.substr(start, *i - start));
}

// One sample line: name{label="value",...} number. False if it is not exactly that.
bool ParseSample(std::string_view line, std::string* name, std::string* series) {
  std::size_t i = 0;
  *name = Name(line, &i, true);
  if (name->empty()) return false;
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      if (Name(line, &i, false).empty()) return false;
      if (line.substr(i, 2) != "=\"") return false;
      i += 2;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\') {
          if (i + 1 >= line.size() || std::string_view("\\\"n").find(line[i + 1]) == std::string_view::npos) {
            return false;  // only \\ \" and \n are escapes
          }
          ++i;
        }
        ++i;
      }
      if (i >= line.size()) return false;
      ++i;
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      return false;
    }
  }
  *series = std::string(line.substr(0, i));
  if (i >= line.size() || line[i] != ' ') return false;
  const std::string value(line.substr(i + 1));
  if (value == "+Inf" || value == "-Inf" || value == "NaN") return true;
  char* end = nullptr;
  std::strtod(value.c_str(), &end);
  return !value.empty() && end == value.c_str() + value.size();
}

// Parses the Prometheus text format strictly enough to catch what scrapers reject: every
// sample belongs to a family declared once with HELP and TYPE, names and labels are well
// formed, values are numbers, no series appears twice.
std::map<std::string, std::string> ParsePrometheus(const std::string& text) {
  std::map<std::string, std::string> types;
  std::set<std::string> helps, series;
  const std::set<std::string> kTypes{"counter", "gauge", "histogram", "summary", "untyped"};
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::string name, key;
    if (line.rfind("# HELP ", 0) == 0) {
      std::size_t i = 7;
      name = Name(line, &i, true);
      EXPECT_TRUE(!name.empty() && i + 1 < line.size() && line[i] == ' ') << line;
      EXPECT_TRUE(helps.insert(name).second) << "HELP twice: " << line;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      std::size_t i = 7;
      name = Name(line, &i, true);
      const std::string type = i < line.size() ? line.substr(i + 1) : "";
      EXPECT_TRUE(!name.empty() && line[i] == ' ' && kTypes.count(type)) << line;
      EXPECT_TRUE(types.emplace(name, type).second) << "TYPE twice: " << line;
    } else if (ParseSample(line, &name, &key)) {
      std::string family = name;
      for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
        const std::string base = family.size() > suffix.size() ? family.substr(0, family.size() - suffix.size()) : "";
        if (family.ends_with(suffix) && types.count(base) && types[base] == "histogram") family = base;
      }
      EXPECT_TRUE(types.count(family)) << "sample before its TYPE: " << line;
      EXPECT_TRUE(helps.count(family)) << "sample without HELP: " << line;
      EXPECT_TRUE(series.insert(key).second) << "series twice: " << line;
    } else {
      ADD_FAILURE() << "not Prometheus text format: " << line;
    }
  }
  return types;
}

TEST(StatusViewsTest, MetricsCarryTheSnapshot) {
  GatewayStats stats(1);
  stats.devices[0]->id = "ox-1";
  stats.devices[0]->readings = 7;
  StatusSnapshot s = MakeWardSnapshot();
  s.certificates[0].path = "/etc/vitalgate/odd \"name\"\\.crt";
  const std::string text = MetricsText(s, stats);
  const auto types = ParsePrometheus(text);
  EXPECT_EQ(types.at("vitalgate_publish_latency_seconds"), "histogram");
  EXPECT_NE(text.find("vitalgate_readings_received_total{device=\"ox-1\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_device_last_reading_age_seconds{device=\"temp-3\"} 365\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_device_link_up{device=\"temp-3\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_device_battery_percent{device=\"hr-1\"} 76\n"), std::string::npos);
  EXPECT_EQ(text.find("vitalgate_device_battery_percent{device=\"ox-1\"}"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_alarms_open{kind=\"technical\",priority=\"high\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_alarms_open{kind=\"trend\",priority=\"low\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_certificate_expiry_seconds{role=\"mqtt.tls.cert_file\",path=\"/etc/vitalgate/gw.crt\"} 1797832800\n"),
            std::string::npos);
  EXPECT_NE(text.find("path=\"/etc/vitalgate/odd \\\"name\\\"\\\\.crt\""), std::string::npos);
  EXPECT_NE(text.find("vitalgate_build_info{version=\"0.1.0\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_config_last_reload_successful 1\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_config_last_reload_timestamp_seconds 1796007600\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_destination_oldest_unsent_age_seconds{destination=\"ehr\"} 1260\n"),
            std::string::npos);
  EXPECT_NE(text.find("vitalgate_destination_backlog_rows{destination=\"ehr\",kind=\"readings\"} 410\n"),
            std::string::npos);
  EXPECT_NE(text.find("vitalgate_backlog_rows{kind=\"readings\"} 412\n"), std::string::npos);
  EXPECT_NE(text.find("vitalgate_backlog_bytes 96512\n"), std::string::npos);
}

TEST(StatusViewsTest, SnapshotFromCountersAloneMatchesTheOldHealthFields) {
  GatewayStats stats(2);
  stats.devices[0]->id = "ext-1";
  stats.devices[0]->transport = "exec";
  stats.devices[0]->link_up = true;
  stats.devices[0]->last_reading_ms = testing::kWardNowMs - 3000;
  stats.devices[0]->battery_pct = 80;
  stats.devices[1]->id = "gone";
  stats.devices[1]->removed = true;
  stats.broker_connected = false;
  stats.broker_error.Set("connection refused");
  stats.backlog_bytes = 1234;
  const StatusSnapshot s =
      SnapshotFromStats(stats, HealthInfo{"gw", "site", "1.2.3"}, testing::kWardNowMs, testing::kWardNowMs - 60'000);
  ASSERT_EQ(s.devices.size(), 1u);
  EXPECT_EQ(s.devices[0].last_reading_age_s, 3.0);
  EXPECT_EQ(s.devices[0].battery_pct, 80.0);
  ASSERT_EQ(s.destinations.size(), 1u);
  EXPECT_FALSE(s.destinations[0].connected);
  int code = 0;
  const json h = json::parse(HealthJson(s, &stats, &code));
  EXPECT_EQ(code, 503);
  EXPECT_EQ(h["broker"]["error"], "connection refused");
  EXPECT_EQ(h["backlog"]["bytes"], 1234);
  EXPECT_EQ(h["reasons"][0], "broker: link down: connection refused");
}

}  // namespace
}  // namespace vg
