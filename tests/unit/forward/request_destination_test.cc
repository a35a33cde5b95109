// A destination besides the MQTT broker (FHIR, HL7 v2) against a fake link and a real outbox
// file, on a simulated clock: acknowledgements for its own bit only, dead letters for what it
// refuses for good, nothing acknowledged on a link failure, backoff and Retry-After, alerts
// ahead of a readings backlog, and the figures of its DestinationStats.
#include "vitalgate/forward/request_destination.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "outbox_rows.h"

namespace vg {
namespace {

using std::chrono::milliseconds;
using test::AlertBody;
using test::ReadingBody;

// The far end, as the test scripts it. Shared by the test and the destination's thread.
struct FakeEndpoint {
  struct Delivery {
    DeliveryBatch::Kind kind = DeliveryBatch::Kind::kReadings;
    std::string patient;
    std::vector<std::string> bodies;
  };
  mutable std::mutex mu;
  std::deque<Status> connect_results;  // what the next Connect()s return; then OK
  // The answer to each delivery (its index from 0); null: every row delivered.
  std::function<DeliveryOutcome(std::size_t index, const DeliveryBatch& batch)> answer;
  std::vector<Delivery> deliveries;
  int connects = 0;
  int closes = 0;

  std::size_t delivered_count() const {
    std::lock_guard lock(mu);
    return deliveries.size();
  }
  int connect_count() const {
    std::lock_guard lock(mu);
    return connects;
  }
};

class FakeLink final : public RequestLink {
 public:
  explicit FakeLink(FakeEndpoint& endpoint) : endpoint_(endpoint) {}
  Status Connect(milliseconds) override {
    std::lock_guard lock(endpoint_.mu);
    ++endpoint_.connects;
    if (endpoint_.connect_results.empty()) return Status::Ok();
    Status s = endpoint_.connect_results.front();
    endpoint_.connect_results.pop_front();
    return s;
  }
  void Close() override {
    std::lock_guard lock(endpoint_.mu);
    ++endpoint_.closes;
  }
  DeliveryOutcome Deliver(const DeliveryBatch& batch, milliseconds) override {
    std::lock_guard lock(endpoint_.mu);
    FakeEndpoint::Delivery d;
    d.kind = batch.kind;
    d.patient = batch.patient;
    for (const OutboxRow* row : batch.rows) d.bodies.push_back(row->body);
    const std::size_t index = endpoint_.deliveries.size();
    endpoint_.deliveries.push_back(std::move(d));
    if (endpoint_.answer) return endpoint_.answer(index, batch);
    DeliveryOutcome out;
    out.rows.resize(batch.rows.size());
    return out;
  }
  std::string Describe() const override { return "fake://ehr"; }

 private:
  FakeEndpoint& endpoint_;
};

DeliveryOutcome AllRows(const DeliveryBatch& batch, RowOutcome::Kind kind, std::string reason = "") {
  DeliveryOutcome out;
  out.rows.assign(batch.rows.size(), RowOutcome{kind, std::move(reason)});
  return out;
}

DeliveryOutcome LinkBroke(std::string reason,
                          std::optional<milliseconds> retry_after = std::nullopt) {
  DeliveryOutcome out;
  out.failure = LinkFailure{std::move(reason), retry_after};
  return out;
}

class RequestDestinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/vg_reqdest_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    Remove();
    StoreOptions so;
    so.path = path_;
    so.reserve_bytes = 0;
    so.synchronous_full = false;
    so.destinations = {"mqtt", "ehr"};
    auto s = OutboxStore::Open(so);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    ASSERT_EQ(store_->destination_bits().size(), 2u);
    bit_ = store_->destination_bits()[1];
    dest_.name = "ehr";
  }
  void TearDown() override {
    destination_.reset();
    store_.reset();
    Remove();
  }
  void Remove() {
    for (const char* x : {"", "-wal", "-shm"}) std::remove((path_ + x).c_str());
  }

