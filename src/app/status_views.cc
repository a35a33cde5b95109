#include "vitalgate/app/status_views.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/core/utf8.h"
#include "vitalgate/forward/downlink.h"
#include "vitalgate/forward/mqtt_client.h"

namespace vg {
namespace {

// --- text safety ---------------------------------------------------------------------------

void AppendCodePointName(std::string& out, char32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "[U+%04X]", static_cast<unsigned>(c));
  out += buf;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

enum class TextMode { kHtml, kTerminal };

void AppendSafe(std::string& out, std::string_view s, TextMode mode) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t at = i;
    const std::optional<char32_t> cp = NextCodePoint(s, i);
    if (!cp) {
      out += kReplacement;
      ++i;
      continue;
    }
    const char32_t c = *cp;
    const bool whitespace = c == '\n' || c == '\t' || c == '\r';
    if (IsBidiControl(c) || (IsControl(c) && !(mode == TextMode::kHtml && whitespace))) {
      AppendCodePointName(out, c);
    } else if (mode == TextMode::kHtml && c == '&') {
      out += "&amp;";
    } else if (mode == TextMode::kHtml && c == '<') {
      out += "&lt;";
    } else if (mode == TextMode::kHtml && c == '>') {
      out += "&gt;";
    } else if (mode == TextMode::kHtml && c == '"') {
      out += "&quot;";
    } else if (mode == TextMode::kHtml && c == '\'') {
      out += "&#39;";
    } else {
      out.append(s.substr(at, i - at));
    }
  }
}

// --- small formatting helpers --------------------------------------------------------------

std::string Num(double v) {
  std::string s;
  AppendJsonNumber(s, std::isfinite(v) ? v : 0.0);
  return s;
}

// One decimal place at most: 12.34 -> "12.3", 80 -> "80".
std::string Short(double v) { return Num(std::round(v * 10.0) / 10.0); }

std::string Bytes(std::uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  std::size_t u = 0;
  while (v >= 1024.0 && u + 1 < std::size(units)) {
    v /= 1024.0;
    ++u;
  }
  return (u == 0 ? std::to_string(b) : Short(v)) + " " + units[u];
}

// "2026-11-30 06:21:56 UTC".
std::string HumanTime(std::int64_t unix_ms) {
  const std::string t = FormatRfc3339(unix_ms);
  return t.substr(0, 10) + " " + t.substr(11, 8) + " UTC";
}

double AgeS(const StatusSnapshot& s, std::int64_t then_ms) {
  return static_cast<double>(s.now_ms - then_ms) / 1000.0;
}

double UptimeS(const StatusSnapshot& s) { return std::max(0.0, AgeS(s, s.started_ms)); }

const DestinationStatus* Primary(const StatusSnapshot& s) {
  for (const DestinationStatus& d : s.destinations) {
    if (d.name == "mqtt") return &d;
  }
  return s.destinations.empty() ? nullptr : &s.destinations.front();
}

int PriorityRank(std::string_view p) {
  if (p == "high") return 0;
  if (p == "medium") return 1;
  if (p == "low") return 2;
  return 3;
}

std::vector<const AlarmStatus*> AlarmsBySeverity(const StatusSnapshot& s) {
  std::vector<const AlarmStatus*> out;
  for (const AlarmStatus& a : s.alarms) out.push_back(&a);
  std::stable_sort(out.begin(), out.end(), [](const AlarmStatus* a, const AlarmStatus* b) {
    return PriorityRank(a->priority) < PriorityRank(b->priority);
  });
  return out;
}

// The age a device is judged by: since its last reading, or since the start if it sent none.
double SilenceS(const StatusSnapshot& s, const DeviceStatus& d) {
  return d.last_reading_age_s ? *d.last_reading_age_s : UptimeS(s);
}

bool DeviceSilent(const StatusSnapshot& s, const DeviceStatus& d) {
  return d.no_data_s > 0 && SilenceS(s, d) > d.no_data_s;
}

bool DeviceDisconnected(const DeviceStatus& d) { return !d.intermittent && !d.link_up; }

bool BacklogLate(const DestinationStatus& d) {
  return d.oldest_unsent_age_s && d.backlog_alarm_s > 0 && *d.oldest_unsent_age_s > d.backlog_alarm_s;
}

std::string PatientLabel(const DeviceStatus& d) { return d.patient.empty() ? "(none)" : d.patient; }

}  // namespace

// --- public text helpers --------------------------------------------------------------------

std::string FormatAge(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  const auto t = static_cast<std::uint64_t>(seconds);
  if (t < 60) return std::to_string(t) + " s";
  if (t < 3600) return std::to_string(t / 60) + " min";
  if (t < 86400) {
    const std::uint64_t m = (t % 3600) / 60;
    return std::to_string(t / 3600) + " h" + (m ? " " + std::to_string(m) + " min" : "");
  }
  const std::uint64_t h = (t % 86400) / 3600;
  return std::to_string(t / 86400) + " d" + (h ? " " + std::to_string(h) + " h" : "");
}

void AppendHtmlText(std::string& out, std::string_view s) { AppendSafe(out, s, TextMode::kHtml); }

std::string TerminalSafe(std::string_view s) {
  std::string out;
  AppendSafe(out, s, TextMode::kTerminal);
  return out;
}

void AppendPrometheusLabelValue(std::string& out, std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t at = i;
    const std::optional<char32_t> cp = NextCodePoint(s, i);
    if (!cp) {
      out += kReplacement;
      ++i;
      continue;
    }
    const char32_t c = *cp;
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.append(s.substr(at, i - at));
    }
  }
}

