#include "vitalgate/store/writer.h"

#include <spdlog/spdlog.h>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

constexpr std::size_t kRecentAudit = 50;

}  // namespace

std::string AuditHash(const AuditEntry& e) {
  // Length-prefixed fields, so no two different entries hash the same input.
  std::string input;
  for (const std::string& field :
       {e.prev, std::to_string(e.seq), std::to_string(e.ts_ms), e.kind, e.actor, e.detail}) {
    input += std::to_string(field.size());
    input += ':';
    input += field;
  }
  return Sha256Hex(input);
}

AuditCheck VerifyAuditChain(const std::vector<AuditEntry>& entries, const std::string& chain_start) {
  AuditCheck out;
  std::string prev = chain_start;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const AuditEntry& e = entries[i];
    const std::string where = "entry " + std::to_string(e.seq);
    if (i > 0 && e.seq != entries[i - 1].seq + 1) {
      out = {false, "entries " + std::to_string(entries[i - 1].seq + 1) + " to " +
                        std::to_string(e.seq - 1) + " are missing (deleted)"};
      return out;
    }
    if (e.prev != prev) {
      out = {false, where + " does not follow the entry before it (an entry was deleted or changed)"};
      return out;
    }
    if (AuditHash(e) != e.hash) {
      out = {false, where + " was changed after it was written (its hash does not match)"};
      return out;
    }
    prev = e.hash;
  }
  return out;
}

std::string AuditEventJson(const AuditEntry& e, const IdFormat& ids) {
  std::string out = "{\"id\":\"";
  out += ids.instance();
  out += "-audit-";
  AppendUint(out, e.seq);
  out += "\",\"seq\":";
  AppendUint(out, e.seq);
  out += ",\"kind\":";
  AppendJsonString(out, e.kind);
  out += ",\"actor\":";
  AppendJsonString(out, e.actor);
  out += ",\"detail\":";
  out += e.detail.empty() ? "{}" : e.detail;
  out += ",\"ts\":\"";
  AppendRfc3339(out, e.ts_ms);
  out += "\",\"prev\":\"";
  out += e.prev;
  out += "\",\"hash\":\"";
  out += e.hash;
  out += "\"}";
  return out;
}

OutboxWriter::OutboxWriter(std::unique_ptr<OutboxStore> store, SpscRing<Reading>& readings,
                           SpscRing<AlertEvent>& alerts, DeliveryQueue& delivered,
                           VolatileQueue& volatile_out, PayloadContext payload,
                           Doorbell& wake_self, std::vector<Doorbell*> wake_destinations,
                           GatewayStats& stats, OutboxWriterOptions options,
                           OutboxWriterEvents events)
    : store_(std::move(store)),
      readings_(readings),
      alerts_(alerts),
      delivered_(delivered),
      volatile_(volatile_out),
      payload_(payload),
      wake_self_(wake_self),
      wake_destinations_(std::move(wake_destinations)),
      stats_(stats),
      options_(std::move(options)),
      callbacks_(std::move(events)) {
  if (!store_) {
    healthy_ = false;
    failing_since_ = std::chrono::steady_clock::now() - options_.volatile_after;
    last_open_attempt_ = std::chrono::steady_clock::now();
    stats_.store_healthy.store(false);
  } else {
    event_seq_ = store_->max_event_seq();
    auto recent = store_->RecentAudit(kRecentAudit);
    if (recent.ok() && !recent->empty()) {
      audit_seq_ = recent->back().seq;
      audit_prev_ = recent->back().hash;
      recent_audit_.assign(recent->begin(), recent->end());
    }
  }
}

OutboxWriter::~OutboxWriter() {
  RequestStop();
  Join();
}

void OutboxWriter::Start() { thread_ = std::thread([this] { Run(); }); }

void OutboxWriter::RequestStop() {
  stop_.store(true, std::memory_order_release);
  wake_self_.Ring();
}

void OutboxWriter::Join() {
  if (thread_.joinable()) thread_.join();
}

void OutboxWriter::Submit(StoreCommand command) {
  {
    std::lock_guard lock(command_mu_);
    incoming_.push_back(std::move(command));
    has_commands_.store(true, std::memory_order_release);
  }
  wake_self_.Ring();
}