  // Commits rows as the store thread does and lets the destination know.
  void Commit(std::vector<StoredRow> batches, std::vector<StoredRow> events = {}) {
    test::CommitRows(*store_, stats_, std::move(batches), std::move(events));
    bell_.Ring();
  }
  static StoredRow Readings(std::uint64_t first_id, const std::string& patient, int n) {
    return test::ReadingsRow(first_id, patient, n, 1000 + static_cast<std::int64_t>(first_id));
  }
  static StoredRow Alert(std::uint64_t seq, const std::string& patient) {
    return test::AlertRow(seq, patient, 500);
  }
  void Make(RequestDestinationOptions o = {}) {
    o.name = "ehr";
    o.store_path = path_;
    o.bit = bit_;
    o.reconnect_min_ms = 100;
    o.reconnect_max_ms = 100'000;
    o.timeout = milliseconds(1000);
    destination_ = std::make_unique<RequestDestination>(
        std::move(o), std::make_unique<FakeLink>(endpoint_), context_, delivered_, bell_, clock_,
        stats_, dest_);
  }
  void Step() { destination_->Step(milliseconds(0)); }
  // Steps, without moving the clock, until `done()` or a bound of steps.
  template <typename Pred>
  bool StepUntil(Pred done, int max_steps = 50) {
    for (int i = 0; i < max_steps && !done(); ++i) Step();
    return done();
  }
  // Everything reported to the store so far, accumulated.
  void TakeDone() {
    while (delivered_.HasWork()) {
      DeliveryQueue::Batch b = delivered_.Take();
      for (const DestinationAcks& a : b.acks) {
        EXPECT_EQ(a.bit, bit_) << "acknowledged for another destination's bit";
        acked_batches_.insert(acked_batches_.end(), a.batches.begin(), a.batches.end());
        acked_events_.insert(acked_events_.end(), a.events.begin(), a.events.end());
      }
      dead_.insert(dead_.end(), b.dead_letters.begin(), b.dead_letters.end());
    }
    std::sort(acked_batches_.begin(), acked_batches_.end());
    std::sort(acked_events_.begin(), acked_events_.end());
  }
  // Applies what the destination reported, as the store thread would.
  void ApplyDone() {
    WriteBatch b;
    b.acks.push_back(DestinationAcks{bit_, acked_batches_, acked_events_});
    b.dead_letters = dead_;
    ASSERT_TRUE(store_->Commit(b).ok());
  }
  std::vector<FakeEndpoint::Delivery> Deliveries() const {
    std::lock_guard lock(endpoint_.mu);
    return endpoint_.deliveries;
  }

  std::string path_;
  std::unique_ptr<OutboxStore> store_;
  int bit_ = 1;
  FakeEndpoint endpoint_;
  RenderContextHolder context_;
  DeliveryQueue delivered_;
  Doorbell bell_;
  SimulatedClock clock_;
  GatewayStats stats_;
  DestinationStats dest_;
  std::vector<std::uint64_t> acked_batches_;
  std::vector<std::uint64_t> acked_events_;
  std::vector<DeadLetter> dead_;
  std::unique_ptr<RequestDestination> destination_;  // last: stopped first
};

TEST_F(RequestDestinationTest, DeliveredBatchesAreAcknowledgedForThisDestinationsBitOnly) {
  Commit({Readings(1, "p1", 3), Readings(4, "p2", 2)});
  Make();
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 2; }));
  TakeDone();
  EXPECT_EQ(acked_batches_, (std::vector<std::uint64_t>{1, 4}));
  EXPECT_TRUE(acked_events_.empty());
  EXPECT_TRUE(dead_.empty());
  const auto sent = Deliveries();
  EXPECT_EQ(sent[0].kind, DeliveryBatch::Kind::kReadings);
  EXPECT_EQ(sent[0].patient, "p1");
  EXPECT_EQ(sent[0].bodies, (std::vector<std::string>{ReadingBody(1), ReadingBody(2), ReadingBody(3)}));
  EXPECT_EQ(sent[1].patient, "p2");
  EXPECT_EQ(endpoint_.connect_count(), 1);
  EXPECT_TRUE(destination_->connected());
  EXPECT_TRUE(dest_.connected.load());
  EXPECT_EQ(dest_.readings_delivered.load(), 5u);

  // Nothing more to send: further rounds neither send nor acknowledge anything again.
  for (int i = 0; i < 5; ++i) Step();
  EXPECT_EQ(endpoint_.delivered_count(), 2u);
  EXPECT_FALSE(delivered_.HasWork());
}

