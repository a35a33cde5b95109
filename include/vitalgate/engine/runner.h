// EngineRunner: the engine thread. It drains the ingress rings (one per producer thread, so
// every ring is single-producer) round-robin in bounded batches, feeds the Engine, and hands
// accepted readings and alert events to the store through two more rings, alerts first. No
// mutex is taken anywhere between a decoded reading and its alert.
//
// Thread-safety: the producer side of each input ring belongs to its producer thread; PostRules
// and RequestStop may be called from the control thread; everything else runs on the engine
// thread it starts.
#pragma once

#include <atomic>
#include <cstdint>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vitalgate/core/alert.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/doorbell.h"
#include "vitalgate/core/spsc_ring.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/engine/engine.h"

namespace vg {

struct AckRequest {
  std::uint64_t alert_id = 0;
  std::string by;
  std::int64_t wall_ms = 0;
};

struct GatewayConditionChange {
  DeviceCondition condition = DeviceCondition::kStorage;
  bool active = false;
  std::string detail;
  std::optional<Priority> priority;  // overrides the rule's (certificate expiry ladder)
};

// Device table changes from the control thread (SIGHUP). Moves of a device between patients
// travel in the ingress ring instead (IngressItem::kAssign), in order with its readings.
struct DeviceChange {
  enum class Kind : std::uint8_t { kAdd, kUpdate, kRemove };
  Kind kind = Kind::kAdd;
  DeviceIndex index = 0;
  EngineDevice device;
  DeviceStats* stats = nullptr;
};

struct EngineRings {
  std::vector<SpscRing<IngressItem>*> inputs;  // one per producer thread
  SpscRing<AckRequest>* acks = nullptr;        // from the forwarder
  SpscRing<Reading>* readings_out = nullptr;   // to the store
  SpscRing<AlertEvent>* alerts_out = nullptr;  // to the store
  Doorbell* wake_engine = nullptr;             // rung by producers
  Doorbell* wake_store = nullptr;              // rung by the engine
};

class EngineRunner {
 public:
  // `device_stats` by DeviceIndex (per-device counters the engine thread keeps).
  EngineRunner(Engine& engine, const Clock& clock, EngineRings rings, GatewayStats& stats,
               std::vector<DeviceStats*> device_stats = {});
  ~EngineRunner();

  void Start();
  // Any thread: the open alarms as of the engine's last change (for the status page).
  std::shared_ptr<const std::vector<OpenAlarmInfo>> OpenAlarms() const {
    std::lock_guard lock(open_mu_);
    return open_;
  }
  // Control thread: the new rules take effect before the next reading is processed.
  void PostRules(std::shared_ptr<const RuleBook> rules);
  // Control thread: a gateway-wide condition (e.g. storage) for every patient.
  void PostGatewayCondition(DeviceCondition condition, bool active, std::string detail,
                            std::optional<Priority> priority = std::nullopt);
  // Control thread: add or remove a device; returns once the engine has applied it (bounded
  // wait; false if the engine did not answer in time, e.g. it is not running yet).
  bool PostDeviceChange(DeviceChange change, std::chrono::milliseconds wait);
  // Control thread, after every producer has stopped: process what is queued, then exit.
  void RequestStop();
  void Join();

 private:
  class Sink;
  void Run();
  std::size_t DrainOnce();
  bool HandOver(const Reading& r);  // to the store ring; false when the reading had to be dropped
  bool InputsEmpty() const;
  void CountFor(DeviceIndex d, Counter DeviceStats::*counter);

  Engine& engine_;
  const Clock& clock_;
  EngineRings rings_;
  GatewayStats& stats_;
  SpscRing<std::shared_ptr<const RuleBook>> rules_in_{8};
  SpscRing<GatewayConditionChange> gateway_in_{64};
  SpscRing<DeviceChange> devices_in_{256};
  std::atomic<std::uint64_t> device_changes_posted_{0};
  std::atomic<std::uint64_t> device_changes_applied_{0};
  std::vector<DeviceStats*> device_stats_;  // engine thread
  std::uint64_t events_published_ = 0;      // engine thread: to notice a change of alarms
  std::uint64_t events_snapshotted_ = ~0ull;
  mutable std::mutex open_mu_;
  std::shared_ptr<const std::vector<OpenAlarmInfo>> open_ =
      std::make_shared<const std::vector<OpenAlarmInfo>>();
  std::atomic<bool> stop_{false};
  bool dropping_ = false;     // the store ring stayed full: drop instead of waiting
  bool output_full_ = false;  // the last round stopped because the store's ring was full
  std::thread thread_;
};

}  // namespace vg
