// Rules: the compiled, immutable form of the "rules" config (global defaults, the config's
// "rules" section, and each patient's overrides as a JSON merge patch, RFC 7386).
//
// CompileRules() validates everything with messages naming the key path and produces a RuleBook:
// one PatientRules per patient. A RuleBook is immutable after construction and shared by
// pointer; the engine swaps in a new one on SIGHUP.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vitalgate/core/alert.h"
#include "vitalgate/core/metric.h"
#include "vitalgate/core/reading.h"
#include "vitalgate/core/status.h"

namespace vg {

struct ThresholdLevel {
  double limit = 0;
  Priority priority = Priority::kMedium;
};

// Low/high limits of one metric. Levels are sorted from least to most severe (for `low`,
// descending limits; for `high`, ascending). A low level holds while value < limit; a high level
// while value > limit. A held level is released only when the value is back past the limit by
// `hysteresis`. A level is raised only after its condition held for `delay_ms` of event time.
struct ThresholdRule {
  bool enabled = false;
  std::vector<ThresholdLevel> low;
  std::vector<ThresholdLevel> high;
  double hysteresis = 0;
  std::int64_t delay_ms = 0;
};

// Rate of change of a metric over a window, by least-squares slope (issue: trends).
struct TrendRule {
  std::string name;
  Metric metric = Metric::kSpo2;
  bool rising = false;         // direction that alarms
  double change = 0;           // alarm when |slope| * window >= change, in the metric's unit
  std::int64_t window_ms = 0;  // slope window (event time)
  int min_samples = 3;
  Priority priority = Priority::kMedium;
};

struct News2Rule {
  bool enabled = true;
  std::int64_t stale_ms = 15 * 60 * 1000;
  // Continuous monitors send a value a second; NEWS2 was designed for charted observations.
  // Each input is the mean of its readings over the last `average_ms` (the latest reading when
  // none is that recent), and a new aggregate is published once it has held for `settle_ms`,
  // so noise across a band edge does not flap the score.
  std::int64_t average_ms = 60'000;
  std::int64_t settle_ms = 30'000;
  // Priority of the news2 event per risk band (low, low-medium, medium, high).
  std::array<Priority, 4> priority{Priority::kLow, Priority::kMedium, Priority::kMedium,
                                   Priority::kHigh};
};

struct TechnicalRule {
  std::int64_t no_data_ms = 60'000;
  std::int64_t disconnect_alarm_ms = 10'000;
  double low_battery_pct = 20;
  int bad_frames_per_min = 10;
  std::array<Priority, kDeviceConditionCount> priority{};  // per DeviceCondition
};

struct EscalationRule {
  // An active, unacknowledged alarm is escalated one priority step after this long (event
  // time); 0 disables. Indexed by the alarm's current priority (low, medium).
  std::array<std::int64_t, 2> after_ms{0, 0};
};

struct PatientRules {
  std::string patient;
  int news2_scale = 1;
  std::array<ThresholdRule, kMetricCount> thresholds{};
  std::vector<TrendRule> trends;
  News2Rule news2;
  TechnicalRule technical;
  EscalationRule escalation;
};

class RuleBook {
 public:
  // Rules for a patient index; patients unknown to this book get the defaults.
  const PatientRules& For(PatientIndex patient) const {
    return patient < by_patient_.size() && by_patient_[patient] ? *by_patient_[patient]
                                                                 : defaults_;
  }
  const PatientRules& defaults() const { return defaults_; }
  nlohmann::json effective;  // the merged rules per patient, for `vitalgate check`

 private:
  friend struct RuleCompiler;
  PatientRules defaults_;
  std::vector<std::shared_ptr<const PatientRules>> by_patient_;
};

struct PatientRuleInput {
  PatientIndex index = 0;
  std::string id;
  int news2_scale = 1;
  nlohmann::json overrides;  // merge patch
};

// The built-in adult defaults as a rules document (see docs/rules.md for the sources).
const nlohmann::json& DefaultRulesDocument();

// RFC 7386 JSON merge patch.
nlohmann::json MergePatch(nlohmann::json target, const nlohmann::json& patch);

Result<std::shared_ptr<const RuleBook>> CompileRules(const nlohmann::json& global,
                                                     const std::vector<PatientRuleInput>& patients);

}  // namespace vg
