// The MQTT forwarder against a fake client and a real outbox file: PUBACK-driven deletion,
// alerts ahead of a backlog, per-patient order across reconnects, the in-flight window, payload
// formats, the envelope, the downlink's retained flag.
#include "vitalgate/forward/forwarder.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <deque>
#include <algorithm>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "outbox_rows.h"
#include "vitalgate/core/compact_row.h"
#include "vitalgate/forward/envelope.h"

namespace vg {
namespace {

// A broker stand-in. Its descriptor is always readable, so the forwarder's poll returns at once
// and every Loop*() call delivers what the test queued.
struct FakeBroker {
  struct Message {
    std::string topic;
    std::string payload;
    bool retain = false;
    int mid = 0;
  };
  bool accept = true;       // CONNACK 0 or refuse
  bool auto_ack = true;     // PUBACK every publish at the next LoopRead
  bool drop_next_loop = false;  // the connection breaks at the next LoopRead
  std::vector<Message> published;
  std::vector<std::string> subscribed;
  std::deque<int> unacked;
  std::deque<std::tuple<std::string, std::string, bool>> inbound;
  int connects = 0;
};

class FakeClient final : public MqttClient {
 public:
  FakeClient(FakeBroker& broker, MqttCallbacks cb) : broker_(broker), cb_(std::move(cb)) {
    fd_ = ::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~FakeClient() override { ::close(fd_); }
  Status Connect() override {
    connecting_ = true;
    return Status::Ok();
  }
  Result<int> Publish(std::string_view topic, std::string_view payload, int, bool retain) override {
    if (!connected_) return Unavailable("not connected");
    const int mid = ++next_mid_;
    broker_.published.push_back({std::string(topic), std::string(payload), retain, mid});
    broker_.unacked.push_back(mid);
    return mid;
  }
  Status Subscribe(std::string_view topic, int) override {
    broker_.subscribed.emplace_back(topic);
    return Status::Ok();
  }
  void Disconnect() override { connected_ = false; }
  void Reset() override {
    connected_ = connecting_ = false;
    broker_.unacked.clear();
  }
  int Socket() const override { return connected_ || connecting_ ? fd_ : -1; }
  bool WantWrite() const override { return false; }
  int LoopRead() override {
    if (connecting_) {
      connecting_ = false;
      ++broker_.connects;
      connected_ = broker_.accept;
      cb_.on_connect(broker_.accept ? 0 : 5, broker_.accept ? "" : "not authorised");
      return 0;
    }
    if (broker_.drop_next_loop) {
      broker_.drop_next_loop = false;
      connected_ = false;
      error_ = "connection lost";
      return 7;
    }
    while (!broker_.inbound.empty()) {
      auto [t, p, r] = broker_.inbound.front();
      broker_.inbound.pop_front();
      cb_.on_message(t, p, r);
    }
    while (broker_.auto_ack && !broker_.unacked.empty()) {
      const int mid = broker_.unacked.front();
      broker_.unacked.pop_front();
      cb_.on_publish(mid);
    }
    return 0;
  }
  int LoopWrite() override { return 0; }
  int LoopMisc() override { return 0; }
  std::string LastError() const override { return error_; }

 private:
  FakeBroker& broker_;
  MqttCallbacks cb_;
  int fd_ = -1;
  int next_mid_ = 0;
  bool connecting_ = false;
  bool connected_ = false;
  std::string error_;
};

class RecordingDownlink final : public DownlinkSink {
 public:
  void OnDownlink(std::string_view topic, std::string_view payload, bool retained) override {
    seen.emplace_back(std::string(topic), std::string(payload), retained);
  }
  std::vector<std::tuple<std::string, std::string, bool>> seen;
};

class ForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/vg_fwd_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    Remove();
    StoreOptions so;
    so.path = path_;
    so.reserve_bytes = 0;
    auto s = OutboxStore::Open(so);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    dest_.name = "mqtt";
  }
  void TearDown() override {
    forwarder_.reset();
    store_.reset();
    Remove();
  }
  void Remove() {
    for (const char* x : {"", "-wal", "-shm"}) std::remove((path_ + x).c_str());
  }
  // Commits readings rows and alert rows and tells the forwarder there is something new.
  void Commit(std::vector<StoredRow> batches, std::vector<StoredRow> events = {}) {
    test::CommitRows(*store_, stats_, std::move(batches), std::move(events));
  }
  static StoredRow Readings(std::uint64_t first_id, const std::string& patient, int n) {
    return test::ReadingsRow(first_id, patient, n, 1000);
  }
  static StoredRow Alert(std::uint64_t seq, const std::string& patient) {
    return test::AlertRow(seq, patient, 1000);
  }
  void Make(ForwarderOptions o = {}, PayloadSealer* sealer = nullptr) {
    o.gateway_id = "gw";
    o.store_path = path_;
    o.reconnect_min_ms = 10;
    o.reconnect_max_ms = 20;
    forwarder_ = std::make_unique<Forwarder>(
        o,
        [this](MqttCallbacks cb) -> Result<std::unique_ptr<MqttClient>> {
          return std::unique_ptr<MqttClient>(std::make_unique<FakeClient>(broker_, std::move(cb)));
        },
        delivered_, volatile_, &downlink_, bell_, clock_, stats_, dest_, sealer);
  }
  // Steps until `done()` or a bound of iterations; the clock advances so backoffs expire.
  template <typename Pred>
  bool StepUntil(Pred done, int max_steps = 200) {
    for (int i = 0; i < max_steps; ++i) {
      if (done()) return true;
      clock_.AdvanceMs(50);
      forwarder_->Step(std::chrono::milliseconds(0));
    }
    return done();
  }
  // Steps until the store is handed dead letters; what it was handed (empty if none came).
  std::vector<DeadLetter> StepUntilDeadLetters() {
    std::vector<DeadLetter> dead;
    StepUntil([&] {
      while (delivered_.HasWork()) {
        DeliveryQueue::Batch b = delivered_.Take();
        dead.insert(dead.end(), b.dead_letters.begin(), b.dead_letters.end());
      }
      return !dead.empty();
    });
    return dead;
  }
  std::vector<FakeBroker::Message> On(const std::string& part) const {
    std::vector<FakeBroker::Message> out;
    for (const auto& m : broker_.published) {
      if (m.topic.find(part) != std::string::npos) out.push_back(m);
    }
    return out;
  }

