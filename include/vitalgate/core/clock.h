// Time as a seam: every component that needs "now" takes a Clock, so tests advance time by hand.
//
// WallMs() is Unix time in milliseconds (event time stamps for readings without their own).
// MonotonicNs() never goes backwards; only technical no-data and link-loss timers use it.
// Thread-safety: SystemClock is safe from any thread. SimulatedClock is safe from any thread too
// (atomics), but tests normally drive it from the thread that runs the code under test.
#pragma once

#include <atomic>
#include <cstdint>

namespace vg {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t WallMs() const = 0;
  virtual std::int64_t MonotonicNs() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::int64_t WallMs() const override;
  std::int64_t MonotonicNs() const override;
  static SystemClock& Instance();
};

class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(std::int64_t wall_ms = 1'790'000'000'000, std::int64_t mono_ns = 0)
      : wall_ms_(wall_ms), mono_ns_(mono_ns) {}
  std::int64_t WallMs() const override { return wall_ms_.load(); }
  std::int64_t MonotonicNs() const override { return mono_ns_.load(); }
  // Advances both clocks together.
  void AdvanceMs(std::int64_t ms) {
    wall_ms_ += ms;
    mono_ns_ += ms * 1'000'000;
  }
  void SetWallMs(std::int64_t ms) { wall_ms_ = ms; }

 private:
  std::atomic<std::int64_t> wall_ms_;
  std::atomic<std::int64_t> mono_ns_;
};

}  // namespace vg
