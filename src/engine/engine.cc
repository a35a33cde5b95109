#include "vitalgate/engine/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace vg {
namespace {

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
               std::uint32_t id_generation, std::int64_t mono_now_ns)
    : rules_(std::move(rules)),
      devices_(std::move(devices)),
      device_state_(devices_.size()),
      ids_(id_generation) {
  for (DeviceState& d : device_state_) d.last_reading_mono = mono_now_ns;
}

Priority Engine::Effective(Priority base, int escalations) {
  Priority p = base;
  for (int i = 0; i < escalations; ++i) p = StepUp(p);
  return p;
}

Engine::PatientState& Engine::Patient(PatientIndex p) {
  if (p >= patients_.size()) patients_.resize(static_cast<std::size_t>(p) + 1);
  PatientState& ps = patients_[p];
  if (!ps.initialized) {
    for (const TrendRule& rule : rules_->For(p).trends) {
      ps.trends.push_back(TrendState{rule.name, TrendWindow(rule.window_ms), 0});
    }
    ps.initialized = true;
  }
  return ps;
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
      next.push_back(TrendState{rule.name, TrendWindow(rule.window_ms), 0});
    }
  }
  for (TrendState& gone : ps.trends) {
    if (gone.alarm != 0) Clear(gone.alarm, wall_ms, std::nullopt, "trend rule removed", sink);
  }
  ps.trends = std::move(next);
}

void Engine::OnReading(Reading& r, std::int64_t mono_ns, AlertSink& sink) {
  r.id = ids_.Next();
  ++counters_.readings;
  if (r.device < device_state_.size()) {
    DeviceState& ds = device_state_[r.device];
    ds.last_reading_mono = mono_ns;
    if (ds.alarm[static_cast<std::size_t>(DeviceCondition::kNoData)] != 0) {
      SetDeviceCondition(r.device, DeviceCondition::kNoData, false, r.rx_ms, "", sink);
    }
  }
  if (r.metric == Metric::kBattery) EvaluateBattery(r, sink);

  PatientState& ps = Patient(r.patient);
  const PatientRules& rules = rules_->For(r.patient);
  MetricState& ms = ps.metrics[static_cast<std::size_t>(r.metric)];
  if (r.ts_ms < ms.last_ts) {
    // Late reading: forwarded, but rule state only moves forward in event time.
    ++counters_.out_of_order;
    return;
  }
  if ((r.flags & kFlagQuestionable) != 0) {
    // The device itself doubts the value (artifact, searching, weak signal): it is forwarded
    // with its flag, but neither alarms nor enters trends or NEWS2.
    ++counters_.questionable;
    return;
  }
  ms.last_ts = r.ts_ms;
  ms.last_value = r.value;
  if (rules.news2.enabled) ms.recent.Add(r.ts_ms, r.value, rules.news2.average_ms);
  ps.now_ts = std::max(ps.now_ts, r.ts_ms);

  const ThresholdRule& th = rules.thresholds[static_cast<std::size_t>(r.metric)];
  if (th.enabled) {
    EvaluateThreshold(r.patient, ps, th, r, /*low=*/true, sink);
    EvaluateThreshold(r.patient, ps, th, r, /*low=*/false, sink);
  } else if (ms.low.alarm != 0 || ms.high.alarm != 0) {
    // Rule switched off by a reload while an alarm was open.
    for (DirectionState* ds : {&ms.low, &ms.high}) {
      if (ds->alarm != 0) Clear(ds->alarm, r.ts_ms, r.value, "rule switched off", sink);
      *ds = DirectionState{};
    }
  }
  if (!rules.trends.empty()) EvaluateTrends(r.patient, ps, rules, r, sink);
  switch (r.metric) {
    case Metric::kRespRate:
    case Metric::kSpo2:
    case Metric::kBpSystolic:
    case Metric::kHeartRate:
    case Metric::kPulseRate:
    case Metric::kTemperature:
    case Metric::kConsciousness:
    case Metric::kOnOxygen:
      // A monitor sends several parameters a second; inputs are averaged over a minute, so one
      // evaluation a second of event time is enough, except when a charted value arrives.
      if (rules.news2.enabled &&
          (ps.news2_evaluated_ts == kNever ||
           ps.now_ts - ps.news2_evaluated_ts >= std::min<std::int64_t>(1000, rules.news2.settle_ms) ||
           ps.news2_total < 0 ||
           r.metric == Metric::kBpSystolic || r.metric == Metric::kTemperature ||
           r.metric == Metric::kConsciousness || r.metric == Metric::kOnOxygen)) {
        ps.news2_evaluated_ts = ps.now_ts;
        EvaluateNews2(r.patient, ps, rules, ps.now_ts, sink);
      }
      break;
    default:
      break;
  }
  if (!ps.open.empty() &&
      (ps.escalation_scanned_ts == kNever || ps.now_ts - ps.escalation_scanned_ts >= 1000)) {
    ps.escalation_scanned_ts = ps.now_ts;
    Escalate(ps, rules, ps.now_ts, /*technical=*/false, sink);
  }
}

