#include "vitalgate/engine/trend.h"

#include <algorithm>
#include <limits>

namespace vg {

TrendWindow::TrendWindow(std::int64_t window_ms)
    : bucket_ms_(std::max<std::int64_t>(1, window_ms / kBuckets)) {}

void TrendWindow::Add(std::int64_t ts_ms, double value) {
  const std::int64_t index = ts_ms >= 0 ? ts_ms / bucket_ms_ : -1 - (-ts_ms - 1) / bucket_ms_;
  if (newest_index_ >= 0 && index <= newest_index_ - kBuckets) return;  // too old
  newest_index_ = std::max(newest_index_, index);
  Bucket& b = buckets_[static_cast<std::size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
  if (b.index != index) {
    b = Bucket{};
    b.index = index;
    b.min_ts = ts_ms;
    b.max_ts = ts_ms;
  }
  const double u = static_cast<double>(ts_ms - index * bucket_ms_);
  b.n += 1;
  b.su += u;
  b.suu += u * u;
  b.sv += value;
  b.suv += u * value;
  b.min_ts = std::min(b.min_ts, ts_ms);
  b.max_ts = std::max(b.max_ts, ts_ms);
}

std::optional<TrendWindow::Fit> TrendWindow::Compute() const {
  if (newest_index_ < 0) return std::nullopt;
  const std::int64_t first = newest_index_ - kBuckets + 1;
  const std::int64_t base_ms = first * bucket_ms_;
  double n = 0, st = 0, stt = 0, sv = 0, stv = 0;
  std::int64_t min_ts = std::numeric_limits<std::int64_t>::max();
  std::int64_t max_ts = std::numeric_limits<std::int64_t>::min();
  for (const Bucket& b : buckets_) {
    if (b.index < first || b.index > newest_index_ || b.n == 0) continue;
    const double d = static_cast<double>(b.index * bucket_ms_ - base_ms);
    n += b.n;
    st += b.n * d + b.su;
    stt += b.n * d * d + 2 * d * b.su + b.suu;
    sv += b.sv;
    stv += d * b.sv + b.suv;
    min_ts = std::min(min_ts, b.min_ts);
    max_ts = std::max(max_ts, b.max_ts);
  }
  if (n < 2) return std::nullopt;
  const double denom = n * stt - st * st;
  if (denom <= 1e-9 * n * stt) return std::nullopt;
  Fit fit;
  fit.slope_per_ms = (n * stv - st * sv) / denom;
  fit.samples = static_cast<int>(n);
  fit.span_ms = max_ts - min_ts;
  return fit;
}

}  // namespace vg
