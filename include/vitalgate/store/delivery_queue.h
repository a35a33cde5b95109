// DeliveryQueue: ids the broker has acknowledged, handed from the forwarder thread to the store
// thread, which deletes them in its next transaction.
//
// Outside the reading->alert hot path, so a mutex is fine here. The forwarder also needs to know
// which acknowledged ids are not yet deleted (to skip them when it re-reads after a reconnect):
// every Push() returns a ticket, and the store publishes the highest ticket it has committed.
// Thread-safety: Push()/committed() from the forwarder; Take()/MarkCommitted() from the store.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace vg {

class DeliveryQueue {
 public:
  struct Batch {
    std::vector<std::uint64_t> readings;
    std::vector<std::uint64_t> alerts;
    std::uint64_t ticket = 0;  // highest ticket included
  };

  std::uint64_t Push(const std::vector<std::uint64_t>& readings,
                     const std::vector<std::uint64_t>& alerts) {
    std::lock_guard lock(mu_);
    pending_.readings.insert(pending_.readings.end(), readings.begin(), readings.end());
    pending_.alerts.insert(pending_.alerts.end(), alerts.begin(), alerts.end());
    pending_.ticket = ++last_ticket_;
    has_work_.store(true, std::memory_order_release);
    return pending_.ticket;
  }

  bool HasWork() const { return has_work_.load(std::memory_order_acquire); }

  Batch Take() {
    std::lock_guard lock(mu_);
    Batch out = std::move(pending_);
    pending_ = Batch{};
    has_work_.store(false, std::memory_order_release);
    return out;
  }

  void MarkCommitted(std::uint64_t ticket) { committed_.store(ticket, std::memory_order_release); }
  std::uint64_t committed() const { return committed_.load(std::memory_order_acquire); }

 private:
  std::mutex mu_;
  Batch pending_;
  std::uint64_t last_ticket_ = 0;
  std::atomic<bool> has_work_{false};
  std::atomic<std::uint64_t> committed_{0};
};

}  // namespace vg
