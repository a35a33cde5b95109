#include "vitalgate/app/device_input.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace vg {
namespace {

// No device measured anything before 2000-01-01: an unset clock (1970, year 0) is not a time.
constexpr std::int64_t kEarliestPlausibleMs = 946'684'800'000;

std::uint64_t Mix(std::uint64_t h, std::uint64_t v) {
  // FNV-1a over the 8 bytes of v.
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xFF;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::uint64_t RecordKeyOf(Metric metric, std::int64_t device_ts_ms, double value,
                        std::optional<std::uint32_t> record_seq) {
  // The metric and the device's time always: a meter reset or replaced under the same device
  // id starts its sequence numbers again, and its new records must not pass for old ones.
  std::uint64_t h = 14695981039346656037ull;
  h = Mix(h, static_cast<std::uint64_t>(metric));
  h = Mix(h, static_cast<std::uint64_t>(device_ts_ms));
  if (record_seq) {
    h = Mix(h, 1);
    h = Mix(h, *record_seq);
  } else {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    h = Mix(h, 2);
    h = Mix(h, bits);
  }
  return h == 0 ? 1 : h;
}

DeviceInput::DeviceInput(DeviceIndex index, std::string id, DeviceRouting routing,
                         std::unique_ptr<Codec> codec, IngressPort port,
                         const PatientDirectory& patients, DeviceStats& stats, const Clock& clock,
                         DeviceTimePolicy time)
    : index_(index),
      id_(std::move(id)),
      routing_(std::move(routing)),
      codec_(std::move(codec)),
      port_(port),
      patients_(patients),
      stats_(stats),
      clock_(clock),
      time_(time) {
  last_device_ts_.fill(std::numeric_limits<std::int64_t>::min());
}

IngressItem DeviceInput::ConditionItem(DeviceCondition condition, bool active) const {
  IngressItem item;
  item.kind = IngressItem::Kind::kCondition;
  item.condition = condition;
  item.active = active;
  item.reading.device = index_;
  item.reading.patient = routing_.patient;
  item.reading.rx_ms = clock_.WallMs();
  return item;
}

bool DeviceInput::Push(const IngressItem& item) {
  if (drop_pending_ && port_.ring->TryPush(ConditionItem(DeviceCondition::kReadingsDropped, true))) {
    drop_pending_ = false;
  }
  if (port_.ring->TryPush(item)) {
    pushed_ = true;
    return true;
  }
  drop_pending_ = true;
  return false;
}

void DeviceInput::PushReliably(const IngressItem& item) {
  // Link state and patient changes must not get lost: retry briefly; the engine drains this
  // ring fast.
  if (!Push(item)) {
    for (int i = 0; i < 1000 && !port_.ring->TryPush(item); ++i) port_.wake->Ring();
  }
}

bool DeviceInput::Saturated() const {
  // Three quarters full leaves room for what the codec still holds and for link events.
  return port_.ring->SizeApprox() * 4 >= port_.ring->capacity() * 3;
}

void DeviceInput::Flush() {
  if (pushed_) {
    pushed_ = false;
    port_.wake->Ring();
  }
}

void DeviceInput::SetRouting(DeviceRouting routing) {
  const bool moved = routing.patient != routing_.patient || routing.unassigned != routing_.unassigned;
  routing_ = std::move(routing);
  if (!moved) return;
  IngressItem item;
  item.kind = IngressItem::Kind::kAssign;
  item.reading.device = index_;
  item.reading.patient = routing_.patient;
  item.reading.flags = routing_.unassigned ? kFlagUnassigned : 0;
  item.reading.rx_ms = clock_.WallMs();
  PushReliably(item);
  Flush();
}

void DeviceInput::OnBytes(std::span<const std::uint8_t> bytes) {
  codec_->Feed(bytes, *this);
  Flush();
}

void DeviceInput::OnCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> value) {
  codec_->FeedCharacteristic(uuid, value, *this);
  Flush();
}

void DeviceInput::OnLink(bool up, std::string_view reason) {
  stats_.link_up.store(up, std::memory_order_relaxed);
  codec_->Reset();
  const IngressItem item = ConditionItem(DeviceCondition::kDisconnected, !up);
  if (!up && !reason.empty()) spdlog::info("device {}: link down: {}", id_, reason);
  PushReliably(item);
  Flush();
}

void DeviceInput::Invalid(std::string_view why) {
  // Never silent: counted, logged, and counted by the engine with undecodable frames towards
  // the device's `bad_frames` technical alarm.
  stats_.invalid.fetch_add(1, std::memory_order_relaxed);
  OnCondition(DeviceCondition::kBadFrames, true);
  std::uint64_t suppressed = 0;
  if (invalid_log_.Allow(clock_.MonotonicNs(), suppressed)) {
    if (suppressed > 0) {
      spdlog::warn("device {}: {}, not forwarded ({} more since the last message)", id_, why,
                   suppressed);
    } else {
      spdlog::warn("device {}: {}, not forwarded", id_, why);
    }
  }
}

void DeviceInput::OnDeviceClock(std::int64_t device_now_ms) {
  const std::int64_t now = clock_.WallMs();
  if (device_now_ms < kEarliestPlausibleMs) {
    // A device that does not know the time: its time stamps cannot be corrected either.
    clock_offset_ms_.reset();
    stats_.clock_offset_ms.store(0, std::memory_order_relaxed);
    return;
  }
  clock_offset_ms_ = device_now_ms - now;
  stats_.clock_offset_ms.store(*clock_offset_ms_, std::memory_order_relaxed);
  std::uint64_t suppressed = 0;
  if (std::llabs(*clock_offset_ms_) >= 2000 && clock_log_.Allow(clock_.MonotonicNs(), suppressed)) {
    spdlog::info("device {}: its clock is {} ms {} the gateway's; time stamps corrected", id_,
                 std::llabs(*clock_offset_ms_), *clock_offset_ms_ > 0 ? "ahead of" : "behind");
  }
}

bool DeviceInput::CheckClock(Reading& r, std::int64_t now) {
  if ((r.flags & kFlagDeviceTime) == 0) return false;
  const bool stored = (r.flags & kFlagStored) != 0;
  const bool record = stored || (r.flags & kFlagSpot) != 0;
  const std::int64_t ts = r.ts_ms;
  auto& last = last_device_ts_[static_cast<std::size_t>(r.metric)];
  const bool implausible =
      ts < kEarliestPlausibleMs || ts > now + time_.max_ahead_ms ||
      ts < now - (record ? time_.max_record_age_ms : time_.max_behind_ms) ||
      (!record && ts < last);
  if (!implausible) {
    if (!record) last = ts;
    return false;
  }
  stats_.clock_implausible.fetch_add(1, std::memory_order_relaxed);
  r.flags |= kFlagClock;
  r.device_ts_ms = ts;
  // A live reading is what the patient shows now: evaluated at its receive time. A stored
  // record keeps the time the device gave it and is not alarmed on (see the engine).
  if (!stored) r.ts_ms = now;
  const std::int64_t mono = clock_.MonotonicNs();
  if (mono - last_clock_report_mono_ >= 1'000'000'000 || last_clock_report_mono_ == 0) {
    last_clock_report_mono_ = mono;
    IngressItem item = ConditionItem(DeviceCondition::kClock, true);
    item.reading.value = ts < kEarliestPlausibleMs ? 0 : static_cast<double>(ts - now) / 1000.0;
    Push(item);
    std::uint64_t suppressed = 0;
    if (clock_log_.Allow(mono, suppressed)) {
      spdlog::warn("device {}: implausible time stamp ({} s from the gateway's clock){}", id_,
                   (ts - now) / 1000, stored ? "; stored record kept with its time, not evaluated"
                                             : "; evaluated at its receive time");
    }
  }
  return true;
}

void DeviceInput::OnValue(const DecodedValue& v) {
  const std::int64_t now = clock_.WallMs();
  Reading r;
  r.metric = v.metric;
  r.value = v.value;
  r.rx_ms = now;
  r.ts_ms = v.ts_ms.value_or(now);
  r.flags = v.flags;
  if (time_.spot) r.flags |= kFlagSpot;
  if (v.ts_ms && clock_offset_ms_ && (r.flags & kFlagDeviceTime) != 0) r.ts_ms -= *clock_offset_ms_;
  r.device = index_;
  r.patient = routing_.patient;
  if (routing_.unassigned) r.flags |= kFlagUnassigned;
  if (!v.patient.empty()) {
    // A placeholder ("unassigned/<device>") names no patient, even once it is in the directory.
    const auto p = IsPlaceholderPatient(v.patient) ? std::nullopt : patients_.Find(v.patient);
    if (!p) {
      Invalid("reading for a patient not in the configuration");
      return;
    }
    if (*p != routing_.patient || routing_.unassigned) {
      const bool allowed = routing_.any || std::find(routing_.allowed.begin(), routing_.allowed.end(),
                                                     *p) != routing_.allowed.end();
      if (!allowed) {
        Invalid("reading for a patient this device may not feed (devices[].allowed_patients)");
        return;
      }
      r.patient = *p;
      r.flags &= static_cast<std::uint8_t>(~kFlagUnassigned);
    }
  }
  if (!IsPlausible(v.metric, v.value)) {
    const MetricInfo& info = Info(v.metric);
    Invalid(std::string(info.name) + " value outside its plausible range");
    return;
  }
  CheckClock(r, now);
  if ((r.flags & (kFlagSpot | kFlagStored)) != 0 && (r.flags & kFlagDeviceTime) != 0) {
    // The device's own time, before any learned clock offset: a record sent again after the
    // offset changed is still the same record.
    r.record_key = RecordKeyOf(r.metric, *v.ts_ms, r.value, v.record_seq);
  }
  if ((r.flags & kFlagQuestionable) != 0) stats_.questionable.fetch_add(1, std::memory_order_relaxed);
  if ((r.flags & kFlagUnassigned) != 0) stats_.unassigned.fetch_add(1, std::memory_order_relaxed);
  if (r.metric == Metric::kBattery) stats_.battery_pct.store(r.value, std::memory_order_relaxed);
  IngressItem item;
  item.kind = IngressItem::Kind::kReading;
  item.reading = r;
  if (Push(item)) {
    stats_.readings.fetch_add(1, std::memory_order_relaxed);
    stats_.last_reading_ms.store(now, std::memory_order_relaxed);
  } else {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t suppressed = 0;
    if (drop_log_.Allow(clock_.MonotonicNs(), suppressed)) {
      spdlog::error("device {}: engine queue full, readings dropped ({} so far)", id_,
                    stats_.dropped.load());
    }
  }
}

void DeviceInput::OnCondition(DeviceCondition condition, bool active) {
  Push(ConditionItem(condition, active));
}

void DeviceInput::OnDecodeError(const DecodeError& error) {
  if (error.warning) return;  // decoded; the ignored part is visible with `vitalgate decode`
  stats_.decode_errors.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t suppressed = 0;
  if (decode_log_.Allow(clock_.MonotonicNs(), suppressed)) {
    spdlog::warn("device {}: byte {}: {}{}", id_, error.offset, error.message,
                 suppressed > 0 ? " (" + std::to_string(suppressed) + " more errors since the last message)"
                                : std::string());
  }
  OnCondition(DeviceCondition::kBadFrames, true);
}

}  // namespace vg
