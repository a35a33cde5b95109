// TrendWindow: least-squares slope of (event time, value) samples over a sliding window in O(1)
// memory. The window is split into kBuckets time buckets; each bucket keeps the sufficient
// statistics of its samples (count, sums of u, u^2, v, u*v with u the time since the bucket's
// start), which add up exactly to the statistics of the whole window. Moments are re-centred on
// the window start when combined, so precision does not decay with absolute time.
// Granularity: the window edge moves in steps of window/kBuckets. Single-threaded value type.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

namespace vg {

class TrendWindow {
 public:
  static constexpr int kBuckets = 20;

  explicit TrendWindow(std::int64_t window_ms = 600'000);

  // Adds a sample. Samples older than the newest bucket's window are ignored.
  void Add(std::int64_t ts_ms, double value);

  struct Fit {
    double slope_per_ms = 0;  // least-squares slope
    int samples = 0;
    std::int64_t span_ms = 0;  // newest - oldest sample in the window
  };
  // Fit over the buckets within the window ending at the newest sample; nullopt with < 2
  // samples or all samples at one instant.
  std::optional<Fit> Compute() const;

 private:
  struct Bucket {
    std::int64_t index = -1;  // absolute bucket number (ts / bucket_ms), -1 = empty
    double n = 0, su = 0, suu = 0, sv = 0, suv = 0;
    std::int64_t min_ts = 0, max_ts = 0;
  };
  void Retotal();  // recomputes totals_ from the buckets for the current window

  std::int64_t bucket_ms_;
  std::int64_t newest_index_ = -1;
  std::array<Bucket, kBuckets> buckets_{};
  // Sums over the window, with t measured from the window's first bucket, kept up to date by
  // Add() so that Compute() is O(1); rebuilt when the window moves by a bucket.
  struct Totals {
    double n = 0, st = 0, stt = 0, sv = 0, stv = 0;
    std::int64_t min_ts = 0, max_ts = 0;
  } totals_;
};

}  // namespace vg
