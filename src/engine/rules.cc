#include "vitalgate/engine/rules.h"

#include <algorithm>
#include <cmath>

#include "vitalgate/core/options.h"

namespace vg {
namespace {

using nlohmann::json;

// Adult defaults. Sources and reasoning: docs/rules.md.
const char* const kDefaultRules = R"({
  "thresholds": {
    "heart_rate":   {"low": [{"limit": 50, "priority": "medium"}, {"limit": 40, "priority": "high"}],
                     "high": [{"limit": 120, "priority": "medium"}, {"limit": 150, "priority": "high"}],
                     "hysteresis": 2, "delay_s": 10},
    "pulse_rate":   {"low": [{"limit": 50, "priority": "medium"}, {"limit": 40, "priority": "high"}],
                     "high": [{"limit": 120, "priority": "medium"}, {"limit": 150, "priority": "high"}],
                     "hysteresis": 2, "delay_s": 10},
    "spo2":         {"low": [{"limit": 90, "priority": "medium"}, {"limit": 85, "priority": "high"}],
                     "high": [], "hysteresis": 1, "delay_s": 15},
    "resp_rate":    {"low": [{"limit": 8, "priority": "medium"}, {"limit": 5, "priority": "high"}],
                     "high": [{"limit": 30, "priority": "medium"}, {"limit": 35, "priority": "high"}],
                     "hysteresis": 1, "delay_s": 15},
    "bp_systolic":  {"low": [{"limit": 90, "priority": "medium"}, {"limit": 80, "priority": "high"}],
                     "high": [{"limit": 160, "priority": "medium"}, {"limit": 180, "priority": "high"}],
                     "hysteresis": 2, "delay_s": 0},
    "bp_diastolic": {"low": [{"limit": 50, "priority": "medium"}],
                     "high": [{"limit": 90, "priority": "medium"}, {"limit": 120, "priority": "high"}],
                     "hysteresis": 2, "delay_s": 0},
    "bp_mean":      {"low": [{"limit": 60, "priority": "medium"}, {"limit": 50, "priority": "high"}],
                     "high": [{"limit": 110, "priority": "medium"}],
                     "hysteresis": 2, "delay_s": 0},
    "temperature":  {"low": [{"limit": 35.0, "priority": "medium"}],
                     "high": [{"limit": 38.0, "priority": "low"}, {"limit": 39.0, "priority": "medium"}],
                     "hysteresis": 0.2, "delay_s": 0},
    "glucose":      {"low": [{"limit": 70, "priority": "medium"}, {"limit": 54, "priority": "high"}],
                     "high": [{"limit": 250, "priority": "medium"}],
                     "hysteresis": 5, "delay_s": 0}
  },
  "trends": {
    "spo2_falling":        {"metric": "spo2", "direction": "falling", "change": 3, "window_s": 600,
                            "priority": "medium"},
    "heart_rate_rising":   {"metric": "heart_rate", "direction": "rising", "change": 20,
                            "window_s": 900, "priority": "medium"},
    "temperature_rising":  {"metric": "temperature", "direction": "rising", "change": 1.0,
                            "window_s": 3600, "priority": "low"}
  },
  "news2": {"enabled": true, "stale_s": 900, "average_s": 60, "settle_s": 30,
            "priority": {"low": "low", "low-medium": "medium", "medium": "medium", "high": "high"}},
  "technical": {"no_data_s": 60, "disconnect_alarm_s": 10, "low_battery_pct": 20,
                "bad_frames_per_min": 10,
                "priority": {"disconnected": "medium", "sensor_off": "medium",
                             "out_of_track": "low", "low_perfusion": "low",
                             "low_battery": "low", "bad_frames": "low", "no_data": "medium",
                             "readings_dropped": "medium", "storage": "high",
                             "clock": "medium", "unassigned": "medium",
                             "certificate": "medium", "destination": "medium"}},
  "escalation": {"low_after_s": 900, "medium_after_s": 300}
})";

constexpr std::string_view kPriorities[] = {"low", "medium", "high"};
constexpr std::string_view kDirections[] = {"rising", "falling"};

