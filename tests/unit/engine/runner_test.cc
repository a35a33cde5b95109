// The engine thread with real threads around it: producers push into rings, the runner
// evaluates and hands readings and alerts on; nothing is lost, reordered or duplicated.
// Runs under ThreadSanitizer in CI (label tsan).
#include "vitalgate/engine/runner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "unit/engine/engine_test_util.h"

namespace vg {
namespace {

using nlohmann::json;

struct RunnerRig {
  explicit RunnerRig(std::shared_ptr<const RuleBook> rules, int producers)
      : engine(std::move(rules), testing::EngineHarness::MakeDevices(producers), 7,
               SystemClock::Instance().MonotonicNs()),
        stats(static_cast<std::size_t>(producers)) {
    for (int i = 0; i < producers; ++i) inputs.push_back(std::make_unique<SpscRing<IngressItem>>(1024));
    EngineRings rings;
    for (auto& r : inputs) rings.inputs.push_back(r.get());
    rings.acks = &acks;
    rings.readings_out = &readings_out;
    rings.alerts_out = &alerts_out;
    rings.wake_engine = &wake_engine;
    rings.wake_store = &wake_store;
    runner = std::make_unique<EngineRunner>(engine, SystemClock::Instance(), rings, stats);
  }
  Engine engine;
  GatewayStats stats;
  std::vector<std::unique_ptr<SpscRing<IngressItem>>> inputs;
  SpscRing<AckRequest> acks{64};
  SpscRing<Reading> readings_out{256};  // small: the runner must wait, never drop
  SpscRing<AlertEvent> alerts_out{64};
  Doorbell wake_engine, wake_store;
  std::unique_ptr<EngineRunner> runner;
};

// Every wait in these tests has a deadline: a runner that loses, stalls or reorders makes the
// test fail with a message, never hang until the CTest timeout.
constexpr auto kDeadline = std::chrono::seconds(60);

// Stops the runner and waits for it. The runner stops only once its inputs are empty, which
// may need room in readings_out: what is still in flight is drained (and discarded) meanwhile.
void StopDraining(RunnerRig& rig) {
  rig.runner->RequestStop();
  std::atomic<bool> joined{false};
  std::thread joiner([&rig, &joined] {
    rig.runner->Join();
    joined = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!joined && std::chrono::steady_clock::now() < deadline) {
    rig.readings_out.Drain([](const Reading&) {}, 1024);
    rig.wake_store.Wait(std::chrono::milliseconds(5), [&] { return joined.load(); });
  }
  if (!joined) {
    // The runner thread is stuck: nothing can be torn down safely, and waiting is a hang.
    ADD_FAILURE() << "the engine runner did not stop within " << kDeadline.count() << " s";
    std::fflush(nullptr);
    std::abort();
  }
  joiner.join();
}

TEST(EngineRunnerTest, ConcurrentProducersNothingLostOrReorderedPerProducer) {
  constexpr int kProducers = 3;
  constexpr int kPerProducer = 20000;
  RunnerRig rig(testing::Rules(testing::Only(json::object())), kProducers);
  rig.runner->Start();
  std::atomic<bool> give_up{false};  // the consumer failed: producers stop pushing
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&rig, &give_up, p] {
      for (int i = 0; i < kPerProducer && !give_up; ++i) {
        IngressItem item;
        item.reading.metric = Metric::kHeartRate;
        item.reading.value = i;  // sequence number per producer
        item.reading.device = static_cast<DeviceIndex>(p);
        item.reading.ts_ms = testing::kT0 + i;
        while (!rig.inputs[static_cast<std::size_t>(p)]->TryPush(item)) {
          if (give_up) return;
          std::this_thread::yield();
        }
        if (i % 32 == 0) rig.wake_engine.Ring();
      }
      rig.wake_engine.Ring();
    });
  }
  std::vector<int> next(kProducers, 0);
  std::uint64_t last_id = 0;
  int received = 0;
  std::string failure;  // the first wrong reading; draining stops there
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (received < kProducers * kPerProducer && failure.empty() &&
         std::chrono::steady_clock::now() < deadline) {
    const std::size_t n = rig.readings_out.Drain(
        [&](const Reading& r) {
          if (!failure.empty()) return;
          if (r.id <= last_id) {
            failure = "id " + std::to_string(r.id) + " after " + std::to_string(last_id);
          } else if (static_cast<int>(r.value) != next[r.device]) {
            failure = "device " + std::to_string(r.device) + ": " +
                      std::to_string(static_cast<int>(r.value)) +
                      " where " + std::to_string(next[r.device]) + " was due";
          }
          last_id = r.id;
          ++next[r.device];
          ++received;
        },
        1024);
    if (n == 0) rig.wake_store.Wait(std::chrono::milliseconds(5), [&] { return !rig.readings_out.Empty(); });
  }
  give_up = true;
  for (auto& t : producers) t.join();
  StopDraining(rig);
  EXPECT_EQ(failure, "");
  EXPECT_EQ(received, kProducers * kPerProducer) << "readings missing after " << kDeadline.count()
                                                  << " s";
  EXPECT_EQ(rig.stats.readings_accepted.load(), static_cast<std::uint64_t>(kProducers * kPerProducer));
}

