#include "vitalgate/store/writer.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace vg {

OutboxWriter::OutboxWriter(OutboxStore& store, SpscRing<Reading>& readings,
                           SpscRing<AlertEvent>& alerts, DeliveryQueue& delivered,
                           PayloadContext payload, Doorbell& wake_self, Doorbell& wake_forwarder,
                           GatewayStats& stats, OutboxWriterOptions options,
                           std::function<void(bool, const std::string&)> on_health)
    : store_(store),
      readings_(readings),
      alerts_(alerts),
      delivered_(delivered),
      payload_(payload),
      wake_self_(wake_self),
      wake_forwarder_(wake_forwarder),
      stats_(stats),
      options_(options),
      on_health_(std::move(on_health)) {}

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

bool OutboxWriter::Fill() {
  bool added = false;
  AlertEvent e;
  while (alerts_.TryPop(e)) {
    OutboxRow row;
    row.seq = e.id;
    row.patient = payload_.patients->Name(e.patient);
    row.rx_ms = e.ts_ms;
    AppendAlertJson(row.body, e, payload_);
    batch_.alerts.push_back(std::move(row));
    added = true;
  }
  const std::size_t room =
      options_.batch_max_rows > batch_.readings.size() ? options_.batch_max_rows - batch_.readings.size() : 0;
  const std::size_t n = readings_.Drain(
      [&](const Reading& r) {
        OutboxRow row;
        row.seq = r.id;
        row.patient = payload_.patients->Name(r.patient);
        row.rx_ms = r.rx_ms;
        row.body.reserve(128);
        AppendReadingJson(row.body, r, payload_);
        batch_.readings.push_back(std::move(row));
      },
      room);
  added = added || n > 0;
  if (delivered_.HasWork()) {
    DeliveryQueue::Batch d = delivered_.Take();
    batch_.acked_readings.insert(batch_.acked_readings.end(), d.readings.begin(), d.readings.end());
    batch_.acked_alerts.insert(batch_.acked_alerts.end(), d.alerts.begin(), d.alerts.end());
    batch_ticket_ = std::max(batch_ticket_, d.ticket);
    added = true;
  }
  return added;
}

void OutboxWriter::Run() {
  bool healthy = true;
  int failures = 0;
  while (true) {
    stats_.store_loops.fetch_add(1, std::memory_order_relaxed);
    Fill();
    if (!batch_.empty()) {
      const Status s = store_.Commit(batch_);
      if (s.ok()) {
        stats_.store_commits.fetch_add(1, std::memory_order_relaxed);
        stats_.readings_committed.fetch_add(batch_.readings.size(), std::memory_order_relaxed);
        stats_.alerts_committed.fetch_add(batch_.alerts.size(), std::memory_order_relaxed);
        stats_.backlog_readings.store(store_.reading_rows(), std::memory_order_relaxed);
        stats_.backlog_alerts.store(store_.alert_rows(), std::memory_order_relaxed);
        if (batch_ticket_ != 0) delivered_.MarkCommitted(batch_ticket_);
        batch_.clear();
        wake_forwarder_.Ring();
        failures = 0;
        if (!healthy) {
          healthy = true;
          stats_.store_healthy.store(true);
          spdlog::info("storage: commits succeed again");
          if (on_health_) on_health_(true, "");
        }
        continue;  // more may have queued while committing
      }
      stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
      ++failures;
      if (healthy) {
        healthy = false;
        stats_.store_healthy.store(false);
        spdlog::error("storage: commit failed, keeping {} rows in memory and retrying: {}",
                      batch_.readings.size() + batch_.alerts.size(), s.message());
        if (on_health_) on_health_(false, s.message());
      }
      if (stop_.load(std::memory_order_acquire) && failures > 20) {
        spdlog::error("storage: giving up at shutdown; {} rows not committed",
                      batch_.readings.size() + batch_.alerts.size());
        break;
      }
      const auto backoff = std::chrono::milliseconds(std::min(1000, 10 << std::min(failures, 6)));
      wake_self_.Wait(backoff, [] { return false; });
      continue;
    }
    if (stop_.load(std::memory_order_acquire) && readings_.Empty() && alerts_.Empty()) break;
    stats_.backlog_bytes.store(store_.SizeBytes(), std::memory_order_relaxed);
    wake_self_.Wait(std::chrono::milliseconds(200), [this] {
      return !readings_.Empty() || !alerts_.Empty() || delivered_.HasWork() ||
             stop_.load(std::memory_order_acquire);
    });
  }
  wake_forwarder_.Ring();
}

}  // namespace vg