  // After a damaged row of readings and a good one of the same patient were handed over: the
  // good one went out as `json` (the text AppendReadingJson writes), the damaged one is one
  // dead letter, counted and kept as it was.
  void ExpectRowAndDeadLetter(const std::string& json, const StoredRow& damaged,
                              const std::string& reason) {
    ASSERT_TRUE(StepUntil([&] { return On("/readings/" + damaged.patient).size() == 1; }));
    const nlohmann::json payload =
        nlohmann::json::parse(On("/readings/" + damaged.patient)[0].payload);
    EXPECT_EQ(payload.at("readings"), nlohmann::json::parse("[" + json + "]"));
    const std::vector<DeadLetter> dead = StepUntilDeadLetters();
    ASSERT_EQ(dead.size(), 1u) << "a row that cannot be read is counted, never dropped unseen";
    EXPECT_EQ(dead[0].kind, "reading");
    EXPECT_EQ(dead[0].patient, damaged.patient);
    EXPECT_EQ(dead[0].reason, reason);
    EXPECT_EQ(dead[0].body, damaged.body) << "kept as it was, for inspection";
    EXPECT_EQ(dest_.dead_letters.load(), 1u);
  }

  std::string path_;
  std::unique_ptr<OutboxStore> store_;
  FakeBroker broker_;
  DeliveryQueue delivered_;
  VolatileQueue volatile_;
  RecordingDownlink downlink_;
  Doorbell bell_;
  SimulatedClock clock_;
  GatewayStats stats_;
  DestinationStats dest_;
  std::unique_ptr<Forwarder> forwarder_;
};

TEST_F(ForwarderTest, RowsAreReportedForDeletionOnlyAfterThePuback) {
  broker_.auto_ack = false;
  Make();
  Commit({Readings(1, "p1", 3), Readings(4, "p2", 2)});
  ASSERT_TRUE(StepUntil([&] { return On("/readings/").size() == 2; }));
  for (int i = 0; i < 20; ++i) {
    clock_.AdvanceMs(50);
    forwarder_->Step(std::chrono::milliseconds(0));
  }
  EXPECT_FALSE(delivered_.HasWork()) << "nothing was acknowledged, nothing may be deleted";
  broker_.auto_ack = true;
  ASSERT_TRUE(StepUntil([&] { return delivered_.HasWork(); }));
  DeliveryQueue::Batch b = delivered_.Take();
  ASSERT_EQ(b.acks.size(), 1u);
  EXPECT_EQ(b.acks[0].bit, 0);
  std::vector<std::uint64_t> rows = b.acks[0].batches;
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(rows, (std::vector<std::uint64_t>{1, 4}));
}

TEST_F(ForwarderTest, AStoredRowThatCannotBeRenderedIsDeadLetteredAndHoldsNothingBack) {
  ForwarderOptions o;
  o.format = "fhir";
  Make(o);
  StoredRow bad = Readings(1, "p1", 1);
  bad.body = "{\"id\":\"i-1\",\"metric\":";  // cut short: never a reading
  Commit({bad, Readings(2, "p1", 2)});
  // The patient's valid readings go out; the broken row is a dead letter, not a retry forever.
  ASSERT_TRUE(StepUntil([&] { return On("/readings/p1").size() == 1; }));
  const std::vector<DeadLetter> dead = StepUntilDeadLetters();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].destination, "mqtt");
  EXPECT_NE(dead[0].reason.find("cannot be rendered"), std::string::npos) << dead[0].reason;
  EXPECT_EQ(dest_.dead_letters.load(), 1u);
  // Row 2's two readings, as two Observations; nothing of the broken row.
  const std::string payload = On("/readings/p1")[0].payload;
  std::size_t observations = 0;
  for (std::size_t at = payload.find("\"resourceType\":\"Observation\""); at != std::string::npos;
       at = payload.find("\"resourceType\":\"Observation\"", at + 1)) {
    ++observations;
  }
  EXPECT_EQ(observations, 2u) << payload;
}

