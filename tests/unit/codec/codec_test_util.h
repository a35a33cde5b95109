// A CodecSink that records everything, and helpers to feed text or hex.
#pragma once

#include <string>
#include <vector>

#include "vitalgate/codec/codec.h"

namespace vg::testing {

struct Recorded {
  std::vector<DecodedValue> values;
  std::vector<std::string> patients;  // copies: DecodedValue::patient is a view
  std::vector<std::pair<DeviceCondition, bool>> conditions;
  std::vector<DecodeError> errors;    // errors and warnings
  std::size_t hard_errors() const {
    std::size_t n = 0;
    for (const DecodeError& e : errors) n += e.warning ? 0 : 1;
    return n;
  }
};

class RecordingSink final : public CodecSink {
 public:
  void OnValue(const DecodedValue& v) override {
    rec.values.push_back(v);
    rec.patients.emplace_back(v.patient);
    rec.values.back().patient = {};
  }
  void OnCondition(DeviceCondition c, bool active) override { rec.conditions.emplace_back(c, active); }
  void OnDecodeError(const DecodeError& e) override { rec.errors.push_back(e); }
  Recorded rec;
};

inline std::span<const std::uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline std::string Hex(const std::string& hex) {
  auto r = ParseHex(hex);
  return r.ok() ? *r : std::string();
}

}  // namespace vg::testing
