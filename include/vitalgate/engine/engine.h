// Engine: the clinical rule engine. Pure: no I/O, no threads, no clock of its own; time comes in
// with every call (event time from readings, gateway time as `mono_ns` for timers), so replaying
// a recording (with the recording's time as gateway time) gives the same alerts as the live run.
//
// Per reading it evaluates threshold rules (levels, hysteresis, condition delay), trend rules
// (least-squares slope over a window), NEWS2, and device battery; on ticks it evaluates the
// timers: technical ones (no data, link down, bad frames, clock, drops), pending conditions of a
// device whose stream stopped (completed after `delay` of gateway time), and escalation of
// alarms whose patient sends nothing more. It owns the alarm lifecycle: raise, priority change,
// escalation when not acknowledged in time, acknowledgement, clearing, and ending (when the
// device that fed an alarm leaves its patient). Each change of state or priority emits exactly
// one AlertEvent; nothing repeats while a state holds.
//
// Per source: alarms are one per patient and metric (per rule), but each device feeding a
// patient keeps its own condition state, in its own clock: two oximeters on one patient never
// cancel each other's condition, and one device's clock cannot hold back another's readings.
// An alarm holds while any of its devices' conditions holds.
//
// Spot checks (kFlagSpot, kFlagStored) have no condition delay, and NEWS2 neither averages
// nor settles them.
//
// Open alarms can be carried across a restart: every event of an open alarm carries its state
// (AlertEvent::persist), and Restore() takes those states back before the first reading, so an
// alarm whose condition still holds keeps its id and is not published again.
//
// Thread-safety: none; one thread (the engine thread, or `replay`) owns an Engine.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "vitalgate/core/alert.h"
#include "vitalgate/core/ids.h"
#include "vitalgate/core/patient_directory.h"
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
  PatientIndex patient = 0;  // its patient, or its placeholder when `unassigned`
  std::optional<std::int64_t> no_data_ms;          // overrides the patient's technical rule
  std::optional<std::int64_t> disconnect_alarm_ms;  // overrides the patient's technical rule
  bool watch_no_data = true;  // false for devices that only report now and then (e.g. a scale)
  bool unassigned = false;
  bool intermittent = false;  // connects only to send: a link down is normal, not an alarm
};

struct EngineCounters {
  std::uint64_t readings = 0;
  std::uint64_t questionable = 0;  // flagged by the device; forwarded, not evaluated
  std::uint64_t unassigned = 0;    // from a device without a patient; forwarded, not evaluated
  std::uint64_t not_evaluated_clock = 0;  // stored records with an implausible time
  std::uint64_t late = 0;          // older than the same device's previous reading
  std::uint64_t duplicates = 0;    // records a device sent again
  std::uint64_t alerts = 0;
  std::uint64_t acks = 0;
  std::uint64_t acks_rejected = 0;
};

// What the engine needs from its surroundings.
struct EngineEnvironment {
  // Patient names, for alarm states that survive a restart; may be null (no persistence).
  const PatientDirectory* patients = nullptr;
  // Source of public alarm and event ids (random, so they cannot be guessed). Null: a counter
  // (replay and tests).
  std::function<std::uint64_t()> random_id;
  bool persist_alarms = false;  // fill AlertEvent::persist
};

// An open alarm as the status page shows it (no vital values beyond the alarm's message).
struct OpenAlarmInfo {
  std::uint64_t alarm_id = 0;  // public
  PatientIndex patient = 0;
  std::optional<DeviceIndex> device;
  AlertKind kind = AlertKind::kThreshold;
  std::optional<Metric> metric;
  std::optional<DeviceCondition> condition;
  Priority priority = Priority::kLow;
  AlertState state = AlertState::kActive;
  std::string message;
  std::int64_t raised_ts_ms = 0;
  std::string acked_by;
};

class Engine {
 public:
  static constexpr std::size_t kMaxLevels = 4;
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