TEST_F(RequestDestinationTest, AnItemRefusedForGoodIsADeadLetterAndTheOthersAreAcknowledged) {
  Commit({Readings(1, "p1", 3)}, {Alert(10, "p1"), Alert(11, "p1")});
  endpoint_.answer = [](std::size_t, const DeliveryBatch& batch) {
    DeliveryOutcome out = AllRows(batch, RowOutcome::Kind::kDelivered);
    for (std::size_t i = 0; i < batch.rows.size(); ++i) {
      if (batch.rows[i]->body == ReadingBody(2) || batch.rows[i]->body == AlertBody(11)) {
        out.rows[i] = RowOutcome{RowOutcome::Kind::kRejected, "HTTP 422: invalid Observation"};
      }
    }
    return out;
  };
  Make();
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 3; }));
  TakeDone();
  // A refused item leaves like a delivered one (it never blocks the rest) and is kept aside.
  EXPECT_EQ(acked_batches_, std::vector<std::uint64_t>{1});
  EXPECT_EQ(acked_events_, (std::vector<std::uint64_t>{10, 11}));
  ASSERT_EQ(dead_.size(), 2u);
  const auto reading = std::find_if(dead_.begin(), dead_.end(),
                                    [](const DeadLetter& d) { return d.kind == "reading"; });
  ASSERT_NE(reading, dead_.end());
  EXPECT_EQ(reading->destination, "ehr");
  EXPECT_EQ(reading->item_id, "i-2");
  EXPECT_EQ(reading->patient, "p1");
  EXPECT_EQ(reading->reason, "HTTP 422: invalid Observation");
  EXPECT_EQ(reading->body, ReadingBody(2));
  EXPECT_EQ(reading->ts_ms, clock_.WallMs());
  const auto alert = std::find_if(dead_.begin(), dead_.end(),
                                  [](const DeadLetter& d) { return d.kind == "alert"; });
  ASSERT_NE(alert, dead_.end());
  EXPECT_EQ(alert->item_id, "a-11");
  EXPECT_EQ(dest_.dead_letters.load(), 2u);
  EXPECT_EQ(dest_.readings_delivered.load(), 2u);
  EXPECT_EQ(dest_.events_delivered.load(), 1u);
}

TEST_F(RequestDestinationTest, ALinkFailureAcknowledgesNothingAndTheBatchIsSentAgainAfterTheBackoff) {
  Commit({Readings(1, "p1", 2)});
  endpoint_.answer = [](std::size_t index, const DeliveryBatch& batch) {
    return index == 0 ? LinkBroke("connection reset by peer") : AllRows(batch, RowOutcome::Kind::kDelivered);
  };
  Make();
  Step();
  ASSERT_EQ(endpoint_.delivered_count(), 1u);
  EXPECT_FALSE(delivered_.HasWork()) << "nothing is known about any row";
  EXPECT_FALSE(destination_->connected());
  EXPECT_FALSE(dest_.connected.load());
  EXPECT_EQ(dest_.failures.load(), 1u);
  EXPECT_NE(dest_.last_error.Get().find("connection reset by peer"), std::string::npos)
      << dest_.last_error.Get();
  // Not again before the backoff (100 ms, +-20 %) has passed, however often it is asked.
  for (int i = 0; i < 10; ++i) Step();
  clock_.AdvanceMs(70);
  for (int i = 0; i < 10; ++i) Step();
  EXPECT_EQ(endpoint_.delivered_count(), 1u);
  EXPECT_EQ(endpoint_.connect_count(), 1);
  clock_.AdvanceMs(60);
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 2; }, 5));
  EXPECT_EQ(endpoint_.connect_count(), 2) << "a broken link is connected again";
  const auto sent = Deliveries();
  EXPECT_EQ(sent[1].bodies, sent[0].bodies) << "the same items, in the same order";
  TakeDone();
  EXPECT_EQ(acked_batches_, std::vector<std::uint64_t>{1});
  EXPECT_TRUE(destination_->connected());
  EXPECT_EQ(dest_.last_error.Get(), "");
}

