// Helpers to drive the Engine by hand in event time.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "vitalgate/engine/engine.h"

namespace vg::testing {

class CollectingSink final : public AlertSink {
 public:
  void OnAlert(AlertEvent&& e) override { events.push_back(std::move(e)); }
  std::vector<AlertEvent> Of(AlertKind kind) const {
    std::vector<AlertEvent> out;
    for (const AlertEvent& e : events) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }
  std::vector<AlertEvent> events;
};

inline constexpr std::int64_t kT0 = 1'795'323'600'000;  // 2026-11-22T05:00:00Z

inline std::shared_ptr<const RuleBook> Rules(const nlohmann::json& global,
                                             const nlohmann::json& patient = nlohmann::json::object(),
                                             int scale = 1) {
  auto book = CompileRules(global, {PatientRuleInput{0, "p-001", scale, patient}});
  EXPECT_TRUE(book.ok()) << book.status().message();
  return *book;
}

// Rules with only the given parts switched on (no trends, no NEWS2 unless asked).
inline nlohmann::json Only(nlohmann::json parts) {
  nlohmann::json base = {{"trends", {{"spo2_falling", nullptr}, {"heart_rate_rising", nullptr},
                                     {"temperature_rising", nullptr}}},
                         {"news2", {{"enabled", false}}},
                         {"escalation", {{"low_after_s", 0}, {"medium_after_s", 0}}}};
  nlohmann::json thresholds = nlohmann::json::object();
  for (const MetricInfo& m : AllMetrics()) thresholds[std::string(m.name)] = nullptr;
  base["thresholds"] = thresholds;
  return MergePatch(base, parts);
}

class EngineHarness {
 public:
  explicit EngineHarness(std::shared_ptr<const RuleBook> rules, int devices = 1)
      : engine(std::move(rules), MakeDevices(devices), 1, 0) {}

  static std::vector<EngineDevice> MakeDevices(int n) {
    std::vector<EngineDevice> d;
    for (int i = 0; i < n; ++i) d.push_back(EngineDevice{"dev-" + std::to_string(i), 0, {}, {}, true});
    return d;
  }

  // Feeds a reading `offset_s` seconds after kT0; returns the events it produced.
  std::vector<AlertEvent> Feed(Metric m, double value, double offset_s, DeviceIndex device = 0,
                               decltype(Reading::flags) flags = 0) {
    Reading r;
    r.flags = flags;
    r.metric = m;
    r.value = value;
    r.ts_ms = kT0 + static_cast<std::int64_t>(offset_s * 1000);
    r.rx_ms = r.ts_ms;
    r.device = device;
    r.patient = 0;
    const std::size_t before = sink.events.size();
    engine.OnReading(r, mono_ns, sink);
    return {sink.events.begin() + static_cast<std::ptrdiff_t>(before), sink.events.end()};
  }

  std::vector<AlertEvent> Tick(double advance_s) {
    mono_ns += static_cast<std::int64_t>(advance_s * 1e9);
    wall_ms += static_cast<std::int64_t>(advance_s * 1000);
    const std::size_t before = sink.events.size();
    engine.OnTick(wall_ms, mono_ns, sink);
    return {sink.events.begin() + static_cast<std::ptrdiff_t>(before), sink.events.end()};
  }

  Engine engine;
  CollectingSink sink;
  std::int64_t mono_ns = 0;
  std::int64_t wall_ms = kT0;
};

}  // namespace vg::testing
