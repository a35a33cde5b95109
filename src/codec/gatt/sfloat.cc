#include "sfloat.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace vg::gatt {
namespace {

// 10^0 .. 10^22 are exactly representable as doubles; dividing or multiplying an integer
// mantissa by one of them is a single correctly rounded operation.
constexpr std::array<double, 23> kExactPow10 = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                                1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                                1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
constexpr std::int32_t kMaxExactExponent = 22;

// Sign-extends the low `bits` bits of `value`.
std::int32_t SignExtend(std::uint32_t value, unsigned bits) {
  const std::uint32_t mask = (1u << bits) - 1u;
  const std::uint32_t sign = 1u << (bits - 1u);
  const std::uint32_t v = value & mask;
  return (v & sign) != 0 ? static_cast<std::int32_t>(v) - static_cast<std::int32_t>(mask) - 1
                         : static_cast<std::int32_t>(v);
}

// IEEE 11073-20601 special values (exponent 0, mantissa at the edges of its range).
constexpr std::uint16_t kSfloatNaN = 0x07FF;
constexpr std::uint16_t kSfloatNRes = 0x0800;
constexpr std::uint16_t kSfloatPosInf = 0x07FE;
constexpr std::uint16_t kSfloatNegInf = 0x0802;
constexpr std::uint16_t kSfloatReserved = 0x0801;
constexpr std::uint32_t kFloatNaN = 0x007FFFFF;
constexpr std::uint32_t kFloatNRes = 0x00800000;
constexpr std::uint32_t kFloatPosInf = 0x007FFFFE;
constexpr std::uint32_t kFloatNegInf = 0x00800002;
constexpr std::uint32_t kFloatReserved = 0x00800001;

}  // namespace

std::optional<MedFloat> ParseSfloat(std::uint16_t raw) {
  switch (raw) {
    case kSfloatNaN:
    case kSfloatNRes:
    case kSfloatPosInf:
    case kSfloatNegInf:
    case kSfloatReserved:
      return std::nullopt;
    default:
      break;
  }
  return MedFloat{SignExtend(raw & 0x0FFFu, 12),
                  SignExtend(static_cast<std::uint32_t>(raw) >> 12, 4)};
}

std::optional<MedFloat> ParseFloat(std::uint32_t raw) {
  switch (raw) {
    case kFloatNaN:
    case kFloatNRes:
    case kFloatPosInf:
    case kFloatNegInf:
    case kFloatReserved:
      return std::nullopt;
    default:
      break;
  }
  return MedFloat{SignExtend(raw & 0x00FFFFFFu, 24), SignExtend(raw >> 24, 8)};
}

double DecimalToDouble(std::int64_t mantissa, std::int32_t exponent) {
  const auto m = static_cast<double>(mantissa);
  if (exponent >= 0) {
    if (exponent <= kMaxExactExponent) return m * kExactPow10[static_cast<std::size_t>(exponent)];
    return m * std::pow(10.0, exponent);
  }
  const std::int32_t k = -exponent;
  if (k <= kMaxExactExponent) return m / kExactPow10[static_cast<std::size_t>(k)];
  // Only tiny, implausible values get here; two roundings are fine for them.
  return m / kExactPow10[kMaxExactExponent] / std::pow(10.0, k - kMaxExactExponent);
}

std::optional<double> DecodeSfloat(std::uint16_t raw) {
  const auto f = ParseSfloat(raw);
  if (!f) return std::nullopt;
  return ToDouble(*f);
}

std::optional<double> DecodeFloat(std::uint32_t raw) {
  const auto f = ParseFloat(raw);
  if (!f) return std::nullopt;
  return ToDouble(*f);
}

double RoundConverted(double value, double resolution) {
  constexpr int kMinDecimals = 2;
  constexpr int kMaxDecimals = 15;
  const int finer = 1 - static_cast<int>(std::floor(std::log10(resolution)));
  const int decimals = std::clamp(finer, kMinDecimals, kMaxDecimals);
  const double scale = kExactPow10[static_cast<std::size_t>(decimals)];
  const double scaled = value * scale;
  // Past 2^53 a double has no fractional digits left to round away.
  if (!std::isfinite(scaled) || std::fabs(scaled) >= 9007199254740992.0) return value;
  return std::round(scaled) / scale;
}

}  // namespace vg::gatt