void Engine::EvaluateThreshold(PatientIndex p, PatientState& ps, const ThresholdRule& rule,
                               const Reading& r, bool low, AlertSink& sink) {
  const std::vector<ThresholdLevel>& levels = low ? rule.low : rule.high;
  MetricState& ms = ps.metrics[static_cast<std::size_t>(r.metric)];
  DirectionState& dir = low ? ms.low : ms.high;
  const double v = r.value;
  int target = -1;
  const std::size_t n = std::min(levels.size(), kMaxLevels);
  for (std::size_t i = 0; i < n; ++i) {
    const double limit = levels[i].limit;
    const bool violating = low ? v < limit : v > limit;
    const bool released = low ? v >= limit + rule.hysteresis : v <= limit - rule.hysteresis;
    LevelState& st = dir.levels[i];
    if (st.held) {
      if (released) st = LevelState{};
    } else if (violating) {
      if (st.pending_since == kNever) st.pending_since = r.ts_ms;
      if (r.ts_ms - st.pending_since >= rule.delay_ms) st.held = true;
    } else {
      st.pending_since = kNever;
    }
    if (st.held) target = static_cast<int>(i);
  }
  if (target < 0) {
    if (dir.alarm != 0) {
      Clear(dir.alarm, r.ts_ms, v, std::string(Info(r.metric).display) + " " + ValueText(r.metric, v) +
                                       " back within limits", sink);
      dir.alarm = 0;
    }
    return;
  }
  const ThresholdLevel& level = levels[static_cast<std::size_t>(target)];
  if (dir.alarm != 0 && alarms_.at(dir.alarm).base == level.priority) return;  // nothing new
  AlertEvent e;
  e.patient = p;
  e.kind = AlertKind::kThreshold;
  e.metric = r.metric;
  e.value = v;
  e.limit = level.limit;
  e.ts_ms = r.ts_ms;
  e.message = std::string(Info(r.metric).display) + " " + ValueText(r.metric, v) +
              (low ? " below " : " above ") + ValueText(r.metric, level.limit);
  if (dir.alarm == 0) {
    e.priority = level.priority;
    dir.alarm = Raise(std::move(e), /*technical_time=*/false, sink);
    ps.open.push_back(dir.alarm);
  } else {
    ChangePriority(dir.alarm, level.priority, std::move(e), sink);
  }
}

void Engine::EvaluateTrends(PatientIndex p, PatientState& ps, const PatientRules& rules,
                            const Reading& r, AlertSink& sink) {
  for (std::size_t i = 0; i < rules.trends.size() && i < ps.trends.size(); ++i) {
    const TrendRule& rule = rules.trends[i];
    if (rule.metric != r.metric) continue;
    TrendState& ts = ps.trends[i];
    ts.window.Add(r.ts_ms, r.value);
    const auto fit = ts.window.Compute();
    double change = 0;
    bool valid = false;
    if (fit && fit->samples >= rule.min_samples && fit->span_ms * 2 >= rule.window_ms) {
      change = fit->slope_per_ms * static_cast<double>(rule.window_ms);
      valid = true;
    }
    const double toward = rule.rising ? change : -change;
    // Built only when an event is published: formatting is the costliest part of a reading.
    auto what = [&rule, change] {
      return std::string(Info(rule.metric).display) + (rule.rising ? " rising " : " falling ") +
             ValueText(rule.metric, std::fabs(std::round(change * 10) / 10)) + " in " +
             DurationText(rule.window_ms);
    };
    if (ts.alarm == 0) {
      if (valid && toward >= rule.change) {
        AlertEvent e;
        e.patient = p;
        e.kind = AlertKind::kTrend;
        e.priority = rule.priority;
        e.metric = rule.metric;
        e.value = change;
        e.limit = rule.rising ? rule.change : -rule.change;
        e.ts_ms = r.ts_ms;
        e.message = what();
        ts.alarm = Raise(std::move(e), false, sink);
        ps.open.push_back(ts.alarm);
      }
    } else if (!valid || toward < rule.change * 0.5) {
      // Cleared once the trend has eased to half the alarming change (hysteresis).
      Clear(ts.alarm, r.ts_ms, change, what(), sink);
      ts.alarm = 0;
    }
  }
}

