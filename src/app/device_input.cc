#include "vitalgate/app/device_input.h"

#include <spdlog/spdlog.h>

namespace vg {
namespace {

// Device clocks running ahead would pin rule state in the future; beyond this, not a reading.
constexpr std::int64_t kMaxFutureMs = 5 * 60 * 1000;

}  // namespace

DeviceInput::DeviceInput(DeviceIndex index, std::string id, PatientIndex patient,
                         std::unique_ptr<Codec> codec, IngressPort port,
                         const PatientDirectory& patients, DeviceStats& stats, const Clock& clock)
    : index_(index),
      id_(std::move(id)),
      patient_(patient),
      codec_(std::move(codec)),
      port_(port),
      patients_(patients),
      stats_(stats),
      clock_(clock) {}

bool DeviceInput::Push(const IngressItem& item) {
  if (drop_pending_) {
    IngressItem drop;
    drop.kind = IngressItem::Kind::kCondition;
    drop.condition = DeviceCondition::kReadingsDropped;
    drop.active = true;
    drop.reading.device = index_;
    drop.reading.patient = patient_;
    drop.reading.rx_ms = clock_.WallMs();
    if (port_.ring->TryPush(drop)) drop_pending_ = false;
  }
  if (port_.ring->TryPush(item)) {
    pushed_ = true;
    return true;
  }
  drop_pending_ = true;
  return false;
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
  IngressItem item;
  item.kind = IngressItem::Kind::kCondition;
  item.condition = DeviceCondition::kDisconnected;
  item.active = !up;
  item.reading.device = index_;
  item.reading.patient = patient_;
  item.reading.rx_ms = clock_.WallMs();
  if (!up && !reason.empty()) spdlog::info("device {}: link down: {}", id_, reason);
  if (!Push(item)) {
    // Link state must not get lost: retry briefly; the engine drains this ring fast.
    for (int i = 0; i < 100 && !port_.ring->TryPush(item); ++i) port_.wake->Ring();
  }
  Flush();
}

void DeviceInput::Invalid(std::string_view why) {
  stats_.invalid.fetch_add(1, std::memory_order_relaxed);
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

void DeviceInput::OnValue(const DecodedValue& v) {
  const std::int64_t now = clock_.WallMs();
  Reading r;
  r.metric = v.metric;
  r.value = v.value;
  r.rx_ms = now;
  r.ts_ms = v.ts_ms.value_or(now);
  r.flags = v.flags;
  r.device = index_;
  r.patient = patient_;
  if (!v.patient.empty()) {
    const auto p = patients_.Find(v.patient);
    if (!p) {
      Invalid("reading for a patient not in the configuration");
      return;
    }
    r.patient = *p;
  }
  if (!IsPlausible(v.metric, v.value)) {
    const MetricInfo& info = Info(v.metric);
    Invalid(std::string(info.name) + " value outside its plausible range");
    return;
  }
  if (r.ts_ms > now + kMaxFutureMs) {
    Invalid("time stamp more than 5 minutes in the future");
    return;
  }
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
  IngressItem item;
  item.kind = IngressItem::Kind::kCondition;
  item.condition = condition;
  item.active = active;
  item.reading.device = index_;
  item.reading.patient = patient_;
  item.reading.rx_ms = clock_.WallMs();
  Push(item);
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