TEST_F(RequestDestinationTest, AnAnswerThatDoesNotCoverEveryItemIsALinkFailure) {
  Commit({Readings(1, "p1", 3)});
  endpoint_.answer = [](std::size_t index, const DeliveryBatch& batch) {
    if (index > 0) return AllRows(batch, RowOutcome::Kind::kDelivered);
    DeliveryOutcome out;
    out.rows.resize(1);  // one verdict for three items
    return out;
  };
  Make();
  Step();
  EXPECT_FALSE(delivered_.HasWork()) << "a partial answer acknowledges nothing";
  EXPECT_EQ(dest_.failures.load(), 1u);
  EXPECT_NE(dest_.last_error.Get().find("1 of 3"), std::string::npos) << dest_.last_error.Get();
  clock_.AdvanceMs(130);
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 2; }, 5));
  TakeDone();
  EXPECT_EQ(acked_batches_, std::vector<std::uint64_t>{1});
  EXPECT_EQ(Deliveries()[1].bodies.size(), 3u);
}

TEST_F(RequestDestinationTest, RetryAfterFromTheDestinationIsHonoured) {
  Commit({}, {Alert(10, "p1")});
  endpoint_.answer = [](std::size_t index, const DeliveryBatch& batch) {
    return index == 0 ? LinkBroke("HTTP 503", milliseconds(60'000))
                      : AllRows(batch, RowOutcome::Kind::kDelivered);
  };
  Make();
  Step();
  ASSERT_EQ(endpoint_.delivered_count(), 1u);
  // Ten seconds is far beyond the destination's own backoff, but not what it asked for.
  for (int i = 0; i < 10; ++i) {
    clock_.AdvanceMs(1000);
    Step();
    Step();
  }
  EXPECT_EQ(endpoint_.delivered_count(), 1u);
  EXPECT_EQ(endpoint_.connect_count(), 1);
  EXPECT_FALSE(delivered_.HasWork());
  clock_.AdvanceMs(50'001);
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 2; }, 5));
  TakeDone();
  EXPECT_EQ(acked_events_, std::vector<std::uint64_t>{10});
}

TEST_F(RequestDestinationTest, ItemsAskedForAgainWaitForAGrowingBackoffThatASuccessResets) {
  Commit({}, {Alert(10, "p1"), Alert(11, "p1")});
  // Deliveries 0-3: "send it again" (HL7 AE); 4: taken; 5: again; then taken.
  endpoint_.answer = [](std::size_t index, const DeliveryBatch& batch) {
    const bool retry = index <= 3 || index == 5;
    return AllRows(batch, retry ? RowOutcome::Kind::kRetry : RowOutcome::Kind::kDelivered,
                   retry ? "AE: application error" : "");
  };
  Make();
  Step();
  ASSERT_EQ(endpoint_.delivered_count(), 1u);
  // Backoffs of 100, 200, 400, 800 ms, each +-20 %.
  for (std::int64_t wait : {130, 250, 490}) {
    for (int i = 0; i < 3; ++i) Step();
    const std::size_t before = endpoint_.delivered_count();
    clock_.AdvanceMs(wait);
    Step();
    EXPECT_EQ(endpoint_.delivered_count(), before + 1) << "after " << wait << " ms";
  }
  ASSERT_EQ(endpoint_.delivered_count(), 4u);
  clock_.AdvanceMs(500);
  for (int i = 0; i < 3; ++i) Step();
  EXPECT_EQ(endpoint_.delivered_count(), 4u) << "the fourth retry waits at least 640 ms";
  clock_.AdvanceMs(500);
  Step();
  ASSERT_EQ(endpoint_.delivered_count(), 5u);
  TakeDone();
  EXPECT_EQ(acked_events_, std::vector<std::uint64_t>{10}) << "only once it was taken";
  EXPECT_EQ(dest_.failures.load(), 0u) << "asking again is not a link failure";
  EXPECT_EQ(endpoint_.connect_count(), 1);
  const auto sent = Deliveries();
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(sent[i].bodies, std::vector<std::string>{AlertBody(10)});

  // The success started the backoff again: the next item asked for again waits ~100 ms only.
  Step();
  ASSERT_EQ(endpoint_.delivered_count(), 6u);
  clock_.AdvanceMs(130);
  Step();
  ASSERT_EQ(endpoint_.delivered_count(), 7u);
  TakeDone();
  EXPECT_EQ(acked_events_, (std::vector<std::uint64_t>{10, 11}));
}

