// The delivery scheduler: alerts ahead of readings, per-patient order, requeue on link loss,
// rows done only when every item was acknowledged, dead letters, filters.
#include "vitalgate/forward/scheduler.h"

#include <gtest/gtest.h>

#include <map>

namespace vg {
namespace {

StoredRow Batch(std::uint64_t seq, const std::string& patient, std::vector<std::string> items) {
  StoredRow row;
  row.seq = seq;
  row.patient = patient;
  row.rx_ms = static_cast<std::int64_t>(seq);
  row.count = static_cast<std::uint32_t>(items.size());
  row.format = RowFormat::kBatch;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) row.body += '\n';
    row.body += items[i];
  }
  return row;
}

StoredRow Event(std::uint64_t seq, const std::string& patient, std::string body,
                EventKind kind = EventKind::kAlert) {
  StoredRow row;
  row.seq = seq;
  row.patient = patient;
  row.rx_ms = static_cast<std::int64_t>(seq);
  row.kind = kind;
  row.body = std::move(body);
  return row;
}

std::string R(int n) { return "{\"id\":\"r" + std::to_string(n) + "\"}"; }

std::vector<std::string> Bodies(const ScheduledMessage& m) {
  std::vector<std::string> out;
  for (const OutboxRow& r : m.items) out.push_back(r.body);
  return out;
}

TEST(SchedulerTest, AlertsGoAheadOfAReadingsBacklog) {
  DeliveryScheduler s(SchedulerOptions{});
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1), R(2)}), Batch(3, "p2", {R(3)})}, done);
  s.AddEvents({Event(10, "p1", "{\"id\":\"a1\"}")}, done);
  auto first = s.Next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->kind, DeliveryBatch::Kind::kAlert);
  EXPECT_EQ(first->patient, "p1");
  auto second = s.Next();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->kind, DeliveryBatch::Kind::kReadings);
  // An alert arriving while readings are queued still goes next.
  s.AddEvents({Event(11, "p2", "{\"id\":\"a2\"}")}, done);
  auto third = s.Next();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->kind, DeliveryBatch::Kind::kAlert);
  EXPECT_TRUE(done.empty());
}

TEST(SchedulerTest, EachPatientsReadingsInOrderAcrossRowsAndPatientsTakeTurns) {
  SchedulerOptions o;
  o.max_items_per_message = 2;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1), R(2), R(3)}), Batch(2, "p2", {R(4)}), Batch(5, "p1", {R(5)})},
               done);
  std::vector<std::pair<std::string, std::vector<std::string>>> sent;
  while (auto m = s.Next()) sent.emplace_back(m->patient, Bodies(*m));
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0], (std::pair<std::string, std::vector<std::string>>{"p1", {R(1), R(2)}}));
  EXPECT_EQ(sent[1], (std::pair<std::string, std::vector<std::string>>{"p2", {R(4)}}));
  EXPECT_EQ(sent[2], (std::pair<std::string, std::vector<std::string>>{"p1", {R(3), R(5)}}));
}

TEST(SchedulerTest, ARowIsDoneOnlyWhenEveryItemWasAcknowledged) {
  SchedulerOptions o;
  o.max_items_per_message = 2;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1), R(2), R(3)})}, done);
  auto a = s.Next();
  auto b = s.Next();
  ASSERT_TRUE(a && b);
  s.OnOutcome(a->token, {}, "mqtt", 0, done);
  EXPECT_TRUE(done.batches.empty()) << "one item of row 1 is still in flight";
  s.OnOutcome(b->token, {}, "mqtt", 0, done);
  ASSERT_EQ(done.batches, std::vector<std::uint64_t>{1});
  EXPECT_EQ(done.readings, 3u);
}

TEST(SchedulerTest, NothingIsDoneWithoutAnAcknowledgement) {
  DeliveryScheduler s(SchedulerOptions{});
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1)})}, done);
  s.AddEvents({Event(2, "p1", "{\"id\":\"a\"}")}, done);
  while (s.Next()) {
  }
  EXPECT_TRUE(done.empty());
  EXPECT_EQ(s.in_flight(), 2u);
}

TEST(SchedulerTest, LinkLossRequeuesInFlightInOrderAheadOfNewerItems) {
  SchedulerOptions o;
  o.max_items_per_message = 1;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1), R(2), R(3)})}, done);
  auto m1 = s.Next();
  auto m2 = s.Next();
  ASSERT_TRUE(m1 && m2);
  s.OnLinkLost();
  EXPECT_EQ(s.in_flight(), 0u);
  std::vector<std::string> order;
  while (auto m = s.Next()) {
    for (auto& b : Bodies(*m)) order.push_back(b);
    s.OnOutcome(m->token, {}, "mqtt", 0, done);
  }
  EXPECT_EQ(order, (std::vector<std::string>{R(1), R(2), R(3)}));
  EXPECT_EQ(done.batches, std::vector<std::uint64_t>{1});
}