std::string OutboxWriter::Seal(std::string body, bool event, RowFormat format,
                               std::uint64_t seq) const {
  if (!options_.at_rest_key) return body;
  auto sealed = AeadSeal(*options_.at_rest_key, BodyAad(event, format, seq), body);
  if (sealed.ok()) return AeadPack(*sealed);
  // Without randomness nothing can be sealed; the row must not be stored in clear.
  spdlog::critical("storage: cannot encrypt a row: {}", sealed.status().message());
  return "";
}

void OutboxWriter::ChainAudit(const StoreCommand::Audit& a) {
  AuditEntry e;
  e.seq = ++audit_seq_;
  e.ts_ms = a.ts_ms;
  e.kind = a.kind;
  e.actor = a.actor;
  e.detail = a.detail;
  e.prev = audit_prev_;
  e.hash = AuditHash(e);
  audit_prev_ = e.hash;
  StoredRow row;
  row.seq = ++event_seq_;
  row.patient = "";
  row.rx_ms = a.ts_ms;
  row.kind = EventKind::kAudit;
  row.body = AuditEventJson(e, *payload_.ids);
  events_.push_back(std::move(row));
  {
    std::lock_guard lock(audit_mu_);
    recent_audit_.push_back(e);
    while (recent_audit_.size() > kRecentAudit) recent_audit_.pop_front();
  }
  side_.audit.push_back(std::move(e));
}

void OutboxWriter::Fill() {
  if (has_commands_.load(std::memory_order_acquire)) {
    std::vector<StoreCommand> incoming;
    {
      std::lock_guard lock(command_mu_);
      incoming.swap(incoming_);
      has_commands_.store(false, std::memory_order_release);
    }
    for (StoreCommand& c : incoming) {
      if (c.prune_audit_before_ms && store_) {
        auto pruned = store_->PruneAudit(*c.prune_audit_before_ms, kRecentAudit);
        if (!pruned.ok()) {
          spdlog::warn("storage: pruning the audit trail: {}", pruned.status().message());
        } else if (*pruned > 0) {
          spdlog::info("storage: pruned {} audit entries past their retention", *pruned);
        }
      }
      for (Assignment& a : c.assignments) side_.assignments.push_back(std::move(a));
      for (const StoreCommand::Audit& a : c.audit) ChainAudit(a);
      c.assignments.clear();
      commands_.push_back(std::move(c));
    }
  }
  AlertEvent e;
  bool took_alerts = false;
  while (alerts_.TryPop(e)) {
    took_alerts = true;
    StoredRow row;
    row.seq = ++event_seq_;
    row.patient = payload_.patients->Name(e.patient);
    // The gateway's time, as for a reading: the event time can come from a device's clock (a
    // stored record days old, or a clock that is wrong), and the ages of what is undelivered
    // (backlog alarm, oldest unsent, publish latency) would then be wrong too.
    row.rx_ms = options_.clock->WallMs();
    row.kind = EventKind::kAlert;
    AppendAlertJson(row.body, e, payload_);
    events_.push_back(std::move(row));
    if (callbacks_.on_alert) callbacks_.on_alert(e);
    if (e.by_ack) {
      // Who acknowledged which alarm: the audit trail keeps it (no vital values).
      std::string detail = "{\"alarm_id\":\"";
      payload_.ids->Append(detail, e.alarm_id);
      detail += "\",\"patient\":";
      AppendJsonString(detail, payload_.patients->Name(e.patient));
      detail += ",\"kind\":\"";
      detail += Name(e.kind);
      detail += "\",\"priority\":\"";
      detail += Name(e.priority);
      detail += "\"}";
      ChainAudit(StoreCommand::Audit{"ack", e.acked_by, detail, e.ts_ms});
    }
    // The open alarm's state goes with its event, in the same transaction.
    OpenAlarmChange change;
    payload_.ids->Append(change.alarm, e.alarm_id);
    const bool open = e.state == AlertState::kActive || e.state == AlertState::kAcknowledged;
    if (open && !e.persist.empty()) {
      change.state = Seal(std::move(e.persist), true, RowFormat::kSingle, 0);
      if (change.state.empty()) continue;
    } else if (open) {
      continue;  // not an alarm with state (e.g. a score update)
    }
    side_.alarms.push_back(std::move(change));
  }
  // New alerts are committed on their own, in a small transaction ahead of any bulk work
  // (readings, deletions of a draining backlog), so they reach the broker first.
  if (took_alerts && healthy_ && batches_.empty() && side_.acks.empty()) return;
  // In memory while the outbox fails: at most this many readings (then the engine's ring fills
  // and the engine counts what it cannot hand over).
  const std::size_t per_txn =
      store_ ? std::min(options_.batch_max_rows, store_->max_batch_rows()) : options_.batch_max_rows;
  const std::size_t limit = healthy_ ? per_txn : options_.batch_max_rows * 16;
  const std::size_t room = limit > pending_readings_ ? limit - pending_readings_ : 0;
  const DeviceDirectory* devices = payload_.devices;
  readings_.Drain(
      [&](const Reading& r) {
        auto [it, added] = open_row_.try_emplace(r.patient, batches_.size());
        if (added) {
          StoredRow row;
          row.seq = r.id;  // the first reading's id: key order is commit order
          row.patient = payload_.patients->Name(r.patient);
          row.rx_ms = r.rx_ms;
          row.count = 0;
          row.format = RowFormat::kCompact;
          row.body.reserve(64);
          if (encoders_.size() <= batches_.size()) encoders_.emplace_back();
          encoders_[batches_.size()].Begin(row.body);
          batches_.push_back(std::move(row));
        }
        StoredRow& row = batches_[it->second];
        encoders_[it->second].Append(row.body, TextOf(r, payload_));
        ++row.count;
        ++pending_readings_;
        if (r.record_key != 0 && devices != nullptr && r.device < devices->size()) {
          side_.records.push_back(RecordKey{devices->Name(r.device), r.record_key, r.ts_ms});
        }
      },
      room);
  if (delivered_.HasWork()) {
    DeliveryQueue::Batch d = delivered_.Take();
    for (DestinationAcks& a : d.acks) acks_waiting_.push_back(std::move(a));
    for (DeadLetter& dl : d.dead_letters) {
      dl.body = Seal(std::move(dl.body), true, RowFormat::kSingle, 0);
      side_.dead_letters.push_back(std::move(dl));
    }
  }
  TakeAcks();
}