TEST_F(RequestDestinationTest, ConnectFailuresAreCountedReportedAndRetriedWithGrowingBackoff) {
  Commit({Readings(1, "p1", 1)});
  endpoint_.connect_results = {Unavailable("connection refused"), Unavailable("connection refused"),
                               Unavailable("connection refused")};
  Make();
  Step();
  EXPECT_EQ(endpoint_.connect_count(), 1);
  EXPECT_EQ(dest_.failures.load(), 1u);
  EXPECT_FALSE(dest_.connected.load());
  EXPECT_NE(dest_.last_error.Get().find("cannot connect: connection refused"), std::string::npos)
      << dest_.last_error.Get();
  for (int i = 0; i < 5; ++i) Step();
  EXPECT_EQ(endpoint_.connect_count(), 1) << "not before the backoff";
  clock_.AdvanceMs(130);
  Step();
  EXPECT_EQ(endpoint_.connect_count(), 2);
  clock_.AdvanceMs(130);
  Step();
  EXPECT_EQ(endpoint_.connect_count(), 2) << "the second backoff is at least 160 ms";
  clock_.AdvanceMs(120);
  Step();
  EXPECT_EQ(endpoint_.connect_count(), 3);
  EXPECT_EQ(dest_.failures.load(), 3u);
  EXPECT_EQ(endpoint_.delivered_count(), 0u);
  clock_.AdvanceMs(500);
  Step();
  EXPECT_EQ(endpoint_.connect_count(), 4);
  EXPECT_EQ(endpoint_.delivered_count(), 1u) << "delivered in the round that connected";
  EXPECT_TRUE(dest_.connected.load());
  EXPECT_EQ(dest_.last_error.Get(), "");
  TakeDone();
  EXPECT_EQ(acked_batches_, std::vector<std::uint64_t>{1});
}

TEST_F(RequestDestinationTest, NothingIsConnectedWhileThereIsNothingToSend) {
  Make();
  for (int i = 0; i < 5; ++i) Step();
  EXPECT_EQ(endpoint_.connect_count(), 0);
  Commit({}, {Alert(3, "p1")});
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 1; }, 5));
  EXPECT_EQ(endpoint_.connect_count(), 1);
}

TEST_F(RequestDestinationTest, AlertsAreDeliveredAheadOfAReadingsBacklog) {
  Commit({Readings(1, "p1", 3), Readings(4, "p2", 3)}, {Alert(10, "p2")});
  RequestDestinationOptions o;
  o.scheduling.max_items_per_message = 1;
  Make(o);
  Step();
  Step();
  ASSERT_EQ(endpoint_.delivered_count(), 2u);
  // A new alert overtakes the readings still waiting.
  Commit({}, {Alert(11, "p1")});
  Step();
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 8; }));
  const auto sent = Deliveries();
  EXPECT_EQ(sent[0].kind, DeliveryBatch::Kind::kAlert);
  EXPECT_EQ(sent[0].bodies, std::vector<std::string>{AlertBody(10)});
  EXPECT_EQ(sent[1].kind, DeliveryBatch::Kind::kReadings);
  EXPECT_EQ(sent[2].kind, DeliveryBatch::Kind::kAlert);
  EXPECT_EQ(sent[2].bodies, std::vector<std::string>{AlertBody(11)});
  for (std::size_t i = 3; i < sent.size(); ++i) EXPECT_EQ(sent[i].kind, DeliveryBatch::Kind::kReadings);
  // Each patient's readings still in order.
  std::map<std::string, std::vector<std::string>> per_patient;
  for (const auto& d : sent) {
    if (d.kind == DeliveryBatch::Kind::kReadings) per_patient[d.patient].push_back(d.bodies.at(0));
  }
  EXPECT_EQ(per_patient["p1"], (std::vector<std::string>{ReadingBody(1), ReadingBody(2), ReadingBody(3)}));
  EXPECT_EQ(per_patient["p2"], (std::vector<std::string>{ReadingBody(4), ReadingBody(5), ReadingBody(6)}));
  TakeDone();
  EXPECT_EQ(acked_batches_, (std::vector<std::uint64_t>{1, 4}));
  EXPECT_EQ(acked_events_, (std::vector<std::uint64_t>{10, 11}));
  EXPECT_EQ(dest_.events_delivered.load(), 2u);
  EXPECT_EQ(dest_.readings_delivered.load(), 6u);
}

