// Logging: spdlog to stderr, in the form journald expects when run under systemd (priority
// prefixes "<N>" and no time stamps, since the journal adds its own).
//
// Policy: no patient values and no free text from devices at any level. Messages name devices,
// metrics, byte offsets and error kinds only. RateLimiter keeps a misbehaving device from
// flooding the journal.
// Thread-safety: spdlog's default logger is thread-safe; RateLimiter is per-thread.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string_view>

namespace vg {

// Call once in main, before any thread starts.
void InitLogging(std::string_view level);
bool SetLogLevel(std::string_view level);

// Allows one event per `interval_ns`, counting the ones it suppressed in between.
class RateLimiter {
 public:
  explicit RateLimiter(std::int64_t interval_ns = 10'000'000'000) : interval_ns_(interval_ns) {}
  // True when the caller should log now; `suppressed` receives how many were held back since.
  bool Allow(std::int64_t mono_ns, std::uint64_t& suppressed) {
    if (last_ns_ != 0 && mono_ns - last_ns_ < interval_ns_) {
      ++suppressed_;
      return false;
    }
    last_ns_ = mono_ns;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  std::int64_t interval_ns_;
  std::int64_t last_ns_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace vg
