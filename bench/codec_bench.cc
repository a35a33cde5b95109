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

std::string Bytes(std::string_view hex) { return *ParseHex(hex); }

// A Nonin format 2 packet: 25 five-byte frames with HR 72 and SpO2 97 (one packet = one frame
// count of 25 for the figures below).
std::string NoninPacket() {
  std::string p;
  for (int i = 1; i <= 25; ++i) {
    const auto status = static_cast<std::uint8_t>(0x80 | (i == 1 ? 1 : 0));
    const std::uint8_t value = i == 1 ? 0 : i == 2 ? 72 : i == 3 ? 97 : 0;
    const std::uint8_t frame[5] = {1, status, 0x40, value,
                                   static_cast<std::uint8_t>(1 + status + 0x40 + value)};
    p.append(reinterpret_cast<const char*>(frame), 5);
  }
  return p;
}

void BM_Masimo(benchmark::State& state) {
  RunCodec(state, {{"type", "masimo"}},
           "02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% "
           "DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000800\r\n");
}
BENCHMARK(BM_Masimo);

void BM_NoninFormat2Frames(benchmark::State& state) {
  RunCodec(state, {{"type", "nonin"}}, NoninPacket(), 10);  // items = packets of 25 frames
}
BENCHMARK(BM_NoninFormat2Frames);

void BM_NoninFormat8(benchmark::State& state) {
  RunCodec(state, {{"type", "nonin"}, {"format", 8}}, Bytes("80 48 61 00"));
}
BENCHMARK(BM_NoninFormat8);

void BM_Contec5(benchmark::State& state) {
  RunCodec(state, {{"type", "contec"}, {"frame", "5"}}, Bytes("85 40 03 48 61"));
}
BENCHMARK(BM_Contec5);

void BM_Contec9(benchmark::State& state) {
  RunCodec(state, {{"type", "contec"}, {"frame", "9"}}, Bytes("01 E0 85 B3 96 C1 E1 FF FF"));
}
BENCHMARK(BM_Contec9);

void BM_KeyValue(benchmark::State& state) {
  RunCodec(state,
           {{"type", "keyvalue"},
            {"map", {{"SPO2", "spo2"}, {"HR", "pulse_rate"}, {"TEMP", {{"metric", "temperature"}, {"unit", "[degF]"}}}}}},
           "SPO2=097 HR=072 TEMP=100.4\n");
}
BENCHMARK(BM_KeyValue);

// GATT values arrive one characteristic at a time.
void RunGatt(benchmark::State& state, std::uint16_t uuid, std::string_view hex) {
  auto codec = Make({{"type", "gatt"}});
  const std::string value = Bytes(hex);
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(value.data()),
                                            value.size());
  NullSink sink;
  for (auto _ : state) codec->FeedCharacteristic(uuid, bytes, sink);
  state.SetItemsProcessed(state.iterations());
  if (sink.errors > 0) state.SkipWithError("decode errors in the benchmark input");
}

void BM_GattHeartRate(benchmark::State& state) { RunGatt(state, 0x2A37, "06 4B"); }
BENCHMARK(BM_GattHeartRate);
void BM_GattBloodPressure(benchmark::State& state) {
  RunGatt(state, 0x2A35, "1E 79 00 50 00 5E 00 E4 07 0B 16 05 00 00 48 00 01 00 00");
}
BENCHMARK(BM_GattBloodPressure);
void BM_GattTemperature(benchmark::State& state) { RunGatt(state, 0x2A1C, "00 6E 01 00 FF"); }
BENCHMARK(BM_GattTemperature);
void BM_GattPlxContinuous(benchmark::State& state) { RunGatt(state, 0x2A5F, "00 61 00 48 00"); }
BENCHMARK(BM_GattPlxContinuous);

}  // namespace
}  // namespace vg

BENCHMARK_MAIN();
