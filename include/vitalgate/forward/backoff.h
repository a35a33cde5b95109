// The reconnect delay of every destination link: capped exponential backoff with +-20 % jitter,
// so that a ward of gateways does not reconnect in step after an outage.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace vg {

// The delay before attempt `attempt` (0 = the first retry), in milliseconds.
inline std::int64_t JitteredBackoffMs(int attempt, std::int64_t min_ms, std::int64_t max_ms) {
  const int shift = std::clamp(attempt, 0, 16);
  const std::int64_t delay = std::min<std::int64_t>(max_ms, min_ms << shift);
  static thread_local std::minstd_rand rng(std::random_device{}());
  const double jitter = 0.8 + 0.4 * std::uniform_real_distribution<double>(0, 1)(rng);
  return static_cast<std::int64_t>(static_cast<double>(delay) * jitter);
}

}  // namespace vg
