// Clinical correctness in the field: several devices per patient, device clocks, spot checks,
// streams that stop, devices that move between patients, alarms across restarts.
#include <gtest/gtest.h>

#include "engine_test_util.h"

namespace vg {
namespace {

using nlohmann::json;
using testing::EngineHarness;
using testing::kT0;
using testing::Only;
using testing::Rules;

json Spo2(double delay_s) {
  return Only({{"thresholds",
                {{"spo2", {{"low", {{{"limit", 90}, {"priority", "medium"}}, {{"limit", 85}, {"priority", "high"}}}},
                           {"hysteresis", 1},
                           {"delay_s", delay_s}}}}}});
}

// A harness with a patient directory, so that alarm states can be persisted and restored.
struct Ward {
  explicit Ward(const json& global, int device_count = 2,
                std::vector<std::string> patients = {"p-001", "p-002"}) {
    std::vector<PatientRuleInput> inputs;
    for (const std::string& p : patients) {
      auto index = directory.Intern(p);
      EXPECT_TRUE(index.ok());
      inputs.push_back(PatientRuleInput{*index, p, 1, json::object()});
    }
    auto book = CompileRules(global, inputs);
    EXPECT_TRUE(book.ok()) << book.status().message();
    rules = *book;
    for (int i = 0; i < device_count; ++i) {
      EngineDevice d;
      d.id = "dev-" + std::to_string(i);
      d.patient = 0;
      d.watch_no_data = false;
      devices.push_back(d);
    }
    Reset();
  }
  void Reset() {
    EngineEnvironment env;
    env.patients = &directory;
    env.persist_alarms = true;
    env.random_id = [this] { return rng = rng * 6364136223846793005ull + 1442695040888963407ull; };
    engine = std::make_unique<Engine>(rules, devices, 1, mono_ns, env);
    sink.events.clear();
  }
  std::vector<AlertEvent> Feed(Metric m, double value, double offset_s, DeviceIndex device,
                               std::uint8_t flags = 0, PatientIndex patient = 0) {
    Reading r;
    r.metric = m;
    r.value = value;
    r.ts_ms = kT0 + static_cast<std::int64_t>(offset_s * 1000);
    r.rx_ms = r.ts_ms;
    r.device = device;
    r.patient = patient;
    r.flags = flags;
    const std::size_t before = sink.events.size();
    engine->OnReading(r, mono_ns, sink);
    return {sink.events.begin() + static_cast<std::ptrdiff_t>(before), sink.events.end()};
  }
  // Gateway time passes (and wall time with it).
  std::vector<AlertEvent> Tick(double advance_s) {
    mono_ns += static_cast<std::int64_t>(advance_s * 1e9);
    wall_ms += static_cast<std::int64_t>(advance_s * 1000);
    const std::size_t before = sink.events.size();
    engine->OnTick(wall_ms, mono_ns, sink);
    return {sink.events.begin() + static_cast<std::ptrdiff_t>(before), sink.events.end()};
  }
  std::vector<std::string> OpenStates() const {
    // The last persisted state of every alarm still open, as the store would hold it.
    std::map<std::uint64_t, std::string> open;
    for (const AlertEvent& e : sink.events) {
      if (e.state == AlertState::kActive || e.state == AlertState::kAcknowledged) {
        if (!e.persist.empty()) open[e.alarm_id] = e.persist;
      } else {
        open.erase(e.alarm_id);
      }
    }
    std::vector<std::string> out;
    for (auto& [id, s] : open) out.push_back(s);
    return out;
  }

