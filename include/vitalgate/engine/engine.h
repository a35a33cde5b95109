// Engine: the clinical rule engine. Pure: no I/O, no threads, no clock of its own; time comes in
// with every call (event time from readings, monotonic time for technical timers), so replaying
// a recording gives the same alerts as the live run.
//
// Per reading it evaluates threshold rules (levels, hysteresis, condition delay), trend rules
// (least-squares slope over a window), NEWS2, and device battery; on ticks it evaluates the
// technical timers (no data, link down, bad frames). It owns the alarm lifecycle: raise,
// priority change, escalation when not acknowledged in time, acknowledgement, clearing. Each
// change of state or priority emits exactly one AlertEvent; nothing repeats while a state holds.
//
// Thread-safety: none; one thread (the engine thread, or `replay`) owns an Engine.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vitalgate/core/alert.h"
#include "vitalgate/core/ids.h"
#include "vitalgate/core/reading.h"
#include "vitalgate/engine/news2.h"
#include "vitalgate/engine/rules.h"
#include "vitalgate/engine/trend.h"

namespace vg {

class AlertSink {
 public:
  virtual ~AlertSink() = default;
  virtual void OnAlert(AlertEvent&& event) = 0;
};

struct EngineDevice {
  std::string id;
  PatientIndex patient = 0;
  std::optional<std::int64_t> no_data_ms;          // overrides the patient's technical rule
  std::optional<std::int64_t> disconnect_alarm_ms;  // overrides the patient's technical rule
  bool watch_no_data = true;  // false for devices that only report now and then (e.g. a scale)
};

struct EngineCounters {
  std::uint64_t readings = 0;
  std::uint64_t out_of_order = 0;  // older than the patient's latest value of that metric
  std::uint64_t questionable = 0;  // flagged by the device; forwarded, not evaluated
  std::uint64_t alerts = 0;
  std::uint64_t acks = 0;
  std::uint64_t acks_rejected = 0;
};

class Engine {
 public:
  static constexpr std::size_t kMaxLevels = 4;
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

  // REQUIRES: every device's patient index is below the size the RuleBook was built for or is
  // served by its defaults.
  Engine(std::shared_ptr<const RuleBook> rules, std::vector<EngineDevice> devices,
         std::uint32_t id_generation, std::int64_t mono_now_ns);

  // Accepts one plausible reading: assigns its id and evaluates every rule in event time.
  void OnReading(Reading& reading, std::int64_t mono_ns, AlertSink& sink);

  // A device condition (link, sensor off, ...) started or ended.
  void OnCondition(DeviceIndex device, DeviceCondition condition, bool active,
                   std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink);

  // One undecodable frame or line from the device.
  void OnDecodeError(DeviceIndex device, std::int64_t wall_ms, std::int64_t mono_ns,
                     AlertSink& sink);

  // Gateway-wide technical problem (e.g. storage) for every patient.
  void OnGatewayCondition(DeviceCondition condition, bool active, std::string_view detail,
                          std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink);

  // Technical timers; call about once a second.
  void OnTick(std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink);

  enum class AckResult { kAcknowledged, kAlreadyAcknowledged, kNotActive, kUnknown };
  // `alert_id` may be the id of any event of the alarm.
  AckResult Acknowledge(std::uint64_t alert_id, std::string_view by, std::int64_t wall_ms,
                        AlertSink& sink);

  // Swaps in new rules (SIGHUP). Alarms whose rule disappeared are cleared.
  void SetRules(std::shared_ptr<const RuleBook> rules, std::int64_t wall_ms, AlertSink& sink);

  std::uint64_t NextId() { return ids_.Next(); }
  const EngineCounters& counters() const { return counters_; }
  std::size_t open_alarms() const { return alarms_.size(); }

