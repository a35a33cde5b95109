// IEEE 11073-20601 SFLOAT (16-bit, GSS "medfloat16") and FLOAT (32-bit, "medfloat32"), the
// decimal floating-point types of the Bluetooth health profiles: value = mantissa × 10^exponent,
// with a signed 4-bit (8-bit) exponent and a signed 12-bit (24-bit) mantissa.
//
// Special values (NaN, NRes, +INF, −INF and the reserved code) are the exact raw values listed in
// IEEE 11073-20601 (all with exponent 0); they decode to nullopt so that they can never become a
// number. Conversions to double are exact to the nearest double of the decimal value: 0xF16E
// gives the double closest to 36.6, which prints as "36.6".
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>

namespace vg::gatt {

// A decoded, finite medfloat: the value is mantissa × 10^exponent.
struct MedFloat {
  std::int32_t mantissa = 0;
  std::int32_t exponent = 0;
};

// nullopt for NaN, NRes, ±INF and the reserved value.
std::optional<MedFloat> ParseSfloat(std::uint16_t raw);
std::optional<MedFloat> ParseFloat(std::uint32_t raw);

// The double nearest to mantissa × 10^exponent for |exponent| <= 22 (exact powers of ten);
// beyond that within a few ulps. Always finite for medfloat inputs.
double DecimalToDouble(std::int64_t mantissa, std::int32_t exponent);

inline double ToDouble(MedFloat f) { return DecimalToDouble(f.mantissa, f.exponent); }
// The step between adjacent values at this exponent: 10^exponent.
inline double Resolution(MedFloat f) { return DecimalToDouble(1, f.exponent); }

std::optional<double> DecodeSfloat(std::uint16_t raw);
std::optional<double> DecodeFloat(std::uint32_t raw);

// Rounds a value converted to another unit (kPa→mm[Hg], °F→Cel, lb→kg, mol/L→mg/dL) so it shows
// no more digits than the measurement carries, instead of binary noise such as 36.99999999:
// one decimal finer than `resolution` (the source step expressed in the target unit), and at least
// two decimals. Example: 18.9 kPa has a step of 0.1 kPa = 0.75 mm[Hg], so 141.76 mm[Hg].
// REQUIRES: value is finite and resolution > 0.
double RoundConverted(double value, double resolution);

}  // namespace vg::gatt
