// The outbox: committed rows survive reopening; a row leaves only when every destination has
// acknowledged it; files from the previous release are migrated; eviction keeps alerts.
#include "vitalgate/store/outbox.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "vitalgate/core/aead.h"
#include "vitalgate/forward/envelope.h"

#ifndef VG_FIXTURES_DIR
#error "VG_FIXTURES_DIR must name tests/fixtures"
#endif

namespace vg {
namespace {

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/vg_outbox_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    Remove();
  }
  void TearDown() override { Remove(); }
  void Remove() {
    for (const char* s : {"", "-wal", "-shm", ".reserve"}) std::remove((path_ + s).c_str());
  }
  std::unique_ptr<OutboxStore> Open(std::vector<std::string> destinations = {},
                                    OpenReport* report = nullptr) {
    StoreOptions o;
    o.path = path_;
    o.max_bytes = 64ull << 20;
    o.destinations = std::move(destinations);
    o.reserve_bytes = 0;
    auto s = OutboxStore::Open(o, report);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(*s) : nullptr;
  }
  static StoredRow Batch(std::uint64_t seq, const std::string& patient, int n) {
    StoredRow r;
    r.seq = seq;
    r.patient = patient;
    r.rx_ms = 1000 + static_cast<std::int64_t>(seq);
    r.count = static_cast<std::uint32_t>(n);
    r.format = RowFormat::kBatch;
    for (int i = 0; i < n; ++i) {
      if (i > 0) r.body += '\n';
      r.body += "{\"id\":\"" + std::to_string(seq) + "." + std::to_string(i) + "\"}";
    }
    return r;
  }
  static StoredRow Event(std::uint64_t seq, const std::string& patient) {
    StoredRow r;
    r.seq = seq;
    r.patient = patient;
    r.rx_ms = 5;
    r.body = "{\"id\":\"e" + std::to_string(seq) + "\"}";
    return r;
  }
  std::vector<StoredRow> Read(bool events, int bit = 0) {
    auto reader = OutboxReader::Open(path_);
    EXPECT_TRUE(reader.ok());
    std::vector<StoredRow> rows;
    const Status s = events ? (*reader)->ReadEvents(bit, 0, 1000, rows)
                            : (*reader)->ReadBatches(bit, 0, 1000, rows);
    EXPECT_TRUE(s.ok()) << s.message();
    return rows;
  }
  static WriteBatch Ack(int bit, std::vector<std::uint64_t> batches, std::vector<std::uint64_t> events = {}) {
    WriteBatch b;
    b.acks.push_back(DestinationAcks{bit, std::move(batches), std::move(events)});
    return b;
  }
  std::string path_;
};

TEST_F(OutboxTest, CommitThenReadInOrder) {
  auto store = Open();
  WriteBatch b;
  b.batches = {Batch(1, "p-1", 3), Batch(2, "p-2", 2)};
  b.events = {Event(7, "p-1")};
  ASSERT_TRUE(store->Commit(b).ok());
  EXPECT_EQ(store->reading_rows(), 5u) << "readings, not rows";
  EXPECT_EQ(store->alert_rows(), 1u);
  EXPECT_GT(store->backlog_bytes(), 0u);
  auto rows = Read(false);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].seq, 1u);
  EXPECT_EQ(rows[0].count, 3u);
  EXPECT_EQ(rows[0].format, RowFormat::kBatch);
  EXPECT_EQ(SplitBatchBody(rows[0].body).size(), 3u);
  EXPECT_EQ(rows[1].patient, "p-2");
  auto events = Read(true);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].body, "{\"id\":\"e7\"}");
}

TEST_F(OutboxTest, AcknowledgedRowsAreDeletedOthersKept) {
  auto store = Open();
  WriteBatch b;
  for (std::uint64_t i = 1; i <= 10; ++i) b.batches.push_back(Batch(i, "p", 1));
  ASSERT_TRUE(store->Commit(b).ok());
  ASSERT_TRUE(store->Commit(Ack(0, {1, 2, 3, 7})).ok());
  auto rows = Read(false);
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0].seq, 4u);
  EXPECT_EQ(store->reading_rows(), 6u);
  auto reader = OutboxReader::Open(path_);
  std::vector<StoredRow> after;
  ASSERT_TRUE((*reader)->ReadBatches(0, 5, 2, after).ok());
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].seq, 6u);
  EXPECT_EQ(after[1].seq, 8u);
}