constexpr OptionSpec kLevelSpecs[] = {
    {"limit", OptionType::kNumber, "", "Limit in the metric's canonical unit.", true},
    {"priority", OptionType::kString, "", "low, medium or high.", true, -1e300, 1e300,
     kPriorities},
};
constexpr OptionSpec kThresholdSpecs[] = {
    {"low", OptionType::kObjectArray, "[]", "Levels that alarm below their limit."},
    {"high", OptionType::kObjectArray, "[]", "Levels that alarm above their limit."},
    {"hysteresis", OptionType::kNumber, "0", "Band past the limit before a level clears.", false,
     0, 1000},
    {"delay_s", OptionType::kNumber, "0", "Condition delay: how long it must hold.", false, 0,
     3600},
};
constexpr OptionSpec kTrendSpecs[] = {
    {"metric", OptionType::kString, "", "Metric to watch.", true},
    {"direction", OptionType::kString, "", "rising or falling.", true, -1e300, 1e300, kDirections},
    {"change", OptionType::kNumber, "", "Change over the window that alarms (canonical unit).",
     true, 1e-9, 1e6},
    {"window_s", OptionType::kNumber, "", "Window of the least-squares slope.", true, 10, 86400},
    {"min_samples", OptionType::kInteger, "3", "Fewest samples in the window for a slope.", false,
     2, 100000},
    {"priority", OptionType::kString, "\"medium\"", "low, medium or high.", false, -1e300, 1e300,
     kPriorities},
};
constexpr OptionSpec kNews2Specs[] = {
    {"enabled", OptionType::kBool, "true", "Compute NEWS2 for every patient."},
    {"stale_s", OptionType::kNumber, "900", "A parameter older than this is stale.", false, 1,
     86400},
    {"average_s", OptionType::kNumber, "60",
     "Each input is the mean of its readings over this window; 0 uses the latest reading.",
     false, 0, 3600},
    {"settle_s", OptionType::kNumber, "30",
     "A changed score is published once it has held this long; 0 publishes every change.", false,
     0, 3600},
    {"priority", OptionType::kObject, "{}", "Priority per risk band."},
};
constexpr OptionSpec kTechnicalSpecs[] = {
    {"no_data_s", OptionType::kNumber, "60", "No reading from a device for this long.", false, 1,
     86400},
    {"disconnect_alarm_s", OptionType::kNumber, "10", "Link down for this long.", false, 0, 86400},
    {"low_battery_pct", OptionType::kNumber, "20", "Battery level that alarms.", false, 0, 100},
    {"bad_frames_per_min", OptionType::kInteger, "10", "Bad frames per minute that alarm.", false,
     1, 1000000},
    {"priority", OptionType::kObject, "{}", "Priority per technical condition."},
};
constexpr OptionSpec kEscalationSpecs[] = {
    {"low_after_s", OptionType::kNumber, "0", "Escalate unacknowledged low alarms; 0 = never.",
     false, 0, 86400},
    {"medium_after_s", OptionType::kNumber, "0",
     "Escalate unacknowledged medium alarms; 0 = never.", false, 0, 86400},
};
constexpr OptionSpec kRulesSpecs[] = {
    {"thresholds", OptionType::kObject, "{}", "Per metric threshold rules."},
    {"trends", OptionType::kObject, "{}", "Named trend rules."},
    {"news2", OptionType::kObject, "{}", "NEWS2 settings."},
    {"technical", OptionType::kObject, "{}", "Technical alarm settings."},
    {"escalation", OptionType::kObject, "{}", "Escalation of unacknowledged alarms."},
};

std::int64_t Ms(double seconds) { return static_cast<std::int64_t>(std::llround(seconds * 1000.0)); }

Priority PriorityOf(const json& j) { return *PriorityFromName(j.get_ref<const std::string&>()); }

Result<json> Section(const json& parent, const char* key, std::span<const OptionSpec> specs,
                     const std::string& path) {
  const json& obj = parent.contains(key) ? parent.at(key) : json::object();
  return ApplyOptionSpecs(obj, specs, JoinPath(path, key), OptionContext{});
}

Status CompileLevels(const json& arr, bool low, const std::string& path,
                     std::vector<ThresholdLevel>& out) {
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    auto level = ApplyOptionSpecs(arr[i], kLevelSpecs, p, OptionContext{});
    if (!level.ok()) return level.status();
    out.push_back({(*level)["limit"].get<double>(), PriorityOf((*level)["priority"])});
  }
  // Least severe first: low limits descending, high limits ascending.
  std::sort(out.begin(), out.end(), [low](const ThresholdLevel& a, const ThresholdLevel& b) {
    return low ? a.limit > b.limit : a.limit < b.limit;
  });
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i].limit == out[i - 1].limit) {
      return InvalidArgument(path + ": two levels share the limit " +
                             std::to_string(out[i].limit));
    }
    if (out[i].priority < out[i - 1].priority) {
      return InvalidArgument(path + ": a level further from normal must not have a lower priority");
    }
  }
  return Status::Ok();
}

