// OutboxWriter: the store thread. Drains accepted readings and alert events from the engine,
// renders their JSON bodies, and commits them to the outbox in group commits (alerts first; one
// transaction per round, as large as what is queued, at most batch_max_rows readings, the
// readings of each patient as one row), together with what the destinations are done with,
// the open alarms' state, device records, assignments and audit entries. After each commit it
// wakes the destinations.
//
// When the outbox is full (storage.max_bytes or the disk), the oldest undelivered readings are
// evicted to make room, never alerts; every eviction is counted and reported. On a full disk
// the reserve file next to the database is given back first, so that eviction and deletion of
// delivered rows can still run. When commits fail for other reasons (read-only or failing disk,
// no outbox at all), nothing stops: alerts go to the primary destination at once through the
// VolatileQueue, readings are held in memory and, once the failure has lasted
// `volatile_after`, forwarded from memory too (bounded; the oldest dropped and counted). The
// writer retries the outbox with backoff and returns to durable delivery as soon as a commit
// succeeds.
// Thread-safety: Start/RequestStop/Join/Submit from the control thread; the rest runs on its
// thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/alert.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/compact_row.h"
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
  // Rows that destinations are done with, deleted per transaction at most: a draining backlog
  // is deleted in steps, so that an alert raised meanwhile waits for one step, not for all.
  std::size_t acks_per_commit = 512;
  // With payload encryption on, bodies (and alarm states, dead letters) are stored sealed
  // (AES-256-GCM, the row's table, layout and key as associated data), so the outbox file
  // reveals no vital signs.
  std::optional<AeadKey> at_rest_key;
  std::chrono::milliseconds volatile_after{5000};
  std::chrono::milliseconds reopen_every{10000};  // when there is no outbox at all
  StoreOptions reopen;                             // how to open it
  // The gateway's clock: an alert row's receive time, as a reading's comes from the input's.
  const Clock* clock = &SystemClock::Instance();
};

// What the writer reports to the rest of the gateway (called on the store thread).
struct OutboxWriterEvents {
  std::function<void(bool healthy, const std::string& why)> on_health;
  std::function<void(std::uint64_t dropped, const std::vector<std::string>& patients)> on_dropped;
  std::function<void(OutboxStore& store)> on_opened;  // an outbox became available later
  std::function<void(const AlertEvent& event)> on_alert;  // every alert event, as stored
};

// Work for the store that does not come from the engine: assignments and audit entries. The
// callback runs on the store thread once it is committed (ok) or could not be (the error).
struct StoreCommand {
  std::vector<Assignment> assignments;
  // Audit entries: kind, actor and detail are the caller's; seq, time stamp and the hash chain
  // are the writer's. Each is also published (delivered like alerts) on the audit topic.
  struct Audit {
    std::string kind;
    std::string actor;
    std::string detail;  // a JSON object
    std::int64_t ts_ms = 0;
  };
  std::vector<Audit> audit;
  // Prune audit entries older than this (Unix ms), keeping the chain verifiable.
  std::optional<std::int64_t> prune_audit_before_ms;
  std::function<void(const Status&)> done;
};

// The hash of an audit entry: SHA-256 over its fields and the previous entry's hash, hex.
std::string AuditHash(const AuditEntry& entry);
// Checks a run of audit entries: each hash recomputes, each entry links to the one before
// (the first to `chain_start`) and sequence numbers have no gap, so an edited or deleted entry
// is found. Whether the last entry is the head the store recorded (a truncated chain) is the
// caller's check (`vitalgate audit verify` makes it).
struct AuditCheck {
  bool ok = true;
  std::string problem;  // the first problem, naming the entry
};
AuditCheck VerifyAuditChain(const std::vector<AuditEntry>& entries, const std::string& chain_start);

// The audit event as published on {prefix}/{gw}/audit.
std::string AuditEventJson(const AuditEntry& entry, const IdFormat& ids);

class OutboxWriter {
 public:
  // `store` may be null when the outbox could not be opened at start.
  OutboxWriter(std::unique_ptr<OutboxStore> store, SpscRing<Reading>& readings,
               SpscRing<AlertEvent>& alerts, DeliveryQueue& delivered, VolatileQueue& volatile_out,
               PayloadContext payload, Doorbell& wake_self, std::vector<Doorbell*> wake_destinations,
               GatewayStats& stats, OutboxWriterOptions options, OutboxWriterEvents events);
  ~OutboxWriter();

  void Start();
  // After the engine has stopped: commit everything queued, then exit.
  void RequestStop();
  void Join();
  // Any thread: queue `command` for the next transaction.
  void Submit(StoreCommand command);

  OutboxStore* store() const { return store_.get(); }
  // Any thread: the latest audit entries, newest first.
  std::vector<AuditEntry> RecentAudit() const {
    std::lock_guard lock(audit_mu_);
    return {recent_audit_.rbegin(), recent_audit_.rend()};
  }

 private:
  void Run();
  void Fill();
  void TakeAcks();  // moves waiting acknowledgements into side_, up to acks_per_commit
  std::string Seal(std::string body, bool event, RowFormat format, std::uint64_t seq) const;
  bool CommitOnce();  // true when the pending work is now empty (committed or handed on)
  void Unhealthy(const Status& s);
  void Healthy();
  void GoVolatile();
  bool Pending() const;
  void FinishCommands(const Status& s);
  void ChainAudit(const StoreCommand::Audit& a);

  std::unique_ptr<OutboxStore> store_;
  SpscRing<Reading>& readings_;
  SpscRing<AlertEvent>& alerts_;
  DeliveryQueue& delivered_;
  VolatileQueue& volatile_;
  PayloadContext payload_;
  Doorbell& wake_self_;
  std::vector<Doorbell*> wake_destinations_;
  GatewayStats& stats_;
  OutboxWriterOptions options_;
  OutboxWriterEvents callbacks_;

  // Pending, in clear: sealed copies are made for each commit attempt.
  std::vector<StoredRow> batches_;       // reading rows of this round, one per patient
  std::unordered_map<PatientIndex, std::size_t> open_row_;  // patient -> row in batches_
  std::vector<CompactRowEncoder> encoders_;  // by row in batches_; kept for their capacity
  std::size_t pending_readings_ = 0;
  std::vector<StoredRow> events_;
  std::size_t events_sent_volatile_ = 0;  // events_[0..n) already handed to the forwarder
  WriteBatch side_;                       // acks, dead letters, alarms, records, ...
  std::deque<DestinationAcks> acks_waiting_;  // delivered, for a later transaction
  std::vector<StoreCommand> commands_;    // committed with side_

  std::mutex command_mu_;
  std::vector<StoreCommand> incoming_;
  std::atomic<bool> has_commands_{false};
  mutable std::mutex audit_mu_;
  std::deque<AuditEntry> recent_audit_;  // oldest first, bounded
  std::uint64_t event_seq_ = 0;  // key of the last event row
  std::uint64_t audit_seq_ = 0;
  std::string audit_prev_;

  bool healthy_ = true;
  bool volatile_mode_ = false;
  int failures_ = 0;
  std::chrono::steady_clock::time_point failing_since_{};
  std::chrono::steady_clock::time_point last_open_attempt_{};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace vg