TEST_F(OutboxTest, ARowStaysUntilEveryDestinationHasIt) {
  auto store = Open({"mqtt", "ehr", "hl7"});
  const std::vector<int> bits = store->destination_bits();
  ASSERT_EQ(bits.size(), 3u);
  WriteBatch b;
  b.batches = {Batch(1, "p", 2), Batch(2, "p", 1)};
  b.events = {Event(3, "p")};
  ASSERT_TRUE(store->Commit(b).ok());
  ASSERT_TRUE(store->Commit(Ack(bits[0], {1, 2}, {3})).ok());
  ASSERT_TRUE(store->Commit(Ack(bits[1], {1}, {3})).ok());
  EXPECT_EQ(store->reading_rows(), 3u) << "hl7 has none of them yet";
  // Each destination reads only what it has not acknowledged.
  EXPECT_TRUE(Read(false, bits[0]).empty());
  ASSERT_EQ(Read(false, bits[1]).size(), 1u);
  EXPECT_EQ(Read(false, bits[1])[0].seq, 2u);
  EXPECT_EQ(Read(false, bits[2]).size(), 2u);
  ASSERT_TRUE(store->Commit(Ack(bits[2], {1}, {3})).ok());
  EXPECT_EQ(store->reading_rows(), 1u) << "row 1 and the event are gone";
  EXPECT_EQ(store->alert_rows(), 0u);
  auto reader = OutboxReader::Open(path_);
  auto backlog = (*reader)->CountUnacked(bits[2]);
  ASSERT_TRUE(backlog.ok());
  EXPECT_EQ(backlog->readings, 1u);
}

TEST_F(OutboxTest, ASchemaTwoOutboxGainsTheBacklogIndexAndItsBacklogIsCounted) {
  std::vector<int> bits;
  {
    auto store = Open({"mqtt", "ehr"});
    bits = store->destination_bits();
    WriteBatch b;
    b.batches = {Batch(1, "p", 3), Batch(4, "q", 2), Batch(6, "p", 1)};
    ASSERT_TRUE(store->Commit(b).ok());
    ASSERT_TRUE(store->Commit(Ack(bits[0], {1, 4, 6})).ok());
    ASSERT_TRUE(store->Commit(Ack(bits[1], {1})).ok());
  }
  // Make it the file schema 2 wrote: no index, schema 2 in meta.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP INDEX batches_backlog; UPDATE meta SET value='2' WHERE key='schema'",
                         nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  OpenReport report;
  auto store = Open({"mqtt", "ehr"}, &report);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(report.migrated_from, 2);
  auto reader = OutboxReader::Open(path_);
  ASSERT_TRUE(reader.ok());
  // mqtt has everything; ehr lacks the rows 4 and 6 (three readings), the oldest being row 4.
  auto ehr = (*reader)->CountUnacked(bits[1]);
  ASSERT_TRUE(ehr.ok()) << ehr.status().message();
  EXPECT_EQ(ehr->readings, 3u);
  auto mqtt = (*reader)->CountUnacked(bits[0]);
  ASSERT_TRUE(mqtt.ok());
  EXPECT_EQ(mqtt->readings, 0u);
  auto oldest = (*reader)->OldestUnackedRxMs(bits[1]);
  ASSERT_TRUE(oldest.ok()) << oldest.status().message();
  EXPECT_EQ(*oldest, Batch(4, "q", 2).rx_ms);
  auto none = (*reader)->OldestUnackedRxMs(bits[0]);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
}

TEST_F(OutboxTest, ADestinationRemovedFromTheConfigNoLongerHoldsRowsBack) {
  {
    auto store = Open({"mqtt", "ehr"});
    WriteBatch b;
    b.batches = {Batch(1, "p", 1)};
    ASSERT_TRUE(store->Commit(b).ok());
    ASSERT_TRUE(store->Commit(Ack(store->destination_bits()[0], {1})).ok());
    EXPECT_EQ(store->reading_rows(), 1u);
  }
  auto store = Open({"mqtt"});
  EXPECT_EQ(store->reading_rows(), 0u) << "the only configured destination had it";
}

