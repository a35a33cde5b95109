#include "vitalgate/engine/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace vg {
namespace {

constexpr std::int64_t kMsNs = 1'000'000;
constexpr std::int64_t kQuietNs = 60'000 * kMsNs;
// A restored device-reported alarm (sensor off, ...) the device does not report again within
// this time of sending readings is cleared.
constexpr std::int64_t kConfirmNs = 10'000 * kMsNs;
constexpr std::size_t kKeptEventIds = 64;
constexpr std::size_t kKnownRecordsPerDevice = 20'000;

std::string_view UnitText(Metric m) {
  const std::string_view u = Info(m).unit;
  if (u == "Cel") return "°C";
  if (u == "mm[Hg]") return "mmHg";
  return u;
}

std::string ValueText(Metric m, double v) {
  if (Info(m).type == ValueType::kAcvpu) return std::string(1, AcvpuLetter(v));
  if (Info(m).type == ValueType::kBool) return v != 0 ? "yes" : "no";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", v == std::floor(v) ? 0 : 1, v);
  std::string s = buf;
  const std::string_view unit = UnitText(m);
  if (!unit.empty()) {
    s += ' ';
    s += unit;
  }
  return s;
}

std::string DurationText(std::int64_t ms) {
  const std::int64_t s = ms / 1000;
  if (s % 60 == 0 && s >= 60) return std::to_string(s / 60) + " min";
  return std::to_string(s) + " s";
}

Priority StepUp(Priority p) { return p == Priority::kLow ? Priority::kMedium : Priority::kHigh; }

std::int64_t BucketIndex(std::int64_t ts_ms, std::int64_t bucket_ms) {
  return ts_ms >= 0 ? ts_ms / bucket_ms : -1 - (-ts_ms - 1) / bucket_ms;
}

bool DeviceReported(DeviceCondition c) {
  return c == DeviceCondition::kSensorOff || c == DeviceCondition::kOutOfTrack ||
         c == DeviceCondition::kLowPerfusion;
}

bool IsNews2Input(Metric m) {
  switch (m) {
    case Metric::kRespRate:
    case Metric::kSpo2:
    case Metric::kBpSystolic:
    case Metric::kHeartRate:
    case Metric::kPulseRate:
    case Metric::kTemperature:
    case Metric::kConsciousness:
    case Metric::kOnOxygen:
      return true;
    default:
      return false;
  }
}

}  // namespace