Status CompileThresholds(const json& thresholds, const std::string& path, PatientRules& out) {
  for (const auto& [name, rule] : thresholds.items()) {
    const std::string p = JoinPath(path, name);
    const auto metric = MetricFromName(name);
    if (!metric) return InvalidArgument(p + ": unknown metric");
    if (rule.is_null()) continue;  // disabled by a merge patch
    if (Info(*metric).type != ValueType::kNumber) {
      return InvalidArgument(p + ": thresholds apply to numeric metrics only");
    }
    auto r = ApplyOptionSpecs(rule, kThresholdSpecs, p, OptionContext{});
    if (!r.ok()) return r.status();
    ThresholdRule& t = out.thresholds[static_cast<std::size_t>(*metric)];
    t = ThresholdRule{};
    VG_RETURN_IF_ERROR(CompileLevels((*r)["low"], true, JoinPath(p, "low"), t.low));
    VG_RETURN_IF_ERROR(CompileLevels((*r)["high"], false, JoinPath(p, "high"), t.high));
    if (!t.low.empty() && !t.high.empty() && t.low.front().limit >= t.high.front().limit) {
      return InvalidArgument(p + ": low limits must be below high limits");
    }
    t.hysteresis = (*r)["hysteresis"].get<double>();
    t.delay_ms = Ms((*r)["delay_s"].get<double>());
    t.enabled = !t.low.empty() || !t.high.empty();
  }
  return Status::Ok();
}

Status CompileTrends(const json& trends, const std::string& path, PatientRules& out) {
  for (const auto& [name, rule] : trends.items()) {
    if (rule.is_null()) continue;
    const std::string p = JoinPath(path, name);
    auto r = ApplyOptionSpecs(rule, kTrendSpecs, p, OptionContext{});
    if (!r.ok()) return r.status();
    const auto metric = MetricFromName((*r)["metric"].get_ref<const std::string&>());
    if (!metric || Info(*metric).type != ValueType::kNumber) {
      return InvalidArgument(JoinPath(p, "metric") + ": not a numeric metric");
    }
    TrendRule t;
    t.name = name;
    t.metric = *metric;
    t.rising = (*r)["direction"] == "rising";
    t.change = (*r)["change"].get<double>();
    t.window_ms = Ms((*r)["window_s"].get<double>());
    t.min_samples = (*r)["min_samples"].get<int>();
    t.priority = PriorityOf((*r)["priority"]);
    out.trends.push_back(std::move(t));
  }
  return Status::Ok();
}

Status CompileNews2(const json& doc, const std::string& path, PatientRules& out) {
  auto r = Section(doc, "news2", kNews2Specs, path);
  if (!r.ok()) return r.status();
  out.news2.enabled = (*r)["enabled"].get<bool>();
  out.news2.stale_ms = Ms((*r)["stale_s"].get<double>());
  out.news2.average_ms = Ms((*r)["average_s"].get<double>());
  out.news2.settle_ms = Ms((*r)["settle_s"].get<double>());
  static constexpr std::string_view kBands[] = {"low", "low-medium", "medium", "high"};
  for (const auto& [band, prio] : (*r)["priority"].items()) {
    const std::string p = JoinPath(JoinPath(path, "news2.priority"), band);
    const auto* it = std::find(std::begin(kBands), std::end(kBands), band);
    if (it == std::end(kBands)) {
      return InvalidArgument(p + ": unknown risk band (low, low-medium, medium, high)");
    }
    if (!prio.is_string() || !PriorityFromName(prio.get_ref<const std::string&>())) {
      return InvalidArgument(p + ": expected \"low\", \"medium\" or \"high\"");
    }
    out.news2.priority[static_cast<std::size_t>(it - std::begin(kBands))] = PriorityOf(prio);
  }
  return Status::Ok();
}

