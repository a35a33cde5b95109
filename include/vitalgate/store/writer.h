// OutboxWriter: the store thread. Drains accepted readings and alert events from the engine,
// renders their JSON bodies, and commits them to the outbox in group commits (alerts first;
// one transaction per round, as large as what is queued, at most batch_max_rows readings),
// together with the deletions of what the broker acknowledged. After each commit it wakes the
// forwarder.
//
// On a failing commit (disk full, read-only filesystem) nothing is dropped: the batch is kept
// and retried with backoff, new readings wait in the engine's ring, and the failure is reported
// as a gateway technical condition.
// Thread-safety: Start/RequestStop/Join from the control thread; the rest runs on its thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "vitalgate/core/alert.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/doorbell.h"
#include "vitalgate/core/payload.h"
#include "vitalgate/core/spsc_ring.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/store/delivery_queue.h"
#include "vitalgate/store/outbox.h"

namespace vg {

struct OutboxWriterOptions {
  std::size_t batch_max_rows = 4096;
};

class OutboxWriter {
 public:
  // `on_health` is called from the store thread when commits start failing or work again.
  OutboxWriter(OutboxStore& store, SpscRing<Reading>& readings, SpscRing<AlertEvent>& alerts,
               DeliveryQueue& delivered, PayloadContext payload, Doorbell& wake_self,
               Doorbell& wake_forwarder, GatewayStats& stats, OutboxWriterOptions options,
               std::function<void(bool healthy, const std::string& why)> on_health);
  ~OutboxWriter();

  void Start();
  // After the engine has stopped: commit everything queued, then exit.
  void RequestStop();
  void Join();

 private:
  void Run();
  bool Fill();  // moves queued items into batch_; true if anything was added

  OutboxStore& store_;
  SpscRing<Reading>& readings_;
  SpscRing<AlertEvent>& alerts_;
  DeliveryQueue& delivered_;
  PayloadContext payload_;
  Doorbell& wake_self_;
  Doorbell& wake_forwarder_;
  GatewayStats& stats_;
  OutboxWriterOptions options_;
  std::function<void(bool, const std::string&)> on_health_;
  WriteBatch batch_;
  std::uint64_t batch_ticket_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace vg