void OutboxWriter::TakeAcks() {
  std::size_t taken = 0;
  for (const DestinationAcks& a : side_.acks) taken += a.batches.size() + a.events.size();
  const std::size_t limit = std::max<std::size_t>(1, options_.acks_per_commit);
  while (taken < limit && !acks_waiting_.empty()) {
    DestinationAcks& next = acks_waiting_.front();
    const std::size_t n = next.batches.size() + next.events.size();
    if (taken + n <= limit) {
      taken += n;
      side_.acks.push_back(std::move(next));
      acks_waiting_.pop_front();
      continue;
    }
    // Split: the events (alerts, few) first, then as many reading rows as fit.
    DestinationAcks part;
    part.bit = next.bit;
    part.events.swap(next.events);
    taken += part.events.size();
    const std::size_t rows = taken < limit ? std::min(limit - taken, next.batches.size()) : 0;
    part.batches.assign(next.batches.begin(), next.batches.begin() + static_cast<std::ptrdiff_t>(rows));
    next.batches.erase(next.batches.begin(), next.batches.begin() + static_cast<std::ptrdiff_t>(rows));
    taken += rows;
    side_.acks.push_back(std::move(part));
    if (next.batches.empty()) acks_waiting_.pop_front();
  }
}

bool OutboxWriter::Pending() const {
  return !batches_.empty() || !events_.empty() || !side_.empty() || !commands_.empty() ||
         !acks_waiting_.empty();
}

void OutboxWriter::Healthy() {
  failures_ = 0;
  if (healthy_) return;
  healthy_ = true;
  volatile_mode_ = false;
  stats_.store_healthy.store(true);
  spdlog::info("storage: commits succeed again; delivery is durable again");
  if (callbacks_.on_health) callbacks_.on_health(true, "");
}

void OutboxWriter::Unhealthy(const Status& s) {
  stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
  ++failures_;
  if (healthy_) {
    healthy_ = false;
    failing_since_ = std::chrono::steady_clock::now();
    stats_.store_healthy.store(false);
    spdlog::error("storage: commit failed ({}); alerts are forwarded from memory, readings held "
                  "for {} s before they are too",
                  s.message(), options_.volatile_after.count() / 1000);
    if (callbacks_.on_health) callbacks_.on_health(false, s.message());
  }
}

