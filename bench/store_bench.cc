// Outbox benchmarks with the production durability settings (WAL, synchronous=FULL): group
// commits of readings, and the acknowledge (delete) path.
//   build/release/bench/bench_store --benchmark_min_time=2
// The database lives in $VITALGATE_BENCH_DIR (default /var/tmp), on the disk being measured.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "vitalgate/core/compact_row.h"
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

// `readings` readings as the store thread writes them: one row per patient and commit, here
// at most 100 readings a row (100 patients), in the compact stored form.
void AddReadings(WriteBatch& batch, std::uint64_t readings, std::uint64_t& seq, std::uint64_t& n) {
  const std::uint64_t per_row = std::max<std::uint64_t>(1, readings / 100);
  CompactRowEncoder encoder;
  for (std::uint64_t done = 0; done < readings; done += per_row) {
    StoredRow r;
    r.seq = seq++;
    r.patient = "p-" + std::to_string(r.seq % 100);
    r.rx_ms = 1'795'323'600'000 + static_cast<std::int64_t>(r.seq);
    r.format = RowFormat::kCompact;
    r.count = static_cast<std::uint32_t>(std::min(per_row, readings - done));
    encoder.Begin(r.body);
    for (std::uint32_t i = 0; i < r.count; ++i) {
      ReadingText t;
      t.instance = "cd6fac20";
      t.id = n++;
      t.device = "ox-1";
      t.metric = "spo2";
      t.unit = "%";
      t.value = 97;
      t.ts_ms = r.rx_ms;
      encoder.Append(r.body, t);
    }
    batch.batches.push_back(std::move(r));
  }
}

// Readings per second committed, `batch` readings per transaction, each commit fsynced.
void BM_OutboxAppend(benchmark::State& state) {
  const std::string path = BenchPath();
  RemoveDb(path);
  StoreOptions options;
  options.path = path;
  options.max_bytes = 8ull << 30;
  auto store = OutboxStore::Open(options);
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return;
  }
  const auto batch_size = static_cast<std::uint64_t>(state.range(0));
  std::uint64_t seq = 1, n = 0;
  WriteBatch batch;
  for (auto _ : state) {
    batch.clear();
    AddReadings(batch, batch_size, seq, n);
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

// Readings per second acknowledged: one transaction inserts `batch` new readings and deletes
// as many delivered ones (the broker's acknowledgements), as the store thread does in steady
// state.
void BM_OutboxAppendAndAcknowledge(benchmark::State& state) {
  const std::string path = BenchPath();
  RemoveDb(path);
  StoreOptions options;
  options.path = path;
  options.max_bytes = 8ull << 30;
  auto store = OutboxStore::Open(options);
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return;
  }
  const auto batch_size = static_cast<std::uint64_t>(state.range(0));
  std::uint64_t seq = 1, n = 0, acked = 1;
  WriteBatch batch;
  AddReadings(batch, 10 * batch_size, seq, n);
  (void)(*store)->Commit(batch);
  for (auto _ : state) {
    batch.clear();
    const std::uint64_t first = seq;
    AddReadings(batch, batch_size, seq, n);
    DestinationAcks acks;  // bit 0: the only destination
    for (std::uint64_t i = first; i < seq; ++i) acks.batches.push_back(acked++);
    batch.acks.push_back(std::move(acks));
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
