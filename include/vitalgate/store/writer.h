// OutboxWriter: the store thread. Drains accepted readings and alert events from the engine,
// renders their JSON bodies, and commits them to the outbox in group commits (alerts first; one
// transaction per round, as large as what is queued, at most batch_max_rows readings), together
// with the deletions of what the broker acknowledged. After each commit it wakes the forwarder.
//
// When the outbox is full (storage.max_bytes or the disk), the oldest undelivered readings are
// evicted to make room, never alerts; every eviction is counted and reported. When commits fail
// for other reasons (read-only or failing disk, no outbox at all), nothing stops: alerts go to
// the forwarder at once through the VolatileQueue, readings are held in memory and, once the
// failure has lasted `volatile_after`, forwarded from memory too (bounded; the oldest dropped
// and counted). The writer retries the outbox with backoff and returns to durable delivery as
// soon as a commit succeeds.
// Thread-safety: Start/RequestStop/Join from the control thread; the rest runs on its thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/alert.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/doorbell.h"
#include "vitalgate/core/payload.h"
#include "vitalgate/core/spsc_ring.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/store/delivery_queue.h"
#include "vitalgate/store/outbox.h"
#include "vitalgate/store/volatile_queue.h"

namespace vg {

struct OutboxWriterOptions {
  std::size_t batch_max_rows = 4096;
  // With payload encryption on, bodies are stored sealed (AES-256-GCM, the row's table and id
  // as associated data), so the outbox file reveals no vital signs.
  std::optional<AeadKey> at_rest_key;
  std::chrono::milliseconds volatile_after{5000};
  std::chrono::milliseconds reopen_every{10000};  // when there is no outbox at all
  StoreOptions reopen;                             // how to open it
};

// What the writer reports to the rest of the gateway (called on the store thread).
struct OutboxWriterEvents {
  std::function<void(bool healthy, const std::string& why)> on_health;
  std::function<void(std::uint64_t dropped, const std::vector<std::string>& patients)> on_dropped;
  std::function<void(OutboxStore& store)> on_opened;  // an outbox became available later
};

class OutboxWriter {
 public:
  // `store` may be null when the outbox could not be opened at start.
  OutboxWriter(std::unique_ptr<OutboxStore> store, SpscRing<Reading>& readings,
               SpscRing<AlertEvent>& alerts, DeliveryQueue& delivered, VolatileQueue& volatile_out,
               PayloadContext payload, Doorbell& wake_self, Doorbell& wake_forwarder,
               GatewayStats& stats, OutboxWriterOptions options, OutboxWriterEvents events);
  ~OutboxWriter();

  void Start();
  // After the engine has stopped: commit everything queued, then exit.
  void RequestStop();
  void Join();

  OutboxStore* store() const { return store_.get(); }

 private:
  void Run();
  void Fill();
  void Seal(OutboxRow& row, bool alert);
  bool CommitOnce();  // true when the batch is now empty (committed or handed on)
  void Unhealthy(const Status& s);
  void Healthy();
  void GoVolatile();

  std::unique_ptr<OutboxStore> store_;
  SpscRing<Reading>& readings_;
  SpscRing<AlertEvent>& alerts_;
  DeliveryQueue& delivered_;
  VolatileQueue& volatile_;
  PayloadContext payload_;
  Doorbell& wake_self_;
  Doorbell& wake_forwarder_;
  GatewayStats& stats_;
  OutboxWriterOptions options_;
  OutboxWriterEvents events_;
  WriteBatch batch_;
  std::size_t alerts_sent_volatile_ = 0;  // batch_.alerts[0..n) already handed to the forwarder
  std::uint64_t batch_ticket_ = 0;
  bool healthy_ = true;
  bool volatile_mode_ = false;
  int failures_ = 0;
  std::chrono::steady_clock::time_point failing_since_{};
  std::chrono::steady_clock::time_point last_open_attempt_{};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace vg