TEST(SchedulerTest, ItemsKeepTheirPatientThroughLinkLossAndIntoDeadLetters) {
  // Names longer than a string's inline buffer, of patients whose queues empty and fill again.
  const std::string a = "ward-7-bed-12-patient-0001";
  const std::string b = "ward-7-bed-14-patient-0002";
  SchedulerOptions o;
  o.max_items_per_message = 2;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddEvents({Event(20, b, "{\"id\":\"a1\"}")}, done);
  s.AddBatches({Batch(1, a, {R(1), R(2)}), Batch(3, b, {R(3)})}, done);
  std::vector<std::string> sent;
  while (auto m = s.Next()) sent.push_back(m->patient);
  EXPECT_EQ(sent, (std::vector<std::string>{b, a, b}));
  s.OnLinkLost();
  s.AddBatches({Batch(4, a, {R(4)})}, done);
  std::map<std::string, std::string> patient_of;  // item id -> patient of its message
  std::vector<std::uint64_t> tokens;
  while (auto m = s.Next()) {
    for (const OutboxRow& r : m->items) {
      EXPECT_EQ(r.patient, m->patient);
      patient_of[r.body] = m->patient;
    }
    tokens.push_back(m->token);
  }
  EXPECT_EQ(patient_of, (std::map<std::string, std::string>{
                            {"{\"id\":\"a1\"}", b}, {R(1), a}, {R(2), a}, {R(3), b}, {R(4), a}}));
  // Every item refused for good: each dead letter names its own patient.
  for (std::uint64_t token : tokens) {
    s.OnOutcome(token,
                {{RowOutcome::Kind::kRejected, "refused"}, {RowOutcome::Kind::kRejected, "refused"}},
                "ehr", 1, done);
  }
  std::map<std::string, std::string> dead;  // item id -> patient
  for (const DeadLetter& d : done.dead_letters) dead[d.item_id] = d.patient;
  EXPECT_EQ(dead, (std::map<std::string, std::string>{
                      {"a1", b}, {"r1", a}, {"r2", a}, {"r3", b}, {"r4", a}}));
}

TEST(SchedulerTest, PatientNamesAreHeldOnlyWhileItemsNeedThem) {
  // A ward's patients change; the names of those with nothing left to send are not kept.
  SchedulerOptions o;
  o.max_items_per_message = 1;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1)}), Batch(2, "p2", {R(2)})}, done);
  s.AddEvents({Event(10, "p3", "{\"id\":\"a1\"}")}, done);
  EXPECT_EQ(s.names_held(), 3u);
  auto alert = s.Next();
  auto first = s.Next();
  ASSERT_TRUE(alert && first);
  s.OnOutcome(alert->token, {}, "mqtt", 0, done);
  s.OnOutcome(first->token, {}, "mqtt", 0, done);
  EXPECT_EQ(s.names_held(), 3u) << "p2's reading is still queued";
  auto second = s.Next();
  ASSERT_TRUE(second);
  s.OnLinkLost();  // back in the queue: its name still needed
  second = s.Next();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->patient, "p2");
  s.OnOutcome(second->token, {}, "mqtt", 0, done);
  EXPECT_EQ(s.names_held(), 0u);
  EXPECT_EQ(done.batches, (std::vector<std::uint64_t>{1, 2}));
  // A patient seen again after that gets its name back.
  s.AddBatches({Batch(5, "p1", {R(5)})}, done);
  auto again = s.Next();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->patient, "p1");
  EXPECT_EQ(again->items.at(0).patient, "p1");
}

TEST(SchedulerTest, RejectedItemsBecomeDeadLettersAndDoNotBlockTheRow) {
  SchedulerOptions o;
  o.max_items_per_message = 3;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddBatches({Batch(7, "p1", {R(1), R(2), R(3)})}, done);
  auto m = s.Next();
  ASSERT_TRUE(m);
  s.OnOutcome(m->token,
              {{RowOutcome::Kind::kDelivered, ""}, {RowOutcome::Kind::kRejected, "invalid code"},
               {RowOutcome::Kind::kRetry, "busy"}},
              "ehr", 42, done);
  ASSERT_EQ(done.dead_letters.size(), 1u);
  EXPECT_EQ(done.dead_letters[0].destination, "ehr");
  EXPECT_EQ(done.dead_letters[0].item_id, "r2");
  EXPECT_EQ(done.dead_letters[0].reason, "invalid code");
  EXPECT_EQ(done.dead_letters[0].ts_ms, 42);
  EXPECT_TRUE(done.batches.empty()) << "r3 must be sent again first";
  auto again = s.Next();
  ASSERT_TRUE(again);
  EXPECT_EQ(Bodies(*again), std::vector<std::string>{R(3)});
  s.OnOutcome(again->token, {}, "ehr", 43, done);
  EXPECT_EQ(done.batches, std::vector<std::uint64_t>{7});
}

