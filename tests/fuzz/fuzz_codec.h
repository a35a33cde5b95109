// Shared libFuzzer harness for stream codecs.
//
// For each codec spec it feeds the input (1) in one piece, (2) in chunks whose lengths come from
// the input's own bytes, and (3) in two pieces with a Reset() between them. A sink checks on
// every callback what every codec promises (codec.h): finite values of a known metric, at most 8
// non-empty status words, only known flag bits, conditions reported on change only, errors with
// a non-empty message, a short detail and an offset inside the bytes fed so far. Runs (1) and (2)
// must report exactly the same: a codec must not depend on how reads split the stream.
// Any violation aborts, which libFuzzer reports as a finding.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

#include "vitalgate/codec/codec.h"

namespace vg::fuzz {

[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "codec invariant violated: %s\n", what);
  std::abort();
}

class InvariantSink final : public CodecSink {
 public:
  void OnValue(const DecodedValue& v) override {
    if (!std::isfinite(v.value)) Fail("value is not finite");
    if (static_cast<std::size_t>(v.metric) >= kMetricCount) Fail("unknown metric");
    if (v.status_count > v.status.size()) Fail("status_count out of bounds");
    for (std::uint8_t i = 0; i < v.status_count; ++i) {
      if (v.status[i].empty()) Fail("empty status word");
    }
    if ((v.flags & ~(kFlagDeviceTime | kFlagQuestionable)) != 0) Fail("unknown flag bit");
    if (((v.flags & kFlagDeviceTime) != 0) != v.ts_ms.has_value()) {
      Fail("device-time flag and ts disagree");
    }
    trace += "v" + std::to_string(static_cast<int>(v.metric)) + "=" + std::to_string(v.value) +
             "/" + std::to_string(v.flags) + "/" + std::to_string(v.status_count) +
             (v.ts_ms ? "@" + std::to_string(*v.ts_ms) : std::string()) + ";";
  }
  void OnCondition(DeviceCondition c, bool active) override {
    const auto index = static_cast<std::size_t>(c);
    if (index >= kDeviceConditionCount) Fail("unknown condition");
    // Reported on change only: each report flips the state, which starts inactive.
    if (conditions[index] == active) Fail("condition reported without a change");
    conditions[index] = active;
    trace += "c" + std::to_string(index) + (active ? "+;" : "-;");
  }
  void OnDecodeError(const DecodeError& e) override {
    if (e.message.empty()) Fail("empty error message");
    if (e.detail.size() > 64) Fail("error detail longer than 64 bytes");
    if (e.offset >= fed) Fail("error offset beyond the bytes fed");
    trace += "e" + std::to_string(e.offset) + (e.warning ? "w" : "") + ":" + e.message + ";";
  }

  std::uint64_t fed = 0;  // bytes fed so far (the caller keeps it current)
  std::array<bool, kDeviceConditionCount> conditions{};
  std::string trace;
};

inline std::unique_ptr<Codec> Make(const nlohmann::json& spec) {
  auto validated = ValidateCodecSpec(spec, "fuzz");
  if (!validated.ok()) Fail("fuzz spec rejected");
  auto codec = MakeCodec(*validated);
  if (!codec.ok()) Fail("fuzz codec not created");
  return std::move(*codec);
}

inline void Feed(Codec& codec, InvariantSink& sink, std::span<const std::uint8_t> bytes) {
  sink.fed += bytes.size();
  codec.Feed(bytes, sink);
}

inline void Run(const nlohmann::json& spec, const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);

  auto whole = Make(spec);
  InvariantSink whole_sink;
  Feed(*whole, whole_sink, input);

  auto chunked = Make(spec);
  InvariantSink chunked_sink;
  for (std::size_t pos = 0; pos < size;) {
    const std::size_t len = std::min<std::size_t>(size - pos, 1 + data[pos] % 23);
    Feed(*chunked, chunked_sink, input.subspan(pos, len));
    pos += len;
  }
  if (whole_sink.trace != chunked_sink.trace) Fail("result depends on how the input is split");

  auto reset = Make(spec);
  InvariantSink reset_sink;
  const std::size_t cut = size == 0 ? 0 : data[size - 1] % (size + 1);
  Feed(*reset, reset_sink, input.first(cut));
  reset->Reset();
  Feed(*reset, reset_sink, input.subspan(cut));
}

}  // namespace vg::fuzz
