#include "vitalgate/store/writer.h"

#include <spdlog/spdlog.h>

namespace vg {

OutboxWriter::OutboxWriter(std::unique_ptr<OutboxStore> store, SpscRing<Reading>& readings,
                           SpscRing<AlertEvent>& alerts, DeliveryQueue& delivered,
                           VolatileQueue& volatile_out, PayloadContext payload,
                           Doorbell& wake_self, Doorbell& wake_forwarder, GatewayStats& stats,
                           OutboxWriterOptions options, OutboxWriterEvents events)
    : store_(std::move(store)),
      readings_(readings),
      alerts_(alerts),
      delivered_(delivered),
      volatile_(volatile_out),
      payload_(payload),
      wake_self_(wake_self),
      wake_forwarder_(wake_forwarder),
      stats_(stats),
      options_(std::move(options)),
      events_(std::move(events)) {
  if (!store_) {
    healthy_ = false;
    failing_since_ = std::chrono::steady_clock::now() - options_.volatile_after;
    last_open_attempt_ = std::chrono::steady_clock::now();
    stats_.store_healthy.store(false);
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

void OutboxWriter::Seal(OutboxRow& row, bool alert) {
  if (!options_.at_rest_key) return;
  auto sealed = AeadSeal(*options_.at_rest_key, BodyAad(alert, row.seq), row.body);
  if (sealed.ok()) {
    row.body = AeadPack(*sealed);
  } else {
    // Without randomness nothing can be sealed; the row must not be stored in clear.
    spdlog::critical("storage: cannot encrypt a row: {}", sealed.status().message());
    row.body.clear();
  }
}

void OutboxWriter::Fill() {
  AlertEvent e;
  bool took_alerts = false;
  while (alerts_.TryPop(e)) {
    took_alerts = true;
    OutboxRow row;
    row.seq = e.id;
    row.patient = payload_.patients->Name(e.patient);
    row.rx_ms = e.ts_ms;
    AppendAlertJson(row.body, e, payload_);
    Seal(row, /*alert=*/true);
    batch_.alerts.push_back(std::move(row));
  }
  // New alerts are committed on their own, in a small transaction ahead of any bulk work
  // (readings, deletions of a draining backlog), so they reach the broker first.
  if (took_alerts && healthy_ && batch_.readings.empty() && batch_.acked_readings.empty()) return;
  // In memory while the outbox fails: at most this many readings (then the engine's ring fills
  // and the engine counts what it cannot hand over).
  const std::size_t per_txn =
      store_ ? std::min(options_.batch_max_rows, store_->max_batch_rows()) : options_.batch_max_rows;
  const std::size_t limit = healthy_ ? per_txn : options_.batch_max_rows * 16;
  const std::size_t room = limit > batch_.readings.size() ? limit - batch_.readings.size() : 0;
  readings_.Drain(
      [&](const Reading& r) {
        OutboxRow row;
        row.seq = r.id;
        row.patient = payload_.patients->Name(r.patient);
        row.rx_ms = r.rx_ms;
        row.body.reserve(128);
        AppendReadingJson(row.body, r, payload_);
        Seal(row, /*alert=*/false);
        batch_.readings.push_back(std::move(row));
      },
      room);
  if (delivered_.HasWork()) {
    DeliveryQueue::Batch d = delivered_.Take();
    batch_.acked_readings.insert(batch_.acked_readings.end(), d.readings.begin(), d.readings.end());
    batch_.acked_alerts.insert(batch_.acked_alerts.end(), d.alerts.begin(), d.alerts.end());
    batch_ticket_ = std::max(batch_ticket_, d.ticket);
  }
}

void OutboxWriter::Healthy() {
  failures_ = 0;
  if (healthy_) return;
  healthy_ = true;
  volatile_mode_ = false;
  stats_.store_healthy.store(true);
  spdlog::info("storage: commits succeed again; delivery is durable again");
  if (events_.on_health) events_.on_health(true, "");
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
    if (events_.on_health) events_.on_health(false, s.message());
  }
}

void OutboxWriter::GoVolatile() {
  // Alarms must not wait for a disk: hand every new alert to the forwarder at once (it is also
  // kept in the batch, so it is stored and sent again, same id, once the outbox works).
  for (; alerts_sent_volatile_ < batch_.alerts.size(); ++alerts_sent_volatile_) {
    volatile_.PushAlert(batch_.alerts[alerts_sent_volatile_]);
  }
  if (!volatile_mode_ && std::chrono::steady_clock::now() - failing_since_ >= options_.volatile_after) {
    volatile_mode_ = true;
    spdlog::error("storage: still failing; forwarding readings from memory without a durable copy");
  }
  if (volatile_mode_ && !batch_.readings.empty()) {
    std::vector<std::string> patients;
    for (const OutboxRow& r : batch_.readings) {
      if (patients.empty() || patients.back() != r.patient) patients.push_back(r.patient);
    }
    const std::size_t dropped = volatile_.PushReadings(std::move(batch_.readings));
    batch_.readings.clear();
    if (dropped > 0) {
      stats_.readings_evicted.fetch_add(dropped, std::memory_order_relaxed);
      if (events_.on_dropped) events_.on_dropped(dropped, patients);
    }
  }
  wake_forwarder_.Ring();
}

bool OutboxWriter::CommitOnce() {
  if (!store_) {
    // No outbox at all: everything goes to the forwarder from memory.
    GoVolatile();
    batch_.alerts.clear();
    alerts_sent_volatile_ = 0;
    batch_.acked_readings.clear();
    batch_.acked_alerts.clear();
    return true;
  }
  Status s = store_->Commit(batch_);
  if (s.code() == StatusCode::kResourceExhausted && store_->CheckpointTruncate().ok()) {
    s = store_->Commit(batch_);  // the disk was full of WAL
  }
  // Full: make room by evicting the oldest undelivered readings (never alerts), then retry.
  for (int round = 0; s.code() == StatusCode::kResourceExhausted && round < 8; ++round) {
    const std::uint64_t want =
        std::max<std::uint64_t>({1000, batch_.readings.size(), store_->reading_rows() / 100});
    std::vector<std::string> patients;
    auto evicted = store_->EvictOldestReadings(want, &patients);
    if (!evicted.ok()) {
      s = evicted.status();
      break;
    }
    if (*evicted == 0) {
      // Nothing left to evict: drop this batch's readings, keep its alerts.
      if (batch_.readings.empty()) break;
      const std::uint64_t n = batch_.readings.size();
      std::vector<std::string> batch_patients;
      for (const OutboxRow& r : batch_.readings) batch_patients.push_back(r.patient);
      batch_.readings.clear();
      stats_.readings_evicted.fetch_add(n, std::memory_order_relaxed);
      if (events_.on_dropped) events_.on_dropped(n, batch_patients);
    } else {
      stats_.readings_evicted.fetch_add(*evicted, std::memory_order_relaxed);
      spdlog::warn("storage: outbox full; dropped the {} oldest undelivered readings", *evicted);
      if (events_.on_dropped) events_.on_dropped(*evicted, patients);
    }
    s = store_->Commit(batch_);
  }
  if (!s.ok()) {
    Unhealthy(s);
    GoVolatile();
    // Alerts wait in memory for the outbox to come back (they were forwarded already); past
    // this bound the oldest are kept only by the forwarder's delivery.
    constexpr std::size_t kMaxHeldAlerts = 10000;
    if (batch_.alerts.size() > kMaxHeldAlerts) {
      const std::size_t n = batch_.alerts.size() - kMaxHeldAlerts;
      batch_.alerts.erase(batch_.alerts.begin(), batch_.alerts.begin() + static_cast<std::ptrdiff_t>(n));
      alerts_sent_volatile_ -= std::min(alerts_sent_volatile_, n);
    }
    return false;
  }
  stats_.store_commits.fetch_add(1, std::memory_order_relaxed);
  stats_.readings_committed.fetch_add(batch_.readings.size(), std::memory_order_relaxed);
  stats_.alerts_committed.fetch_add(batch_.alerts.size(), std::memory_order_relaxed);
  stats_.backlog_readings.store(store_->reading_rows(), std::memory_order_relaxed);
  stats_.backlog_alerts.store(store_->alert_rows(), std::memory_order_relaxed);
  if (batch_ticket_ != 0) delivered_.MarkCommitted(batch_ticket_);
  batch_.clear();
  alerts_sent_volatile_ = 0;
  wake_forwarder_.Ring();
  Healthy();
  return true;
}

void OutboxWriter::Run() {
  while (true) {
    stats_.store_loops.fetch_add(1, std::memory_order_relaxed);
    if (!store_ && std::chrono::steady_clock::now() - last_open_attempt_ >= options_.reopen_every) {
      last_open_attempt_ = std::chrono::steady_clock::now();
      auto opened = OutboxStore::Open(options_.reopen);
      if (opened.ok()) {
        store_ = std::move(*opened);
        spdlog::info("storage: outbox {} is available now", store_->path());
        if (events_.on_opened) events_.on_opened(*store_);
        Healthy();
      }
    }
    Fill();
    if (!batch_.empty()) {
      if (CommitOnce()) continue;  // more may have queued while committing
      if (stop_.load(std::memory_order_acquire) && failures_ >= 3) {
        spdlog::error("storage: giving up at shutdown; {} readings and {} alerts not stored",
                      batch_.readings.size(), batch_.alerts.size());
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
    if (store_) stats_.backlog_bytes.store(store_->SizeBytes(), std::memory_order_relaxed);
    wake_self_.Wait(std::chrono::milliseconds(200), [this] {
      return !readings_.Empty() || !alerts_.Empty() || delivered_.HasWork() ||
             stop_.load(std::memory_order_acquire);
    });
  }
  wake_forwarder_.Ring();
}

}  // namespace vg