void Engine::EvaluateNews2(PatientIndex p, PatientState& ps, const PatientRules& rules,
                           std::int64_t now, AlertSink& sink) {
  auto fresh = [&](Metric m) {
    const MetricState& ms = ps.metrics[static_cast<std::size_t>(m)];
    return ms.last_ts != kNever && now - ms.last_ts <= rules.news2.stale_ms;
  };
  auto value = [&](Metric m) {
    const MetricState& ms = ps.metrics[static_cast<std::size_t>(m)];
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
        e.id = ids_.Next();
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
  // The first score is published at once; a change must hold for settle_ms of event time.
  if (ps.news2_total >= 0 && rules.news2.settle_ms > 0) {
    if (ps.news2_pending != score.total) {
      ps.news2_pending = score.total;
      ps.news2_pending_since = now;
      return;
    }
    if (now - ps.news2_pending_since < rules.news2.settle_ms) return;
  }
  ps.news2_pending = -1;
  ps.news2_total = score.total;

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
      ps.news2_alarm = Raise(std::move(e), false, sink);
      ps.open.push_back(ps.news2_alarm);
    } else {
      // Every score change is published, even when the priority stays the same.
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
    e.id = ids_.Next();
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
  }
}

void Engine::OnCondition(DeviceIndex d, DeviceCondition c, bool active, std::int64_t wall_ms,
                         std::int64_t mono_ns, AlertSink& sink) {
  if (d >= devices_.size()) return;
  DeviceState& ds = device_state_[d];
  const std::string& id = devices_[d].id;
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
    default: {
      std::string what = std::string(Name(c));
      std::replace(what.begin(), what.end(), '_', ' ');
      SetDeviceCondition(d, c, active, wall_ms,
                         "device " + id + ": " + what + (active ? "" : " resolved"), sink);
      break;
    }
  }
}

void Engine::OnDecodeError(DeviceIndex d, std::int64_t wall_ms, std::int64_t mono_ns,
                           AlertSink& sink) {
  if (d >= devices_.size()) return;
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
                       "device " + devices_[d].id + ": many undecodable frames", sink);
  }
}

void Engine::OnGatewayCondition(DeviceCondition condition, bool active, std::string_view detail,
                                std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink) {
  // Reported on every patient that has a device, since every patient's data is affected.
  std::vector<PatientIndex> patients;
  for (const EngineDevice& d : devices_) {
    if (std::find(patients.begin(), patients.end(), d.patient) == patients.end()) {
      patients.push_back(d.patient);
    }
  }
  for (PatientIndex p : patients) {
    for (DeviceIndex d = 0; d < devices_.size(); ++d) {
      if (devices_[d].patient != p) continue;
      // Drops clear themselves after a quiet minute (OnTick), like a device's.
      if (condition == DeviceCondition::kReadingsDropped) device_state_[d].last_drop_mono = mono_ns;
      SetDeviceCondition(d, condition, active, wall_ms, "gateway: " + std::string(detail), sink);
      break;  // one alarm per patient, carried by its first device
    }
  }
}

void Engine::OnTick(std::int64_t wall_ms, std::int64_t mono_ns, AlertSink& sink) {
  constexpr std::int64_t kQuietNs = 60'000'000'000;
  for (DeviceIndex d = 0; d < devices_.size(); ++d) {
    DeviceState& ds = device_state_[d];
    const EngineDevice& dev = devices_[d];
    const TechnicalRule& tech = rules_->For(dev.patient).technical;
    const std::int64_t disconnect_ms = dev.disconnect_alarm_ms.value_or(tech.disconnect_alarm_ms);
    const std::int64_t no_data_ms = dev.no_data_ms.value_or(tech.no_data_ms);
    const auto disc = static_cast<std::size_t>(DeviceCondition::kDisconnected);
    if (ds.link_down && ds.alarm[disc] == 0 &&
        mono_ns - ds.link_down_since >= disconnect_ms * 1'000'000) {
      SetDeviceCondition(d, DeviceCondition::kDisconnected, true, wall_ms,
                         "device " + dev.id + " disconnected", sink);
    }
    // While the link is down the disconnect alarm speaks for the device; no second alarm.
    const auto nodata = static_cast<std::size_t>(DeviceCondition::kNoData);
    if (dev.watch_no_data && !ds.link_down && ds.alarm[nodata] == 0 &&
        mono_ns - ds.last_reading_mono >= no_data_ms * 1'000'000) {
      SetDeviceCondition(d, DeviceCondition::kNoData, true, wall_ms,
                         "device " + dev.id + ": no data for " + DurationText(no_data_ms), sink);
    }
    const auto bad = static_cast<std::size_t>(DeviceCondition::kBadFrames);
    if (ds.alarm[bad] != 0 && mono_ns - ds.last_bad_mono >= kQuietNs) {
      SetDeviceCondition(d, DeviceCondition::kBadFrames, false, wall_ms,
                         "device " + dev.id + ": frames decode again", sink);
    }
    const auto drop = static_cast<std::size_t>(DeviceCondition::kReadingsDropped);
    if (ds.alarm[drop] != 0 && mono_ns - ds.last_drop_mono >= kQuietNs) {
      SetDeviceCondition(d, DeviceCondition::kReadingsDropped, false, wall_ms,
                         "device " + dev.id + ": no readings dropped for 1 min", sink);
    }
  }
  for (PatientIndex p = 0; p < patients_.size(); ++p) {
    if (!patients_[p].open.empty()) Escalate(patients_[p], rules_->For(p), wall_ms, true, sink);
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
    ds.alarm[idx] = Raise(std::move(e), /*technical_time=*/true, sink);
    Patient(p).open.push_back(ds.alarm[idx]);
  } else if (!active && ds.alarm[idx] != 0) {
    Clear(ds.alarm[idx], wall_ms, std::nullopt, std::move(message), sink);
    ds.alarm[idx] = 0;
  }
}