// --- health ---------------------------------------------------------------------------------

HealthVerdict JudgeHealth(const StatusSnapshot& s) {
  HealthVerdict v;
  if (const DestinationStatus* p = Primary(s); p != nullptr && !p->connected) {
    v.reasons.push_back("broker: link down" + (p->last_error.empty() ? "" : ": " + p->last_error));
  }
  if (!s.storage_healthy) {
    v.reasons.push_back("storage: " + (s.storage_error.empty() ? "failing" : s.storage_error));
  }
  for (const DestinationStatus& d : s.destinations) {
    if (BacklogLate(d)) {
      v.reasons.push_back("destination " + d.name + ": oldest unsent item is " +
                          FormatAge(*d.oldest_unsent_age_s) + " old (limit " +
                          FormatAge(d.backlog_alarm_s) + ")");
    }
  }
  for (const DeviceStatus& d : s.devices) {
    if (DeviceDisconnected(d)) {
      v.reasons.push_back("device " + d.id + ": disconnected");
    } else if (DeviceSilent(s, d)) {
      v.reasons.push_back("device " + d.id + ": no reading for " + FormatAge(SilenceS(s, d)) +
                          " (no-data time " + FormatAge(d.no_data_s) + ")");
    }
  }
  v.healthy = v.reasons.empty();
  return v;
}

namespace {

using Json = nlohmann::ordered_json;

Json Optional(const std::optional<double>& v) {
  return v && std::isfinite(*v) ? Json(*v) : Json(nullptr);
}

std::string Time(std::int64_t unix_ms) { return FormatRfc3339(unix_ms); }

// Invalid UTF-8 in outside strings becomes U+FFFD rather than an error.
std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"; }

Json DeviceHealth(const StatusSnapshot& s, const DeviceStatus& d) {
  return Json{{"id", d.id},
              {"transport", d.transport},
              {"link", d.link_up ? "up" : "down"},
              {"intermittent", d.intermittent},
              {"readings", d.readings},
              {"invalid", d.invalid},
              {"decode_errors", d.decode_errors},
              {"last_reading_age_s", Optional(d.last_reading_age_s)},
              {"no_data_s", d.no_data_s},
              {"healthy", !DeviceDisconnected(d) && !DeviceSilent(s, d)}};
}

}  // namespace

std::string HealthJson(const StatusSnapshot& s, const GatewayStats* counters, int* http_status) {
  const HealthVerdict verdict = JudgeHealth(s);
  const DestinationStatus* primary = Primary(s);
  const bool broker_up = primary == nullptr || primary->connected;
  Json broker{{"connected", broker_up}};
  if (!broker_up) broker["error"] = primary->last_error;
  Json storage{{"healthy", s.storage_healthy}};
  if (!s.storage_healthy) storage["error"] = s.storage_error;
  double oldest = 0;
  Json destinations = Json::array();
  for (const DestinationStatus& d : s.destinations) {
    if (d.oldest_unsent_age_s) oldest = std::max(oldest, *d.oldest_unsent_age_s);
    destinations.push_back(Json{{"name", d.name},
                                {"connected", d.connected},
                                {"oldest_unsent_age_s", Optional(d.oldest_unsent_age_s)},
                                {"backlog_alarm_s", d.backlog_alarm_s},
                                {"late", BacklogLate(d)}});
  }
  Json devices = Json::array();
  for (const DeviceStatus& d : s.devices) {
    Json j = DeviceHealth(s, d);
    std::uint64_t dropped = 0;
    if (counters != nullptr) {
      for (const auto& c : counters->devices) {
        if (c->id == d.id && !c->removed.load()) dropped = c->dropped.load();
      }
    }
    j["dropped"] = dropped;
    devices.push_back(std::move(j));
  }
  const Json out{{"status", verdict.healthy ? "ok" : "degraded"},
                 {"reasons", verdict.reasons},
                 {"version", s.version},
                 {"gateway", s.gateway_id},
                 {"site", s.site},
                 {"uptime_s", UptimeS(s)},
                 {"broker", broker},
                 {"storage", storage},
                 {"backlog", Json{{"readings", s.backlog_readings},
                                  {"alerts", s.backlog_events},
                                  {"bytes", s.backlog_bytes},
                                  {"oldest_age_s", oldest}}},
                 {"destinations", destinations},
                 {"devices", devices}};
  *http_status = verdict.healthy ? 200 : 503;
  return Dump(out);
}

// --- /api/status ----------------------------------------------------------------------------