// A row of `n` readings of `patient` in the compact stored form, ids "gw1-<hex>" from first_id.
StoredRow CompactReadings(std::uint64_t first_id, const std::string& patient, int n,
                          std::string* json) {
  StoredRow row;
  row.seq = first_id;
  row.patient = patient;
  row.count = static_cast<std::uint32_t>(n);
  row.format = RowFormat::kCompact;
  CompactRowEncoder encoder;
  encoder.Begin(row.body);
  for (int i = 0; i < n; ++i) {
    ReadingText t;
    t.instance = "gw1";
    t.id = first_id + static_cast<std::uint64_t>(i);
    t.device = "oximeter-1";
    t.metric = "spo2";
    t.unit = "%";
    t.value = 88 + i;
    t.ts_ms = 1'790'000'000'000 + i * 1000;
    encoder.Append(row.body, t);
    if (json != nullptr) {
      if (!json->empty()) *json += ',';
      AppendReadingJson(*json, t);
    }
  }
  return row;
}

TEST_F(ForwarderTest, CompactRowsGoOutAsTheirJsonAndADamagedOneIsADeadLetter) {
  Make(ForwarderOptions{});
  std::string json;
  StoredRow damaged = CompactReadings(1, "p1", 2, nullptr);
  damaged.body.resize(damaged.body.size() - 3);  // cut short
  Commit({damaged, CompactReadings(3, "p1", 2, &json)});
  ExpectRowAndDeadLetter(json, damaged, "the stored row is damaged");
}

TEST_F(ForwarderTest, InMemoryCompactRowsGoOutAsTheirJsonAndADamagedOneIsADeadLetter) {
  // While commits fail the store hands its rows over in memory, as its writer built them.
  Make(ForwarderOptions{});
  std::string json;
  StoredRow damaged = CompactReadings(1, "p1", 2, nullptr);
  damaged.body.resize(damaged.body.size() - 3);  // cut short
  std::vector<StoredRow> rows{damaged, CompactReadings(3, "p1", 2, &json)};
  volatile_.PushBatches(std::move(rows));
  ExpectRowAndDeadLetter(json, damaged, "the row held in memory is damaged");
}

TEST_F(ForwarderTest, AnAlertGoesAheadOfAReadingsBacklog) {
  broker_.auto_ack = false;
  ForwarderOptions o;
  o.max_inflight = 4;
  o.max_readings_per_message = 10;
  Make(o);
  std::vector<StoredRow> backlog;
  for (int p = 0; p < 50; ++p) backlog.push_back(Readings(static_cast<std::uint64_t>(1 + p * 100), "p" + std::to_string(p), 100));
  Commit(std::move(backlog));
  ASSERT_TRUE(StepUntil([&] { return On("/readings/").size() == 3; }));  // window: status + 3
  Commit({}, {Alert(1, "p7")});
  broker_.auto_ack = true;
  ASSERT_TRUE(StepUntil([&] { return !On("/alerts/").empty(); }));
  // The alert was published right after the window's first acknowledgements: at most the
  // readings that were already in flight went before it.
  std::size_t alert_at = 0, readings_before = 0;
  for (std::size_t i = 0; i < broker_.published.size(); ++i) {
    if (broker_.published[i].topic.find("/alerts/") != std::string::npos) {
      alert_at = i;
      break;
    }
    if (broker_.published[i].topic.find("/readings/") != std::string::npos) ++readings_before;
  }
  EXPECT_GT(alert_at, 0u);
  EXPECT_LE(readings_before, 4u) << "the alert waited behind the backlog";
  EXPECT_EQ(broker_.published[alert_at].topic, "vitalgate/v1/gw/alerts/p7");
}

