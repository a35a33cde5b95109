// DeliveryQueue: what the destinations are done with (acknowledged rows, per destination, and
// dead letters), handed from the destination threads to the store thread, which applies them in
// its next transaction.
//
// Outside the reading->alert hot path, so a mutex is fine here.
// Thread-safety: Push() from any destination thread; Take() from the store thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "vitalgate/store/outbox.h"

namespace vg {

class DeliveryQueue {
 public:
  struct Batch {
    std::vector<DestinationAcks> acks;
    std::vector<DeadLetter> dead_letters;
  };

  void Push(int bit, std::vector<std::uint64_t> batches, std::vector<std::uint64_t> events,
            std::vector<DeadLetter> dead_letters = {}) {
    if (batches.empty() && events.empty() && dead_letters.empty()) return;
    std::lock_guard lock(mu_);
    DestinationAcks* acks = nullptr;
    for (DestinationAcks& a : pending_.acks) {
      if (a.bit == bit) acks = &a;
    }
    if (acks == nullptr) {
      pending_.acks.push_back(DestinationAcks{bit, {}, {}});
      acks = &pending_.acks.back();
    }
    acks->batches.insert(acks->batches.end(), batches.begin(), batches.end());
    acks->events.insert(acks->events.end(), events.begin(), events.end());
    for (DeadLetter& d : dead_letters) pending_.dead_letters.push_back(std::move(d));
    has_work_.store(true, std::memory_order_release);
  }

  bool HasWork() const { return has_work_.load(std::memory_order_acquire); }

  Batch Take() {
    std::lock_guard lock(mu_);
    Batch out = std::move(pending_);
    pending_ = Batch{};
    has_work_.store(false, std::memory_order_release);
    return out;
  }

 private:
  std::mutex mu_;
  Batch pending_;
  std::atomic<bool> has_work_{false};
};

}  // namespace vg