  PatientDirectory directory;
  std::shared_ptr<const RuleBook> rules;
  std::vector<EngineDevice> devices;
  std::unique_ptr<Engine> engine;
  testing::CollectingSink sink;
  std::int64_t mono_ns = 1'000'000'000;
  std::int64_t wall_ms = kT0;
  std::uint64_t rng = 12345;
};

std::vector<AlertEvent> OfState(const std::vector<AlertEvent>& ev, AlertState s) {
  std::vector<AlertEvent> out;
  for (const AlertEvent& e : ev) {
    if (e.state == s) out.push_back(e);
  }
  return out;
}

TEST(SourcesTest, AFastDeviceClockCannotHoldBackAnotherDevicesAlarm) {
  Ward w(Spo2(15));
  // dev-1's clock runs two minutes fast; it reports a normal SpO2 every second. dev-0 (right
  // clock) sees the patient desaturate to 80 %.
  std::vector<AlertEvent> raised;
  for (int s = 0; s <= 30; ++s) {
    w.Feed(Metric::kSpo2, 97, s + 120, 1);
    for (const AlertEvent& e : w.Feed(Metric::kSpo2, 80, s, 0)) {
      if (e.state == AlertState::kActive) raised.push_back(e);
    }
  }
  ASSERT_EQ(raised.size(), 1u) << "the correct device's alarm";
  EXPECT_EQ(raised[0].priority, Priority::kHigh);
  EXPECT_EQ(raised[0].ts_ms, kT0 + 15'000) << "raised after the delay in dev-0's own time";
  EXPECT_EQ(w.engine->counters().late, 0u);
}

TEST(SourcesTest, OneDevicesNormalValueDoesNotClearAnothersCondition) {
  Ward w(Spo2(0));
  ASSERT_EQ(OfState(w.Feed(Metric::kSpo2, 82, 0, 0), AlertState::kActive).size(), 1u);
  EXPECT_TRUE(w.Feed(Metric::kSpo2, 97, 1, 1).empty()) << "dev-1 normal: the alarm held by dev-0 stays";
  auto cleared = OfState(w.Feed(Metric::kSpo2, 97, 2, 0), AlertState::kCleared);
  EXPECT_EQ(cleared.size(), 1u) << "dev-0 back to normal clears it";
}

TEST(SourcesTest, ADeviceGoingBackInTimeIsCountedAndRaisesTheClockAlarm) {
  Ward w(Spo2(0));
  w.Feed(Metric::kSpo2, 97, 100, 0);
  auto ev = w.Feed(Metric::kSpo2, 80, -86400, 0);  // a day back
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, AlertKind::kTechnical);
  EXPECT_EQ(ev[0].condition, DeviceCondition::kClock);
  EXPECT_EQ(w.engine->counters().late, 1u);
  // Cleared after a quiet minute of gateway time.
  EXPECT_TRUE(w.Tick(30).empty());
  auto cleared = w.Tick(31);
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0].state, AlertState::kCleared);
}

TEST(SourcesTest, ASpotCheckAlarmsAtOnceDespiteTheConditionDelay) {
  Ward w(Spo2(15));
  auto ev = w.Feed(Metric::kSpo2, 89, 0, 0, kFlagSpot);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, AlertState::kActive);
  EXPECT_EQ(ev[0].ts_ms, kT0);
  // A stored record alarms at once too, at its own time.
  Ward s(Spo2(15));
  EXPECT_EQ(s.Feed(Metric::kSpo2, 89, -3600, 0, kFlagStored).size(), 1u);
}

TEST(SourcesTest, AStreamThatStopsCompletesItsConditionAfterTheDelayOfGatewayTime) {
  Ward w(Spo2(15));
  EXPECT_TRUE(w.Feed(Metric::kSpo2, 89, 0, 0).empty()) << "pending for 15 s";
  EXPECT_TRUE(w.Tick(10).empty());
  EXPECT_TRUE(w.Tick(5).empty()) << "exactly the delay: a stream with that period would go on";
  auto ev = w.Tick(1);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, AlertState::kActive);
  EXPECT_EQ(ev[0].value, 89);
  EXPECT_EQ(ev[0].ts_ms, kT0 + 16'000) << "the device's time run on with the gateway's";
}

TEST(SourcesTest, AStreamWhosePeriodEqualsTheDelayCompletesWithItsNextReading) {
  Ward w(Spo2(10));
  EXPECT_TRUE(w.Feed(Metric::kSpo2, 89, 0, 0).empty());
  EXPECT_TRUE(w.Tick(10).empty());
  auto ev = w.Feed(Metric::kSpo2, 89, 10, 0);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ts_ms, kT0 + 10'000);
}

TEST(SourcesTest, ASpotCheckSetGetsItsNews2WithoutAveragingOrSettling) {
  Ward w(Only({{"news2", {{"enabled", true}}}}), 1);
  auto set = [&](double t, double spo2, double rr) {
    std::vector<AlertEvent> ev;
    for (auto [m, v] : {std::pair<Metric, double>{Metric::kRespRate, rr}, {Metric::kSpo2, spo2},
                        {Metric::kBpSystolic, 120}, {Metric::kHeartRate, 80}, {Metric::kTemperature, 37}}) {
      for (auto& e : w.Feed(m, v, t, 0, kFlagSpot)) ev.push_back(e);
    }
    return ev;
  };
  auto first = set(0, 97, 16);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(first.back().news2->score, 0);
  // The next day's set: a changed score is published at once (nothing follows to settle on).
  auto next = set(86400, 89, 25);
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(next.back().news2->score, 3 + 3) << "SpO2 89 % scores 3, RR 25 scores 3";
}