TEST_F(ForwarderTest, PerPatientOrderHoldsAcrossConnectionLosses) {
  ForwarderOptions o;
  o.max_readings_per_message = 7;
  o.max_inflight = 8;
  Make(o);
  std::vector<StoredRow> rows;
  std::uint64_t id = 1;
  for (int r = 0; r < 20; ++r) {
    rows.push_back(Readings(id, r % 2 ? "odd" : "even", 13));
    id += 13;
  }
  Commit(std::move(rows));
  int drops = 0;
  ASSERT_TRUE(StepUntil(
      [&] {
        if (drops < 5 && broker_.published.size() > static_cast<std::size_t>(10 * (drops + 1))) {
          broker_.drop_next_loop = true;
          ++drops;
        }
        return stats_.readings_delivered.load() >= 260;
      },
      3000));
  EXPECT_GE(broker_.connects, 2);
  // Per patient: ids never go backwards except when a message is sent again from the oldest
  // unacknowledged one, and every id arrives.
  std::map<std::string, std::vector<std::uint64_t>> seen;
  for (const auto& m : On("/readings/")) {
    const auto j = nlohmann::json::parse(m.payload);
    for (const auto& r : j["readings"]) {
      seen[j["patient"]].push_back(std::stoull(r["id"].get<std::string>().substr(2)));
    }
  }
  ASSERT_EQ(seen.size(), 2u);
  for (const auto& [patient, ids] : seen) {
    // Every reading arrives, and readings seen for the first time arrive in order; what comes
    // again after a reconnect is only what was not acknowledged.
    std::set<std::uint64_t> unique;
    std::vector<std::uint64_t> firsts;
    for (std::uint64_t i : ids) {
      if (unique.insert(i).second) firsts.push_back(i);
    }
    EXPECT_EQ(unique.size(), 130u) << patient;
    EXPECT_TRUE(std::is_sorted(firsts.begin(), firsts.end())) << patient;
  }
}

TEST_F(ForwarderTest, NoMoreThanTheWindowIsInFlight) {
  broker_.auto_ack = false;
  ForwarderOptions o;
  o.max_inflight = 5;
  o.max_readings_per_message = 1;
  Make(o);
  Commit({Readings(1, "p1", 50)});
  StepUntil([] { return false; }, 50);
  EXPECT_EQ(forwarder_->inflight(), 5u);
  EXPECT_EQ(On("/readings/").size(), 4u) << "the status message takes one place in the window";
}

TEST_F(ForwarderTest, OnABusyLinkAPartialMessageWaitsAtMostTheLinger) {
  broker_.auto_ack = false;
  Make();
  // The status message stays unacknowledged: the link is busy.
  ASSERT_TRUE(StepUntil([&] { return forwarder_->inflight() == 1; }));
  Commit({Readings(1, "p1", 3)});
  forwarder_->Step(std::chrono::milliseconds(0));
  clock_.AdvanceMs(9);
  forwarder_->Step(std::chrono::milliseconds(0));
  EXPECT_TRUE(On("/readings/").empty()) << "a partial message on a busy link waits to fill";
  clock_.AdvanceMs(1);
  forwarder_->Step(std::chrono::milliseconds(0));
  ASSERT_EQ(On("/readings/p1").size(), 1u) << "the wait ends after 10 ms";
  EXPECT_EQ(nlohmann::json::parse(On("/readings/p1")[0].payload)["readings"].size(), 3u);
  // An idle link: nothing in flight, a partial message goes at once.
  broker_.auto_ack = true;
  ASSERT_TRUE(StepUntil([&] { return forwarder_->inflight() == 0; }));
  Commit({Readings(4, "p2", 1)});
  forwarder_->Step(std::chrono::milliseconds(0));
  EXPECT_EQ(On("/readings/p2").size(), 1u);
}