void OutboxWriter::GoVolatile() {
  // Alarms must not wait for a disk: hand every new event to the forwarder at once (it is also
  // kept, so it is stored and sent again, same id, once the outbox works).
  for (; events_sent_volatile_ < events_.size(); ++events_sent_volatile_) {
    volatile_.PushEvent(events_[events_sent_volatile_]);
  }
  if (!volatile_mode_ && std::chrono::steady_clock::now() - failing_since_ >= options_.volatile_after) {
    volatile_mode_ = true;
    spdlog::error("storage: still failing; forwarding readings from memory without a durable copy");
  }
  if (volatile_mode_ && !batches_.empty()) {
    std::vector<std::string> patients;  // whose readings were dropped, the oldest held
    const std::size_t dropped = volatile_.PushBatches(std::move(batches_), &patients);
    batches_.clear();
    open_row_.clear();
    pending_readings_ = 0;
    if (dropped > 0) {
      stats_.readings_evicted.fetch_add(dropped, std::memory_order_relaxed);
      if (callbacks_.on_dropped) callbacks_.on_dropped(dropped, patients);
    }
  }
  if (!wake_destinations_.empty()) wake_destinations_.front()->Ring();
}

void OutboxWriter::FinishCommands(const Status& s) {
  for (StoreCommand& c : commands_) {
    if (c.done) c.done(s);
  }
  commands_.clear();
}

bool OutboxWriter::CommitOnce() {
  if (!store_) {
    // No outbox at all: everything goes to the forwarder from memory.
    GoVolatile();
    events_.clear();
    events_sent_volatile_ = 0;
    side_.clear();
    acks_waiting_.clear();  // nothing stored, nothing to delete
    FinishCommands(Unavailable("storage: no outbox"));
    return true;
  }
  auto build = [&] {
    WriteBatch b = side_;
    b.events.reserve(events_.size());
    for (const StoredRow& r : events_) {
      StoredRow sealed = r;
      sealed.body = Seal(r.body, true, RowFormat::kSingle, r.seq);
      b.events.push_back(std::move(sealed));
    }
    b.batches.reserve(batches_.size());
    for (const StoredRow& r : batches_) {
      StoredRow sealed = r;
      sealed.body = Seal(r.body, false, r.format, r.seq);
      b.batches.push_back(std::move(sealed));
    }
    return b;
  };
  WriteBatch batch = build();
  Status s = store_->Commit(batch);
  if (s.code() == StatusCode::kResourceExhausted) {
    // The disk (or max_bytes) is full. Give back the reserve first, so that the WAL has room
    // for the deletions below, then make room by evicting the oldest undelivered readings
    // (never alerts) and retry.
    // The reserve's room goes to the eviction's deletions (the WAL must grow to hold them), not
    // to this commit: retrying it first could take that room and leave nothing to evict with.
    const bool released = store_->ReleaseReserve();
    if (released) spdlog::warn("storage: disk full; released the reserve to make room");
    (void)store_->CheckpointTruncate();
  }
  for (int round = 0; s.code() == StatusCode::kResourceExhausted && round < 8; ++round) {
    const std::uint64_t want =
        std::max<std::uint64_t>({1000, pending_readings_, store_->reading_rows() / 100});
    std::vector<std::string> patients;
    auto evicted = store_->EvictOldestReadings(want, &patients);
    if (!evicted.ok()) {
      s = evicted.status();
      break;
    }
    if (*evicted == 0) {
      // Nothing left to evict: drop this round's readings, keep its alerts.
      if (batches_.empty()) break;
      std::vector<std::string> batch_patients;
      for (const StoredRow& r : batches_) batch_patients.push_back(r.patient);
      const std::uint64_t n = pending_readings_;
      batches_.clear();
      open_row_.clear();
      pending_readings_ = 0;
      side_.records.clear();
      stats_.readings_evicted.fetch_add(n, std::memory_order_relaxed);
      if (callbacks_.on_dropped) callbacks_.on_dropped(n, batch_patients);
    } else {
      stats_.readings_evicted.fetch_add(*evicted, std::memory_order_relaxed);
      spdlog::warn("storage: outbox full; dropped the {} oldest undelivered readings", *evicted);
      if (callbacks_.on_dropped) callbacks_.on_dropped(*evicted, patients);
    }
    (void)store_->CheckpointTruncate();  // best effort: frees the WAL's space if it can
    batch = build();
    s = store_->Commit(batch);
  }
  if (!s.ok()) {
    Unhealthy(s);
    GoVolatile();
    // Events wait in memory for the outbox to come back (they were forwarded already); past
    // this bound the oldest are kept only by the forwarder's delivery.
    constexpr std::size_t kMaxHeldEvents = 10000;
    if (events_.size() > kMaxHeldEvents) {
      const std::size_t n = events_.size() - kMaxHeldEvents;
      spdlog::error("storage: {} alert or audit events will never be stored (the outbox has failed "
                    "for too long); they were handed to the broker from memory only",
                    n);
      events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(n));
      events_sent_volatile_ -= std::min(events_sent_volatile_, n);
    }
    return false;
  }
  stats_.store_commits.fetch_add(1, std::memory_order_relaxed);
  stats_.readings_committed.fetch_add(pending_readings_, std::memory_order_relaxed);
  stats_.alerts_committed.fetch_add(events_.size(), std::memory_order_relaxed);
  stats_.backlog_readings.store(store_->reading_rows(), std::memory_order_relaxed);
  stats_.backlog_alerts.store(store_->alert_rows(), std::memory_order_relaxed);
  stats_.backlog_bytes.store(store_->backlog_bytes(), std::memory_order_relaxed);
  batches_.clear();
  open_row_.clear();
  pending_readings_ = 0;
  events_.clear();
  events_sent_volatile_ = 0;
  side_.clear();
  FinishCommands(Status::Ok());
  for (Doorbell* d : wake_destinations_) d->Ring();
  Healthy();
  return true;
}