TEST(SchedulerTest, AlignedMessagesStayInOneRowAndStartAtChunkBoundaries) {
  SchedulerOptions o;
  o.max_items_per_message = 2;
  o.align_to_rows = true;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1), R(2), R(3)}), Batch(4, "p1", {R(4), R(5)})}, done);
  std::vector<std::vector<std::string>> sent;
  std::vector<std::uint64_t> tokens;
  while (auto m = s.Next()) {
    sent.push_back(Bodies(*m));
    tokens.push_back(m->token);
  }
  EXPECT_EQ(sent, (std::vector<std::vector<std::string>>{{R(1), R(2)}, {R(3)}, {R(4), R(5)}}));
  // A retried chunk comes back with exactly the same items.
  s.OnOutcome(tokens[0], {{RowOutcome::Kind::kRetry, ""}, {RowOutcome::Kind::kRetry, ""}}, "hl7", 0,
              done);
  auto again = s.Next();
  ASSERT_TRUE(again);
  EXPECT_EQ(Bodies(*again), (std::vector<std::string>{R(1), R(2)}));
}

TEST(SchedulerTest, KindsADestinationDoesNotTakeAreDoneAtOnce) {
  SchedulerOptions o;
  o.take_alerts = false;
  o.take_audit = false;
  o.take_unassigned = false;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddEvents({Event(1, "p1", "{\"id\":\"a\"}"), Event(2, "", "{\"id\":\"au\"}", EventKind::kAudit)}, done);
  s.AddBatches({Batch(3, "unassigned/ox-1", {R(1)}), Batch(4, "p1", {R(2)})}, done);
  EXPECT_EQ(done.events, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(done.batches, (std::vector<std::uint64_t>{3}));
  auto m = s.Next();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->patient, "p1");
  EXPECT_FALSE(s.Next());
}

TEST(SchedulerTest, InMemoryRowsAreDeliveredInOrderButNeverReportedDone) {
  SchedulerOptions o;
  o.max_items_per_message = 10;
  DeliveryScheduler s(o);
  DoneRows done;
  s.AddBatches({Batch(5, "p1", {R(5)})}, done);
  StoredRow older = Batch(2, "p1", {R(2)});
  s.AddVolatileBatch(older);
  auto m = s.Next();
  ASSERT_TRUE(m);
  EXPECT_EQ(Bodies(*m), (std::vector<std::string>{R(2), R(5)}));
  s.OnOutcome(m->token, {}, "mqtt", 0, done);
  EXPECT_EQ(done.batches, std::vector<std::uint64_t>{5});
}

TEST(SchedulerTest, OldestReceiveTimeCoversQueuedAndInFlight) {
  DeliveryScheduler s(SchedulerOptions{});
  DoneRows done;
  EXPECT_EQ(s.OldestRxMs(), 0);
  s.AddBatches({Batch(3, "p1", {R(1)}), Batch(9, "p2", {R(2)})}, done);
  EXPECT_EQ(s.OldestRxMs(), 3);
  auto m = s.Next();
  ASSERT_TRUE(m);
  EXPECT_EQ(s.OldestRxMs(), 3);
  s.OnOutcome(m->token, {}, "mqtt", 0, done);
  EXPECT_EQ(s.OldestRxMs(), 9);
}

TEST(SchedulerTest, AMessageBuiltInRecycledItemsHoldsOnlyItsOwnReadings) {
  SchedulerOptions o;
  o.max_items_per_message = 3;
  DeliveryScheduler s(o);
  DoneRows done;
  const std::string longer(300, 'x');  // a body longer than the next ones, in the same buffer
  s.AddBatches({Batch(1, "patient-with-a-long-id", {"{\"id\":\"" + longer + "\"}", R(2), R(3)}),
                Batch(4, "p2", {R(4)}), Batch(5, "p3", {R(5), R(6)}), Batch(7, "p4", {R(7), R(8), R(9)})},
               done);
  std::vector<std::vector<std::string>> bodies;
  std::vector<std::string> patients;
  std::vector<std::vector<std::uint64_t>> seqs;
  while (auto m = s.Next()) {
    bodies.push_back(Bodies(*m));
    patients.push_back(m->patient);
    std::vector<std::uint64_t> row_seqs;
    for (const OutboxRow& r : m->items) {
      EXPECT_EQ(r.patient, m->patient);
      EXPECT_EQ(r.rx_ms, static_cast<std::int64_t>(r.seq));
      row_seqs.push_back(r.seq);
    }
    seqs.push_back(row_seqs);
    s.Recycle(std::move(m->items));  // 3 items, then fewer, then more again
  }
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_EQ(patients, (std::vector<std::string>{"patient-with-a-long-id", "p2", "p3", "p4"}));
  EXPECT_EQ(bodies[1], std::vector<std::string>{R(4)});
  EXPECT_EQ(bodies[2], (std::vector<std::string>{R(5), R(6)}));
  EXPECT_EQ(bodies[3], (std::vector<std::string>{R(7), R(8), R(9)}));
  EXPECT_EQ(seqs[1], std::vector<std::uint64_t>{4});
  EXPECT_EQ(seqs[3], (std::vector<std::uint64_t>{7, 7, 7}));
}