 private:
  struct LevelState {
    std::int64_t pending_since = kNever;
    bool held = false;
  };
  struct DirectionState {
    std::array<LevelState, kMaxLevels> levels{};
    std::uint64_t alarm = 0;
  };
  // Sums of the recent readings of a metric in a few time buckets: the NEWS2 input mean.
  struct RecentMean {
    static constexpr int kBuckets = 6;
    struct Bucket {
      std::int64_t index = -1;
      double sum = 0;
      int count = 0;
    };
    std::array<Bucket, kBuckets> buckets{};
    void Add(std::int64_t ts_ms, double value, std::int64_t window_ms);
    std::optional<double> Mean(std::int64_t now_ms, std::int64_t window_ms) const;
  };
  struct MetricState {
    std::int64_t last_ts = kNever;
    double last_value = 0;
    DirectionState low, high;
    RecentMean recent;
  };
  struct TrendState {
    std::string name;
    TrendWindow window;
    std::uint64_t alarm = 0;
  };
  struct PatientState {
    std::array<MetricState, kMetricCount> metrics{};
    std::vector<TrendState> trends;
    std::int64_t now_ts = kNever;
    int news2_total = -1;  // published aggregate; -1: not computable (yet)
    int news2_pending = -1;  // a different aggregate waiting to settle; -1: none
    std::int64_t news2_evaluated_ts = kNever;
    std::int64_t escalation_scanned_ts = kNever;
    std::int64_t news2_pending_since = 0;
    std::uint64_t news2_alarm = 0;
    std::vector<std::uint64_t> open;  // ids of this patient's open alarms
    bool initialized = false;         // trend states built from the rules
  };
  struct DeviceState {
    std::int64_t last_reading_mono = 0;
    bool link_down = false;
    std::int64_t link_down_since = 0;
    std::int64_t bad_window_start = 0;
    int bad_in_window = 0;
    std::int64_t last_bad_mono = 0;
    std::int64_t last_drop_mono = 0;
    std::array<std::uint64_t, kDeviceConditionCount> alarm{};
  };
  struct Alarm {
    AlertEvent last;              // the last event published; template for the next
    Priority base = Priority::kLow;  // priority from the rule
    int escalations = 0;          // steps added because it was not acknowledged in time
    std::int64_t priority_since = 0;  // event/wall time the current priority was published
    bool technical_time = false;  // times are wall clock (technical) rather than event time
    std::vector<std::uint64_t> event_ids;
  };

  PatientState& Patient(PatientIndex p);
  void EvaluateThreshold(PatientIndex p, PatientState& ps, const ThresholdRule& rule,
                         const Reading& r, bool low, AlertSink& sink);
  void EvaluateTrends(PatientIndex p, PatientState& ps, const PatientRules& rules,
                      const Reading& r, AlertSink& sink);
  void EvaluateNews2(PatientIndex p, PatientState& ps, const PatientRules& rules, std::int64_t ts,
                     AlertSink& sink);
  void EvaluateBattery(const Reading& r, AlertSink& sink);
  void Escalate(PatientState& ps, const PatientRules& rules, std::int64_t now, bool technical,
                AlertSink& sink);
  void SetDeviceCondition(DeviceIndex d, DeviceCondition c, bool active, std::int64_t wall_ms,
                          std::string message, AlertSink& sink);
  void ReconcileTrends(PatientState& ps, const PatientRules& rules, std::int64_t wall_ms,
                       AlertSink& sink);

  // Lifecycle primitives.
  std::uint64_t Raise(AlertEvent event, bool technical_time, AlertSink& sink);
  void ChangePriority(std::uint64_t alarm_id, Priority base, AlertEvent update, AlertSink& sink);
  void Clear(std::uint64_t alarm_id, std::int64_t ts, std::optional<double> value,
             std::string message, AlertSink& sink);
  void Emit(Alarm& alarm, AlertSink& sink);
  static Priority Effective(Priority base, int escalations);

  std::shared_ptr<const RuleBook> rules_;
  std::vector<EngineDevice> devices_;
  std::vector<DeviceState> device_state_;
  std::vector<PatientState> patients_;
  std::unordered_map<std::uint64_t, Alarm> alarms_;
  std::unordered_map<std::uint64_t, std::uint64_t> event_to_alarm_;
  IdAllocator ids_;
  EngineCounters counters_;
};

}  // namespace vg