std::uint64_t Engine::Raise(AlertEvent event, bool technical_time, AlertSink& sink) {
  const std::uint64_t id = ids_.Next();
  event.alarm_id = id;
  event.raised_ts_ms = event.ts_ms;
  event.state = AlertState::kActive;
  Alarm& a = alarms_[id];
  a.last = std::move(event);
  a.base = a.last.priority;
  a.priority_since = a.last.ts_ms;
  a.technical_time = technical_time;
  // The raising event's id is the alarm id.
  a.last.id = id;
  a.event_ids.push_back(id);
  event_to_alarm_[id] = id;
  ++counters_.alerts;
  AlertEvent copy = a.last;
  sink.OnAlert(std::move(copy));
  return id;
}

void Engine::Emit(Alarm& a, AlertSink& sink) {
  a.last.id = ids_.Next();
  a.event_ids.push_back(a.last.id);
  event_to_alarm_[a.last.id] = a.last.alarm_id;
  ++counters_.alerts;
  AlertEvent copy = a.last;
  sink.OnAlert(std::move(copy));
}

void Engine::ChangePriority(std::uint64_t alarm_id, Priority base, AlertEvent update,
                            AlertSink& sink) {
  Alarm& a = alarms_.at(alarm_id);
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
}

void Engine::Clear(std::uint64_t alarm_id, std::int64_t ts, std::optional<double> value,
                   std::string message, AlertSink& sink) {
  auto it = alarms_.find(alarm_id);
  if (it == alarms_.end()) return;
  Alarm& a = it->second;
  a.last.state = AlertState::kCleared;
  a.last.ts_ms = ts;
  if (value) a.last.value = value;
  a.last.message = std::move(message);
  Emit(a, sink);
  for (std::uint64_t e : a.event_ids) event_to_alarm_.erase(e);
  if (a.last.patient < patients_.size()) {
    auto& open = patients_[a.last.patient].open;
    open.erase(std::remove(open.begin(), open.end(), alarm_id), open.end());
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
  if (a.last.state == AlertState::kAcknowledged) return AckResult::kAlreadyAcknowledged;
  if (a.last.state != AlertState::kActive) {
    ++counters_.acks_rejected;
    return AckResult::kNotActive;
  }
  a.last.state = AlertState::kAcknowledged;
  a.last.acked_by = std::string(by);
  a.last.ts_ms = wall_ms;
  ++counters_.acks;
  Emit(a, sink);
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
        DirectionState& dir = low ? ms.low : ms.high;
        const std::vector<ThresholdLevel>& levels = low ? th.low : th.high;
        if (dir.alarm != 0 && (!th.enabled || levels.empty())) {
          Clear(dir.alarm, wall_ms, std::nullopt, "rule switched off", sink);
          dir = DirectionState{};
          continue;
        }
        // Re-derive level states from the last value so that an open alarm is neither cleared
        // nor raised again just because the limits were reloaded.
        for (std::size_t i = 0; i < kMaxLevels; ++i) {
          LevelState& st = dir.levels[i];
          st = LevelState{};
          if (i >= levels.size() || ms.last_ts == kNever) continue;
          const bool violating =
              low ? ms.last_value < levels[i].limit : ms.last_value > levels[i].limit;
          if (violating) {
            st.pending_since = ms.last_ts;
            st.held = dir.alarm != 0;
          }
        }
      }
    }
  }
}

}  // namespace vg