// Messages of at most `max` readings; a partial one may wait 10 ms on a busy link.
SchedulerOptions Lingering(std::size_t max) {
  SchedulerOptions o;
  o.max_items_per_message = max;
  o.linger_ms = 10;
  return o;
}

TEST(SchedulerTest, OnABusyLinkAPartialMessageWaitsUpToTheLingerForMoreReadings) {
  DeliveryScheduler s(Lingering(3));
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1)}), Batch(2, "p2", {R(2), R(3), R(4)})}, done);
  // Busy: p1's single reading waits; p2's full message goes.
  auto full = s.Next(true, 1000);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->patient, "p2");
  EXPECT_FALSE(s.Next(true, 1000));
  EXPECT_EQ(s.HeldUntilMs(), 1010);
  EXPECT_FALSE(s.Next(true, 1009));
  // More readings arrive: p1's message goes as soon as it is full, with all of them, in order.
  s.AddBatches({Batch(5, "p1", {R(5), R(6)})}, done);
  auto filled = s.Next(true, 1005);
  ASSERT_TRUE(filled);
  EXPECT_EQ(filled->patient, "p1");
  EXPECT_EQ(Bodies(*filled), (std::vector<std::string>{R(1), R(5), R(6)}));
  EXPECT_EQ(s.HeldUntilMs(), 0);
}

TEST(SchedulerTest, AWaitingPartialMessageGoesWhenTheLingerEndsOrTheLinkIsIdle) {
  DeliveryScheduler s(Lingering(3));
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1)})}, done);
  EXPECT_FALSE(s.Next(true, 1000));
  auto late = s.Next(true, 1010);
  ASSERT_TRUE(late);
  EXPECT_EQ(Bodies(*late), (std::vector<std::string>{R(1)}));

  s.AddBatches({Batch(2, "p1", {R(2)})}, done);
  EXPECT_FALSE(s.Next(true, 2000));
  auto idle = s.Next(false, 2001);  // nothing in flight: no reason to wait
  ASSERT_TRUE(idle);
  EXPECT_EQ(Bodies(*idle), (std::vector<std::string>{R(2)}));

  // A clock stepped back does not stretch the wait.
  s.AddBatches({Batch(3, "p1", {R(3)})}, done);
  EXPECT_FALSE(s.Next(true, 3000));
  auto stepped = s.Next(true, 2500);
  ASSERT_TRUE(stepped);
  EXPECT_EQ(Bodies(*stepped), (std::vector<std::string>{R(3)}));
}

TEST(SchedulerTest, WaitingPatientsKeepTheirTurnAndAlertsNeverWait) {
  DeliveryScheduler s(Lingering(2));
  DoneRows done;
  s.AddBatches({Batch(1, "p1", {R(1)}), Batch(2, "p2", {R(2)}), Batch(3, "p3", {R(3), R(4), R(5)})}, done);
  auto first = s.Next(true, 100);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->patient, "p3");
  s.AddEvents({Event(9, "p1", "{\"id\":\"a1\"}")}, done);
  auto alert = s.Next(true, 101);
  ASSERT_TRUE(alert);
  EXPECT_EQ(alert->kind, DeliveryBatch::Kind::kAlert);
  // When the wait ends, the held patients go, in the order they were held. p3's rest is a
  // partial message that came to its turn only now: it waits in its turn.
  std::vector<std::string> order;
  while (auto m = s.Next(true, 110)) order.push_back(m->patient);
  EXPECT_EQ(order, (std::vector<std::string>{"p1", "p2"}));
  auto rest = s.Next(true, 120);
  ASSERT_TRUE(rest);
  EXPECT_EQ(rest->patient, "p3");
  EXPECT_EQ(Bodies(*rest), (std::vector<std::string>{R(5)}));
}

}  // namespace
}  // namespace vg