Status CompileTechnical(const json& doc, const std::string& path, PatientRules& out) {
  auto r = Section(doc, "technical", kTechnicalSpecs, path);
  if (!r.ok()) return r.status();
  out.technical.no_data_ms = Ms((*r)["no_data_s"].get<double>());
  out.technical.disconnect_alarm_ms = Ms((*r)["disconnect_alarm_s"].get<double>());
  out.technical.low_battery_pct = (*r)["low_battery_pct"].get<double>();
  out.technical.bad_frames_per_min = (*r)["bad_frames_per_min"].get<int>();
  out.technical.priority.fill(Priority::kMedium);
  for (const auto& [cond, prio] : (*r)["priority"].items()) {
    const std::string p = JoinPath(JoinPath(path, "technical.priority"), cond);
    bool found = false;
    for (std::size_t i = 0; i < kDeviceConditionCount; ++i) {
      if (Name(static_cast<DeviceCondition>(i)) == cond) {
        if (!prio.is_string() || !PriorityFromName(prio.get_ref<const std::string&>())) {
          return InvalidArgument(p + ": expected \"low\", \"medium\" or \"high\"");
        }
        out.technical.priority[i] = PriorityOf(prio);
        found = true;
      }
    }
    if (!found) return InvalidArgument(p + ": unknown technical condition");
  }
  return Status::Ok();
}

Result<std::shared_ptr<PatientRules>> CompileOne(const json& doc, const std::string& path) {
  auto top = ApplyOptionSpecs(doc, kRulesSpecs, path, OptionContext{});
  if (!top.ok()) return top.status();
  auto rules = std::make_shared<PatientRules>();
  VG_RETURN_IF_ERROR(CompileThresholds((*top)["thresholds"], JoinPath(path, "thresholds"), *rules));
  VG_RETURN_IF_ERROR(CompileTrends((*top)["trends"], JoinPath(path, "trends"), *rules));
  VG_RETURN_IF_ERROR(CompileNews2(*top, path, *rules));
  VG_RETURN_IF_ERROR(CompileTechnical(*top, path, *rules));
  auto esc = Section(*top, "escalation", kEscalationSpecs, path);
  if (!esc.ok()) return esc.status();
  rules->escalation.after_ms = {Ms((*esc)["low_after_s"].get<double>()),
                                Ms((*esc)["medium_after_s"].get<double>())};
  return rules;
}

}  // namespace

struct RuleCompiler {
  static Result<std::shared_ptr<const RuleBook>> Compile(
      const json& global, const std::vector<PatientRuleInput>& patients) {
    auto book = std::make_shared<RuleBook>();
    const json base = MergePatch(DefaultRulesDocument(), global);
    auto defaults = CompileOne(base, "rules");
    if (!defaults.ok()) return defaults.status();
    book->defaults_ = **defaults;
    book->effective = json::object();
    book->effective["*"] = base;
    for (std::size_t i = 0; i < patients.size(); ++i) {
      const PatientRuleInput& in = patients[i];
      const json merged = MergePatch(base, in.overrides);
      auto rules = CompileOne(merged, "patients[" + std::to_string(i) + "].rules");
      if (!rules.ok()) return rules.status();
      (*rules)->patient = in.id;
      (*rules)->news2_scale = in.news2_scale;
      if (book->by_patient_.size() <= in.index) book->by_patient_.resize(in.index + 1);
      book->by_patient_[in.index] = std::move(*rules);
      if (!in.overrides.empty()) book->effective[in.id] = merged;
    }
    return std::shared_ptr<const RuleBook>(std::move(book));
  }
};

const json& DefaultRulesDocument() {
  static const json doc = json::parse(kDefaultRules, nullptr, /*allow_exceptions=*/false);
  return doc;
}

json MergePatch(json target, const json& patch) {
  if (!patch.is_object()) return patch;
  if (!target.is_object()) target = json::object();
  for (const auto& [key, value] : patch.items()) {
    if (value.is_null()) {
      // RFC 7386 removes the member; for rule maps keep an explicit null so the compiler knows
      // the rule was switched off rather than never configured.
      target[key] = nullptr;
    } else {
      target[key] = MergePatch(target.contains(key) ? target[key] : json(), value);
    }
  }
  return target;
}

Result<std::shared_ptr<const RuleBook>> CompileRules(const nlohmann::json& global,
                                                     const std::vector<PatientRuleInput>& patients) {
  return RuleCompiler::Compile(global, patients);
}

}  // namespace vg
