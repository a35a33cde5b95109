// VolatileQueue: rows handed from the store thread to the primary destination *without* a
// durable copy, for when the outbox cannot commit (disk full beyond eviction, read-only file
// system, no outbox at all). Alerts always take this path while the store fails, so alarms keep
// flowing; readings take it once the store has failed for a while, bounded in number (the
// oldest are dropped and counted).
//
// Outside the reading->alert hot path; a mutex is fine. Thread-safety: any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "vitalgate/store/outbox.h"

namespace vg {

class VolatileQueue {
 public:
  explicit VolatileQueue(std::size_t max_readings = 200'000) : max_readings_(max_readings) {}

  void PushEvent(StoredRow row) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(row));
    has_work_.store(true, std::memory_order_release);
  }

  // Rows of readings, as the writer built them. Returns how many of the oldest queued readings
  // had to be dropped to stay within the bound; the patients they belonged to are added to
  // `dropped_patients` (each once).
  std::size_t PushBatches(std::vector<StoredRow>&& rows, std::vector<std::string>* dropped_patients = nullptr) {
    std::lock_guard lock(mu_);
    for (StoredRow& r : rows) {
      readings_ += r.count;
      batches_.push_back(std::move(r));
    }
    std::size_t dropped = 0;
    while (readings_ > max_readings_ && !batches_.empty()) {
      readings_ -= batches_.front().count;
      dropped += batches_.front().count;
      if (dropped_patients != nullptr &&
          std::find(dropped_patients->begin(), dropped_patients->end(), batches_.front().patient) ==
              dropped_patients->end()) {
        dropped_patients->push_back(batches_.front().patient);
      }
      batches_.pop_front();
    }
    has_work_.store(!events_.empty() || !batches_.empty(), std::memory_order_release);
    return dropped;
  }

  bool HasWork() const { return has_work_.load(std::memory_order_acquire); }

  // Takes everything queued, events and batches, in order.
  void TakeAll(std::vector<StoredRow>& events, std::vector<StoredRow>& batches) {
    std::lock_guard lock(mu_);
    for (StoredRow& r : events_) events.push_back(std::move(r));
    for (StoredRow& r : batches_) batches.push_back(std::move(r));
    events_.clear();
    batches_.clear();
    readings_ = 0;
    has_work_.store(false, std::memory_order_release);
  }

 private:
  const std::size_t max_readings_;
  mutable std::mutex mu_;
  std::deque<StoredRow> events_;
  std::deque<StoredRow> batches_;
  std::size_t readings_ = 0;
  std::atomic<bool> has_work_{false};
};

}  // namespace vg
