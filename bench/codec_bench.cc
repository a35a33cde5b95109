// Codec benchmarks: frames (lines) decoded per second.
//   build/release/bench/bench_codec
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <string>

#include "vitalgate/codec/codec.h"

namespace vg {
namespace {

class NullSink final : public CodecSink {
 public:
  void OnValue(const DecodedValue& v) override {
    benchmark::DoNotOptimize(v.value);
    ++values;
  }
  void OnCondition(DeviceCondition, bool) override {}
  void OnDecodeError(const DecodeError&) override { ++errors; }
  std::uint64_t values = 0, errors = 0;
};

std::unique_ptr<Codec> Make(const nlohmann::json& spec) {
  auto v = ValidateCodecSpec(spec, "bench");
  return std::move(*MakeCodec(*v));
}

// Feeds `frames` (one chunk holding many frames) repeatedly; counts frames per second.
void RunCodec(benchmark::State& state, const nlohmann::json& spec, const std::string& frame,
              int frames_per_chunk = 256) {
  auto codec = Make(spec);
  std::string chunk;
  for (int i = 0; i < frames_per_chunk; ++i) chunk += frame;
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(chunk.data()),
                                            chunk.size());
  NullSink sink;
  for (auto _ : state) codec->Feed(bytes, sink);
  state.SetItemsProcessed(state.iterations() * frames_per_chunk);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(chunk.size()));
  if (sink.errors > 0) state.SkipWithError("decode errors in the benchmark input");
}

void BM_Jsonl(benchmark::State& state) {
  RunCodec(state, {{"type", "jsonl"}},
           "{\"metric\":\"spo2\",\"value\":97,\"ts\":\"2026-11-22T05:00:00.000Z\"}\n");
}
BENCHMARK(BM_Jsonl);

void BM_JsonlWithUnitAndPatient(benchmark::State& state) {
  RunCodec(state, {{"type", "jsonl"}},
           "{\"metric\":\"temperature\",\"value\":98.6,\"unit\":\"[degF]\","
           "\"ts\":\"2026-11-22T05:00:00.000Z\",\"patient\":\"p-017\"}\n");
}
BENCHMARK(BM_JsonlWithUnitAndPatient);

}  // namespace
}  // namespace vg

BENCHMARK_MAIN();