TEST(SourcesTest, AnAlarmWhosePatientSendsNothingMoreStillEscalates) {
  Ward w(MergePatch(Spo2(0), {{"escalation", {{"medium_after_s", 60}}}}));
  ASSERT_EQ(w.Feed(Metric::kSpo2, 88, 0, 0).size(), 1u);  // medium
  EXPECT_TRUE(w.Tick(50).empty());
  auto ev = w.Tick(11);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].priority, Priority::kHigh);
  EXPECT_EQ(ev[0].ts_ms, kT0 + 61'000);
}

TEST(SourcesTest, ADeviceMovedToAnotherPatientEndsTheAlarmsItAloneFed) {
  Ward w(Spo2(0));
  auto raised = w.Feed(Metric::kSpo2, 80, 0, 0);
  ASSERT_EQ(raised.size(), 1u);
  const auto before = w.sink.events.size();
  w.engine->Assign(0, 1, false, kT0 + 1000, w.mono_ns, w.sink);
  std::vector<AlertEvent> ev(w.sink.events.begin() + static_cast<std::ptrdiff_t>(before), w.sink.events.end());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, AlertState::kEnded) << "ended, not cleared: nothing says it resolved";
  EXPECT_EQ(ev[0].alarm_id, raised[0].alarm_id);
  EXPECT_EQ(ev[0].patient, 0u);
  // Its readings now count for the new patient only.
  auto next = w.Feed(Metric::kSpo2, 80, 2, 0, 0, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].patient, 1u);
}

TEST(SourcesTest, AnAlarmHeldByTwoDevicesStaysWhenOneLeaves) {
  Ward w(Spo2(0));
  ASSERT_EQ(w.Feed(Metric::kSpo2, 80, 0, 0).size(), 1u);
  EXPECT_TRUE(w.Feed(Metric::kSpo2, 82, 1, 1).empty());
  const auto before = w.sink.events.size();
  w.engine->Assign(1, 1, false, kT0 + 2000, w.mono_ns, w.sink);
  EXPECT_EQ(w.sink.events.size(), before) << "dev-0 still holds the alarm";
}

TEST(SourcesTest, ADeviceWithoutAPatientIsNotEvaluatedAndSaysSo) {
  Ward w(Spo2(0), 1, {"p-001", "unassigned/dev-0"});
  w.devices[0].patient = 1;
  w.devices[0].unassigned = true;
  w.Reset();
  w.engine->Start(kT0, w.sink);
  ASSERT_EQ(w.sink.events.size(), 1u);
  EXPECT_EQ(w.sink.events[0].condition, DeviceCondition::kUnassigned);
  EXPECT_TRUE(w.Feed(Metric::kSpo2, 70, 0, 0, kFlagUnassigned, 1).empty());
  EXPECT_EQ(w.engine->counters().unassigned, 1u);
  const auto before = w.sink.events.size();
  w.engine->Assign(0, 0, false, kT0 + 1000, w.mono_ns, w.sink);
  std::vector<AlertEvent> ev(w.sink.events.begin() + static_cast<std::ptrdiff_t>(before), w.sink.events.end());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, AlertState::kCleared);
  EXPECT_EQ(w.Feed(Metric::kSpo2, 70, 2, 0).size(), 1u);
}

TEST(SourcesTest, AnOpenAlarmSurvivesARestartWithItsIdAndIsNotPublishedAgain) {
  Ward w(Spo2(0));
  auto raised = w.Feed(Metric::kSpo2, 80, 0, 0);
  ASSERT_EQ(raised.size(), 1u);
  const std::vector<std::string> states = w.OpenStates();
  ASSERT_EQ(states.size(), 1u);
  w.Reset();  // the restart
  EXPECT_EQ(w.engine->Restore(states, kT0 + 5000, w.mono_ns, w.sink), 0);
  EXPECT_TRUE(w.sink.events.empty());
  EXPECT_EQ(w.engine->open_alarms(), 1u);
  EXPECT_TRUE(w.Feed(Metric::kSpo2, 80, 10, 0).empty()) << "still holds: nothing new";
  // An acknowledgement by the old id still works.
  EXPECT_EQ(w.engine->Acknowledge(raised[0].alarm_id, "nurse", kT0 + 11'000, w.sink),
            Engine::AckResult::kAcknowledged);
  auto cleared = OfState(w.Feed(Metric::kSpo2, 97, 20, 0), AlertState::kCleared);
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0].alarm_id, raised[0].alarm_id);
}