  // REQUIRES: every device's patient index is below the size the RuleBook was built for or is
  // served by its defaults.
  Engine(std::shared_ptr<const RuleBook> rules, std::vector<EngineDevice> devices,
         std::uint32_t id_generation, std::int64_t mono_now_ns, EngineEnvironment env = {});

  // After Restore(), before the first reading: raises what the device table says from the
  // start (devices without a patient).
  void Start(std::int64_t wall_ms, AlertSink& sink);

  // Accepts one plausible reading: assigns its id and evaluates every rule in event time.
  // Returns false when the reading is a record the device sent before (not to be forwarded).
  bool OnReading(Reading& reading, std::int64_t mono_ns, AlertSink& sink);

  // A device condition (link, sensor off, clock, ...) started or ended. For kClock, `detail`
  // says what was wrong (the device and its offset).
  void OnCondition(DeviceIndex device, DeviceCondition condition, bool active,
                   std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink,
                   std::string_view detail = {});

  // A reading of the device had an implausible time stamp: `offset_s` is its device time minus
  // the gateway's (0 when unknown). Raises the `clock` alarm; cleared after a quiet minute.
  void OnClockOffset(DeviceIndex device, double offset_s, std::int64_t wall_ms,
                     std::int64_t mono_ns, AlertSink& sink);

  // One undecodable frame or line from the device.
  void OnDecodeError(DeviceIndex device, std::int64_t wall_ms, std::int64_t mono_ns,
                     AlertSink& sink);

  // Gateway-wide technical problem (storage, certificate, destination) for every patient that
  // has a device. `priority` overrides the rule's (the certificate expiry ladder).
  void OnGatewayCondition(DeviceCondition condition, bool active, std::string_view detail,
                          std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink,
                          std::optional<Priority> priority = std::nullopt);

  // Timers; call about every 250 ms (replay: with the recording's time).
  void OnTick(std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink);

  enum class AckResult { kAcknowledged, kAlreadyAcknowledged, kNotActive, kUnknown, kStale };
  // `alert_id` may be the public id of any event of the alarm since it last alerted (raised,
  // rose in priority or escalated); one of an earlier event is kStale: whoever sent it saw the
  // alarm at a lower priority than it has now.
  AckResult Acknowledge(std::uint64_t alert_id, std::string_view by, std::int64_t wall_ms,
                        AlertSink& sink);

  // Swaps in new rules (SIGHUP). Alarms whose rule disappeared are cleared.
  void SetRules(std::shared_ptr<const RuleBook> rules, std::int64_t wall_ms, AlertSink& sink);

  // Device changes (SIGHUP, cmd/assign). A device that leaves a patient (moved, unassigned,
  // removed) ends that patient's alarms it alone fed (state `ended`, one event each); a device
  // without a patient raises the technical alarm `unassigned`.
  void AddDevice(DeviceIndex index, EngineDevice device, std::int64_t wall_ms,
                 std::int64_t mono_ns, AlertSink& sink);
  void Assign(DeviceIndex device, PatientIndex patient, bool unassigned, std::int64_t wall_ms,
              std::int64_t mono_ns, AlertSink& sink);
  // A device restarted with new settings (SIGHUP): its patient as Assign, its technical limits
  // replaced; its alarm state is kept. An unknown or removed device is added.
  void UpdateDevice(DeviceIndex index, EngineDevice device, std::int64_t wall_ms,
                    std::int64_t mono_ns, AlertSink& sink);
  void RemoveDevice(DeviceIndex device, std::int64_t wall_ms, AlertSink& sink);

  // Records already seen (from the store), so a device sending them again is recognised.
  void AddKnownRecord(DeviceIndex device, std::uint64_t key);

  // Open alarms from before a restart (AlertEvent::persist of their last event), before the
  // first reading. Alarms whose device is gone or left the patient end (one event each);
  // unreadable states are skipped and counted in the return value.
  int Restore(const std::vector<std::string>& states, std::int64_t wall_ms, std::int64_t mono_ns,
              AlertSink& sink);

