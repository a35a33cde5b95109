// NEWS2 scoring per the Royal College of Physicians' National Early Warning Score 2 (2017),
// Chart 1 (scoring) and Chart 2/3 (thresholds and clinical risk). Pure functions.
//
// Values are rounded half-up to the chart's precision before lookup (whole numbers for RR,
// SpO2, systolic BP and pulse; 0.1 °C for temperature), as a nurse would chart them, so the
// inclusive bands of the chart cover every real value. See docs/rules.md.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace vg {

struct News2Input {
  double resp_rate = 0;
  double spo2 = 0;
  double bp_systolic = 0;
  double pulse = 0;
  double temperature = 0;
  int consciousness = 0;  // 0=A, 1=C, 2=V, 3=P, 4=U
  bool on_oxygen = false;
  int scale = 1;          // SpO2 scale 1 or 2
};

enum class News2Risk : std::uint8_t { kLow, kLowMedium, kMedium, kHigh };
std::string_view Name(News2Risk risk);

struct News2Score {
  int total = 0;
  News2Risk risk = News2Risk::kLow;
  // resp_rate, spo2, air_or_oxygen, bp_systolic, pulse, consciousness, temperature
  std::array<std::int8_t, 7> sub{};
};

int News2RespRate(double rr);
int News2Spo2(double spo2, int scale, bool on_oxygen);
int News2AirOrOxygen(bool on_oxygen);
int News2Systolic(double sbp);
int News2Pulse(double pulse);
int News2Consciousness(int acvpu);
int News2Temperature(double celsius);

News2Score ScoreNews2(const News2Input& in);

}  // namespace vg
