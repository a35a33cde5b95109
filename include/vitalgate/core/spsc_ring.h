// SpscRing<T>: a bounded, lock-free, single-producer / single-consumer queue.
//
// Exactly one thread may call the producer side (TryPush) and exactly one thread the consumer
// side (TryPop, Drain) for the lifetime of the ring; SizeApprox() may be called from anywhere.
// No call blocks or allocates after construction. Each index lives on its own cache line and
// each side caches the other's index, so an uncontended push or pop touches shared memory only
// when the cached view runs out.
// Invariant: 0 <= tail - head <= capacity (indices grow without bound, masked on access).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace vg {

inline constexpr std::size_t kCacheLine = 64;

template <typename T>
class SpscRing {
  static_assert(std::is_default_constructible_v<T> && std::is_move_assignable_v<T>);

 public:
  // REQUIRES: capacity is a power of two, >= 2.
  explicit SpscRing(std::size_t capacity)
      : capacity_(capacity), mask_(capacity - 1), slots_(std::make_unique<T[]>(capacity)) {}
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  std::size_t capacity() const { return capacity_; }

  // Producer: false when full (the item is left untouched).
  template <typename U>
  bool TryPush(U&& item) {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - cached_head_ >= capacity_) {
      cached_head_ = head_.load(std::memory_order_acquire);
      if (tail - cached_head_ >= capacity_) return false;
    }
    slots_[tail & mask_] = std::forward<U>(item);
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer: false when empty.
  bool TryPop(T& out) {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (head == cached_tail_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (head == cached_tail_) return false;
    }
    out = std::move(slots_[head & mask_]);
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  // Consumer: calls fn(T&) on up to `max` items in order, then frees their slots at once.
  // Returns how many were consumed.
  template <typename Fn>
  std::size_t Drain(Fn&& fn, std::size_t max) {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (cached_tail_ - head < max) cached_tail_ = tail_.load(std::memory_order_acquire);
    std::size_t n = cached_tail_ - head;
    if (n > max) n = max;
    for (std::size_t i = 0; i < n; ++i) fn(slots_[(head + i) & mask_]);
    if (n > 0) head_.store(head + n, std::memory_order_release);
    return n;
  }

  // Consumer: true when nothing is queued (as seen now).
  bool Empty() const {
    return head_.load(std::memory_order_relaxed) == tail_.load(std::memory_order_acquire);
  }

  // Any thread: a snapshot that may be stale by the time it is used.
  std::size_t SizeApprox() const {
    const std::size_t tail = tail_.load(std::memory_order_acquire);
    const std::size_t head = head_.load(std::memory_order_acquire);
    return tail >= head ? tail - head : 0;
  }

 private:
  const std::size_t capacity_;
  const std::size_t mask_;
  std::unique_ptr<T[]> slots_;
  alignas(kCacheLine) std::atomic<std::size_t> head_{0};  // written by the consumer
  std::size_t cached_tail_ = 0;                           // consumer's view of tail_
  alignas(kCacheLine) std::atomic<std::size_t> tail_{0};  // written by the producer
  std::size_t cached_head_ = 0;                           // producer's view of head_
  char pad_[kCacheLine - sizeof(std::size_t)] = {};
};

}  // namespace vg