void OutboxWriter::Run() {
  auto last_reserve_check = std::chrono::steady_clock::now();
  while (true) {
    stats_.store_loops.fetch_add(1, std::memory_order_relaxed);
    if (!store_ && std::chrono::steady_clock::now() - last_open_attempt_ >= options_.reopen_every) {
      last_open_attempt_ = std::chrono::steady_clock::now();
      auto opened = OutboxStore::Open(options_.reopen);
      if (opened.ok()) {
        store_ = std::move(*opened);
        event_seq_ = std::max(event_seq_, store_->max_event_seq());
        spdlog::info("storage: outbox {} is available now", store_->path());
        if (callbacks_.on_opened) callbacks_.on_opened(*store_);
        Healthy();
      }
    }
    Fill();
    if (Pending()) {
      if (CommitOnce()) continue;  // more may have queued while committing
      if (stop_.load(std::memory_order_acquire) && failures_ >= 3) {
        spdlog::error("storage: giving up at shutdown; {} readings and {} events not stored",
                      pending_readings_, events_.size());
        FinishCommands(Unavailable("storage: stopped before it could commit"));
        break;
      }
      if (!store_) {
        wake_self_.Wait(std::chrono::milliseconds(200), [this] {
          return !readings_.Empty() || !alerts_.Empty() || stop_.load(std::memory_order_acquire);
        });
      } else {
        const auto backoff = std::chrono::milliseconds(std::min(1000, 10 << std::min(failures_, 7)));
        wake_self_.Wait(backoff, [] { return false; });
      }
      continue;
    }
    if (stop_.load(std::memory_order_acquire) && readings_.Empty() && alerts_.Empty()) break;
    // Once the disk has room again, take the reserve back (at most every 10 s).
    if (store_ && std::chrono::steady_clock::now() - last_reserve_check > std::chrono::seconds(10)) {
      last_reserve_check = std::chrono::steady_clock::now();
      store_->RestoreReserve();
    }
    wake_self_.Wait(std::chrono::milliseconds(200), [this] {
      return !readings_.Empty() || !alerts_.Empty() || delivered_.HasWork() ||
             has_commands_.load(std::memory_order_acquire) || stop_.load(std::memory_order_acquire);
    });
  }
  for (Doorbell* d : wake_destinations_) d->Ring();
}

}  // namespace vg