  std::uint64_t NextId() { return ids_.Next(); }
  const EngineCounters& counters() const { return counters_; }
  std::size_t open_alarms() const { return alarms_.size(); }
  // Every open alarm, most severe first, then oldest first.
  std::vector<OpenAlarmInfo> OpenAlarms() const;

 private:
  struct LevelState {
    std::int64_t pending_since = kNever;
    bool held = false;
  };
  // One device's condition state for one metric of one patient.
  struct Source {
    DeviceIndex device = 0;
    std::int64_t last_ts = kNever;  // its last reading's event time
    std::int64_t last_mono = 0;     // when that reading arrived (gateway time)
    double last_value = 0;
    bool spot = false;
    std::array<LevelState, kMaxLevels> low{};
    std::array<LevelState, kMaxLevels> high{};
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
    std::int64_t last_ts = kNever;  // latest reading of any source: the NEWS2 input
    double last_value = 0;
    DeviceIndex last_device = 0;
    bool last_spot = false;
    RecentMean recent;
    std::vector<Source> sources;
    std::uint64_t low_alarm = 0;
    std::uint64_t high_alarm = 0;
  };
  struct TrendSource {
    DeviceIndex device = 0;
    TrendWindow window;
    bool alarming = false;
  };
  struct TrendState {
    std::string name;
    std::vector<TrendSource> sources;
    std::uint64_t alarm = 0;
    std::int64_t restored_at = kNever;  // a restored alarm waits for a full window of data
  };
  struct PatientState {
    std::array<MetricState, kMetricCount> metrics{};
    std::vector<TrendState> trends;
    std::int64_t now_ts = kNever;
    std::int64_t last_mono = 0;  // gateway time of its last reading
    int news2_total = -1;  // published aggregate; -1: not computable (yet)
    int news2_pending = -1;  // a different aggregate waiting to settle; -1: none
    std::int64_t news2_evaluated_ts = kNever;
    std::int64_t escalation_scanned_ts = kNever;
    std::int64_t news2_pending_since = 0;
    std::uint64_t news2_alarm = 0;
    std::vector<std::uint64_t> open;  // keys of this patient's open alarms
    bool initialized = false;         // trend states built from the rules
    bool pending_conditions = false;  // some source has a pending (delayed) condition
  };
  struct DeviceState {
    std::int64_t last_reading_mono = 0;
    bool link_down = false;
    std::int64_t link_down_since = 0;
    std::int64_t bad_window_start = 0;
    int bad_in_window = 0;
    std::int64_t last_bad_mono = 0;
    std::int64_t last_drop_mono = 0;
    std::int64_t last_clock_mono = 0;
    std::array<std::uint64_t, kDeviceConditionCount> alarm{};
    std::array<bool, kDeviceConditionCount> reported{};  // device-reported conditions that hold
    // Restored device-reported alarms not yet confirmed by the device: cleared when it sends
    // readings for a while without saying so again.
    std::array<std::int64_t, kDeviceConditionCount> unconfirmed_since{};
    bool removed = false;
  };
  enum class RuleKind : std::uint8_t { kThreshold, kTrend, kNews2, kDevice, kGateway };
  struct Alarm {
    AlertEvent last;                 // the last event published; template for the next
    Priority base = Priority::kLow;  // priority from the rule
    int escalations = 0;             // steps added because it was not acknowledged in time
    std::int64_t priority_since = 0;  // event/wall time the current priority was published
    bool technical_time = false;     // times are wall clock (technical) rather than event time
    std::vector<std::uint64_t> event_ids;  // public ids of its events (the latest few)
    // The event that alerted at the current priority (raise, rise, escalation): an
    // acknowledgement naming an earlier event (seen at a lower priority) does not count.
    std::uint64_t ack_from = 0;
    RuleKind rule = RuleKind::kThreshold;
    bool low = false;                // threshold direction
    std::string trend;               // trend rule name
    std::vector<DeviceIndex> sources;  // devices whose data holds it
  };

