#include "vitalgate/engine/news2.h"

#include <cmath>

namespace vg {
namespace {

// Half-up rounding to an integer. The epsilon keeps values like 35.05 (stored as 35.0499...)
// on the side a person reading the display would put them.
long RoundHalfUp(double v) { return static_cast<long>(std::floor(v + 0.5 + 1e-9)); }

}  // namespace

std::string_view Name(News2Risk risk) {
  switch (risk) {
    case News2Risk::kLow: return "low";
    case News2Risk::kLowMedium: return "low-medium";
    case News2Risk::kMedium: return "medium";
    case News2Risk::kHigh: return "high";
  }
  return "?";
}

int News2RespRate(double rr) {
  const long r = RoundHalfUp(rr);
  if (r <= 8) return 3;
  if (r <= 11) return 1;
  if (r <= 20) return 0;
  if (r <= 24) return 2;
  return 3;
}

int News2Spo2(double spo2, int scale, bool on_oxygen) {
  const long s = RoundHalfUp(spo2);
  if (scale == 2) {
    if (s <= 83) return 3;
    if (s <= 85) return 2;
    if (s <= 87) return 1;
    if (s <= 92 || !on_oxygen) return 0;  // 88-92, or >= 93 on air
    if (s <= 94) return 1;                // 93-94 on oxygen
    if (s <= 96) return 2;                // 95-96 on oxygen
    return 3;                             // >= 97 on oxygen
  }
  if (s <= 91) return 3;
  if (s <= 93) return 2;
  if (s <= 95) return 1;
  return 0;
}

int News2AirOrOxygen(bool on_oxygen) { return on_oxygen ? 2 : 0; }

int News2Systolic(double sbp) {
  const long s = RoundHalfUp(sbp);
  if (s <= 90) return 3;
  if (s <= 100) return 2;
  if (s <= 110) return 1;
  if (s <= 219) return 0;
  return 3;
}

int News2Pulse(double pulse) {
  const long p = RoundHalfUp(pulse);
  if (p <= 40) return 3;
  if (p <= 50) return 1;
  if (p <= 90) return 0;
  if (p <= 110) return 1;
  if (p <= 130) return 2;
  return 3;
}

int News2Consciousness(int acvpu) { return acvpu == 0 ? 0 : 3; }

int News2Temperature(double celsius) {
  const long tenths = RoundHalfUp(celsius * 10.0);
  if (tenths <= 350) return 3;
  if (tenths <= 360) return 1;
  if (tenths <= 380) return 0;
  if (tenths <= 390) return 1;
  return 2;
}

News2Score ScoreNews2(const News2Input& in) {
  News2Score s;
  s.sub = {static_cast<std::int8_t>(News2RespRate(in.resp_rate)),
           static_cast<std::int8_t>(News2Spo2(in.spo2, in.scale, in.on_oxygen)),
           static_cast<std::int8_t>(News2AirOrOxygen(in.on_oxygen)),
           static_cast<std::int8_t>(News2Systolic(in.bp_systolic)),
           static_cast<std::int8_t>(News2Pulse(in.pulse)),
           static_cast<std::int8_t>(News2Consciousness(in.consciousness)),
           static_cast<std::int8_t>(News2Temperature(in.temperature))};
  bool red = false;
  for (std::int8_t v : s.sub) {
    s.total += v;
    red = red || v == 3;
  }
  if (s.total >= 7) {
    s.risk = News2Risk::kHigh;
  } else if (s.total >= 5) {
    s.risk = News2Risk::kMedium;
  } else if (red) {
    s.risk = News2Risk::kLowMedium;
  } else {
    s.risk = News2Risk::kLow;
  }
  return s;
}

}  // namespace vg