std::string StatusJson(const StatusSnapshot& s) {
  const HealthVerdict verdict = JudgeHealth(s);
  Json destinations = Json::array();
  for (const DestinationStatus& d : s.destinations) {
    destinations.push_back(Json{{"name", d.name},
                                {"type", d.type},
                                {"target", d.target},
                                {"connected", d.connected},
                                {"last_error", d.last_error},
                                {"backlog_readings", d.backlog_readings},
                                {"backlog_events", d.backlog_events},
                                {"oldest_unsent_age_s", Optional(d.oldest_unsent_age_s)},
                                {"backlog_alarm_s", d.backlog_alarm_s},
                                {"late", BacklogLate(d)},
                                {"readings_delivered", d.readings_delivered},
                                {"dead_letters", d.dead_letters}});
  }
  Json devices = Json::array();
  for (const DeviceStatus& d : s.devices) {
    devices.push_back(Json{{"id", d.id},
                           {"patient", d.patient.empty() ? Json(nullptr) : Json(d.patient)},
                           {"location", d.location},
                           {"transport", d.transport},
                           {"link", d.link_up ? "up" : "down"},
                           {"intermittent", d.intermittent},
                           {"last_reading_age_s", Optional(d.last_reading_age_s)},
                           {"no_data_s", d.no_data_s},
                           {"battery_pct", Optional(d.battery_pct)},
                           {"rssi_dbm", d.rssi_dbm ? Json(*d.rssi_dbm) : Json(nullptr)},
                           {"readings", d.readings},
                           {"decode_errors", d.decode_errors},
                           {"invalid", d.invalid},
                           {"clock_implausible", d.clock_implausible},
                           {"clock_offset_s", Optional(d.clock_offset_s)},
                           {"healthy", !DeviceDisconnected(d) && !DeviceSilent(s, d)}});
  }
  Json alarms = Json::array();
  for (const AlarmStatus* a : AlarmsBySeverity(s)) {
    alarms.push_back(Json{{"alarm_id", a->alarm_id},
                          {"patient", a->patient},
                          {"device", a->device},
                          {"kind", a->kind},
                          {"what", a->what},
                          {"priority", a->priority},
                          {"state", a->state},
                          {"message", a->message},
                          {"raised", Time(a->raised_ms)},
                          {"age_s", std::max(0.0, AgeS(s, a->raised_ms))},
                          {"acknowledged_by", a->acknowledged_by}});
  }
  Json certificates = Json::array();
  for (const CertificateStatus& c : s.certificates) {
    certificates.push_back(Json{{"role", c.role},
                                {"path", c.path},
                                {"subject", c.subject},
                                {"not_after", Time(c.not_after_s * 1000)},
                                {"expires_in_s", static_cast<double>(c.not_after_s * 1000 - s.now_ms) / 1000.0},
                                {"rejected", c.rejected}});
  }
  Json audit = Json::array();
  for (const AuditStatus& a : s.audit) {
    // The detail is a JSON object as text; anything else is passed on as a string.
    Json detail = Json::parse(a.detail, nullptr, /*allow_exceptions=*/false);
    if (detail.is_discarded() || !detail.is_object()) detail = a.detail;
    audit.push_back(Json{{"seq", a.seq},
                         {"ts", Time(a.ts_ms)},
                         {"kind", a.kind},
                         {"actor", a.actor},
                         {"detail", std::move(detail)}});
  }
  const Json out{
      {"gateway", Json{{"id", s.gateway_id},
                       {"site", s.site},
                       {"version", s.version},
                       {"now", Time(s.now_ms)},
                       {"started", Time(s.started_ms)},
                       {"uptime_s", UptimeS(s)}}},
      {"health", Json{{"status", verdict.healthy ? "ok" : "degraded"}, {"reasons", verdict.reasons}}},
      {"storage", Json{{"healthy", s.storage_healthy}, {"error", s.storage_error}}},
      {"backlog", Json{{"readings", s.backlog_readings}, {"events", s.backlog_events}, {"bytes", s.backlog_bytes}}},
      {"reload", Json{{"ok", s.last_reload_ok},
                      {"at", s.last_reload_ms > 0 ? Json(Time(s.last_reload_ms)) : Json(nullptr)},
                      {"error", s.last_reload_error}}},
      {"destinations", destinations},
      {"devices", devices},
      {"alarms", alarms},
      {"certificates", certificates},
      {"audit", audit}};
  return Dump(out);
}

// --- the page -------------------------------------------------------------------------------

