#include "vitalgate/engine/runner.h"

#include <chrono>

namespace vg {

// Forwards alert events to the store ring, waiting (never dropping) if the store lags.
class EngineRunner::Sink final : public AlertSink {
 public:
  explicit Sink(EngineRunner& r) : r_(r) {}
  void OnAlert(AlertEvent&& e) override {
    r_.stats_.alerts_raised.fetch_add(1, std::memory_order_relaxed);
    ++r_.events_published_;
    while (!r_.rings_.alerts_out->TryPush(std::move(e))) {
      r_.rings_.wake_store->Ring();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    r_.rings_.wake_store->Ring();
  }

 private:
  EngineRunner& r_;
};

EngineRunner::EngineRunner(Engine& engine, const Clock& clock, EngineRings rings,
                           GatewayStats& stats, std::vector<DeviceStats*> device_stats)
    : engine_(engine),
      clock_(clock),
      rings_(std::move(rings)),
      stats_(stats),
      device_stats_(std::move(device_stats)) {}

EngineRunner::~EngineRunner() {
  RequestStop();
  Join();
}

void EngineRunner::Start() { thread_ = std::thread([this] { Run(); }); }

void EngineRunner::PostRules(std::shared_ptr<const RuleBook> rules) {
  while (!rules_in_.TryPush(std::move(rules))) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  rings_.wake_engine->Ring();
}

void EngineRunner::PostGatewayCondition(DeviceCondition condition, bool active, std::string detail,
                                        std::optional<Priority> priority) {
  GatewayConditionChange c{condition, active, std::move(detail), priority};
  while (!gateway_in_.TryPush(std::move(c))) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  rings_.wake_engine->Ring();
}

bool EngineRunner::PostDeviceChange(DeviceChange change, std::chrono::milliseconds wait) {
  while (!devices_in_.TryPush(std::move(change))) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const std::uint64_t ticket = device_changes_posted_.fetch_add(1) + 1;
  rings_.wake_engine->Ring();
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (device_changes_applied_.load(std::memory_order_acquire) < ticket) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

void EngineRunner::RequestStop() {
  stop_.store(true, std::memory_order_release);
  if (rings_.wake_engine != nullptr) rings_.wake_engine->Ring();
}

void EngineRunner::Join() {
  if (thread_.joinable()) thread_.join();
}

void EngineRunner::CountFor(DeviceIndex d, Counter DeviceStats::*counter) {
  if (d < device_stats_.size() && device_stats_[d] != nullptr) {
    (device_stats_[d]->*counter).fetch_add(1, std::memory_order_relaxed);
  }
}

bool EngineRunner::InputsEmpty() const {
  for (const SpscRing<IngressItem>* ring : rings_.inputs) {
    if (!ring->Empty()) return false;
  }
  return rings_.acks->Empty() && rules_in_.Empty() && gateway_in_.Empty() && devices_in_.Empty();
}

bool EngineRunner::HandOver(const Reading& r) {
  if (rings_.readings_out->TryPush(r)) {
    dropping_ = false;
    return true;
  }
  if (dropping_) return false;
  // The store is behind: wait a little (a slow fsync), but never let a stuck disk stop the
  // rules; after the wait, readings are dropped (counted and alarmed) until it catches up.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (std::chrono::steady_clock::now() < deadline) {
    rings_.wake_store->Ring();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (rings_.readings_out->TryPush(r)) return true;
  }
  dropping_ = true;
  return false;
}

std::size_t EngineRunner::DrainOnce() {
  Sink sink(*this);
  std::size_t total = 0;
  std::shared_ptr<const RuleBook> rules;
  while (rules_in_.TryPop(rules)) engine_.SetRules(std::move(rules), clock_.WallMs(), sink);
  DeviceChange dc;
  while (devices_in_.TryPop(dc)) {
    if (dc.kind == DeviceChange::Kind::kAdd || dc.kind == DeviceChange::Kind::kUpdate) {
      if (dc.index >= device_stats_.size()) device_stats_.resize(static_cast<std::size_t>(dc.index) + 1);
      device_stats_[dc.index] = dc.stats;
      if (dc.kind == DeviceChange::Kind::kAdd) {
        engine_.AddDevice(dc.index, std::move(dc.device), clock_.WallMs(), clock_.MonotonicNs(), sink);
      } else {
        engine_.UpdateDevice(dc.index, std::move(dc.device), clock_.WallMs(), clock_.MonotonicNs(), sink);
      }
    } else {
      engine_.RemoveDevice(dc.index, clock_.WallMs(), sink);
    }
    device_changes_applied_.fetch_add(1, std::memory_order_release);
  }
  GatewayConditionChange gc;
  while (gateway_in_.TryPop(gc)) {
    engine_.OnGatewayCondition(gc.condition, gc.active, gc.detail, clock_.WallMs(),
                               clock_.MonotonicNs(), sink, gc.priority);
  }
  AckRequest ack;
  while (rings_.acks->TryPop(ack)) {
    const auto result = engine_.Acknowledge(ack.alert_id, ack.by, ack.wall_ms, sink);
    if (result == Engine::AckResult::kAcknowledged ||
        result == Engine::AckResult::kAlreadyAcknowledged) {
      stats_.acks_applied.fetch_add(1, std::memory_order_relaxed);
    } else {
      stats_.acks_rejected.fetch_add(1, std::memory_order_relaxed);
    }
    ++total;
  }
  const std::int64_t mono = clock_.MonotonicNs();
  constexpr std::size_t kBatch = 512;  // per ring per round: a flooding producer cannot starve others
  output_full_ = false;
  for (SpscRing<IngressItem>* ring : rings_.inputs) {
    // Backpressure: take no more readings than the store's ring can hold. What stays in the
    // input ring makes the transports pause reading their devices, so a slow disk costs
    // throughput, not readings.
    const std::size_t used = rings_.readings_out->SizeApprox();
    const std::size_t room = rings_.readings_out->capacity() > used ? rings_.readings_out->capacity() - used : 0;
    if (room == 0) {
      output_full_ = true;
      break;
    }
    total += ring->Drain(
        [&](IngressItem& item) {
          switch (item.kind) {
            case IngressItem::Kind::kReading: {
              Reading& r = item.reading;
              const EngineCounters before = engine_.counters();
              if (!engine_.OnReading(r, mono, sink)) {
                CountFor(r.device, &DeviceStats::duplicates);
                break;  // a record the device sent before: not forwarded again
              }
              if (engine_.counters().late != before.late) CountFor(r.device, &DeviceStats::clock_implausible);
              if (!HandOver(r)) {
                stats_.readings_store_dropped.fetch_add(1, std::memory_order_relaxed);
                engine_.OnCondition(r.device, DeviceCondition::kReadingsDropped, true, r.rx_ms,
                                    mono, sink);
              }
              break;
            }
            case IngressItem::Kind::kAssign:
              engine_.Assign(item.reading.device, item.reading.patient,
                             (item.reading.flags & kFlagUnassigned) != 0, item.reading.rx_ms, mono,
                             sink);
              break;
            case IngressItem::Kind::kCondition:
              if (item.condition == DeviceCondition::kBadFrames) {
                engine_.OnDecodeError(item.reading.device, item.reading.rx_ms, mono, sink);
              } else if (item.condition == DeviceCondition::kClock) {
                engine_.OnClockOffset(item.reading.device, item.reading.value, item.reading.rx_ms,
                                      mono, sink);
              } else {
                engine_.OnCondition(item.reading.device, item.condition, item.active,
                                    item.reading.rx_ms, mono, sink);
              }
              break;
          }
        },
        std::min(kBatch, room));
  }
  if (total > 0) {
    stats_.readings_accepted.store(engine_.counters().readings, std::memory_order_relaxed);
    rings_.wake_store->Ring();
  }
  return total;
}

void EngineRunner::Run() {
  Sink sink(*this);
  std::int64_t next_tick = clock_.MonotonicNs();
  constexpr std::int64_t kTickNs = 250'000'000;
  while (true) {
    stats_.engine_loops.fetch_add(1, std::memory_order_relaxed);
    const std::size_t n = DrainOnce();
    const std::int64_t now = clock_.MonotonicNs();
    if (now >= next_tick) {
      engine_.OnTick(clock_.WallMs(), now, sink);
      next_tick = now + kTickNs;
      if (events_published_ != events_snapshotted_) {
        // At most four times a second, and only after a change.
        events_snapshotted_ = events_published_;
        auto open = std::make_shared<const std::vector<OpenAlarmInfo>>(engine_.OpenAlarms());
        std::lock_guard lock(open_mu_);
        open_ = std::move(open);
      }
    }
    if (n > 0) continue;
    if (stop_.load(std::memory_order_acquire) && InputsEmpty()) break;
    if (output_full_) {
      // The store frees room without ringing us; look again shortly.
      rings_.wake_store->Ring();
      std::this_thread::sleep_for(std::chrono::microseconds(500));
      continue;
    }
    rings_.wake_engine->Wait(std::chrono::nanoseconds(next_tick - now),
                             [this] { return !InputsEmpty() || stop_.load(); });
  }
  rings_.wake_store->Ring();
}

}  // namespace vg