TEST_F(OutboxTest, UnacknowledgedRowsSurviveReopenAndGenerationGrows) {
  std::uint32_t gen1 = 0;
  std::string instance;
  {
    auto store = Open();
    gen1 = store->generation();
    instance = store->instance();
    WriteBatch b;
    b.batches = {Batch(1, "p", 1), Batch(2, "p", 1), Batch(3, "p", 1)};
    b.events = {Event(4, "p")};
    ASSERT_TRUE(store->Commit(b).ok());
    ASSERT_TRUE(store->Commit(Ack(0, {1})).ok());
  }
  auto store = Open();
  EXPECT_EQ(store->generation(), gen1 + 1);
  EXPECT_EQ(store->instance(), instance);
  EXPECT_EQ(store->reading_rows(), 2u);
  EXPECT_EQ(store->alert_rows(), 1u);
  EXPECT_EQ(store->max_event_seq(), 4u);
  auto rows = Read(false);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].seq, 2u);
}

TEST_F(OutboxTest, TheConfiguredSynchronousModeReachesTheConnection) {
  for (bool full : {true, false}) {
    StoreOptions o;
    o.path = path_;
    o.synchronous_full = full;
    o.reserve_bytes = 0;
    auto store = OutboxStore::Open(o);
    ASSERT_TRUE(store.ok());
    EXPECT_EQ((*store)->SynchronousMode(), full ? "full" : "normal");
  }
}

TEST_F(OutboxTest, ADeletedRowsContentIsOverwrittenWhereThatCostsNoExtraWrites) {
  // secure_delete=FAST: the content of a deleted row on a table page is zeroed (the page is
  // written anyway); pages freed whole are not written again (see docs/security.md).
  auto store = Open();
  const std::string marker = "delivered-reading-7f3a9c";
  auto file_holds = [&](const std::string& what) {
    std::string all;
    for (const char* suffix : {"", "-wal"}) {
      std::ifstream in(path_ + suffix, std::ios::binary);
      all += std::string(std::istreambuf_iterator<char>(in), {});
    }
    return all.find(what) != std::string::npos;
  };
  WriteBatch b;
  StoredRow row = Batch(1, "p-1", 1);
  row.body = "{\"id\":\"" + marker + "\"}";
  b.batches = {row, Batch(2, "p-2", 1)};
  ASSERT_TRUE(store->Commit(b).ok());
  ASSERT_TRUE(store->CheckpointTruncate().ok());
  ASSERT_TRUE(file_holds(marker)) << "the test cannot see a stored body";
  ASSERT_TRUE(store->Commit(Ack(0, {1})).ok());
  ASSERT_TRUE(store->CheckpointTruncate().ok());
  EXPECT_FALSE(file_holds(marker)) << "a delivered row's body is still in the outbox file";
  EXPECT_EQ(Read(false).size(), 1u);
}

TEST_F(OutboxTest, FilesArePrivate) {
  auto store = Open();
  WriteBatch b;
  b.batches = {Batch(1, "p", 1)};
  ASSERT_TRUE(store->Commit(b).ok());
  for (const char* s : {"", "-wal"}) {
    struct stat st {};
    ASSERT_EQ(::stat((path_ + s).c_str(), &st), 0) << s;
    EXPECT_EQ(st.st_mode & 077, 0u) << s << " mode " << std::oct << (st.st_mode & 0777);
  }
}

TEST_F(OutboxTest, DamagedFileIsMovedAsideAndAFreshOneCreated) {
  std::ofstream(path_) << std::string(8192, 'g');  // not an SQLite database
  OpenReport report;
  auto store = Open({}, &report);
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(report.moved_aside.empty());
  EXPECT_EQ(::access(report.moved_aside.c_str(), F_OK), 0);
  EXPECT_EQ(store->reading_rows(), 0u);
  WriteBatch b;
  b.batches = {Batch(1, "p", 1)};
  EXPECT_TRUE(store->Commit(b).ok());
  std::remove(report.moved_aside.c_str());
}

TEST_F(OutboxTest, DuplicateInsertIsIgnoredNotAnError) {
  auto store = Open();
  WriteBatch b;
  b.batches = {Batch(1, "p", 2)};
  ASSERT_TRUE(store->Commit(b).ok());
  ASSERT_TRUE(store->Commit(b).ok());
  EXPECT_EQ(store->reading_rows(), 2u);
}

