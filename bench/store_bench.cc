// Outbox benchmarks with the production durability settings (WAL, synchronous=FULL): group
// commits of readings, and the acknowledge (delete) path.
//   build/release/bench/bench_store --benchmark_min_time=2
// The database lives in $VITALGATE_BENCH_DIR (default /var/tmp), on the disk being measured.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "vitalgate/store/outbox.h"

namespace vg {
namespace {

std::string BenchPath() {
  const char* dir = std::getenv("VITALGATE_BENCH_DIR");
  return std::string(dir != nullptr ? dir : "/var/tmp") + "/vg_bench_" + std::to_string(::getpid()) + ".db";
}

void RemoveDb(const std::string& path) {
  for (const char* s : {"", "-wal", "-shm"}) std::remove((path + s).c_str());
}

OutboxRow Row(std::uint64_t seq) {
  OutboxRow r;
  r.seq = seq;
  r.patient = "p-" + std::to_string(seq % 100);
  r.rx_ms = 1'795'323'600'000 + static_cast<std::int64_t>(seq);
  r.body = R"({"id":"cd6fac20-1000000)" + std::to_string(seq) +
           R"(","device":"ox-1","metric":"spo2","value":97,"unit":"%","ts":"2026-11-22T05:00:00.000Z"})";
  return r;
}

// Rows per second committed, `batch` readings per transaction, each commit fsynced.
void BM_OutboxAppend(benchmark::State& state) {
  const std::string path = BenchPath();
  RemoveDb(path);
  auto store = OutboxStore::Open(StoreOptions{path, 8ull << 30, true, ""});
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return;
  }
  const auto batch_size = static_cast<std::uint64_t>(state.range(0));
  std::uint64_t seq = 1;
  WriteBatch batch;
  for (auto _ : state) {
    batch.clear();
    for (std::uint64_t i = 0; i < batch_size; ++i) batch.readings.push_back(Row(seq++));
    const Status s = (*store)->Commit(batch);
    if (!s.ok()) state.SkipWithError(s.message().c_str());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size));
  state.counters["commits_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  store->reset();
  RemoveDb(path);
}
BENCHMARK(BM_OutboxAppend)->Arg(1)->Arg(100)->Arg(1000)->Arg(4096)->UseRealTime();

// Rows per second acknowledged: one transaction inserts `batch` new rows and deletes `batch`
// delivered ones, as the store thread does in steady state.
void BM_OutboxAppendAndAcknowledge(benchmark::State& state) {
  const std::string path = BenchPath();
  RemoveDb(path);
  auto store = OutboxStore::Open(StoreOptions{path, 8ull << 30, true, ""});
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return;
  }
  const auto batch_size = static_cast<std::uint64_t>(state.range(0));
  std::uint64_t seq = 1, acked = 1;
  WriteBatch batch;
  for (std::uint64_t i = 0; i < 10 * batch_size; ++i) batch.readings.push_back(Row(seq++));
  (void)(*store)->Commit(batch);
  for (auto _ : state) {
    batch.clear();
    for (std::uint64_t i = 0; i < batch_size; ++i) {
      batch.readings.push_back(Row(seq++));
      batch.acked_readings.push_back(acked++);
    }
    const Status s = (*store)->Commit(batch);
    if (!s.ok()) state.SkipWithError(s.message().c_str());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size));
  store->reset();
  RemoveDb(path);
}
BENCHMARK(BM_OutboxAppendAndAcknowledge)->Arg(100)->Arg(1000)->UseRealTime();

}  // namespace
}  // namespace vg

BENCHMARK_MAIN();
