// The views of one StatusSnapshot: the HTML status page (`GET /`), its JSON (`GET /api/status`),
// the health verdict (`GET /healthz`) and the Prometheus text (`GET /metrics`).
//
// Pure functions of their arguments (no I/O, no clock of their own: ages are taken from
// StatusSnapshot::now_ms), so tests render hand-made snapshots. Every string of a snapshot is
// outside input (device names, `by`, reasons): each view escapes it for its own syntax, and
// the HTML and terminal views also neutralise bidirectional-text controls.
// Thread-safety: thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/app/status.h"
#include "vitalgate/core/stats.h"

namespace vg {

// What the views show about the gateway itself when the daemon does not provide a StatusSource.
struct HealthInfo {
  std::string gateway_id;
  std::string site;
  std::string version;
};

// The /healthz verdict: unhealthy while the broker link is down, storage fails, a
// destination's oldest unsent item is older than its limit, or a continuous device is
// disconnected or silent past its no-data time (an intermittent device counts only by its
// no-data time). `reasons` is empty exactly when `healthy`.
struct HealthVerdict {
  bool healthy = true;
  std::vector<std::string> reasons;
};
HealthVerdict JudgeHealth(const StatusSnapshot& s);

// The body of GET /healthz; *http_status is 200 or 503. `counters` (may be null) adds the
// per-device `dropped` counter.
std::string HealthJson(const StatusSnapshot& s, const GatewayStats* counters, int* http_status);

// The body of GET /api/status (schema: docs/status.md).
std::string StatusJson(const StatusSnapshot& s);

// The status page: one HTML document with inline CSS and no script, refreshing itself.
std::string StatusHtml(const StatusSnapshot& s);

// Prometheus text format 0.0.4: counters from `stats`, everything else from `s`.
std::string MetricsText(const StatusSnapshot& s, const GatewayStats& stats);

// A snapshot built from the counters alone (no alarms, audit or certificates), for a daemon
// that provides no StatusSource.
StatusSnapshot SnapshotFromStats(const GatewayStats& stats, const HealthInfo& info,
                                 std::int64_t now_ms, std::int64_t started_ms);

// --- building blocks, exposed for tests and the `status` command ---------------------------

// "0 s", "45 s", "12 min", "3 h 5 min", "2 d 4 h". Negative ages print as "0 s".
std::string FormatAge(double seconds);

// Appends `s` as HTML text or a double-quoted attribute value: & < > " ' escaped, invalid
// UTF-8 replaced by U+FFFD, control characters (but tab and line breaks) and bidirectional
// controls (U+202A-202E, U+2066-2069, U+200E/F, U+061C) shown as "[U+202E]" and the like, so
// that they cannot reorder or hide what surrounds them.
void AppendHtmlText(std::string& out, std::string_view s);

// `s` made safe for a terminal: control characters (ESC among them) and bidirectional
// controls shown as "[U+001B]" and the like, invalid UTF-8 as U+FFFD.
std::string TerminalSafe(std::string_view s);

// Appends a Prometheus label value (without quotes): \ " and newline escaped, invalid UTF-8
// replaced by U+FFFD.
void AppendPrometheusLabelValue(std::string& out, std::string_view s);

}  // namespace vg
