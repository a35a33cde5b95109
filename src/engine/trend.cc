#include "vitalgate/engine/trend.h"

#include <algorithm>
#include <limits>

namespace vg {

TrendWindow::TrendWindow(std::int64_t window_ms)
    : bucket_ms_(std::max<std::int64_t>(1, window_ms / kBuckets)) {}

void TrendWindow::Add(std::int64_t ts_ms, double value) {
  const std::int64_t index = ts_ms >= 0 ? ts_ms / bucket_ms_ : -1 - (-ts_ms - 1) / bucket_ms_;
  if (newest_index_ >= 0 && index <= newest_index_ - kBuckets) return;  // too old
  const bool moved = index > newest_index_;
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
  if (moved) {
    Retotal();
    return;
  }
  const double t = static_cast<double>(ts_ms - (newest_index_ - kBuckets + 1) * bucket_ms_);
  totals_.n += 1;
  totals_.st += t;
  totals_.stt += t * t;
  totals_.sv += value;
  totals_.stv += t * value;
  totals_.min_ts = totals_.n == 1 ? ts_ms : std::min(totals_.min_ts, ts_ms);
  totals_.max_ts = totals_.n == 1 ? ts_ms : std::max(totals_.max_ts, ts_ms);
}

void TrendWindow::Retotal() {
  totals_ = Totals{};
  const std::int64_t first = newest_index_ - kBuckets + 1;
  const std::int64_t base_ms = first * bucket_ms_;
  bool any = false;
  for (const Bucket& b : buckets_) {
    if (b.index < first || b.index > newest_index_ || b.n == 0) continue;
    const double d = static_cast<double>(b.index * bucket_ms_ - base_ms);
    totals_.n += b.n;
    totals_.st += b.n * d + b.su;
    totals_.stt += b.n * d * d + 2 * d * b.su + b.suu;
    totals_.sv += b.sv;
    totals_.stv += d * b.sv + b.suv;
    totals_.min_ts = any ? std::min(totals_.min_ts, b.min_ts) : b.min_ts;
    totals_.max_ts = any ? std::max(totals_.max_ts, b.max_ts) : b.max_ts;
    any = true;
  }
}

std::optional<TrendWindow::Fit> TrendWindow::Compute() const {
  if (newest_index_ < 0) return std::nullopt;
  const Totals& t = totals_;
  if (t.n < 2) return std::nullopt;
  const double denom = t.n * t.stt - t.st * t.st;
  if (denom <= 1e-9 * t.n * t.stt) return std::nullopt;
  Fit fit;
  fit.slope_per_ms = (t.n * t.stv - t.st * t.sv) / denom;
  fit.samples = static_cast<int>(t.n);
  fit.span_ms = t.max_ts - t.min_ts;
  return fit;
}

}  // namespace vg