TEST(SourcesTest, ARestoredAlarmWhoseDeviceLeftEndsOnce) {
  Ward w(Spo2(0));
  ASSERT_EQ(w.Feed(Metric::kSpo2, 80, 0, 0).size(), 1u);
  const std::vector<std::string> states = w.OpenStates();
  w.devices[0].patient = 1;  // moved while the gateway was down
  w.Reset();
  w.engine->Restore(states, kT0 + 5000, w.mono_ns, w.sink);
  ASSERT_EQ(w.sink.events.size(), 1u);
  EXPECT_EQ(w.sink.events[0].state, AlertState::kEnded);
  EXPECT_EQ(w.engine->open_alarms(), 0u);
}

TEST(SourcesTest, ARestoredDisconnectAlarmClearsWhenTheLinkComesBack) {
  Ward w(Only(json::object()), 1);
  w.engine->OnCondition(0, DeviceCondition::kDisconnected, true, kT0, w.mono_ns, w.sink);
  w.Tick(60);
  ASSERT_EQ(OfState(w.sink.events, AlertState::kActive).size(), 1u);
  const auto states = w.OpenStates();
  w.Reset();
  w.engine->Restore(states, kT0, w.mono_ns, w.sink);
  EXPECT_TRUE(w.Tick(60).empty()) << "still down: no second alarm";
  w.engine->OnCondition(0, DeviceCondition::kDisconnected, false, kT0, w.mono_ns, w.sink);
  ASSERT_EQ(w.sink.events.size(), 1u);
  EXPECT_EQ(w.sink.events[0].state, AlertState::kCleared);
}

TEST(SourcesTest, ARecordSentAgainIsRecognised) {
  Ward w(Spo2(0), 1);
  Reading r;
  r.metric = Metric::kGlucose;
  r.value = 90;
  r.ts_ms = kT0;
  r.record_key = 77;
  r.flags = kFlagStored;
  EXPECT_TRUE(w.engine->OnReading(r, w.mono_ns, w.sink));
  Reading again = r;
  EXPECT_FALSE(w.engine->OnReading(again, w.mono_ns, w.sink));
  EXPECT_EQ(w.engine->counters().duplicates, 1u);
  w.Reset();
  w.engine->AddKnownRecord(0, 77);
  Reading after_restart = r;
  EXPECT_FALSE(w.engine->OnReading(after_restart, w.mono_ns, w.sink));
}

TEST(SourcesTest, AlarmIdsAreNotSequentialAndGuessedIdsAreRefused) {
  Ward w(Spo2(0));
  auto a = w.Feed(Metric::kSpo2, 80, 0, 0);
  auto b = w.Feed(Metric::kHeartRate, 80, 0, 1);  // no rule: no alarm
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(b.empty());
  const std::uint64_t id = a[0].alarm_id;
  EXPECT_EQ(w.engine->Acknowledge(id + 1, "x", kT0, w.sink), Engine::AckResult::kUnknown);
  EXPECT_EQ(w.engine->Acknowledge(id - 1, "x", kT0, w.sink), Engine::AckResult::kUnknown);
  EXPECT_EQ(w.engine->Acknowledge(id, "x", kT0, w.sink), Engine::AckResult::kAcknowledged);
}

TEST(SourcesTest, StoredRecordsWithAnImplausibleClockAreNotAlarmedButCountedAndAlarmedAsClock) {
  Ward w(Spo2(0), 1);
  // No SpO2 alarm for a record whose time cannot be trusted, but not silence either: the
  // counter and the technical `clock` alarm say it was not evaluated.
  auto events = w.Feed(Metric::kSpo2, 70, 0, 0, kFlagStored | kFlagClock);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, AlertKind::kTechnical);
  EXPECT_EQ(events[0].condition, DeviceCondition::kClock);
  EXPECT_EQ(w.engine->counters().not_evaluated_clock, 1u);
  // A live reading with an implausible clock is evaluated (its time is the receive time).
  EXPECT_EQ(w.Feed(Metric::kSpo2, 70, 1, 0, kFlagClock).size(), 1u);
}

}  // namespace
}  // namespace vg