  PatientState& Patient(PatientIndex p);
  bool Clinical(PatientIndex p) const;
  Source& SourceOf(MetricState& ms, DeviceIndex device);
  // `reporter`: the device whose reading (ts, value) this is; none when re-evaluating.
  void EvaluateThreshold(PatientIndex p, PatientState& ps, const ThresholdRule& rule,
                         MetricState& ms, Metric metric, bool low, std::int64_t ts,
                         double value, std::optional<DeviceIndex> reporter, AlertSink& sink);
  void EvaluateTrends(PatientIndex p, PatientState& ps, const PatientRules& rules,
                      const Reading& r, AlertSink& sink);
  void EvaluateNews2(PatientIndex p, PatientState& ps, const PatientRules& rules, std::int64_t ts,
                     bool spot, AlertSink& sink);
  void EvaluateBattery(const Reading& r, AlertSink& sink);
  void CompleteStoppedStreams(PatientIndex p, PatientState& ps, std::int64_t mono_ns,
                              AlertSink& sink);
  void Escalate(PatientState& ps, const PatientRules& rules, std::int64_t now, bool technical,
                AlertSink& sink);
  void SetDeviceCondition(DeviceIndex d, DeviceCondition c, bool active, std::int64_t wall_ms,
                          std::string message, AlertSink& sink);
  // The device's clock cannot be right (`why`): the `clock` alarm, quiet again after a minute
  // without another such reading.
  void RaiseClock(DeviceIndex d, std::int64_t mono_ns, std::int64_t wall_ms, std::string_view why,
                  AlertSink& sink);
  void ReconcileTrends(PatientState& ps, const PatientRules& rules, std::int64_t wall_ms,
                       AlertSink& sink);
  // The device no longer feeds patient `p`: forget its condition state there and end the
  // alarms it alone held.
  void Detach(DeviceIndex d, PatientIndex p, std::int64_t wall_ms, std::string_view why,
              AlertSink& sink);
  void RaiseGatewayConditions(std::int64_t wall_ms, AlertSink& sink);

  // Lifecycle primitives.
  std::uint64_t Raise(AlertEvent event, RuleKind rule, bool technical_time,
                      std::vector<DeviceIndex> sources, AlertSink& sink, bool low = false,
                      std::string trend = {});
  void ChangePriority(std::uint64_t key, Priority base, AlertEvent update, AlertSink& sink);
  void Clear(std::uint64_t key, std::int64_t ts, std::optional<double> value, std::string message,
             AlertSink& sink);
  void End(std::uint64_t key, std::int64_t ts, std::string message, AlertSink& sink);
  void Close(std::uint64_t key, AlertState state, std::int64_t ts, std::optional<double> value,
             std::string message, AlertSink& sink);
  void Emit(Alarm& alarm, AlertSink& sink);
  std::uint64_t PublicId();
  std::string PersistState(const Alarm& a) const;
  bool RestoreOne(const std::string& state, std::int64_t wall_ms, std::int64_t mono_ns,
                  AlertSink& sink);
  static Priority Effective(Priority base, int escalations);

  std::shared_ptr<const RuleBook> rules_;
  std::vector<EngineDevice> devices_;
  std::vector<DeviceState> device_state_;
  std::vector<PatientState> patients_;
  std::unordered_map<std::uint64_t, Alarm> alarms_;  // by internal key
  std::unordered_map<std::uint64_t, std::uint64_t> event_to_alarm_;  // public event id -> key
  std::vector<std::unordered_set<std::uint64_t>> known_records_;     // per device
  struct GatewayCondition {
    bool active = false;
    std::string detail;
    std::optional<Priority> priority;
    std::unordered_map<PatientIndex, std::uint64_t> alarms;  // per patient
  };
  std::array<GatewayCondition, kDeviceConditionCount> gateway_{};
  IdAllocator ids_;
  EngineEnvironment env_;
  std::uint64_t next_key_ = 1;
  std::uint64_t next_public_ = 1;  // without a random source
  EngineCounters counters_;
};

}  // namespace vg
