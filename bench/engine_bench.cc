// Engine benchmarks: rule evaluation throughput with every default rule on, the ring hand-off,
// and the time from a reading entering the engine's ring to its alert leaving the engine.
//   build/release/bench/bench_engine
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "vitalgate/engine/engine.h"
#include "vitalgate/engine/runner.h"

namespace vg {
namespace {

class CountingSink final : public AlertSink {
 public:
  void OnAlert(AlertEvent&& e) override {
    ++count;
    benchmark::DoNotOptimize(e.id);
  }
  std::uint64_t count = 0;
};

std::shared_ptr<const RuleBook> AllRules(int patients) {
  std::vector<PatientRuleInput> in;
  for (int p = 0; p < patients; ++p) {
    in.push_back(PatientRuleInput{static_cast<PatientIndex>(p), "p-" + std::to_string(p),
                                  p % 5 == 0 ? 2 : 1, nlohmann::json::object()});
  }
  auto book = CompileRules(nlohmann::json::object(), in);  // every default rule on
  return *book;
}

// One second of a ward: each patient sends HR, SpO2, RR and perfusion each second and BP and
// temperature now and then; values drift and now and then cross a limit, so alarms are raised
// and cleared and NEWS2 changes, as in real use.
std::vector<Reading> Workload(int patients, int seconds) {
  std::mt19937 rng(42);
  std::normal_distribution<double> noise(0, 1);
  std::vector<Reading> out;
  const std::int64_t t0 = 1'795'323'600'000;
  for (int s = 0; s < seconds; ++s) {
    for (int p = 0; p < patients; ++p) {
      const double wave = std::sin((s + p * 7) / 120.0);
      auto add = [&](Metric m, double v) {
        Reading r;
        r.metric = m;
        r.value = v;
        r.patient = static_cast<PatientIndex>(p);
        r.device = static_cast<DeviceIndex>(p);
        r.ts_ms = r.rx_ms = t0 + s * 1000;
        out.push_back(r);
      };
      add(Metric::kHeartRate, std::round(90 + 40 * wave + 2 * noise(rng)));
      add(Metric::kSpo2, std::round(std::min(100.0, 94 + 5 * wave + noise(rng))));
      add(Metric::kRespRate, std::round(18 + 6 * wave + noise(rng)));
      add(Metric::kPerfusionIndex, 3 + 0.1 * noise(rng));
      if ((s + p) % 60 == 0) add(Metric::kBpSystolic, std::round(115 - 25 * wave + 3 * noise(rng)));
      if ((s + p) % 30 == 0) add(Metric::kTemperature, 37.5 + 1.5 * wave);
    }
  }
  return out;
}

std::vector<EngineDevice> Devices(int n) {
  std::vector<EngineDevice> d;
  for (int i = 0; i < n; ++i) {
    d.push_back(EngineDevice{"d" + std::to_string(i), static_cast<PatientIndex>(i), {}, {}, true});
  }
  return d;
}

void BM_EngineThroughput(benchmark::State& state) {
  const int patients = static_cast<int>(state.range(0));
  const int seconds = std::max(20, 200000 / (patients * 5));
  const std::vector<Reading> work = Workload(patients, seconds);
  Engine engine(AllRules(patients), Devices(patients), 1, 0);
  CountingSink sink;
  std::size_t i = 0;
  std::int64_t shift = 0;  // keeps event time moving forward when the workload wraps
  for (auto _ : state) {
    Reading r = work[i];
    r.ts_ms += shift;
    engine.OnReading(r, 0, sink);
    if (++i == work.size()) {
      i = 0;
      shift += static_cast<std::int64_t>(seconds) * 1000;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["alerts"] = static_cast<double>(sink.count);
}
BENCHMARK(BM_EngineThroughput)->Arg(1)->Arg(100)->Arg(1000);

// Cost of handing one IngressItem from a producer thread to a consumer thread.
void BM_RingHandoff(benchmark::State& state) {
  SpscRing<IngressItem> ring(1 << 14);
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> consumed{0};
  std::thread consumer([&] {
    IngressItem item;
    std::uint64_t n = 0;
    while (!done.load(std::memory_order_acquire) || !ring.Empty()) {
      n += ring.Drain([&](IngressItem& it) { benchmark::DoNotOptimize(it.reading.value); }, 512);
    }
    consumed = n;
  });
  IngressItem item;
  for (auto _ : state) {
    while (!ring.TryPush(item)) {
    }
  }
  done = true;
  consumer.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RingHandoff)->UseRealTime();

// A reading that raises an alarm is pushed into the engine's ring while background load runs;
// measures push -> alert popped from the engine's output ring (the engine's share of the alert
// latency). Reported percentiles are over all measured alarms.
void BM_ReadingToAlertLatency(benchmark::State& state) {
  const int background_per_alarm = static_cast<int>(state.range(0));
  constexpr int kPatients = 1000;
  Engine engine(AllRules(kPatients), Devices(kPatients), 1, SystemClock::Instance().MonotonicNs());
  SpscRing<IngressItem> in(1 << 16);
  SpscRing<AckRequest> acks(64);
  SpscRing<Reading> readings_out(1 << 16);
  SpscRing<AlertEvent> alerts_out(1 << 12);
  Doorbell wake_engine, wake_store;
  GatewayStats stats(kPatients);
  EngineRings rings{{&in}, &acks, &readings_out, &alerts_out, &wake_engine, &wake_store};
  EngineRunner runner(engine, SystemClock::Instance(), rings, stats);
  runner.Start();
  std::atomic<bool> done{false};
  std::thread drain([&] {  // stands in for the store thread
    Reading r;
    while (!done.load()) {
      if (readings_out.Drain([](Reading&) {}, 4096) == 0) std::this_thread::yield();
    }
  });
  const std::vector<Reading> background = Workload(kPatients, 5);
  std::size_t bi = 0;
  std::vector<double> latencies;
  std::int64_t t = 1'795'323'600'000;
  for (auto _ : state) {
    for (int k = 0; k < background_per_alarm; ++k) {
      IngressItem item;
      item.reading = background[bi++ % background.size()];
      item.reading.patient = 1 + item.reading.patient % (kPatients - 1);  // patient 0 is ours
      item.reading.ts_ms = t;
      while (!in.TryPush(item)) wake_engine.Ring();
    }
    // Patient 0's heart rate: back to normal (clears the last alarm), then above the high
    // limit twice 10 s apart in event time; the default condition delay is 10 s, so the second
    // reading raises the alarm. Only that reading is timed.
    t += 20'000;
    IngressItem item;
    item.reading.metric = Metric::kHeartRate;
    item.reading.patient = 0;
    item.reading.device = 0;
    item.reading.value = 70;
    item.reading.ts_ms = t - 15'000;
    while (!in.TryPush(item)) wake_engine.Ring();
    item.reading.value = 160;
    item.reading.ts_ms = t - 10'000;
    while (!in.TryPush(item)) wake_engine.Ring();
    wake_engine.Ring();
    while (!in.Empty()) std::this_thread::yield();
    AlertEvent e;
    while (alerts_out.TryPop(e)) {
    }
    item.reading.ts_ms = t;
    const auto start = std::chrono::steady_clock::now();
    while (!in.TryPush(item)) wake_engine.Ring();
    wake_engine.Ring();
    bool found = false;
    while (!found) {
      while (alerts_out.TryPop(e)) {
        found = found || (e.patient == 0 && e.kind == AlertKind::kThreshold &&
                          e.state == AlertState::kActive);
      }
    }
    latencies.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  }
  runner.RequestStop();
  runner.Join();
  done = true;
  drain.join();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies[static_cast<std::size_t>(p * static_cast<double>(latencies.size() - 1))];
  };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["max_us"] = latencies.back();
}
BENCHMARK(BM_ReadingToAlertLatency)->Arg(100)->Iterations(2000)->UseRealTime();

}  // namespace
}  // namespace vg

BENCHMARK_MAIN();