TEST_F(RequestDestinationTest, ItsBacklogIsReportedInItsStatsAndShrinksOnceAcknowledged) {
  Commit({Readings(1, "p1", 3), Readings(4, "p2", 2)}, {Alert(10, "p1")});
  endpoint_.connect_results = {Unavailable("no route to host")};
  Make();
  clock_.AdvanceMs(1001);
  Step();
  EXPECT_EQ(endpoint_.delivered_count(), 0u);
  EXPECT_EQ(dest_.backlog_readings.load(), 5u);
  EXPECT_EQ(dest_.backlog_events.load(), 1u);
  EXPECT_EQ(dest_.oldest_unacked_rx_ms.load(), 500) << "the alert's receive time";

  clock_.AdvanceMs(200);
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 3; }));
  TakeDone();
  ApplyDone();
  clock_.AdvanceMs(1001);
  Step();
  EXPECT_EQ(dest_.backlog_readings.load(), 0u);
  EXPECT_EQ(dest_.backlog_events.load(), 0u);
  EXPECT_EQ(dest_.oldest_unacked_rx_ms.load(), 0);
  EXPECT_EQ(dest_.readings_delivered.load(), 5u);
  EXPECT_EQ(dest_.events_delivered.load(), 1u);
  // The broker (bit 0) has not acknowledged them: they stay in the outbox for it.
  EXPECT_EQ(store_->reading_rows(), 5u);
}

TEST_F(RequestDestinationTest, KindsItDoesNotTakeAreAcknowledgedWithoutBeingSent) {
  Commit({Readings(1, "p1", 2)}, {Alert(10, "p1")});
  RequestDestinationOptions o;
  o.scheduling.take_readings = false;
  Make(o);
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 1; }));
  for (int i = 0; i < 5; ++i) Step();
  EXPECT_EQ(endpoint_.delivered_count(), 1u);
  EXPECT_EQ(Deliveries()[0].kind, DeliveryBatch::Kind::kAlert);
  TakeDone();
  EXPECT_EQ(acked_batches_, std::vector<std::uint64_t>{1});
  EXPECT_EQ(acked_events_, std::vector<std::uint64_t>{10});
  EXPECT_EQ(dest_.readings_delivered.load(), 0u);
}

TEST_F(RequestDestinationTest, ARowThatCannotBeDecryptedIsADeadLetterNotSent) {
  AeadKey written{};
  written.fill(0x11);
  AeadKey configured{};
  configured.fill(0x22);
  StoredRow row = Readings(1, "p1", 1);
  auto sealed = AeadSeal(written, BodyAad(false, RowFormat::kBatch, row.seq), row.body);
  ASSERT_TRUE(sealed.ok());
  row.body = AeadPack(*sealed);
  Commit({row, Readings(2, "p1", 1)});
  RequestDestinationOptions o;
  o.at_rest_key = configured;
  Make(o);
  ASSERT_TRUE(StepUntil([&] { return endpoint_.delivered_count() == 1; }));
  for (int i = 0; i < 5; ++i) Step();
  EXPECT_EQ(endpoint_.delivered_count(), 1u);
  EXPECT_EQ(Deliveries()[0].bodies, std::vector<std::string>{ReadingBody(2)});
  TakeDone();
  EXPECT_EQ(acked_batches_, (std::vector<std::uint64_t>{1, 2}));
  ASSERT_EQ(dead_.size(), 1u);
  EXPECT_EQ(dead_[0].destination, "ehr");
  EXPECT_NE(dead_[0].reason.find("cannot be decrypted"), std::string::npos) << dead_[0].reason;
}

TEST_F(RequestDestinationTest, ItsThreadDeliversUntilStoppedAndThenClosesTheLink) {
  Commit({Readings(1, "p1", 2)}, {Alert(10, "p1")});
  Make();
  destination_->Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (endpoint_.delivered_count() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(2));
  }
  destination_->RequestStop();
  destination_->Join();
  ASSERT_EQ(endpoint_.delivered_count(), 2u);
  EXPECT_EQ(Deliveries()[0].kind, DeliveryBatch::Kind::kAlert);
  EXPECT_FALSE(dest_.connected.load()) << "a stopped destination is not shown as connected";
  {
    std::lock_guard lock(endpoint_.mu);
    EXPECT_GE(endpoint_.closes, 1);
  }
  TakeDone();
  EXPECT_EQ(acked_batches_, std::vector<std::uint64_t>{1});
  EXPECT_EQ(acked_events_, std::vector<std::uint64_t>{10});
}

}  // namespace
}  // namespace vg