TEST_F(ForwarderTest, ReadingsMessagesFollowTheDocumentedFormat) {
  Make();
  Commit({Readings(1, "p1", 2), Readings(3, "unassigned/ox-9", 1)});
  ASSERT_TRUE(StepUntil([&] { return On("/readings/").size() == 2; }));
  const auto p1 = On("/readings/p1");
  ASSERT_EQ(p1.size(), 1u);
  const auto j = nlohmann::json::parse(p1[0].payload);
  EXPECT_EQ(j["gateway"], "gw");
  EXPECT_EQ(j["patient"], "p1");
  ASSERT_EQ(j["readings"].size(), 2u);
  EXPECT_EQ(j["readings"][0]["id"], "i-1");
  EXPECT_EQ(j["readings"][1]["id"], "i-2");
  const auto un = On("/readings/unassigned/ox-9");
  ASSERT_EQ(un.size(), 1u);
  const auto u = nlohmann::json::parse(un[0].payload);
  EXPECT_TRUE(u["patient"].is_null());
  EXPECT_EQ(u["device"], "ox-9");
  const auto status = On("/status");
  ASSERT_FALSE(status.empty());
  EXPECT_TRUE(status[0].retain);
  EXPECT_EQ(nlohmann::json::parse(status[0].payload)["state"], "online");
  EXPECT_NE(std::find(broker_.subscribed.begin(), broker_.subscribed.end(), "vitalgate/v1/gw/cmd/ack"),
            broker_.subscribed.end());
  EXPECT_NE(std::find(broker_.subscribed.begin(), broker_.subscribed.end(), "vitalgate/v1/gw/cmd/assign"),
            broker_.subscribed.end());
}

class TestSealer final : public PayloadSealer {
 public:
  explicit TestSealer(PayloadKey key) : key_(std::move(key)) {}
  Result<std::string> Seal(std::string_view topic, std::string_view payload) override {
    return SealEnvelope(key_, topic, payload);
  }
  PayloadKey key_;
};

TEST_F(ForwarderTest, EveryPayloadIsSealedForItsTopicWhenEncryptionIsOn) {
  PayloadKey key{"k1", {}};
  for (std::size_t i = 0; i < key.key.size(); ++i) key.key[i] = static_cast<std::uint8_t>(i * 7);
  TestSealer sealer(key);
  Make({}, &sealer);
  Commit({Readings(1, "p1", 1)}, {Alert(1, "p1")});
  ASSERT_TRUE(StepUntil([&] { return !On("/readings/").empty() && !On("/alerts/").empty(); }));
  for (const auto& m : broker_.published) {
    const auto env = nlohmann::json::parse(m.payload);
    ASSERT_TRUE(env.contains("ct")) << m.topic;
    auto plain = OpenEnvelope(std::span<const PayloadKey>(&key, 1), m.topic, m.payload);
    ASSERT_TRUE(plain.ok()) << m.topic << ": " << plain.status().message();
    EXPECT_EQ(nlohmann::json::parse(*plain).is_object(), true);
    // The envelope is bound to its topic.
    EXPECT_FALSE(OpenEnvelope(std::span<const PayloadKey>(&key, 1), m.topic + "x", m.payload).ok());
  }
}

TEST_F(ForwarderTest, InboundMessagesReachTheDownlinkWithTheirRetainedFlag) {
  Make();
  ASSERT_TRUE(StepUntil([&] { return forwarder_->connected(); }));
  broker_.inbound.emplace_back("vitalgate/v1/gw/cmd/ack", "{}", true);
  broker_.inbound.emplace_back("vitalgate/v1/gw/cmd/ack", "{\"a\":1}", false);
  ASSERT_TRUE(StepUntil([&] { return downlink_.seen.size() == 2; }));
  EXPECT_TRUE(std::get<2>(downlink_.seen[0]));
  EXPECT_FALSE(std::get<2>(downlink_.seen[1]));
}

TEST_F(ForwarderTest, ARefusedConnectionIsRetriedWithBackoff) {
  broker_.accept = false;
  Make();
  StepUntil([] { return false; }, 100);
  EXPECT_GE(broker_.connects, 2);
  EXPECT_FALSE(forwarder_->connected());
  EXPECT_NE(dest_.last_error.Get().find("not authorised"), std::string::npos) << dest_.last_error.Get();
  broker_.accept = true;
  ASSERT_TRUE(StepUntil([&] { return forwarder_->connected(); }));
}

}  // namespace
}  // namespace vg