TEST_F(OutboxTest, EvictionDropsTheOldestReadingsAndNeverEvents) {
  auto store = Open();
  WriteBatch b;
  for (std::uint64_t i = 1; i <= 20; ++i) b.batches.push_back(Batch(i, i % 2 ? "odd" : "even", 5));
  b.events = {Event(100, "odd")};
  ASSERT_TRUE(store->Commit(b).ok());
  std::vector<std::string> patients;
  auto evicted = store->EvictOldestReadings(12, &patients);
  ASSERT_TRUE(evicted.ok());
  EXPECT_EQ(*evicted, 15u) << "whole rows, oldest first, until at least 12";
  EXPECT_EQ(store->reading_rows(), 85u);
  EXPECT_EQ(Read(false).front().seq, 4u);
  EXPECT_EQ(Read(true).size(), 1u);
  EXPECT_EQ(std::set<std::string>(patients.begin(), patients.end()), (std::set<std::string>{"odd", "even"}));
}

TEST_F(OutboxTest, SideTablesAreKeptAcrossReopen) {
  {
    auto store = Open();
    WriteBatch b;
    b.alarms = {OpenAlarmChange{"a-1", "{\"v\":1}"}, OpenAlarmChange{"a-2", "{\"v\":1,\"x\":2}"}};
    b.assignments = {Assignment{"ox-1", "p-9", "nurse", 7}, Assignment{"ox-2", std::nullopt, "nurse", 8}};
    b.records = {RecordKey{"gl-1", 42, 1000}, RecordKey{"gl-1", 43, 10}};
    b.dead_letters = {DeadLetter{"ehr", "reading", "p-1", "id-1", "invalid", 9, "{}"}};
    ASSERT_TRUE(store->Commit(b).ok());
    WriteBatch end;
    end.alarms = {OpenAlarmChange{"a-1", ""}};
    ASSERT_TRUE(store->Commit(end).ok());
  }
  auto store = Open();
  auto alarms = store->LoadOpenAlarms();
  ASSERT_TRUE(alarms.ok());
  EXPECT_EQ(*alarms, std::vector<std::string>{"{\"v\":1,\"x\":2}"});
  auto assignments = store->LoadAssignments();
  ASSERT_TRUE(assignments.ok());
  ASSERT_EQ(assignments->size(), 2u);
  EXPECT_EQ((*assignments)[0].patient, "p-9");
  EXPECT_FALSE((*assignments)[1].patient.has_value());
  auto records = store->LoadRecordKeys(100);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u) << "records older than the window are pruned";
  EXPECT_EQ((*records)[0].key, 42u);
  auto reader = OutboxReader::Open(path_);
  auto dead = (*reader)->CountDeadLetters("ehr");
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(*dead, 1u);
}

TEST_F(OutboxTest, AFileFromANewerReleaseIsRefusedNotOverwritten) {
  { auto store = Open(); }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE meta SET value='99' WHERE key='schema'", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  StoreOptions o;
  o.path = path_;
  auto s = OutboxStore::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("newer"), std::string::npos) << s.status().message();
}