TEST(EngineRunnerTest, AlertsAcksAndRuleReloadsCrossThreads) {
  const json rules = testing::Only(
      {{"thresholds", {{"spo2", {{"low", {{{"limit", 90}, {"priority", "medium"}}}}, {"delay_s", 0}}}}}});
  RunnerRig rig(testing::Rules(rules), 1);
  rig.runner->Start();
  auto push = [&](double spo2, int t) {
    IngressItem item;
    item.reading.metric = Metric::kSpo2;
    item.reading.value = spo2;
    item.reading.ts_ms = testing::kT0 + t * 1000;
    while (!rig.inputs[0]->TryPush(item)) std::this_thread::yield();
    rig.wake_engine.Ring();
  };
  // The next alert, or nothing once the deadline has passed.
  auto next_alert = [&]() -> std::optional<AlertEvent> {
    AlertEvent e;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!rig.alerts_out.TryPop(e)) {
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      rig.wake_store.Wait(std::chrono::milliseconds(5), [&] { return !rig.alerts_out.Empty(); });
    }
    return e;
  };
  // A missing alert ends the test; the rig's destructor stops the runner (its rings are far
  // from full here, so it can).
  push(88, 0);
  const std::optional<AlertEvent> raised = next_alert();
  ASSERT_TRUE(raised) << "no alert for SpO2 88 within 10 s";
  EXPECT_EQ(raised->state, AlertState::kActive);
  ASSERT_TRUE(rig.acks.TryPush(AckRequest{raised->id, "nurse", testing::kT0 + 500}));
  rig.wake_engine.Ring();
  const std::optional<AlertEvent> acked = next_alert();
  ASSERT_TRUE(acked) << "no acknowledgement event within 10 s";
  EXPECT_EQ(acked->state, AlertState::kAcknowledged);
  rig.runner->PostRules(testing::Rules(testing::Only(json::object())));
  const std::optional<AlertEvent> cleared = next_alert();
  ASSERT_TRUE(cleared) << "no event for the rule switched off within 10 s";
  EXPECT_EQ(cleared->state, AlertState::kCleared);  // rule switched off
  push(80, 1);
  rig.runner->RequestStop();
  rig.runner->Join();
  EXPECT_TRUE(rig.alerts_out.Empty());
  EXPECT_EQ(rig.stats.acks_applied.load(), 1u);
  Reading r;
  int readings = 0;
  while (rig.readings_out.TryPop(r)) ++readings;
  EXPECT_EQ(readings, 2);
}

}  // namespace
}  // namespace vg
