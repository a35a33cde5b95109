// VolatileQueue: rows handed from the store thread to the forwarder *without* a durable copy,
// for when the outbox cannot commit (disk full beyond eviction, read-only file system, no outbox
// at all). Alerts always take this path while the store fails, so alarms keep flowing; readings
// take it once the store has failed for a while, bounded in number (the oldest are dropped and
// counted). Rows the forwarder could not get acknowledged go back to the front on a link loss.
//
// Outside the reading->alert hot path; a mutex is fine. Thread-safety: any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

#include "vitalgate/store/outbox.h"

namespace vg {

class VolatileQueue {
 public:
  explicit VolatileQueue(std::size_t max_readings = 200'000) : max_readings_(max_readings) {}

  void PushAlert(OutboxRow row) {
    std::lock_guard lock(mu_);
    alerts_.push_back(std::move(row));
    has_work_.store(true, std::memory_order_release);
  }

  // Returns how many of the oldest queued readings had to be dropped to stay within the bound.
  std::size_t PushReadings(std::vector<OutboxRow>&& rows) {
    std::lock_guard lock(mu_);
    for (OutboxRow& r : rows) readings_.push_back(std::move(r));
    std::size_t dropped = 0;
    while (readings_.size() > max_readings_) {
      readings_.pop_front();
      ++dropped;
    }
    has_work_.store(!alerts_.empty() || !readings_.empty(), std::memory_order_release);
    return dropped;
  }

  // Puts unacknowledged rows back in front, keeping their order.
  void Requeue(std::vector<OutboxRow>&& alerts, std::vector<OutboxRow>&& readings) {
    std::lock_guard lock(mu_);
    alerts_.insert(alerts_.begin(), std::make_move_iterator(alerts.begin()),
                   std::make_move_iterator(alerts.end()));
    readings_.insert(readings_.begin(), std::make_move_iterator(readings.begin()),
                     std::make_move_iterator(readings.end()));
    has_work_.store(!alerts_.empty() || !readings_.empty(), std::memory_order_release);
  }

  bool HasWork() const { return has_work_.load(std::memory_order_acquire); }

  bool PopAlert(OutboxRow& out) {
    std::lock_guard lock(mu_);
    if (alerts_.empty()) return false;
    out = std::move(alerts_.front());
    alerts_.pop_front();
    has_work_.store(!alerts_.empty() || !readings_.empty(), std::memory_order_release);
    return true;
  }

  // Pops up to `max` readings of the patient of the first queued reading, in order.
  std::vector<OutboxRow> PopReadingsOfOnePatient(std::size_t max) {
    std::lock_guard lock(mu_);
    std::vector<OutboxRow> out;
    if (readings_.empty()) return out;
    const std::string patient = readings_.front().patient;
    for (auto it = readings_.begin(); it != readings_.end() && out.size() < max;) {
      if (it->patient == patient) {
        out.push_back(std::move(*it));
        it = readings_.erase(it);
      } else {
        ++it;
      }
    }
    has_work_.store(!alerts_.empty() || !readings_.empty(), std::memory_order_release);
    return out;
  }

  // Id of the oldest queued reading, 0 when none.
  std::uint64_t OldestReadingSeq() const {
    std::lock_guard lock(mu_);
    return readings_.empty() ? 0 : readings_.front().seq;
  }

  std::size_t readings() const {
    std::lock_guard lock(mu_);
    return readings_.size();
  }

 private:
  const std::size_t max_readings_;
  mutable std::mutex mu_;
  std::deque<OutboxRow> alerts_;
  std::deque<OutboxRow> readings_;
  std::atomic<bool> has_work_{false};
};

}  // namespace vg