// An outbox written by the previous release (schema 1: one row per reading), committed under
// tests/fixtures/outbox-v1, opens with every row deliverable.
class MigrationTest : public OutboxTest {
 protected:
  void CopyFixture(const std::string& name) {
    std::filesystem::copy_file(std::string(VG_FIXTURES_DIR) + "/outbox-v1/" + name, path_,
                               std::filesystem::copy_options::overwrite_existing);
    ::chmod(path_.c_str(), 0600);
  }
  static std::vector<std::string> Lines(const std::string& name) {
    std::ifstream in(std::string(VG_FIXTURES_DIR) + "/outbox-v1/" + name);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
};

TEST_F(MigrationTest, APlainSchemaOneOutboxKeepsEveryReadingAndAlert) {
  CopyFixture("plain.db");
  OpenReport report;
  auto store = Open({}, &report);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(report.migrated_from, 1);
  const auto ids = Lines("plain.reading-ids");
  ASSERT_EQ(ids.size(), 186u);
  EXPECT_EQ(store->reading_rows(), ids.size());
  std::vector<std::string> got;
  for (const StoredRow& r : Read(false)) {
    EXPECT_EQ(r.format, RowFormat::kSingle);
    got.push_back(nlohmann::json::parse(r.body)["id"]);
  }
  EXPECT_EQ(got, ids) << "every reading, in its order";
  std::vector<std::string> alerts;
  for (const StoredRow& r : Read(true)) alerts.push_back(nlohmann::json::parse(r.body)["id"]);
  EXPECT_EQ(alerts, Lines("plain.alert-ids"));
  // The migrated rows are acknowledged and deleted like new ones.
  const std::uint64_t first = Read(false).front().seq;
  ASSERT_TRUE(store->Commit(Ack(0, {first})).ok());
  EXPECT_EQ(store->reading_rows(), ids.size() - 1);
  // New rows go after them.
  EXPECT_GE(store->max_event_seq(), Read(true).back().seq);
}

TEST_F(MigrationTest, ASealedSchemaOneOutboxStillOpensWithItsKey) {
  CopyFixture("sealed.db");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  // Key files must be private (a checkout does not keep modes).
  const std::string key_path = path_ + ".key";
  std::filesystem::copy_file(std::string(VG_FIXTURES_DIR) + "/outbox-v1/payload.key", key_path,
                             std::filesystem::copy_options::overwrite_existing);
  ::chmod(key_path.c_str(), 0600);
  auto key = LoadPayloadKey(key_path, "k1");
  std::remove(key_path.c_str());
  ASSERT_TRUE(key.ok()) << key.status().message();
  const auto rows = Read(false);
  ASSERT_EQ(rows.size(), 186u);
  for (const StoredRow& r : rows) {
    ASSERT_NE(r.body.front(), '{') << "stored sealed";
    auto sealed = AeadUnpack(r.body);
    ASSERT_TRUE(sealed.ok());
    auto plain = AeadOpen(key->key, BodyAad(false, r.format, r.seq), *sealed);
    ASSERT_TRUE(plain.ok()) << "row " << r.seq;
    EXPECT_TRUE(nlohmann::json::parse(*plain).contains("metric"));
  }
  for (const StoredRow& r : Read(true)) {
    auto sealed = AeadUnpack(r.body);
    ASSERT_TRUE(sealed.ok());
    EXPECT_TRUE(AeadOpen(key->key, BodyAad(true, r.format, r.seq), *sealed).ok());
  }
}

TEST(OutboxLimitsTest, TheRoomIsMaxBytesOnABigDiskAndWhatTheDiskHasOnASmallOne) {
  constexpr std::uint64_t kMiB = 1ull << 20, kGiB = 1ull << 30, kPage = 4096;
  // A big disk: storage.max_bytes, with the full reserve and WAL allowance.
  OutboxLimits big = PlanOutboxLimits(512 * kMiB, 4 * kMiB, kPage, 100 * kGiB, 50 * kGiB);
  EXPECT_EQ(big.room, 512 * kMiB);
  EXPECT_EQ(big.reserve_bytes, 4 * kMiB);
  EXPECT_EQ(big.wal_allowance, 16 * kMiB);
  EXPECT_EQ(big.max_pages, (512 * kMiB - 4 * kMiB - 16 * kMiB) / kPage);
  // A 3 MiB tmpfs: within what it has, reserve and WAL at most a sixteenth each.
  OutboxLimits tiny = PlanOutboxLimits(512 * kMiB, 4 * kMiB, kPage, 3 * kMiB, 3 * kMiB);
  EXPECT_LT(tiny.room, 3 * kMiB);
  EXPECT_LE(tiny.reserve_bytes, 3 * kMiB / 16);
  EXPECT_LE(tiny.wal_allowance, std::max(3 * kMiB / 16, 64 * kPage));  // 64 pages at least
  EXPECT_LE(tiny.max_pages * kPage + tiny.wal_allowance + tiny.reserve_bytes, tiny.room);
  // A big disk almost full at start (10 MiB free): no wrap-around below zero, the reserve
  // shrinks with the room, and database + WAL + reserve stay within it.
  for (std::uint64_t free : {std::uint64_t{0}, std::uint64_t{64 * 1024}, 10 * kMiB}) {
    OutboxLimits l = PlanOutboxLimits(512 * kMiB, 4 * kMiB, kPage, kGiB, free);
    EXPECT_GE(l.room, 256 * kPage) << free;
    EXPECT_LE(l.reserve_bytes, l.room / 16) << free;
    EXPECT_LE(l.max_pages * kPage + l.wal_allowance + l.reserve_bytes, l.room) << free;
    EXPECT_GT(l.max_pages, 0u) << free;
  }
  // Unknown file system (statvfs failed): storage.max_bytes as configured.
  EXPECT_EQ(PlanOutboxLimits(64 * kMiB, 4 * kMiB, kPage, 0, 0).room, 64 * kMiB);
}

}  // namespace
}  // namespace vg