namespace {

constexpr std::string_view kStyle = R"css(
:root{color-scheme:light dark;--bad:#c62828;--warn:#a15c00;--ok:#2e7d32;--line:#8885}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;overflow-wrap:break-word}
header{padding:12px 16px;border-bottom:6px solid var(--ok)}
header.degraded{border-bottom-color:var(--bad)}
h1{margin:0;font-size:1.5em}
h2{font-size:1.1em;margin:0 0 6px}
header p{margin:4px 0}
ul{margin:4px 0;padding-left:20px}
main{display:grid;grid-template-columns:minmax(0,1fr);gap:20px;padding:16px}
@media (min-width:1000px){main{grid-template-columns:minmax(0,1fr) minmax(0,1fr)}.wide{grid-column:1/-1}}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600}
td.detail{overflow-wrap:anywhere;min-width:12em}
.bad{color:var(--bad);font-weight:600}
.warn{color:var(--warn);font-weight:600}
.ok{color:var(--ok)}
.muted{opacity:.7}
.tag{display:inline-block;padding:0 6px;border-radius:4px;font-weight:700}
.p-high{background:#c62828;color:#fff}
.p-medium{background:#f9a825;color:#000}
.p-low{background:#00838f;color:#fff}
footer{padding:8px 16px 24px;font-size:.85em;opacity:.75}
@media (max-width:600px){
 table,tbody,tr,td{display:block}
 thead{display:none}
 tr{border-bottom:1px solid var(--line);padding:6px 0}
 td{border:0;padding:1px 0}
 td{overflow-wrap:anywhere}
 td:empty{display:none}
 td::before{content:attr(data-label) ": ";font-weight:600}
}
)css";

class Page {
 public:
  std::string out;

  void Text(std::string_view s) { AppendHtmlText(out, s); }
  // Outside text, isolated from the surrounding direction.
  void Value(std::string_view s) {
    if (s.empty()) return;
    out += "<bdi>";
    Text(s);
    out += "</bdi>";
  }
  void Raw(std::string_view s) { out += s; }

  void TableStart(std::string_view id, std::string_view title, std::size_t count,
                  std::initializer_list<std::string_view> columns, bool wide) {
    headers_.assign(columns.begin(), columns.end());
    out += "<section id=\"";
    out += id;
    out += wide ? "\" class=\"wide\"><h2>" : "\"><h2>";
    out += title;
    out += " (" + std::to_string(count) + ")</h2>";
  }
  void Head() {
    out += "<div class=\"scroll\"><table><thead><tr>";
    for (std::string_view h : headers_) {
      out += "<th>";
      out += h;
      out += "</th>";
    }
    out += "</tr></thead><tbody>";
  }
  void RowStart(std::string_view key, std::string_view cls = "") {
    column_ = 0;
    out += "<tr data-key=\"";
    Text(key);
    out += '"';
    if (!cls.empty()) {
      out += " class=\"";
      out += cls;
      out += '"';
    }
    out += '>';
  }
  // Opens the next cell; the caller writes its content and calls CellEnd().
  void CellStart(std::string_view cls = "") {
    out += "<td data-label=\"";
    out += headers_.at(column_++);
    out += '"';
    if (!cls.empty()) {
      out += " class=\"";
      out += cls;
      out += '"';
    }
    out += '>';
  }
  void CellEnd() { out += "</td>"; }
  void Cell(std::string_view value, std::string_view cls = "") {
    CellStart(cls);
    Value(value);
    CellEnd();
  }
  void RowEnd() { out += "</tr>"; }
  void TableEnd(std::size_t count, std::string_view empty) {
    if (count == 0) {
      out += "<p class=\"muted\">";
      out += empty;
      out += "</p></section>";
    } else {
      out += "</tbody></table></div></section>";
    }
  }

 private:
  std::vector<std::string_view> headers_;
  std::size_t column_ = 0;
};

void Header(Page& p, const StatusSnapshot& s, const HealthVerdict& verdict) {
  p.Raw(verdict.healthy ? "<header class=\"ok\">" : "<header class=\"degraded\">");
  p.Raw("<h1 id=\"gateway\">");
  p.Value(s.gateway_id);
  p.Raw("</h1><p>Site <span id=\"site\">");
  p.Value(s.site.empty() ? "-" : s.site);
  p.Raw("</span> · vitalgate <span id=\"version\">");
  p.Value(s.version);
  p.Raw("</span> · up <span id=\"uptime\">");
  p.Text(FormatAge(UptimeS(s)));
  p.Raw("</span></p><p>Health: ");
  p.Raw(verdict.healthy ? "<strong id=\"health\" class=\"ok\">ok</strong>"
                        : "<strong id=\"health\" class=\"bad\">degraded</strong>");
  p.Raw(" · storage ");
  p.Raw(s.storage_healthy ? "<span class=\"ok\">ok</span>" : "<span class=\"bad\">failing</span>");
  p.Raw(" · backlog <span id=\"backlog\">");
  p.Text(std::to_string(s.backlog_readings) + " readings, " + std::to_string(s.backlog_events) +
         " events, " + Bytes(s.backlog_bytes));
  p.Raw("</span> · last reload ");
  if (s.last_reload_ms == 0) {
    p.Raw("<span class=\"muted\">none since start</span>");
  } else {
    p.Raw(s.last_reload_ok ? "<span class=\"ok\">ok</span> " : "<span class=\"bad\">failed</span> ");
    p.Text(HumanTime(s.last_reload_ms));
    if (!s.last_reload_ok && !s.last_reload_error.empty()) {
      p.Raw(": ");
      p.Value(s.last_reload_error);
    }
  }
  p.Raw("</p>");
  if (!verdict.reasons.empty()) {
    p.Raw("<ul id=\"reasons\">");
    for (const std::string& r : verdict.reasons) {
      p.Raw("<li class=\"bad\">");
      p.Value(r);
      p.Raw("</li>");
    }
    p.Raw("</ul>");
  }
  p.Raw("</header>");
}

void Alarms(Page& p, const StatusSnapshot& s) {
  p.TableStart("alarms", "Open alarms", s.alarms.size(),
               {"Priority", "Patient", "Bed", "Device", "Alarm", "Message", "Age", "Acknowledged"},
               true);
  if (!s.alarms.empty()) p.Head();
  for (const AlarmStatus* a : AlarmsBySeverity(s)) {
    p.RowStart(a->alarm_id);
    const int rank = PriorityRank(a->priority);
    p.CellStart();
    p.Raw(rank == 0 ? "<span class=\"tag p-high\">" : rank == 1 ? "<span class=\"tag p-medium\">"
          : rank == 2 ? "<span class=\"tag p-low\">" : "<span class=\"tag\">");
    p.Value(a->priority);
    p.Raw("</span>");
    p.CellEnd();
    p.Cell(a->patient.empty() ? "(none)" : a->patient);
    std::string bed;
    for (const DeviceStatus& d : s.devices) {
      if (!a->patient.empty() && d.patient == a->patient && !d.location.empty()) bed = d.location;
    }
    p.Cell(bed);
    p.Cell(a->device);
    p.Cell(a->kind + (a->what.empty() || a->what == a->kind ? "" : " " + a->what));
    p.Cell(a->message);
    p.Cell(FormatAge(AgeS(s, a->raised_ms)));
    if (a->state == "acknowledged" || !a->acknowledged_by.empty()) {
      p.Cell("by " + a->acknowledged_by);
    } else {
      p.Cell("no", "warn");
    }
    p.RowEnd();
  }
  p.TableEnd(s.alarms.size(), "No open alarms.");
}

void Devices(Page& p, const StatusSnapshot& s) {
  p.TableStart("devices", "Devices", s.devices.size(),
               {"Device", "Patient", "Bed", "Transport", "Link", "Last reading", "Battery",
                "Signal", "Decode errors"},
               true);
  if (!s.devices.empty()) p.Head();
  for (const DeviceStatus& d : s.devices) {
    const bool disconnected = DeviceDisconnected(d);
    const bool silent = DeviceSilent(s, d);
    p.RowStart(d.id);
    p.Cell(d.id);
    p.Cell(PatientLabel(d), d.patient.empty() ? "muted" : "");
    p.Cell(d.location);
    p.Cell(d.transport);
    if (d.link_up) {
      p.Cell("up", "ok");
    } else if (d.intermittent) {
      p.Cell("down (connects to send)", "muted");
    } else {
      p.Cell("down", disconnected ? "bad" : "");
    }
    const std::string last =
        d.last_reading_age_s ? FormatAge(*d.last_reading_age_s) + " ago" : "never";
    p.Cell(last, silent ? "bad" : "");
    p.Cell(d.battery_pct ? Short(*d.battery_pct) + " %" : "-",
           d.battery_pct && *d.battery_pct < 20 ? "warn" : "");
    p.Cell(d.rssi_dbm ? std::to_string(*d.rssi_dbm) + " dBm" : "-");
    p.Cell(std::to_string(d.decode_errors), d.decode_errors > 0 ? "warn" : "");
    p.RowEnd();
  }
  p.TableEnd(s.devices.size(), "No devices configured.");
}

void Destinations(Page& p, const StatusSnapshot& s) {
  p.TableStart("destinations", "Destinations", s.destinations.size(),
               {"Destination", "Type", "Target", "Link", "Backlog", "Oldest unsent", "Delivered",
                "Dead letters"},
               true);
  if (!s.destinations.empty()) p.Head();
  for (const DestinationStatus& d : s.destinations) {
    p.RowStart(d.name);
    p.Cell(d.name);
    p.Cell(d.type);
    p.Cell(d.target);
    if (d.connected) {
      p.Cell("up", "ok");
    } else {
      p.Cell(d.last_error.empty() ? "down" : "down: " + d.last_error, "bad");
    }
    p.Cell(std::to_string(d.backlog_readings) + " readings, " + std::to_string(d.backlog_events) +
           " events");
    p.Cell(d.oldest_unsent_age_s ? FormatAge(*d.oldest_unsent_age_s) + " (limit " +
                                       FormatAge(d.backlog_alarm_s) + ")"
                                 : "-",
           BacklogLate(d) ? "bad" : "");
    p.Cell(std::to_string(d.readings_delivered) + " readings");
    p.Cell(std::to_string(d.dead_letters), d.dead_letters > 0 ? "warn" : "");
    p.RowEnd();
  }
  p.TableEnd(s.destinations.size(), "No destinations.");
}

void Certificates(Page& p, const StatusSnapshot& s) {
  p.TableStart("certificates", "Certificates", s.certificates.size(),
               {"Role", "Subject", "Expires", "Path"}, false);
  if (!s.certificates.empty()) p.Head();
  for (const CertificateStatus& c : s.certificates) {
    const double left_s = static_cast<double>(c.not_after_s * 1000 - s.now_ms) / 1000.0;
    p.RowStart(c.role);
    p.Cell(c.role);
    p.Cell(c.subject);
    std::string when = HumanTime(c.not_after_s * 1000).substr(0, 10);
    when += left_s >= 0 ? " (in " + FormatAge(left_s) + ")" : " (expired " + FormatAge(-left_s) + " ago)";
    if (c.rejected) when += "; rejected by the peer";
    p.Cell(when, left_s < 0 || c.rejected ? "bad" : left_s < 30 * 86400 ? "warn" : "");
    p.Cell(c.path);
    p.RowEnd();
  }
  p.TableEnd(s.certificates.size(), "No certificates in use.");
}

void Audit(Page& p, const StatusSnapshot& s) {
  p.TableStart("audit", "Recent audit entries", s.audit.size(), {"Time", "Kind", "By", "Detail"},
               false);
  if (!s.audit.empty()) p.Head();
  for (const AuditStatus& a : s.audit) {
    p.RowStart(std::to_string(a.seq));
    p.Cell(HumanTime(a.ts_ms));
    p.Cell(a.kind);
    p.Cell(a.actor);
    p.Cell(a.detail, "detail");
    p.RowEnd();
  }
  p.TableEnd(s.audit.size(), "No audit entries yet.");
}

}  // namespace

std::string StatusHtml(const StatusSnapshot& s) {
  const HealthVerdict verdict = JudgeHealth(s);
  Page p;
  p.out.reserve(16384);
  p.Raw(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta http-equiv=\"refresh\" content=\"5\"><title>");
  p.Text(s.gateway_id);
  p.Raw(verdict.healthy ? " · ok" : " · degraded");
  p.Raw(" · vitalgate</title><style>");
  p.Raw(kStyle);
  p.Raw("</style></head><body>");
  Header(p, s, verdict);
  p.Raw("<main>");
  Alarms(p, s);
  Devices(p, s);
  Destinations(p, s);
  Certificates(p, s);
  Audit(p, s);
  p.Raw("</main><footer>Generated ");
  p.Text(HumanTime(s.now_ms));
  p.Raw(" · refreshes every 5 s · the same data as JSON: <a href=\"/api/status\">/api/status</a>"
        "</footer></body></html>\n");
  return std::move(p.out);
}

// --- /metrics -------------------------------------------------------------------------------

namespace {

void Family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

void Series(std::string& out, std::string_view name, Labels labels, double value) {
  out += name;
  if (labels.size() > 0) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out += ',';
      first = false;
      out += k;
      out += "=\"";
      AppendPrometheusLabelValue(out, v);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  AppendJsonNumber(out, std::isfinite(value) ? value : 0.0);
  out += '\n';
}

double U(std::uint64_t v) { return static_cast<double>(v); }

}  // namespace

std::string MetricsText(const StatusSnapshot& s, const GatewayStats& stats) {
  std::string out;
  out.reserve(8192);
  // Per-device counters (cumulative since start, kept for removed devices).
  auto per_device = [&](std::string_view name, std::string_view help, auto getter) {
    Family(out, name, "counter", help);
    for (const auto& d : stats.devices) Series(out, name, {{"device", d->id}}, U(getter(*d)));
  };
  per_device("vitalgate_readings_received_total", "Readings decoded and accepted per device.",
             [](const DeviceStats& d) { return d.readings.load(); });
  per_device("vitalgate_readings_invalid_total",
             "Implausible or wrongly typed values per device (never forwarded or alarmed on).",
             [](const DeviceStats& d) { return d.invalid.load(); });
  per_device("vitalgate_readings_dropped_total", "Readings lost to a full engine queue per device.",
             [](const DeviceStats& d) { return d.dropped.load(); });
  per_device("vitalgate_decode_errors_total", "Undecodable frames or lines per device.",
             [](const DeviceStats& d) { return d.decode_errors.load(); });
  per_device("vitalgate_device_clock_implausible_total",
             "Readings whose device time was outside the accepted window (not evaluated; the clock alarm).",
             [](const DeviceStats& d) { return d.clock_implausible.load(); });
  per_device("vitalgate_device_questionable_total",
             "Readings the device flagged questionable (forwarded, not evaluated).",
             [](const DeviceStats& d) { return d.questionable.load(); });
  per_device("vitalgate_device_unassigned_total",
             "Readings received while the device had no patient (not evaluated; the unassigned alarm).",
             [](const DeviceStats& d) { return d.unassigned.load(); });
  per_device("vitalgate_device_duplicates_total",
             "Stored records the device sent again (recognised by their key, not forwarded twice).",
             [](const DeviceStats& d) { return d.duplicates.load(); });

  // Per-device state, from the snapshot (configured devices only).
  Family(out, "vitalgate_device_link_up", "gauge", "1 while the device's link is up.");
  for (const DeviceStatus& d : s.devices) {
    Series(out, "vitalgate_device_link_up", {{"device", d.id}}, d.link_up ? 1 : 0);
  }
  Family(out, "vitalgate_device_last_reading_age_seconds", "gauge",
         "Seconds since the device's last reading (devices that sent one since the start).");
  for (const DeviceStatus& d : s.devices) {
    if (d.last_reading_age_s) {
      Series(out, "vitalgate_device_last_reading_age_seconds", {{"device", d.id}},
             *d.last_reading_age_s);
    }
  }
  Family(out, "vitalgate_device_battery_percent", "gauge",
         "The device's latest battery level (devices that report one).");
  for (const DeviceStatus& d : s.devices) {
    if (d.battery_pct) Series(out, "vitalgate_device_battery_percent", {{"device", d.id}}, *d.battery_pct);
  }
  Family(out, "vitalgate_device_signal_strength_dbm", "gauge",
         "Received signal strength where the transport knows it (BLE RSSI).");
  for (const DeviceStatus& d : s.devices) {
    if (d.rssi_dbm) {
      Series(out, "vitalgate_device_signal_strength_dbm", {{"device", d.id}},
             static_cast<double>(*d.rssi_dbm));
    }
  }
  Family(out, "vitalgate_device_healthy", "gauge",
         "0 while /healthz counts the device as disconnected or silent past its no-data time.");
  for (const DeviceStatus& d : s.devices) {
    Series(out, "vitalgate_device_healthy", {{"device", d.id}},
           DeviceDisconnected(d) || DeviceSilent(s, d) ? 0 : 1);
  }

  // Open alarms by kind and priority; the usual combinations are always present.
  std::map<std::pair<std::string, std::string>, int> open;
  for (std::string_view kind : {"threshold", "trend", "news2", "technical"}) {
    for (std::string_view priority : {"high", "medium", "low"}) {
      open[{std::string(kind), std::string(priority)}] = 0;
    }
  }
  for (const AlarmStatus& a : s.alarms) ++open[{a.kind, a.priority}];
  Family(out, "vitalgate_alarms_open", "gauge", "Open alarms (active or acknowledged).");
  for (const auto& [key, n] : open) {
    Series(out, "vitalgate_alarms_open", {{"kind", key.first}, {"priority", key.second}}, n);
  }

  Family(out, "vitalgate_certificate_expiry_seconds", "gauge",
         "Unix time at which the certificate expires (notAfter).");
  for (const CertificateStatus& c : s.certificates) {
    Series(out, "vitalgate_certificate_expiry_seconds", {{"role", c.role}, {"path", c.path}},
           static_cast<double>(c.not_after_s));
  }
  Family(out, "vitalgate_certificate_rejected", "gauge", "1 while the peer refuses the certificate.");
  for (const CertificateStatus& c : s.certificates) {
    Series(out, "vitalgate_certificate_rejected", {{"role", c.role}, {"path", c.path}}, c.rejected ? 1 : 0);
  }

  Family(out, "vitalgate_build_info", "gauge", "Always 1; the version as a label.");
  Series(out, "vitalgate_build_info", {{"version", s.version}}, 1);
  Family(out, "vitalgate_start_time_seconds", "gauge", "Unix time the daemon started.");
  Series(out, "vitalgate_start_time_seconds", {}, static_cast<double>(s.started_ms) / 1000.0);
  Family(out, "vitalgate_config_last_reload_successful", "gauge",
         "1 if the last reload (SIGHUP) was applied, 0 if it was refused.");
  Series(out, "vitalgate_config_last_reload_successful", {}, s.last_reload_ok ? 1 : 0);
  Family(out, "vitalgate_config_last_reload_timestamp_seconds", "gauge",
         "Unix time of the last reload; 0: none since the start.");
  Series(out, "vitalgate_config_last_reload_timestamp_seconds", {},
         static_cast<double>(s.last_reload_ms) / 1000.0);

  // Destinations.
  Family(out, "vitalgate_destination_up", "gauge", "1 while the destination's link is up.");
  for (const DestinationStatus& d : s.destinations) {
    Series(out, "vitalgate_destination_up", {{"destination", d.name}, {"type", d.type}}, d.connected ? 1 : 0);
  }
  Family(out, "vitalgate_destination_backlog_rows", "gauge",
         "Items waiting for the destination, by kind.");
  for (const DestinationStatus& d : s.destinations) {
    Series(out, "vitalgate_destination_backlog_rows", {{"destination", d.name}, {"kind", "readings"}},
           U(d.backlog_readings));
    Series(out, "vitalgate_destination_backlog_rows", {{"destination", d.name}, {"kind", "events"}},
           U(d.backlog_events));
  }
  Family(out, "vitalgate_destination_oldest_unsent_age_seconds", "gauge",
         "Age of the destination's oldest unsent item; 0 when nothing waits.");
  for (const DestinationStatus& d : s.destinations) {
    Series(out, "vitalgate_destination_oldest_unsent_age_seconds", {{"destination", d.name}},
           d.oldest_unsent_age_s.value_or(0.0));
  }
  Family(out, "vitalgate_destination_backlog_limit_seconds", "gauge",
         "The destination's backlog_alarm_s: /healthz fails past it.");
  for (const DestinationStatus& d : s.destinations) {
    Series(out, "vitalgate_destination_backlog_limit_seconds", {{"destination", d.name}}, d.backlog_alarm_s);
  }
  Family(out, "vitalgate_destination_readings_delivered_total", "counter",
         "Readings the destination acknowledged.");
  for (const DestinationStatus& d : s.destinations) {
    Series(out, "vitalgate_destination_readings_delivered_total", {{"destination", d.name}},
           U(d.readings_delivered));
  }
  Family(out, "vitalgate_destination_dead_letters_total", "counter",
         "Items the destination rejected for good.");
  for (const DestinationStatus& d : s.destinations) {
    Series(out, "vitalgate_destination_dead_letters_total", {{"destination", d.name}}, U(d.dead_letters));
  }

  // Gateway-wide counters and the outbox.
  auto counter = [&](std::string_view name, std::string_view help, std::uint64_t v) {
    Family(out, name, "counter", help);
    Series(out, name, {}, U(v));
  };
  counter("vitalgate_readings_accepted_total", "Readings accepted by the engine.",
          stats.readings_accepted.load());
  counter("vitalgate_readings_committed_total", "Readings committed to the outbox.",
          stats.readings_committed.load());
  counter("vitalgate_readings_delivered_total", "Readings acknowledged by the broker (out).",
          stats.readings_delivered.load());
  counter("vitalgate_alerts_total", "Alert events raised by the engine.", stats.alerts_raised.load());
  counter("vitalgate_alerts_delivered_total", "Alert events acknowledged by the broker.",
          stats.alerts_delivered.load());
  Family(out, "vitalgate_backlog_rows", "gauge", "Undelivered rows in the outbox, by kind.");
  Series(out, "vitalgate_backlog_rows", {{"kind", "readings"}}, U(s.backlog_readings));
  Series(out, "vitalgate_backlog_rows", {{"kind", "alerts"}}, U(s.backlog_events));
  Family(out, "vitalgate_backlog_bytes", "gauge",
         "Bytes of undelivered payloads in the outbox (not the database file size).");
  Series(out, "vitalgate_backlog_bytes", {}, U(s.backlog_bytes));
  Family(out, "vitalgate_oldest_undelivered_reading_age_seconds", "gauge",
         "Age of the oldest item not yet acknowledged by the broker.");
  const DestinationStatus* primary = Primary(s);
  Series(out, "vitalgate_oldest_undelivered_reading_age_seconds", {},
         primary ? primary->oldest_unsent_age_s.value_or(0.0) : 0.0);
  counter("vitalgate_readings_evicted_total",
          "Undelivered readings dropped to keep the outbox within storage.max_bytes.",
          stats.readings_evicted.load());
  counter("vitalgate_store_errors_total", "Failed outbox commits.", stats.store_errors.load());
  Family(out, "vitalgate_storage_healthy", "gauge", "1 while the outbox stores readings durably.");
  Series(out, "vitalgate_storage_healthy", {}, s.storage_healthy ? 1 : 0);
  Family(out, "vitalgate_broker_connected", "gauge", "1 while connected to the broker.");
  Series(out, "vitalgate_broker_connected", {}, primary == nullptr || primary->connected ? 1 : 0);
  counter("vitalgate_broker_connects_total", "Successful broker connections.",
          stats.broker_connects.load());
  counter("vitalgate_messages_published_total", "MQTT messages acknowledged.",
          stats.messages_published.load());
  counter("vitalgate_publish_errors_total", "Publish attempts that failed.", stats.publish_errors.load());
  Family(out, "vitalgate_downlink_rejected_total", "counter",
         "Inbound command messages that did not count, by reason (docs/mqtt.md).");
  std::uint64_t refused_total = 0;
  for (std::size_t i = 0; i < kDownlinkRefusalCount; ++i) {
    const std::uint64_t n = stats.downlink_refused[i].load();
    refused_total += n;
    Series(out, "vitalgate_downlink_rejected_total",
           {{"reason", std::string(Name(static_cast<DownlinkRefusal>(i)))}}, U(n));
  }
  // Refusals after the gate (e.g. a full acknowledgement queue) have no reason of their own.
  const std::uint64_t all = stats.downlink_rejected.load();
  Series(out, "vitalgate_downlink_rejected_total", {{"reason", "other"}},
         U(all > refused_total ? all - refused_total : 0));
  Family(out, "vitalgate_tls_failures_total", "counter",
         "Failed TLS handshakes with the broker, by reason (docs/security.md).");
  for (std::size_t i = 1; i < kTlsFailureCount; ++i) {
    Series(out, "vitalgate_tls_failures_total", {{"reason", std::string(Name(static_cast<TlsFailure>(i)))}},
           U(stats.tls_failures[i].load()));
  }
  Family(out, "vitalgate_acks_total", "counter", "Alert acknowledgements by result.");
  Series(out, "vitalgate_acks_total", {{"result", "applied"}}, U(stats.acks_applied.load()));
  Series(out, "vitalgate_acks_total", {{"result", "rejected"}}, U(stats.acks_rejected.load()));

  Family(out, "vitalgate_publish_latency_seconds", "histogram",
         "Time from a reading's or alert's receipt to the broker's acknowledgement.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < LatencyHistogram::kBoundsMs.size(); ++i) {
    cumulative += stats.publish_latency.bucket(i);
    Series(out, "vitalgate_publish_latency_seconds_bucket",
           {{"le", Num(LatencyHistogram::kBoundsMs[i] / 1000.0)}}, U(cumulative));
  }
  cumulative += stats.publish_latency.bucket(LatencyHistogram::kBoundsMs.size());
  Series(out, "vitalgate_publish_latency_seconds_bucket", {{"le", "+Inf"}}, U(cumulative));
  Series(out, "vitalgate_publish_latency_seconds_sum", {}, stats.publish_latency.sum_ms() / 1000.0);
  Series(out, "vitalgate_publish_latency_seconds_count", {}, U(stats.publish_latency.count()));
  return out;
}

// --- without a StatusSource -------------------------------------------------------------------

StatusSnapshot SnapshotFromStats(const GatewayStats& stats, const HealthInfo& info,
                                 std::int64_t now_ms, std::int64_t started_ms) {
  StatusSnapshot s;
  s.gateway_id = info.gateway_id;
  s.site = info.site;
  s.version = info.version;
  s.now_ms = now_ms;
  s.started_ms = started_ms;
  s.storage_healthy = stats.store_healthy.load();
  if (!s.storage_healthy) s.storage_error = "outbox commits fail";
  s.backlog_readings = stats.backlog_readings.load();
  s.backlog_events = stats.backlog_alerts.load();
  s.backlog_bytes = stats.backlog_bytes.load();
  auto age = [now_ms](std::int64_t then_ms) -> std::optional<double> {
    if (then_ms <= 0) return std::nullopt;
    return static_cast<double>(now_ms - then_ms) / 1000.0;
  };
  for (std::size_t i = 0; i < stats.destinations.size(); ++i) {
    const DestinationStats& d = *stats.destinations[i];
    DestinationStatus o;
    o.name = d.name;
    o.type = d.type;
    o.target = d.target;
    // The primary's link state is the broker's (the forwarder keeps both).
    o.connected = i == 0 ? stats.broker_connected.load() : d.connected.load();
    o.last_error = i == 0 ? stats.broker_error.Get() : d.last_error.Get();
    if (o.connected) o.last_error.clear();
    o.backlog_readings = i == 0 ? stats.backlog_readings.load() : d.backlog_readings.load();
    o.backlog_events = i == 0 ? stats.backlog_alerts.load() : d.backlog_events.load();
    o.oldest_unsent_age_s = age(i == 0 ? stats.oldest_unacked_rx_ms.load() : d.oldest_unacked_rx_ms.load());
    o.readings_delivered = d.readings_delivered.load();
    o.dead_letters = d.dead_letters.load();
    s.destinations.push_back(std::move(o));
  }
  if (s.destinations.empty()) {
    DestinationStatus o;
    o.name = "mqtt";
    o.type = "mqtt";
    o.connected = stats.broker_connected.load();
    if (!o.connected) o.last_error = stats.broker_error.Get();
    o.backlog_readings = stats.backlog_readings.load();
    o.backlog_events = stats.backlog_alerts.load();
    o.oldest_unsent_age_s = age(stats.oldest_unacked_rx_ms.load());
    o.readings_delivered = stats.readings_delivered.load();
    s.destinations.push_back(std::move(o));
  }
  for (const auto& dp : stats.devices) {
    const DeviceStats& d = *dp;
    if (d.removed.load()) continue;
    DeviceStatus o;
    o.id = d.id;
    o.transport = d.transport;
    o.link_up = d.link_up.load();
    o.last_reading_age_s = age(d.last_reading_ms.load());
    const double battery = d.battery_pct.load();
    if (battery >= 0) o.battery_pct = battery;
    o.readings = d.readings.load();
    o.decode_errors = d.decode_errors.load();
    o.invalid = d.invalid.load();
    o.clock_implausible = d.clock_implausible.load();
    s.devices.push_back(std::move(o));
  }
  return s;
}

}  // namespace vg
