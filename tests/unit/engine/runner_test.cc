// The engine thread with real threads around it: producers push into rings, the runner
// evaluates and hands readings and alerts on; nothing is lost, reordered or duplicated.
// Runs under ThreadSanitizer in CI (label tsan).
#include "vitalgate/engine/runner.h"

#include <gtest/gtest.h>

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

TEST(EngineRunnerTest, ConcurrentProducersNothingLostOrReorderedPerProducer) {
  constexpr int kProducers = 3;
  constexpr int kPerProducer = 20000;
  RunnerRig rig(testing::Rules(testing::Only(json::object())), kProducers);
  rig.runner->Start();
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&rig, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        IngressItem item;
        item.reading.metric = Metric::kHeartRate;
        item.reading.value = i;  // sequence number per producer
        item.reading.device = static_cast<DeviceIndex>(p);
        item.reading.ts_ms = testing::kT0 + i;
        while (!rig.inputs[static_cast<std::size_t>(p)]->TryPush(item)) std::this_thread::yield();
        if (i % 32 == 0) rig.wake_engine.Ring();
      }
      rig.wake_engine.Ring();
    });
  }
  std::vector<int> next(kProducers, 0);
  std::uint64_t last_id = 0;
  int received = 0;
  while (received < kProducers * kPerProducer) {
    const std::size_t n = rig.readings_out.Drain(
        [&](const Reading& r) {
          ASSERT_GT(r.id, last_id);
          last_id = r.id;
          ASSERT_EQ(static_cast<int>(r.value), next[r.device]) << "device " << r.device;
          ++next[r.device];
          ++received;
        },
        1024);
    if (n == 0) rig.wake_store.Wait(std::chrono::milliseconds(5), [&] { return !rig.readings_out.Empty(); });
  }
  for (auto& t : producers) t.join();
  rig.runner->RequestStop();
  rig.runner->Join();
  EXPECT_EQ(received, kProducers * kPerProducer);
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
  auto next_alert = [&] {
    AlertEvent e;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!rig.alerts_out.TryPop(e)) {
      if (std::chrono::steady_clock::now() > deadline) ADD_FAILURE() << "no alert";
      rig.wake_store.Wait(std::chrono::milliseconds(5), [&] { return !rig.alerts_out.Empty(); });
    }
    return e;
  };
  push(88, 0);
  const AlertEvent raised = next_alert();
  EXPECT_EQ(raised.state, AlertState::kActive);
  ASSERT_TRUE(rig.acks.TryPush(AckRequest{raised.id, "nurse", testing::kT0 + 500}));
  rig.wake_engine.Ring();
  EXPECT_EQ(next_alert().state, AlertState::kAcknowledged);
  rig.runner->PostRules(testing::Rules(testing::Only(json::object())));
  EXPECT_EQ(next_alert().state, AlertState::kCleared);  // rule switched off
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