void Engine::RecentMean::Add(std::int64_t ts_ms, double value, std::int64_t window_ms) {
  if (window_ms <= 0) return;
  const std::int64_t bucket_ms = std::max<std::int64_t>(1, window_ms / kBuckets);
  const std::int64_t index = BucketIndex(ts_ms, bucket_ms);
  Bucket& b = buckets[static_cast<std::size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
  if (b.index != index) b = Bucket{index, 0, 0};
  b.sum += value;
  ++b.count;
}

std::optional<double> Engine::RecentMean::Mean(std::int64_t now_ms, std::int64_t window_ms) const {
  if (window_ms <= 0) return std::nullopt;
  const std::int64_t bucket_ms = std::max<std::int64_t>(1, window_ms / kBuckets);
  const std::int64_t newest = BucketIndex(now_ms, bucket_ms);
  double sum = 0;
  int count = 0;
  for (const Bucket& b : buckets) {
    if (b.index > newest - kBuckets && b.index <= newest) {
      sum += b.sum;
      count += b.count;
    }
  }
  if (count == 0) return std::nullopt;
  return sum / count;
}

Engine::Engine(std::shared_ptr<const RuleBook> rules, std::vector<EngineDevice> devices,
               std::uint32_t id_generation, std::int64_t mono_now_ns, EngineEnvironment env)
    : rules_(std::move(rules)),
      devices_(std::move(devices)),
      device_state_(devices_.size()),
      known_records_(devices_.size()),
      ids_(id_generation),
      env_(std::move(env)) {
  for (DeviceState& d : device_state_) d.last_reading_mono = mono_now_ns;
}

Priority Engine::Effective(Priority base, int escalations) {
  Priority p = base;
  for (int i = 0; i < escalations; ++i) p = StepUp(p);
  return p;
}

std::uint64_t Engine::PublicId() {
  for (;;) {
    const std::uint64_t id = env_.random_id ? env_.random_id() : next_public_++;
    if (id != 0 && event_to_alarm_.count(id) == 0) return id;
  }
}

Engine::PatientState& Engine::Patient(PatientIndex p) {
  if (p >= patients_.size()) patients_.resize(static_cast<std::size_t>(p) + 1);
  PatientState& ps = patients_[p];
  if (!ps.initialized) {
    for (const TrendRule& rule : rules_->For(p).trends) ps.trends.push_back(TrendState{rule.name, {}, 0, kNever});
    ps.initialized = true;
  }
  return ps;
}

bool Engine::Clinical(PatientIndex p) const {
  // Readings of a device without a patient are stored and published, never evaluated.
  return env_.patients == nullptr || p >= env_.patients->size() ||
         !IsPlaceholderPatient(env_.patients->Name(p));
}

Engine::Source& Engine::SourceOf(MetricState& ms, DeviceIndex device) {
  for (Source& s : ms.sources) {
    if (s.device == device) return s;
  }
  ms.sources.push_back(Source{});
  ms.sources.back().device = device;
  return ms.sources.back();
}

void Engine::ReconcileTrends(PatientState& ps, const PatientRules& rules, std::int64_t wall_ms,
                             AlertSink& sink) {
  std::vector<TrendState> next;
  next.reserve(rules.trends.size());
  for (const TrendRule& rule : rules.trends) {
    auto it = std::find_if(ps.trends.begin(), ps.trends.end(),
                           [&](const TrendState& t) { return t.name == rule.name; });
    if (it != ps.trends.end()) {
      next.push_back(std::move(*it));
      ps.trends.erase(it);
    } else {
      next.push_back(TrendState{rule.name, {}, 0, kNever});
    }
  }
  for (TrendState& gone : ps.trends) {
    if (gone.alarm != 0) Clear(gone.alarm, wall_ms, std::nullopt, "trend rule removed", sink);
  }
  ps.trends = std::move(next);
}

bool Engine::OnReading(Reading& r, std::int64_t mono_ns, AlertSink& sink) {
  if (r.record_key != 0 && r.device < known_records_.size()) {
    auto& known = known_records_[r.device];
    if (known.count(r.record_key) != 0) {
      ++counters_.duplicates;
      return false;
    }
    if (known.size() >= kKnownRecordsPerDevice) known.clear();  // the store keeps the rest
    known.insert(r.record_key);
  }
  r.id = ids_.Next();
  ++counters_.readings;
  if (r.device < device_state_.size()) {
    DeviceState& ds = device_state_[r.device];
    // A value the device itself doubts is no data to watch the patient by: a device that sends
    // nothing else raises the no-data alarm as one that sends nothing at all.
    if ((r.flags & kFlagQuestionable) == 0) {
      ds.last_reading_mono = mono_ns;
      if (ds.alarm[static_cast<std::size_t>(DeviceCondition::kNoData)] != 0) {
        SetDeviceCondition(r.device, DeviceCondition::kNoData, false, r.rx_ms, "", sink);
      }
    }
    // Restored device-reported alarms the device no longer reports: cleared after a while of
    // readings without it saying so again.
    for (std::size_t c = 0; c < kDeviceConditionCount; ++c) {
      if (ds.unconfirmed_since[c] == 0 || ds.alarm[c] == 0) continue;
      if (mono_ns - ds.unconfirmed_since[c] >= kConfirmNs) {
        ds.unconfirmed_since[c] = 0;
        SetDeviceCondition(r.device, static_cast<DeviceCondition>(c), false, r.rx_ms,
                           "device " + devices_[r.device].id + ": " +
                               std::string(Name(static_cast<DeviceCondition>(c))) + " resolved",
                           sink);
      }
    }
  }
  if (r.metric == Metric::kBattery) EvaluateBattery(r, sink);
  if (!Clinical(r.patient) || (r.flags & kFlagUnassigned) != 0) {
    ++counters_.unassigned;
    return true;
  }
  if ((r.flags & kFlagQuestionable) != 0) {
    // The device itself doubts the value (artifact, searching, weak signal): it is forwarded
    // with its flag and counted, but neither alarms nor enters trends or NEWS2.
    ++counters_.questionable;
    return true;
  }
  if ((r.flags & (kFlagClock | kFlagStored)) == (kFlagClock | kFlagStored)) {
    // A stored record whose time cannot be right: forwarded with its flag, counted, and the
    // clock alarm says so; never alarmed on as if it were current.
    ++counters_.not_evaluated_clock;
    RaiseClock(r.device, mono_ns, r.rx_ms, "a stored record's time stamp is implausible", sink);
    return true;
  }
  const bool spot = (r.flags & (kFlagSpot | kFlagStored)) != 0;
  PatientState& ps = Patient(r.patient);
  const PatientRules& rules = rules_->For(r.patient);
  MetricState& ms = ps.metrics[static_cast<std::size_t>(r.metric)];
  Source& src = SourceOf(ms, r.device);
  if (r.ts_ms < src.last_ts) {
    // Older than this device's previous reading of the metric: its rule state only moves
    // forward in its own time. Counted, and the clock alarm says so.
    ++counters_.late;
    RaiseClock(r.device, mono_ns, r.rx_ms, "time stamps went backwards", sink);
    return true;
  }
  src.last_ts = r.ts_ms;
  src.last_mono = mono_ns;
  src.last_value = r.value;
  src.spot = spot;
  if (r.ts_ms >= ms.last_ts || ms.last_device != r.device) {
    ms.last_ts = std::max(ms.last_ts, r.ts_ms);
    ms.last_value = r.value;
    ms.last_device = r.device;
    ms.last_spot = spot;
  }
  if (rules.news2.enabled) ms.recent.Add(r.ts_ms, r.value, rules.news2.average_ms);
  ps.now_ts = std::max(ps.now_ts, r.ts_ms);
  ps.last_mono = mono_ns;

  const ThresholdRule& th = rules.thresholds[static_cast<std::size_t>(r.metric)];
  if (th.enabled) {
    EvaluateThreshold(r.patient, ps, th, ms, r.metric, /*low=*/true, r.ts_ms, r.value, r.device,
                      sink);
    EvaluateThreshold(r.patient, ps, th, ms, r.metric, /*low=*/false, r.ts_ms, r.value, r.device,
                      sink);
  } else if (ms.low_alarm != 0 || ms.high_alarm != 0) {
    // Rule switched off by a reload while an alarm was open.
    for (std::uint64_t* a : {&ms.low_alarm, &ms.high_alarm}) {
      if (*a != 0) Clear(*a, r.ts_ms, r.value, "rule switched off", sink);
      *a = 0;
    }
    for (Source& s : ms.sources) s.low = s.high = {};
  }
  if (!rules.trends.empty()) EvaluateTrends(r.patient, ps, rules, r, sink);
  if (IsNews2Input(r.metric) && rules.news2.enabled &&
      (spot || ps.news2_evaluated_ts == kNever ||
       ps.now_ts - ps.news2_evaluated_ts >= std::min<std::int64_t>(1000, rules.news2.settle_ms) ||
       ps.news2_total < 0 || r.metric == Metric::kBpSystolic || r.metric == Metric::kTemperature ||
       r.metric == Metric::kConsciousness || r.metric == Metric::kOnOxygen)) {
    // A monitor sends several parameters a second; inputs are averaged over a minute, so one
    // evaluation a second of event time is enough, except when a charted value or a spot
    // check arrives.
    ps.news2_evaluated_ts = ps.now_ts;
    EvaluateNews2(r.patient, ps, rules, ps.now_ts, spot, sink);
  }
  if (!ps.open.empty() &&
      (ps.escalation_scanned_ts == kNever || ps.now_ts - ps.escalation_scanned_ts >= 1000)) {
    ps.escalation_scanned_ts = ps.now_ts;
    Escalate(ps, rules, ps.now_ts, /*technical=*/false, sink);
  }
  return true;
}

void Engine::EvaluateThreshold(PatientIndex p, PatientState& ps, const ThresholdRule& rule,
                               MetricState& ms, Metric metric, bool low, std::int64_t ts,
                               double value, std::optional<DeviceIndex> reporter,
                               AlertSink& sink) {
  const std::vector<ThresholdLevel>& levels = low ? rule.low : rule.high;
  std::uint64_t& alarm = low ? ms.low_alarm : ms.high_alarm;
  const std::size_t n = std::min(levels.size(), kMaxLevels);
  // The source that just reported moves its own level states; the alarm follows the most
  // severe level any source holds.
  int target = -1;
  double target_value = value;
  std::vector<DeviceIndex> holders;
  bool pending = false;
  for (Source& s : ms.sources) {
    std::array<LevelState, kMaxLevels>& st = low ? s.low : s.high;
    const bool reporting = reporter && s.device == *reporter;
    int held = -1;
    for (std::size_t i = 0; i < n; ++i) {
      if (reporting) {
        const double limit = levels[i].limit;
        const bool violating = low ? value < limit : value > limit;
        const bool released = low ? value >= limit + rule.hysteresis : value <= limit - rule.hysteresis;
        LevelState& ls = st[i];
        if (ls.held) {
          if (released) ls = LevelState{};
        } else if (violating) {
          if (ls.pending_since == kNever) ls.pending_since = ts;
          if (s.spot || ts - ls.pending_since >= rule.delay_ms) ls.held = true;
        } else {
          ls.pending_since = kNever;
        }
      }
      if (st[i].held) held = static_cast<int>(i);
      if (!st[i].held && st[i].pending_since != kNever) pending = true;
    }
    if (held >= 0) {
      holders.push_back(s.device);
      if (held > target) {
        target = held;
        target_value = s.last_value;
      }
    }
  }
  if (pending) ps.pending_conditions = true;
  if (target < 0) {
    if (alarm != 0) {
      Clear(alarm, ts, value, std::string(Info(metric).display) + " " + ValueText(metric, value) +
                                  " back within limits", sink);
      alarm = 0;
    }
    return;
  }
  const ThresholdLevel& level = levels[static_cast<std::size_t>(target)];
  if (alarm != 0) {
    Alarm& a = alarms_.at(alarm);
    a.sources = holders;
    if (a.base == level.priority) return;  // nothing new
  }
  AlertEvent e;
  e.patient = p;
  e.kind = AlertKind::kThreshold;
  e.metric = metric;
  e.value = target_value;
  e.limit = level.limit;
  e.ts_ms = ts;
  e.message = std::string(Info(metric).display) + " " + ValueText(metric, target_value) +
              (low ? " below " : " above ") + ValueText(metric, level.limit);
  if (alarm == 0) {
    e.priority = level.priority;
    alarm = Raise(std::move(e), RuleKind::kThreshold, false, holders, sink, low);
    ps.open.push_back(alarm);
  } else {
    ChangePriority(alarm, level.priority, std::move(e), sink);
  }
}

void Engine::CompleteStoppedStreams(PatientIndex p, PatientState& ps, std::int64_t mono_ns,
                                    AlertSink& sink) {
  // A condition waiting for its delay on a device that sent nothing since: the stream stopped
  // (a spot reading from a device not flagged as such, a monitor switched off). Its device time
  // runs on with gateway time; once the delay has passed there, the condition holds.
  const PatientRules& rules = rules_->For(p);
  bool still_pending = false;
  for (std::size_t m = 0; m < kMetricCount; ++m) {
    MetricState& ms = ps.metrics[m];
    const ThresholdRule& th = rules.thresholds[m];
    if (!th.enabled || ms.sources.empty()) continue;
    for (bool low : {true, false}) {
      const std::vector<ThresholdLevel>& levels = low ? th.low : th.high;
      const std::size_t n = std::min(levels.size(), kMaxLevels);
      bool completed = false;
      std::int64_t at = kNever;
      for (Source& s : ms.sources) {
        std::array<LevelState, kMaxLevels>& st = low ? s.low : s.high;
        const std::int64_t silent_ms = (mono_ns - s.last_mono) / kMsNs;
        for (std::size_t i = 0; i < n; ++i) {
          LevelState& ls = st[i];
          if (ls.held || ls.pending_since == kNever) continue;
          // Strictly longer than the delay: a stream whose period equals the delay completes
          // with its next reading, as in event time.
          const std::int64_t device_now = s.last_ts + silent_ms;
          if (silent_ms > th.delay_ms && device_now - ls.pending_since >= th.delay_ms) {
            ls.held = true;
            completed = true;
            at = std::max(at, device_now);
          } else {
            still_pending = true;
          }
        }
      }
      if (completed) {
        // Re-evaluate the alarm from the sources' states at the completion time, moving none.
        EvaluateThreshold(p, ps, th, ms, static_cast<Metric>(m), low, at,
                          std::numeric_limits<double>::quiet_NaN(), std::nullopt, sink);
      }
    }
  }
  ps.pending_conditions = still_pending;
}

void Engine::EvaluateTrends(PatientIndex p, PatientState& ps, const PatientRules& rules,
                            const Reading& r, AlertSink& sink) {
  for (std::size_t i = 0; i < rules.trends.size() && i < ps.trends.size(); ++i) {
    const TrendRule& rule = rules.trends[i];
    if (rule.metric != r.metric) continue;
    TrendState& ts = ps.trends[i];
    auto src = std::find_if(ts.sources.begin(), ts.sources.end(),
                            [&](const TrendSource& s) { return s.device == r.device; });
    if (src == ts.sources.end()) {
      ts.sources.push_back(TrendSource{r.device, TrendWindow(rule.window_ms), false});
      src = ts.sources.end() - 1;
    }
    src->window.Add(r.ts_ms, r.value);
    const auto fit = src->window.Compute();
    double change = 0;
    bool valid = false;
    if (fit && fit->samples >= rule.min_samples && fit->span_ms * 2 >= rule.window_ms) {
      change = fit->slope_per_ms * static_cast<double>(rule.window_ms);
      valid = true;
    }
    const double toward = rule.rising ? change : -change;
    if (valid && toward >= rule.change) {
      src->alarming = true;
    } else if (!valid || toward < rule.change * 0.5) {
      // Eased to half the alarming change (hysteresis), or not enough data to say.
      src->alarming = false;
    }
    // Built only when an event is published: formatting is the costliest part of a reading.
    auto what = [&rule, change] {
      return std::string(Info(rule.metric).display) + (rule.rising ? " rising " : " falling ") +
             ValueText(rule.metric, std::fabs(std::round(change * 10) / 10)) + " in " +
             DurationText(rule.window_ms);
    };
    std::vector<DeviceIndex> holders;
    for (const TrendSource& s : ts.sources) {
      if (s.alarming) holders.push_back(s.device);
    }
    if (ts.alarm == 0) {
      if (!holders.empty()) {
        AlertEvent e;
        e.patient = p;
        e.kind = AlertKind::kTrend;
        e.priority = rule.priority;
        e.metric = rule.metric;
        e.value = change;
        e.limit = rule.rising ? rule.change : -rule.change;
        e.ts_ms = r.ts_ms;
        e.message = what();
        ts.alarm = Raise(std::move(e), RuleKind::kTrend, false, holders, sink, false, rule.name);
        ps.open.push_back(ts.alarm);
      }
    } else if (holders.empty()) {
      // A restored alarm waits until a window's worth of data could say it eased.
      if (ts.restored_at != kNever && !valid && r.ts_ms - ts.restored_at < rule.window_ms) continue;
      Clear(ts.alarm, r.ts_ms, change, what(), sink);
      ts.alarm = 0;
      ts.restored_at = kNever;
    } else {
      alarms_.at(ts.alarm).sources = holders;
    }
  }
}

void Engine::EvaluateNews2(PatientIndex p, PatientState& ps, const PatientRules& rules,
                           std::int64_t now, bool spot, AlertSink& sink) {
  auto fresh = [&](Metric m) {
    const MetricState& ms = ps.metrics[static_cast<std::size_t>(m)];
    return ms.last_ts != kNever && now - ms.last_ts <= rules.news2.stale_ms;
  };
  auto value = [&](Metric m) {
    const MetricState& ms = ps.metrics[static_cast<std::size_t>(m)];
    // A spot check is its own value: nothing to average it with.
    if (ms.last_spot) return ms.last_value;
    return ms.recent.Mean(now, rules.news2.average_ms).value_or(ms.last_value);
  };
  const bool hr = fresh(Metric::kHeartRate);
  const bool pulse_ok = hr || fresh(Metric::kPulseRate);
  const bool computable = fresh(Metric::kRespRate) && fresh(Metric::kSpo2) &&
                          fresh(Metric::kBpSystolic) && pulse_ok && fresh(Metric::kTemperature);
  if (!computable) {
    ps.news2_pending = -1;
    if (ps.news2_total >= 0) {
      ps.news2_total = -1;
      std::string missing;
      for (Metric m : {Metric::kRespRate, Metric::kSpo2, Metric::kBpSystolic, Metric::kTemperature}) {
        if (!fresh(m)) missing += std::string(missing.empty() ? "" : ", ") + std::string(Info(m).name);
      }
      if (!pulse_ok) missing += std::string(missing.empty() ? "" : ", ") + "pulse";
      const std::string msg = "NEWS2 not computable: no recent " + missing;
      if (ps.news2_alarm != 0) {
        Clear(ps.news2_alarm, now, std::nullopt, msg, sink);
        ps.news2_alarm = 0;
      } else {
        AlertEvent e;
        e.patient = p;
        e.kind = AlertKind::kNews2;
        e.priority = Priority::kLow;
        e.state = AlertState::kCleared;
        e.ts_ms = now;
        e.message = msg;
        e.id = PublicId();
        e.alarm_id = e.id;
        e.raised_ts_ms = now;
        ++counters_.alerts;
        sink.OnAlert(std::move(e));
      }
    }
    return;
  }
  const MetricState& cons = ps.metrics[static_cast<std::size_t>(Metric::kConsciousness)];
  const MetricState& oxy = ps.metrics[static_cast<std::size_t>(Metric::kOnOxygen)];
  News2Input in;
  in.resp_rate = value(Metric::kRespRate);
  in.spo2 = value(Metric::kSpo2);
  in.bp_systolic = value(Metric::kBpSystolic);
  in.pulse = hr ? value(Metric::kHeartRate) : value(Metric::kPulseRate);
  in.temperature = value(Metric::kTemperature);
  // Consciousness and oxygen are charted states: the latest entry holds until the next one.
  in.consciousness = cons.last_ts != kNever ? static_cast<int>(cons.last_value) : 0;
  in.on_oxygen = oxy.last_ts != kNever && oxy.last_value != 0;
  in.scale = rules.news2_scale;
  const News2Score score = ScoreNews2(in);
  if (score.total == ps.news2_total) {
    ps.news2_pending = -1;
    return;
  }
  // The first score is published at once; a change must hold for settle_ms of event time,
  // unless it comes from a spot check (nothing follows it to settle on).
  if (ps.news2_total >= 0 && rules.news2.settle_ms > 0 && !spot) {
    if (ps.news2_pending != score.total) {
      ps.news2_pending = score.total;
      ps.news2_pending_since = now;
      return;
    }
    if (now - ps.news2_pending_since < rules.news2.settle_ms) return;
  }
  ps.news2_pending = -1;
  ps.news2_total = score.total;
  std::vector<DeviceIndex> sources;
  for (Metric m : {Metric::kRespRate, Metric::kSpo2, Metric::kBpSystolic,
                   hr ? Metric::kHeartRate : Metric::kPulseRate, Metric::kTemperature}) {
    const DeviceIndex d = ps.metrics[static_cast<std::size_t>(m)].last_device;
    if (std::find(sources.begin(), sources.end(), d) == sources.end()) sources.push_back(d);
  }

  AlertEvent e;
  e.patient = p;
  e.kind = AlertKind::kNews2;
  e.priority = rules.news2.priority[static_cast<std::size_t>(score.risk)];
  e.ts_ms = now;
  News2Detail detail;
  detail.score = score.total;
  detail.risk = Name(score.risk);
  detail.sub = score.sub;
  e.news2 = detail;
  e.value = score.total;
  e.message = "NEWS2 " + std::to_string(score.total) + " (" + std::string(Name(score.risk)) +
              " risk)";
  const bool alarming = score.risk != News2Risk::kLow;
  if (alarming) {
    if (ps.news2_alarm == 0) {
      ps.news2_alarm = Raise(std::move(e), RuleKind::kNews2, false, sources, sink);
      ps.open.push_back(ps.news2_alarm);
    } else {
      // Every score change is published, even when the priority stays the same.
      alarms_.at(ps.news2_alarm).sources = sources;
      const Priority base = e.priority;
      ChangePriority(ps.news2_alarm, base, std::move(e), sink);
    }
  } else if (ps.news2_alarm != 0) {
    Alarm& a = alarms_.at(ps.news2_alarm);
    a.last.news2 = e.news2;
    a.last.value = e.value;
    Clear(ps.news2_alarm, now, score.total, e.message, sink);
    ps.news2_alarm = 0;
  } else {
    // Low risk without an open alarm: a score update, published as a cleared event.
    e.state = AlertState::kCleared;
    e.id = PublicId();
    e.alarm_id = e.id;
    e.raised_ts_ms = now;
    ++counters_.alerts;
    sink.OnAlert(std::move(e));
  }
}

void Engine::EvaluateBattery(const Reading& r, AlertSink& sink) {
  if (r.device >= devices_.size()) return;
  const TechnicalRule& tech = rules_->For(devices_[r.device].patient).technical;
  const auto idx = static_cast<std::size_t>(DeviceCondition::kLowBattery);
  const bool open = device_state_[r.device].alarm[idx] != 0;
  if (!open && r.value < tech.low_battery_pct) {
    SetDeviceCondition(r.device, DeviceCondition::kLowBattery, true, r.ts_ms,
                       "device " + devices_[r.device].id + ": battery low", sink);
  } else if (open && r.value >= tech.low_battery_pct + 5) {
    SetDeviceCondition(r.device, DeviceCondition::kLowBattery, false, r.ts_ms,
                       "device " + devices_[r.device].id + ": battery recharged", sink);
  }
}

void Engine::Escalate(PatientState& ps, const PatientRules& rules, std::int64_t now,
                      bool technical, AlertSink& sink) {
  for (std::size_t i = 0; i < ps.open.size(); ++i) {
    auto it = alarms_.find(ps.open[i]);
    if (it == alarms_.end()) continue;
    Alarm& a = it->second;
    if (a.technical_time != technical || a.last.state != AlertState::kActive) continue;
    const Priority current = a.last.priority;
    if (current == Priority::kHigh) continue;
    const std::int64_t after = rules.escalation.after_ms[static_cast<std::size_t>(current)];
    if (after <= 0 || now - a.priority_since < after) continue;
    ++a.escalations;
    a.last.priority = Effective(a.base, a.escalations);
    a.last.ts_ms = now;
    const std::string suffix = " (escalated: not acknowledged)";
    if (a.last.message.size() < suffix.size() ||
        a.last.message.compare(a.last.message.size() - suffix.size(), suffix.size(), suffix) != 0) {
      a.last.message += suffix;
    }
    a.priority_since = now;
    Emit(a, sink);
    a.ack_from = a.last.id;
  }
}

void Engine::OnCondition(DeviceIndex d, DeviceCondition c, bool active, std::int64_t wall_ms,
                         std::int64_t mono_ns, AlertSink& sink, std::string_view detail) {
  if (d >= devices_.size() || device_state_[d].removed) return;
  DeviceState& ds = device_state_[d];
  const std::string& id = devices_[d].id;
  const auto idx = static_cast<std::size_t>(c);
  switch (c) {
    case DeviceCondition::kDisconnected:
      if (active && !ds.link_down) {
        ds.link_down = true;
        ds.link_down_since = mono_ns;
        OnTick(wall_ms, mono_ns, sink);  // a zero delay raises at once
      } else if (!active && ds.link_down) {
        ds.link_down = false;
        // The no-data timer restarts when the link comes back.
        ds.last_reading_mono = mono_ns;
        SetDeviceCondition(d, c, false, wall_ms, "device " + id + " reconnected", sink);
      }
      break;
    case DeviceCondition::kReadingsDropped:
      ds.last_drop_mono = mono_ns;
      if (active) {
        SetDeviceCondition(d, c, true, wall_ms,
                           "device " + id + ": readings dropped (gateway queue or storage full)",
                           sink);
      }
      break;
    case DeviceCondition::kBadFrames:
      OnDecodeError(d, wall_ms, mono_ns, sink);
      break;
    case DeviceCondition::kClock:
      // Raised by every implausible time stamp; cleared after a quiet minute.
      if (active) {
        ds.last_clock_mono = mono_ns;
        SetDeviceCondition(d, c, true, wall_ms,
                           detail.empty() ? "device " + id + ": implausible time stamps"
                                          : std::string(detail),
                           sink);
      }
      break;
    default: {
      ds.reported[idx] = active;
      if (active) ds.unconfirmed_since[idx] = 0;  // the device says so again
      std::string what = std::string(Name(c));
      std::replace(what.begin(), what.end(), '_', ' ');
      SetDeviceCondition(d, c, active, wall_ms,
                         "device " + id + ": " + what + (active ? "" : " resolved"), sink);
      break;
    }
  }
}

void Engine::OnClockOffset(DeviceIndex d, double offset_s, std::int64_t wall_ms,
                           std::int64_t mono_ns, AlertSink& sink) {
  if (d >= devices_.size() || device_state_[d].removed) return;
  std::string detail = "device " + devices_[d].id + ": implausible time stamps";
  if (offset_s != 0) {
    const double a = std::fabs(offset_s);
    char buf[64];
    if (a >= 86400) {
      std::snprintf(buf, sizeof buf, "%.1f days", a / 86400);
    } else if (a >= 3600) {
      std::snprintf(buf, sizeof buf, "%.1f h", a / 3600);
    } else if (a >= 60) {
      std::snprintf(buf, sizeof buf, "%.1f min", a / 60);
    } else {
      std::snprintf(buf, sizeof buf, "%.0f s", a);
    }
    detail = "device " + devices_[d].id + ": clock " + buf + (offset_s > 0 ? " ahead of" : " behind") +
             " the gateway";
  }
  OnCondition(d, DeviceCondition::kClock, true, wall_ms, mono_ns, sink, detail);
}

void Engine::OnDecodeError(DeviceIndex d, std::int64_t wall_ms, std::int64_t mono_ns,
                           AlertSink& sink) {
  if (d >= devices_.size() || device_state_[d].removed) return;
  DeviceState& ds = device_state_[d];
  constexpr std::int64_t kMinute = 60'000'000'000;
  if (mono_ns - ds.bad_window_start > kMinute) {
    ds.bad_window_start = mono_ns;
    ds.bad_in_window = 0;
  }
  ++ds.bad_in_window;
  ds.last_bad_mono = mono_ns;
  const int limit = rules_->For(devices_[d].patient).technical.bad_frames_per_min;
  if (ds.bad_in_window >= limit) {
    SetDeviceCondition(d, DeviceCondition::kBadFrames, true, wall_ms,
                       "device " + devices_[d].id + ": many undecodable frames or refused readings", sink);
  }
}

void Engine::OnGatewayCondition(DeviceCondition condition, bool active, std::string_view detail,
                                std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink,
                                std::optional<Priority> priority) {
  GatewayCondition& g = gateway_[static_cast<std::size_t>(condition)];
  if (condition == DeviceCondition::kReadingsDropped) {
    // Drops clear themselves after a quiet minute (OnTick), like a device's.
    for (DeviceIndex d = 0; d < devices_.size(); ++d) {
      if (!device_state_[d].removed) device_state_[d].last_drop_mono = mono_ns;
    }
    if (active) {
      for (DeviceIndex d = 0; d < devices_.size(); ++d) {
        if (!device_state_[d].removed) {
          SetDeviceCondition(d, condition, true, wall_ms, "gateway: " + std::string(detail), sink);
        }
      }
    }
    return;
  }
  const bool priority_changed = g.priority != priority;
  g.active = active;
  g.detail = std::string(detail);
  g.priority = priority;
  if (!active) {
    for (auto& [patient, key] : g.alarms) {
      Clear(key, wall_ms, std::nullopt, "gateway: " + std::string(detail), sink);
    }
    g.alarms.clear();
    return;
  }
  if (priority_changed && priority) {
    for (auto& [patient, key] : g.alarms) {
      AlertEvent update = alarms_.at(key).last;
      update.ts_ms = wall_ms;
      update.message = "gateway: " + std::string(detail);
      ChangePriority(key, *priority, std::move(update), sink);
    }
  }
  RaiseGatewayConditions(wall_ms, sink);
}

void Engine::RaiseGatewayConditions(std::int64_t wall_ms, AlertSink& sink) {
  // Reported on every patient that has a device, since every patient's data is affected.
  for (std::size_t c = 0; c < kDeviceConditionCount; ++c) {
    GatewayCondition& g = gateway_[c];
    if (!g.active) continue;
    for (DeviceIndex d = 0; d < devices_.size(); ++d) {
      if (device_state_[d].removed) continue;
      const PatientIndex p = devices_[d].patient;
      if (g.alarms.count(p) != 0) continue;
      AlertEvent e;
      e.patient = p;
      e.kind = AlertKind::kTechnical;
      e.priority = g.priority.value_or(rules_->For(p).technical.priority[c]);
      e.condition = static_cast<DeviceCondition>(c);
      e.ts_ms = wall_ms;
      e.message = "gateway: " + g.detail;
      const std::uint64_t key = Raise(std::move(e), RuleKind::kGateway, true, {}, sink);
      g.alarms[p] = key;
      Patient(p).open.push_back(key);
    }
  }
}

void Engine::OnTick(std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink) {
  for (DeviceIndex d = 0; d < devices_.size(); ++d) {
    DeviceState& ds = device_state_[d];
    if (ds.removed) continue;
    const EngineDevice& dev = devices_[d];
    const TechnicalRule& tech = rules_->For(dev.patient).technical;
    const std::int64_t disconnect_ms = dev.disconnect_alarm_ms.value_or(tech.disconnect_alarm_ms);
    const std::int64_t no_data_ms = dev.no_data_ms.value_or(tech.no_data_ms);
    const auto disc = static_cast<std::size_t>(DeviceCondition::kDisconnected);
    if (ds.link_down && ds.alarm[disc] == 0 && !dev.intermittent &&
        mono_ns - ds.link_down_since >= disconnect_ms * kMsNs) {
      SetDeviceCondition(d, DeviceCondition::kDisconnected, true, wall_ms,
                         "device " + dev.id + " disconnected", sink);
    }
    // While the link is down the disconnect alarm speaks for the device; no second alarm. An
    // intermittent device is judged by its no-data time alone.
    const auto nodata = static_cast<std::size_t>(DeviceCondition::kNoData);
    if (dev.watch_no_data && (!ds.link_down || dev.intermittent) && ds.alarm[nodata] == 0 &&
        mono_ns - ds.last_reading_mono >= no_data_ms * kMsNs) {
      SetDeviceCondition(d, DeviceCondition::kNoData, true, wall_ms,
                         "device " + dev.id + ": no data for " + DurationText(no_data_ms), sink);
    }
    auto quiet = [&](DeviceCondition c, std::int64_t last, const char* text) {
      const auto i = static_cast<std::size_t>(c);
      if (ds.alarm[i] != 0 && mono_ns - last >= kQuietNs) {
        SetDeviceCondition(d, c, false, wall_ms, "device " + dev.id + ": " + text, sink);
      }
    };
    quiet(DeviceCondition::kBadFrames, ds.last_bad_mono, "frames decode again");
    quiet(DeviceCondition::kReadingsDropped, ds.last_drop_mono, "no readings dropped for 1 min");
    quiet(DeviceCondition::kClock, ds.last_clock_mono, "time stamps plausible again for 1 min");
  }
  for (PatientIndex p = 0; p < patients_.size(); ++p) {
    PatientState& ps = patients_[p];
    if (ps.pending_conditions) CompleteStoppedStreams(p, ps, mono_ns, sink);
    if (ps.open.empty()) continue;
    const PatientRules& rules = rules_->For(p);
    Escalate(ps, rules, wall_ms, true, sink);
    // An alarm whose patient sends nothing more still escalates: its event time runs on with
    // gateway time from its last reading.
    if (ps.now_ts != kNever && mono_ns > ps.last_mono) {
      const std::int64_t now = ps.now_ts + (mono_ns - ps.last_mono) / kMsNs;
      Escalate(ps, rules, now, false, sink);
    }
  }
}

void Engine::SetDeviceCondition(DeviceIndex d, DeviceCondition c, bool active,
                                std::int64_t wall_ms, std::string message, AlertSink& sink) {
  DeviceState& ds = device_state_[d];
  const auto idx = static_cast<std::size_t>(c);
  const PatientIndex p = devices_[d].patient;
  if (active && ds.alarm[idx] == 0) {
    AlertEvent e;
    e.patient = p;
    e.kind = AlertKind::kTechnical;
    e.priority = rules_->For(p).technical.priority[idx];
    e.device = d;
    e.condition = c;
    e.ts_ms = wall_ms;
    e.message = std::move(message);
    ds.alarm[idx] = Raise(std::move(e), RuleKind::kDevice, /*technical_time=*/true, {d}, sink);
    Patient(p).open.push_back(ds.alarm[idx]);
  } else if (!active && ds.alarm[idx] != 0) {
    Clear(ds.alarm[idx], wall_ms, std::nullopt, std::move(message), sink);
    ds.alarm[idx] = 0;
  }
}

std::uint64_t Engine::Raise(AlertEvent event, RuleKind rule, bool technical_time,
                            std::vector<DeviceIndex> sources, AlertSink& sink, bool low,
                            std::string trend) {
  const std::uint64_t key = next_key_++;
  const std::uint64_t id = PublicId();
  event.id = id;
  event.alarm_id = id;
  event.raised_ts_ms = event.ts_ms;
  event.state = AlertState::kActive;
  Alarm& a = alarms_[key];
  a.last = std::move(event);
  a.base = a.last.priority;
  a.priority_since = a.last.ts_ms;
  a.technical_time = technical_time;
  a.rule = rule;
  a.low = low;
  a.trend = std::move(trend);
  a.sources = std::move(sources);
  // The raising event's id is the alarm id.
  a.event_ids.push_back(id);
  a.ack_from = id;
  event_to_alarm_[id] = key;
  ++counters_.alerts;
  AlertEvent copy = a.last;
  if (env_.persist_alarms) copy.persist = PersistState(a);
  sink.OnAlert(std::move(copy));
  return key;
}

void Engine::Emit(Alarm& a, AlertSink& sink) {
  a.last.id = PublicId();
  a.event_ids.push_back(a.last.id);
  const std::uint64_t key = event_to_alarm_.at(a.last.alarm_id);
  event_to_alarm_[a.last.id] = key;
  if (a.event_ids.size() > kKeptEventIds) {
    // Keep the alarm id (the first) and the latest events.
    event_to_alarm_.erase(a.event_ids[1]);
    a.event_ids.erase(a.event_ids.begin() + 1);
  }
  ++counters_.alerts;
  AlertEvent copy = a.last;
  const bool open = a.last.state == AlertState::kActive || a.last.state == AlertState::kAcknowledged;
  if (env_.persist_alarms && open) copy.persist = PersistState(a);
  sink.OnAlert(std::move(copy));
}

void Engine::ChangePriority(std::uint64_t key, Priority base, AlertEvent update, AlertSink& sink) {
  Alarm& a = alarms_.at(key);
  const Priority before = a.last.priority;
  a.base = base;
  const Priority after = Effective(base, a.escalations);
  const bool news2 = a.last.kind == AlertKind::kNews2;
  if (after == before && !news2) return;
  update.alarm_id = a.last.alarm_id;
  update.raised_ts_ms = a.last.raised_ts_ms;
  update.priority = after;
  // Rising priority re-alerts even an acknowledged alarm; otherwise the state is kept.
  update.state = after > before ? AlertState::kActive : a.last.state;
  update.acked_by = update.state == AlertState::kAcknowledged ? a.last.acked_by : std::string();
  if (after != before) a.priority_since = update.ts_ms;
  a.last = std::move(update);
  Emit(a, sink);
  if (after > before) a.ack_from = a.last.id;
}

void Engine::Clear(std::uint64_t key, std::int64_t ts, std::optional<double> value,
                   std::string message, AlertSink& sink) {
  Close(key, AlertState::kCleared, ts, value, std::move(message), sink);
}

void Engine::End(std::uint64_t key, std::int64_t ts, std::string message, AlertSink& sink) {
  Close(key, AlertState::kEnded, ts, std::nullopt, std::move(message), sink);
}

void Engine::Close(std::uint64_t key, AlertState state, std::int64_t ts,
                   std::optional<double> value, std::string message, AlertSink& sink) {
  auto it = alarms_.find(key);
  if (it == alarms_.end()) return;
  Alarm& a = it->second;
  a.last.state = state;
  a.last.ts_ms = ts;
  if (value && !std::isnan(*value)) a.last.value = value;
  a.last.message = std::move(message);
  Emit(a, sink);
  for (std::uint64_t e : a.event_ids) event_to_alarm_.erase(e);
  if (a.last.patient < patients_.size()) {
    auto& open = patients_[a.last.patient].open;
    open.erase(std::remove(open.begin(), open.end(), key), open.end());
  }
  alarms_.erase(it);
}

Engine::AckResult Engine::Acknowledge(std::uint64_t alert_id, std::string_view by,
                                      std::int64_t wall_ms, AlertSink& sink) {
  auto ev = event_to_alarm_.find(alert_id);
  if (ev == event_to_alarm_.end()) {
    ++counters_.acks_rejected;
    return AckResult::kUnknown;
  }
  Alarm& a = alarms_.at(ev->second);
  if (alert_id != a.ack_from) {
    // Events older than the one that alerted at this priority: the alarm id (always kept
    // first), and whatever comes before ack_from while it is still among the kept ids.
    const auto& ids = a.event_ids;
    const auto at = std::find(ids.begin(), ids.end(), alert_id);
    const auto from = std::find(ids.begin(), ids.end(), a.ack_from);
    if (from != ids.end() ? at < from : at == ids.begin()) {
      ++counters_.acks_rejected;
      return AckResult::kStale;
    }
  }
  if (a.last.state == AlertState::kAcknowledged) return AckResult::kAlreadyAcknowledged;
  if (a.last.state != AlertState::kActive) {
    ++counters_.acks_rejected;
    return AckResult::kNotActive;
  }
  a.last.state = AlertState::kAcknowledged;
  a.last.acked_by = std::string(by);
  a.last.ts_ms = wall_ms;
  ++counters_.acks;
  a.last.by_ack = true;
  Emit(a, sink);
  a.last.by_ack = false;
  return AckResult::kAcknowledged;
}

void Engine::SetRules(std::shared_ptr<const RuleBook> rules, std::int64_t wall_ms,
                      AlertSink& sink) {
  rules_ = std::move(rules);
  for (PatientIndex p = 0; p < patients_.size(); ++p) {
    PatientState& ps = patients_[p];
    const PatientRules& pr = rules_->For(p);
    if (ps.initialized) ReconcileTrends(ps, pr, wall_ms, sink);
    for (std::size_t m = 0; m < kMetricCount; ++m) {
      MetricState& ms = ps.metrics[m];
      const ThresholdRule& th = pr.thresholds[m];
      for (bool low : {true, false}) {
        std::uint64_t& alarm = low ? ms.low_alarm : ms.high_alarm;
        const std::vector<ThresholdLevel>& levels = low ? th.low : th.high;
        if (alarm != 0 && (!th.enabled || levels.empty())) {
          Clear(alarm, wall_ms, std::nullopt, "rule switched off", sink);
          alarm = 0;
        }
        // Re-derive level states from each source's last value so that an open alarm is
        // neither cleared nor raised again just because the limits were reloaded.
        for (Source& s : ms.sources) {
          std::array<LevelState, kMaxLevels>& st = low ? s.low : s.high;
          for (std::size_t i = 0; i < kMaxLevels; ++i) {
            LevelState& ls = st[i];
            ls = LevelState{};
            if (!th.enabled || i >= levels.size() || s.last_ts == kNever) continue;
            const bool violating =
                low ? s.last_value < levels[i].limit : s.last_value > levels[i].limit;
            if (violating) {
              ls.pending_since = s.last_ts;
              ls.held = alarm != 0;
            }
          }
        }
      }
    }
  }
}

void Engine::AddDevice(DeviceIndex index, EngineDevice device, std::int64_t wall_ms,
                       std::int64_t mono_ns, AlertSink& sink) {
  if (index >= devices_.size()) {
    devices_.resize(static_cast<std::size_t>(index) + 1);
    device_state_.resize(static_cast<std::size_t>(index) + 1);
    known_records_.resize(static_cast<std::size_t>(index) + 1);
  }
  const bool unassigned = device.unassigned;
  devices_[index] = std::move(device);
  device_state_[index] = DeviceState{};
  device_state_[index].last_reading_mono = mono_ns;
  if (unassigned) {
    SetDeviceCondition(index, DeviceCondition::kUnassigned, true, wall_ms,
                       "device " + devices_[index].id + " has no patient: its readings are not evaluated",
                       sink);
  }
  RaiseGatewayConditions(wall_ms, sink);
}

void Engine::RaiseClock(DeviceIndex d, std::int64_t mono_ns, std::int64_t wall_ms, std::string_view why,
                        AlertSink& sink) {
  if (d >= device_state_.size()) return;
  device_state_[d].last_clock_mono = mono_ns;
  SetDeviceCondition(d, DeviceCondition::kClock, true, wall_ms,
                     "device " + devices_[d].id + ": " + std::string(why), sink);
}

void Engine::UpdateDevice(DeviceIndex index, EngineDevice device, std::int64_t wall_ms,
                          std::int64_t mono_ns, AlertSink& sink) {
  if (index >= devices_.size() || device_state_[index].removed) {
    AddDevice(index, std::move(device), wall_ms, mono_ns, sink);
    return;
  }
  Assign(index, device.patient, device.unassigned, wall_ms, mono_ns, sink);
  EngineDevice& dev = devices_[index];
  dev.no_data_ms = device.no_data_ms;
  dev.disconnect_alarm_ms = device.disconnect_alarm_ms;
  dev.watch_no_data = device.watch_no_data;
  dev.intermittent = device.intermittent;
}

void Engine::Start(std::int64_t wall_ms, AlertSink& sink) {
  for (DeviceIndex d = 0; d < devices_.size(); ++d) {
    if (devices_[d].unassigned && !device_state_[d].removed) {
      SetDeviceCondition(d, DeviceCondition::kUnassigned, true, wall_ms,
                         "device " + devices_[d].id + " has no patient: its readings are not evaluated",
                         sink);
    }
  }
}

void Engine::Detach(DeviceIndex d, PatientIndex p, std::int64_t wall_ms, std::string_view why,
                    AlertSink& sink) {
  if (p >= patients_.size()) return;
  PatientState& ps = patients_[p];
  const std::string message = "device " + devices_[d].id + " " + std::string(why);
  // Its condition state on this patient goes; its values no longer feed NEWS2 there.
  for (MetricState& ms : ps.metrics) {
    ms.sources.erase(std::remove_if(ms.sources.begin(), ms.sources.end(),
                                    [d](const Source& s) { return s.device == d; }),
                     ms.sources.end());
    if (ms.last_device == d && ms.last_ts != kNever) {
      ms.last_ts = kNever;
      ms.recent = RecentMean{};
    }
  }
  for (TrendState& t : ps.trends) {
    t.sources.erase(std::remove_if(t.sources.begin(), t.sources.end(),
                                   [d](const TrendSource& s) { return s.device == d; }),
                    t.sources.end());
  }
  // Alarms it alone held end; NEWS2 ends when any of its inputs came from it; its own
  // technical alarms end. Others stay.
  const std::vector<std::uint64_t> open = ps.open;
  for (std::uint64_t key : open) {
    auto it = alarms_.find(key);
    if (it == alarms_.end()) continue;
    Alarm& a = it->second;
    if (a.rule == RuleKind::kGateway) continue;
    auto& src = a.sources;
    const bool fed = std::find(src.begin(), src.end(), d) != src.end();
    if (!fed) continue;
    src.erase(std::remove(src.begin(), src.end(), d), src.end());
    const bool ends = a.rule == RuleKind::kNews2 || a.rule == RuleKind::kDevice || src.empty();
    if (!ends) continue;
    const RuleKind rule = a.rule;
    const bool low = a.low;
    const std::string trend = a.trend;
    const std::optional<Metric> metric = a.last.metric;
    End(key, wall_ms, message, sink);
    // Forget the references to the ended alarm.
    if (rule == RuleKind::kNews2) {
      ps.news2_alarm = 0;
      ps.news2_total = -1;
      ps.news2_pending = -1;
    } else if (rule == RuleKind::kThreshold && metric) {
      MetricState& ms = ps.metrics[static_cast<std::size_t>(*metric)];
      (low ? ms.low_alarm : ms.high_alarm) = 0;
    } else if (rule == RuleKind::kTrend) {
      for (TrendState& t : ps.trends) {
        if (t.name == trend) t.alarm = 0;
      }
    } else if (rule == RuleKind::kDevice) {
      for (std::uint64_t& k : device_state_[d].alarm) {
        if (k == key) k = 0;
      }
    }
  }
  // A gateway-wide alarm carried for this patient stays only while it has devices.
  bool has_device = false;
  for (DeviceIndex o = 0; o < devices_.size(); ++o) {
    has_device = has_device || (o != d && !device_state_[o].removed && devices_[o].patient == p);
  }
  if (!has_device) {
    for (GatewayCondition& g : gateway_) {
      auto it = g.alarms.find(p);
      if (it == g.alarms.end()) continue;
      End(it->second, wall_ms, message, sink);
      g.alarms.erase(it);
    }
  }
}

void Engine::Assign(DeviceIndex d, PatientIndex patient, bool unassigned, std::int64_t wall_ms,
                    std::int64_t mono_ns, AlertSink& sink) {
  if (d >= devices_.size() || device_state_[d].removed) return;
  EngineDevice& dev = devices_[d];
  if (dev.patient == patient && dev.unassigned == unassigned) return;
  const PatientIndex old = dev.patient;
  DeviceState& ds = device_state_[d];
  if (dev.unassigned) {
    // It has a patient now: the condition resolved.
    SetDeviceCondition(d, DeviceCondition::kUnassigned, false, wall_ms,
                       "device " + dev.id + " has a patient again", sink);
  }
  Detach(d, old, wall_ms, unassigned ? "was unassigned from its patient" : "moved to another patient",
         sink);
  dev.patient = patient;
  dev.unassigned = unassigned;
  // Conditions that still hold are raised again for the device's new patient.
  if (unassigned) {
    SetDeviceCondition(d, DeviceCondition::kUnassigned, true, wall_ms,
                       "device " + dev.id + " has no patient: its readings are not evaluated",
                       sink);
  }
  for (std::size_t c = 0; c < kDeviceConditionCount; ++c) {
    if (ds.reported[c]) {
      std::string what = std::string(Name(static_cast<DeviceCondition>(c)));
      std::replace(what.begin(), what.end(), '_', ' ');
      SetDeviceCondition(d, static_cast<DeviceCondition>(c), true, wall_ms,
                         "device " + dev.id + ": " + what, sink);
    }
  }
  ds.last_reading_mono = std::max(ds.last_reading_mono, mono_ns - 1);
  RaiseGatewayConditions(wall_ms, sink);
  OnTick(wall_ms, mono_ns, sink);  // a link that is still down is reported for the new patient
}

void Engine::RemoveDevice(DeviceIndex d, std::int64_t wall_ms, AlertSink& sink) {
  if (d >= devices_.size() || device_state_[d].removed) return;
  Detach(d, devices_[d].patient, wall_ms, "was removed", sink);
  device_state_[d] = DeviceState{};
  device_state_[d].removed = true;
}

void Engine::AddKnownRecord(DeviceIndex device, std::uint64_t key) {
  if (device >= known_records_.size()) known_records_.resize(static_cast<std::size_t>(device) + 1);
  if (known_records_[device].size() < kKnownRecordsPerDevice) known_records_[device].insert(key);
}

std::vector<OpenAlarmInfo> Engine::OpenAlarms() const {
  std::vector<OpenAlarmInfo> out;
  out.reserve(alarms_.size());
  for (const auto& [key, a] : alarms_) {
    const AlertEvent& e = a.last;
    out.push_back(OpenAlarmInfo{e.alarm_id, e.patient, e.device, e.kind, e.metric, e.condition,
                                e.priority, e.state, e.message, e.raised_ts_ms, e.acked_by});
  }
  std::sort(out.begin(), out.end(), [](const OpenAlarmInfo& x, const OpenAlarmInfo& y) {
    if (x.priority != y.priority) return x.priority > y.priority;
    return x.raised_ts_ms < y.raised_ts_ms;
  });
  return out;
}

// ---- Alarm state across restarts ----

namespace {

const char* RuleName(int rule) {
  static constexpr const char* kNames[] = {"threshold", "trend", "news2", "device", "gateway"};
  return rule >= 0 && rule < 5 ? kNames[rule] : "?";
}

}  // namespace

std::string Engine::PersistState(const Alarm& a) const {
  nlohmann::json j;
  j["v"] = 1;
  j["rule"] = RuleName(static_cast<int>(a.rule));
  const AlertEvent& e = a.last;
  j["patient"] = env_.patients != nullptr && e.patient < env_.patients->size()
                     ? env_.patients->Name(e.patient)
                     : std::to_string(e.patient);
  j["kind"] = Name(e.kind);
  if (e.metric) j["metric"] = Info(*e.metric).name;
  j["low"] = a.low;
  if (!a.trend.empty()) j["trend"] = a.trend;
  if (e.condition) j["condition"] = Name(*e.condition);
  if (e.device && *e.device < devices_.size()) j["device"] = devices_[*e.device].id;
  nlohmann::json sources = nlohmann::json::array();
  for (DeviceIndex d : a.sources) {
    if (d < devices_.size()) sources.push_back(devices_[d].id);
  }
  j["sources"] = sources;
  j["base"] = Name(a.base);
  j["priority"] = Name(e.priority);
  j["escalations"] = a.escalations;
  j["ack_from"] = a.ack_from;
  j["priority_since"] = a.priority_since;
  j["technical_time"] = a.technical_time;
  j["state"] = Name(e.state);
  j["alarm_id"] = e.alarm_id;
  j["event_ids"] = a.event_ids;
  if (e.value) j["value"] = *e.value;
  if (e.limit) j["limit"] = *e.limit;
  if (e.news2) {
    j["score"] = e.news2->score;
    j["risk"] = e.news2->risk;
    j["sub"] = e.news2->sub;
  }
  j["message"] = e.message;
  j["ts"] = e.ts_ms;
  j["raised_ts"] = e.raised_ts_ms;
  j["acked_by"] = e.acked_by;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int Engine::Restore(const std::vector<std::string>& states, std::int64_t wall_ms,
                    std::int64_t mono_ns, AlertSink& sink) {
  int bad = 0;
  for (const std::string& s : states) {
    if (!RestoreOne(s, wall_ms, mono_ns, sink)) ++bad;
  }
  return bad;
}

bool Engine::RestoreOne(const std::string& text, std::int64_t wall_ms, std::int64_t mono_ns,
                        AlertSink& sink) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("v", 0) != 1 || env_.patients == nullptr) {
    return false;
  }
  auto str = [&j](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  auto device_index = [this](const std::string& id) -> std::optional<DeviceIndex> {
    for (DeviceIndex d = 0; d < devices_.size(); ++d) {
      if (!device_state_[d].removed && devices_[d].id == id) return d;
    }
    return std::nullopt;
  };
  const auto patient = env_.patients->Find(str("patient"));
  const std::string rule = str("rule");
  const auto base = PriorityFromName(str("base"));
  const auto priority = PriorityFromName(str("priority"));
  if (!patient || !base || !priority || !j.contains("alarm_id") || !j["alarm_id"].is_number_unsigned()) {
    return false;
  }
  Alarm a;
  a.last.patient = *patient;
  a.last.alarm_id = j["alarm_id"].get<std::uint64_t>();
  a.last.priority = *priority;
  a.last.state = str("state") == "acknowledged" ? AlertState::kAcknowledged : AlertState::kActive;
  a.last.message = str("message");
  a.last.ts_ms = j.value("ts", std::int64_t{0});
  a.last.raised_ts_ms = j.value("raised_ts", std::int64_t{0});
  a.last.acked_by = str("acked_by");
  if (j.contains("value") && j["value"].is_number()) a.last.value = j["value"].get<double>();
  if (j.contains("limit") && j["limit"].is_number()) a.last.limit = j["limit"].get<double>();
  if (!str("metric").empty()) a.last.metric = MetricFromName(str("metric"));
  a.base = *base;
  a.escalations = j.value("escalations", 0);
  a.ack_from = j.value("ack_from", std::uint64_t{0});
  a.priority_since = j.value("priority_since", std::int64_t{0});
  a.technical_time = j.value("technical_time", false);
  a.low = j.value("low", false);
  a.trend = str("trend");
  if (j.contains("event_ids") && j["event_ids"].is_array()) {
    for (const auto& id : j["event_ids"]) {
      if (id.is_number_unsigned()) a.event_ids.push_back(id.get<std::uint64_t>());
    }
  }
  if (a.event_ids.empty()) a.event_ids.push_back(a.last.alarm_id);
  if (a.ack_from == 0) a.ack_from = a.last.alarm_id;  // saved before ack_from was kept: any event
  a.last.id = a.event_ids.back();
  bool gone = false;  // a device it depends on is gone or no longer on this patient
  if (j.contains("sources") && j["sources"].is_array()) {
    for (const auto& s : j["sources"]) {
      const auto d = s.is_string() ? device_index(s.get<std::string>()) : std::nullopt;
      if (d && devices_[*d].patient == *patient) {
        a.sources.push_back(*d);
      } else {
        gone = true;
      }
    }
  }
  std::optional<DeviceCondition> condition;
  for (std::size_t c = 0; c < kDeviceConditionCount; ++c) {
    if (Name(static_cast<DeviceCondition>(c)) == str("condition")) condition = static_cast<DeviceCondition>(c);
  }
  if (rule == "threshold") {
    a.rule = RuleKind::kThreshold;
    a.last.kind = AlertKind::kThreshold;
    if (!a.last.metric) return false;
  } else if (rule == "trend") {
    a.rule = RuleKind::kTrend;
    a.last.kind = AlertKind::kTrend;
    if (!a.last.metric || a.trend.empty()) return false;
  } else if (rule == "news2") {
    a.rule = RuleKind::kNews2;
    a.last.kind = AlertKind::kNews2;
    News2Detail d;
    d.score = j.value("score", 0);
    for (News2Risk risk : {News2Risk::kLow, News2Risk::kLowMedium, News2Risk::kMedium, News2Risk::kHigh}) {
      if (Name(risk) == str("risk")) d.risk = Name(risk);
    }
    if (j.contains("sub") && j["sub"].is_array() && j["sub"].size() == d.sub.size()) {
      for (std::size_t i = 0; i < d.sub.size(); ++i) d.sub[i] = static_cast<std::int8_t>(j["sub"][i].get<int>());
    }
    a.last.news2 = d;
  } else if (rule == "device" || rule == "gateway") {
    a.rule = rule == "device" ? RuleKind::kDevice : RuleKind::kGateway;
    a.last.kind = AlertKind::kTechnical;
    if (!condition) return false;
    a.last.condition = condition;
    if (a.rule == RuleKind::kDevice) {
      const auto d = device_index(str("device"));
      if (!d || devices_[*d].patient != *patient) {
        gone = true;
      } else {
        a.last.device = *d;
      }
    }
  } else {
    return false;
  }
  // Register it, then either wire it to the state that will clear it, or end it.
  const std::uint64_t key = next_key_++;
  for (std::uint64_t id : a.event_ids) event_to_alarm_[id] = key;
  PatientState& ps = Patient(*patient);
  alarms_.emplace(key, std::move(a));
  ps.open.push_back(key);
  Alarm& alarm = alarms_.at(key);
  if (gone || (alarm.rule != RuleKind::kGateway && alarm.rule != RuleKind::kDevice && alarm.sources.empty())) {
    End(key, wall_ms, "its device is no longer with this patient (changed while the gateway was down)",
        sink);
    return true;
  }
  switch (alarm.rule) {
    case RuleKind::kThreshold: {
      MetricState& ms = ps.metrics[static_cast<std::size_t>(*alarm.last.metric)];
      (alarm.low ? ms.low_alarm : ms.high_alarm) = key;
      const ThresholdRule& th = rules_->For(*patient).thresholds[static_cast<std::size_t>(*alarm.last.metric)];
      const std::vector<ThresholdLevel>& levels = alarm.low ? th.low : th.high;
      std::size_t level = 0;
      for (std::size_t i = 0; i < levels.size() && i < kMaxLevels; ++i) {
        if (levels[i].priority == alarm.base) level = i;
      }
      for (DeviceIndex d : alarm.sources) {
        Source& s = SourceOf(ms, d);
        (alarm.low ? s.low : s.high)[level].held = true;
      }
      break;
    }
    case RuleKind::kTrend:
      for (const TrendRule& tr : rules_->For(*patient).trends) {
        if (tr.name != alarm.trend) continue;
        for (TrendState& t : ps.trends) {
          if (t.name != tr.name) continue;
          t.alarm = key;
          t.restored_at = alarm.last.ts_ms;
          for (DeviceIndex d : alarm.sources) t.sources.push_back(TrendSource{d, TrendWindow(tr.window_ms), true});
        }
      }
      if (std::none_of(ps.trends.begin(), ps.trends.end(), [&](const TrendState& t) { return t.alarm == key; })) {
        Clear(key, wall_ms, std::nullopt, "trend rule removed", sink);
      }
      break;
    case RuleKind::kNews2:
      ps.news2_alarm = key;
      ps.news2_total = alarm.last.news2 ? alarm.last.news2->score : -1;
      break;
    case RuleKind::kDevice: {
      const DeviceIndex d = *alarm.last.device;
      DeviceState& ds = device_state_[d];
      const auto c = static_cast<std::size_t>(*condition);
      ds.alarm[c] = key;
      switch (*condition) {
        case DeviceCondition::kDisconnected:
          ds.link_down = true;
          ds.link_down_since = mono_ns;
          break;
        case DeviceCondition::kBadFrames:
          ds.last_bad_mono = mono_ns;
          break;
        case DeviceCondition::kReadingsDropped:
          ds.last_drop_mono = mono_ns;
          break;
        case DeviceCondition::kClock:
          ds.last_clock_mono = mono_ns;
          break;
        case DeviceCondition::kUnassigned:
          if (!devices_[d].unassigned) {
            Clear(key, wall_ms, std::nullopt, "device " + devices_[d].id + " has a patient again", sink);
            ds.alarm[c] = 0;
          }
          break;
        default:
          if (DeviceReported(*condition)) {
            ds.reported[c] = true;
            ds.unconfirmed_since[c] = mono_ns;
          }
          break;
      }
      break;
    }
    case RuleKind::kGateway:
      gateway_[static_cast<std::size_t>(*condition)].alarms[*patient] = key;
      gateway_[static_cast<std::size_t>(*condition)].active = true;
      break;
  }
  return true;
}

}  // namespace vg
