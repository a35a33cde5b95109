// The store thread: readings committed one row per patient batch and in order, nothing queued
// lost at shutdown, alert events stored and reported, what the destinations are done with
// applied, assignments and a verifiable audit chain, sealed bodies, eviction of the oldest
// readings (never alerts) when the outbox is full, and delivery from memory while there is no
// outbox or its commits fail.
#include "vitalgate/store/writer.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/compact_row.h"

namespace vg {
namespace {

using std::chrono::milliseconds;

// An SQLite VFS whose writes fail while `g_fail_writes` is set: a failing (or read-only) disk
// under an outbox that was opened while it still worked.
std::atomic<bool> g_fail_writes{false};
constexpr const char* kFailingVfsName = "vg-writer-failing-disk";
sqlite3_vfs* g_base_vfs = nullptr;

struct FailingFile {
  sqlite3_file base;  // must be first
  sqlite3_file* real;
};

sqlite3_file* Real(sqlite3_file* f) { return reinterpret_cast<FailingFile*>(f)->real; }

int FfClose(sqlite3_file* f) {
  sqlite3_file* real = Real(f);
  const int rc = real->pMethods != nullptr ? real->pMethods->xClose(real) : SQLITE_OK;
  sqlite3_free(real);
  return rc;
}
int FfRead(sqlite3_file* f, void* buf, int amt, sqlite3_int64 off) {
  return Real(f)->pMethods->xRead(Real(f), buf, amt, off);
}
int FfWrite(sqlite3_file* f, const void* buf, int amt, sqlite3_int64 off) {
  if (g_fail_writes.load()) return SQLITE_IOERR_WRITE;
  return Real(f)->pMethods->xWrite(Real(f), buf, amt, off);
}
int FfTruncate(sqlite3_file* f, sqlite3_int64 size) {
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int FfSync(sqlite3_file* f, int flags) { return Real(f)->pMethods->xSync(Real(f), flags); }
int FfFileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int FfLock(sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); }
int FfUnlock(sqlite3_file* f, int l) { return Real(f)->pMethods->xUnlock(Real(f), l); }
int FfCheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FfFileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int FfSectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int FfDeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int FfShmMap(sqlite3_file* f, int pg, int sz, int extend, void volatile** p) {
  return Real(f)->pMethods->xShmMap(Real(f), pg, sz, extend, p);
}
int FfShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void FfShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int FfShmUnmap(sqlite3_file* f, int del) { return Real(f)->pMethods->xShmUnmap(Real(f), del); }
int FfFetch(sqlite3_file*, sqlite3_int64, int, void** pp) {
  *pp = nullptr;  // no memory-mapped reads
  return SQLITE_OK;
}
int FfUnfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

const sqlite3_io_methods kFailingMethods = {
    3,           FfClose,       FfRead,       FfWrite,          FfTruncate,
    FfSync,      FfFileSize,    FfLock,       FfUnlock,         FfCheckReservedLock,
    FfFileControl, FfSectorSize, FfDeviceCharacteristics, FfShmMap, FfShmLock,
    FfShmBarrier, FfShmUnmap,   FfFetch,      FfUnfetch,
};

int FfOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* ff = reinterpret_cast<FailingFile*>(f);
  ff->base.pMethods = nullptr;
  ff->real = static_cast<sqlite3_file*>(sqlite3_malloc(g_base_vfs->szOsFile));
  if (ff->real == nullptr) return SQLITE_NOMEM;
  std::memset(ff->real, 0, static_cast<std::size_t>(g_base_vfs->szOsFile));
  const int rc = g_base_vfs->xOpen(g_base_vfs, name, ff->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    sqlite3_free(ff->real);
    return rc;
  }
  ff->base.pMethods = &kFailingMethods;
  return SQLITE_OK;
}
int FfDelete(sqlite3_vfs*, const char* name, int sync_dir) {
  return g_base_vfs->xDelete(g_base_vfs, name, sync_dir);
}
int FfAccess(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_base_vfs->xAccess(g_base_vfs, name, flags, out);
}
int FfFullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_base_vfs->xFullPathname(g_base_vfs, name, n, out);
}
int FfRandomness(sqlite3_vfs*, int n, char* out) {
  return g_base_vfs->xRandomness(g_base_vfs, n, out);
}
int FfSleep(sqlite3_vfs*, int us) { return g_base_vfs->xSleep(g_base_vfs, us); }
int FfCurrentTime(sqlite3_vfs*, double* t) { return g_base_vfs->xCurrentTime(g_base_vfs, t); }
int FfGetLastError(sqlite3_vfs*, int n, char* s) {
  return g_base_vfs->xGetLastError(g_base_vfs, n, s);
}
int FfCurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* t) {
  return g_base_vfs->xCurrentTimeInt64(g_base_vfs, t);
}

sqlite3_vfs g_failing_vfs;

void RegisterFailingVfs() {
  if (g_base_vfs != nullptr) return;
  g_base_vfs = sqlite3_vfs_find(nullptr);
  g_failing_vfs = sqlite3_vfs{};
  g_failing_vfs.iVersion = 2;
  g_failing_vfs.szOsFile = static_cast<int>(sizeof(FailingFile));
  g_failing_vfs.mxPathname = g_base_vfs->mxPathname;
  g_failing_vfs.zName = kFailingVfsName;
  g_failing_vfs.xOpen = FfOpen;
  g_failing_vfs.xDelete = FfDelete;
  g_failing_vfs.xAccess = FfAccess;
  g_failing_vfs.xFullPathname = FfFullPathname;
  g_failing_vfs.xRandomness = FfRandomness;
  g_failing_vfs.xSleep = FfSleep;
  g_failing_vfs.xCurrentTime = FfCurrentTime;
  g_failing_vfs.xGetLastError = FfGetLastError;
  g_failing_vfs.xCurrentTimeInt64 = FfCurrentTimeInt64;
  sqlite3_vfs_register(&g_failing_vfs, /*makeDflt=*/0);
}

// Polls `done` until it holds or `limit` has passed.
template <typename Pred>
bool WaitFor(Pred done, std::chrono::seconds limit = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

bool Rang(const Doorbell& bell) {
  pollfd pfd{bell.fd(), POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 1;
}

// The JSON text of each reading in a reading row's (open) body of `count` readings.
std::vector<std::string> ReadingsIn(std::string_view body, std::uint32_t count) {
  std::string text(body);
  if (IsCompactRow(body)) {
    auto expanded = ExpandCompactRow(body, count);
    EXPECT_TRUE(expanded.ok()) << expanded.status().message();
    text = expanded.ok() ? *expanded : std::string();
  }
  std::vector<std::string> out;
  for (std::string_view part : SplitBatchBody(text)) out.emplace_back(part);
  return out;
}

// The "id" of each reading in a reading row's body.
std::vector<std::string> IdsIn(std::string_view body, std::uint32_t count) {
  std::vector<std::string> out;
  for (const std::string& part : ReadingsIn(body, count)) {
    out.push_back(nlohmann::json::parse(part).at("id").get<std::string>());
  }
  return out;
}
std::vector<std::string> IdsIn(const StoredRow& row) { return IdsIn(row.body, row.count); }

class OutboxWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/vg_writer_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    Remove();
    p1_ = *patients_.Intern("p-1");
    p2_ = *patients_.Intern("p-2");
    device_ = static_cast<DeviceIndex>(*devices_.Intern("monitor-1"));
  }
  void TearDown() override {
    g_fail_writes.store(false);
    writer_.reset();
    Remove();
  }
  void Remove() {
    for (const char* s : {"", "-wal", "-shm", ".reserve"}) std::remove((path_ + s).c_str());
  }

  StoreOptions Options() const {
    StoreOptions o;
    o.path = path_;
    o.max_bytes = 64ull << 20;
    o.synchronous_full = false;  // durability is the outbox's own tests' subject
    o.reserve_bytes = 0;
    return o;
  }
  static std::unique_ptr<OutboxStore> OpenStore(const StoreOptions& o) {
    auto s = OutboxStore::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Builds the writer over `store` (null: no outbox), the way the daemon wires it.
  void Make(std::unique_ptr<OutboxStore> store, OutboxWriterOptions o = {},
            std::size_t volatile_max = 200'000) {
    writer_.reset();
    volatile_ = std::make_unique<VolatileQueue>(volatile_max);
    wake_primary_.PrepareWait();  // the primary destination sleeps until the writer rings
    OutboxWriterEvents events;
    events.on_health = [this](bool healthy, const std::string& why) {
      std::lock_guard lock(mu_);
      health_.emplace_back(healthy, why);
    };
    events.on_dropped = [this](std::uint64_t n, const std::vector<std::string>& patients) {
      std::lock_guard lock(mu_);
      dropped_ += n;
      dropped_patients_.insert(patients.begin(), patients.end());
    };
    events.on_opened = [this](OutboxStore&) { opened_.store(true); };
    events.on_alert = [this](const AlertEvent& e) {
      std::lock_guard lock(mu_);
      alerts_seen_.push_back(e.id);
    };
    writer_ = std::make_unique<OutboxWriter>(
        std::move(store), readings_, alerts_, delivered_, *volatile_,
        PayloadContext{&patients_, &devices_, &ids_}, wake_store_,
        std::vector<Doorbell*>{&wake_primary_}, stats_, std::move(o), std::move(events));
  }
  void Stop() {
    writer_->RequestStop();
    writer_->Join();
  }

  Reading NewReading(PatientIndex patient, double value, Metric metric = Metric::kHeartRate) {
    Reading r;
    r.id = ids_alloc_.Next();
    r.ts_ms = 1'790'000'000'000 + static_cast<std::int64_t>(r.id & 0xFFFF);
    r.rx_ms = r.ts_ms;
    r.value = value;
    r.patient = patient;
    r.device = device_;
    r.metric = metric;
    return r;
  }
  // Queues a reading as the engine does; returns its id.
  std::uint64_t Push(PatientIndex patient, double value = 72) {
    const Reading r = NewReading(patient, value);
    EXPECT_TRUE(readings_.TryPush(r));
    return r.id;
  }
  AlertEvent NewAlert(std::uint64_t id, PatientIndex patient) const {
    AlertEvent e;
    e.id = id;
    e.alarm_id = id;
    e.patient = patient;
    e.kind = AlertKind::kThreshold;
    e.priority = Priority::kHigh;
    e.state = AlertState::kActive;
    e.metric = Metric::kSpo2;
    e.value = 85;
    e.limit = 88;
    e.message = "SpO2 85 % below 88 %";
    e.ts_ms = 1'790'000'000'000;
    e.raised_ts_ms = e.ts_ms;
    return e;
  }
  void PushAlert(const AlertEvent& e) { EXPECT_TRUE(alerts_.TryPush(e)); }

  std::vector<StoredRow> ReadRows(bool events, int bit = 0) const {
    std::vector<StoredRow> rows;
    auto reader = OutboxReader::Open(path_);
    EXPECT_TRUE(reader.ok()) << reader.status().message();
    if (!reader.ok()) return rows;
    const Status s = events ? (*reader)->ReadEvents(bit, 0, 100'000, rows)
                            : (*reader)->ReadBatches(bit, 0, 100'000, rows);
    EXPECT_TRUE(s.ok()) << s.message();
    return rows;
  }
  std::vector<AuditEntry> AllAudit(std::string* start, std::uint64_t* head) const {
    auto reader = OutboxReader::Open(path_);
    EXPECT_TRUE(reader.ok()) << reader.status().message();
    if (!reader.ok()) return {};
    auto entries = (*reader)->AllAudit(start, head);
    EXPECT_TRUE(entries.ok()) << entries.status().message();
    return entries.ok() ? *entries : std::vector<AuditEntry>{};
  }
  // Everything the writer handed to the primary destination from memory, accumulated.
  void TakeVolatile() {
    volatile_->TakeAll(volatile_events_, volatile_batches_);
  }
  std::size_t VolatileReadings() const {
    std::size_t n = 0;
    for (const StoredRow& r : volatile_batches_) n += r.count;
    return n;
  }
  bool HealthReported(bool healthy) {
    std::lock_guard lock(mu_);
    return std::any_of(health_.begin(), health_.end(),
                       [healthy](const auto& h) { return h.first == healthy; });
  }
  std::uint64_t Dropped() {
    std::lock_guard lock(mu_);
    return dropped_;
  }
  // Submits `command` and waits (bounded) for its outcome.
  Status SubmitAndWait(StoreCommand command) {
    auto outcome = std::make_shared<std::optional<Status>>();
    auto mu = std::make_shared<std::mutex>();
    command.done = [outcome, mu](const Status& s) {
      std::lock_guard lock(*mu);
      *outcome = s;
    };
    writer_->Submit(std::move(command));
    const bool finished = WaitFor([&] {
      std::lock_guard lock(*mu);
      return outcome->has_value();
    });
    if (!finished) return Internal("the command's callback never ran");
    std::lock_guard lock(*mu);
    return **outcome;
  }
  static StoreCommand::Audit Audit(std::string kind, std::string detail, std::int64_t ts_ms) {
    return StoreCommand::Audit{std::move(kind), "admin", std::move(detail), ts_ms};
  }

  std::string path_;
  PatientDirectory patients_;
  DeviceDirectory devices_;
  IdFormat ids_{"gw1"};
  IdAllocator ids_alloc_{1};
  PatientIndex p1_ = 0;
  PatientIndex p2_ = 0;
  DeviceIndex device_ = 0;
  SpscRing<Reading> readings_{1 << 15};
  SpscRing<AlertEvent> alerts_{64};
  DeliveryQueue delivered_;
  Doorbell wake_store_;
  Doorbell wake_primary_;
  GatewayStats stats_;
  std::unique_ptr<VolatileQueue> volatile_;
  std::vector<StoredRow> volatile_events_;
  std::vector<StoredRow> volatile_batches_;
  std::mutex mu_;
  std::vector<std::pair<bool, std::string>> health_;
  std::uint64_t dropped_ = 0;
  std::set<std::string> dropped_patients_;
  std::vector<std::uint64_t> alerts_seen_;
  std::atomic<bool> opened_{false};
  std::unique_ptr<OutboxWriter> writer_;  // last: stopped before what it uses goes away
};

TEST_F(OutboxWriterTest, EachPatientsReadingsAreCommittedAsOneRowInOrder) {
  // Queued before the thread starts, so they are one round.
  const std::uint64_t a1 = Push(p1_, 71);
  const std::uint64_t b1 = Push(p2_, 95);
  const std::uint64_t a2 = Push(p1_, 72);
  const std::uint64_t b2 = Push(p2_, 96);
  const std::uint64_t a3 = Push(p1_, 73);
  Make(OpenStore(Options()));
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] { return stats_.readings_committed.load() == 5; }));
  ASSERT_TRUE(WaitFor([&] { return Rang(wake_primary_); })) << "a commit wakes the destinations";
  Stop();

  const std::vector<StoredRow> rows = ReadRows(false);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].seq, a1) << "a row is keyed by its first reading";
  EXPECT_EQ(rows[0].patient, "p-1");
  EXPECT_EQ(rows[0].count, 3u);
  EXPECT_EQ(rows[0].format, RowFormat::kCompact);
  EXPECT_EQ(IdsIn(rows[0]),
            (std::vector<std::string>{ids_.Format(a1), ids_.Format(a2), ids_.Format(a3)}));
  EXPECT_EQ(rows[1].seq, b1);
  EXPECT_EQ(rows[1].patient, "p-2");
  EXPECT_EQ(IdsIn(rows[1]), (std::vector<std::string>{ids_.Format(b1), ids_.Format(b2)}));
  const nlohmann::json first = nlohmann::json::parse(ReadingsIn(rows[0].body, rows[0].count).at(0));
  EXPECT_EQ(first.at("device"), "monitor-1");
  EXPECT_EQ(first.at("value"), 71);
  EXPECT_EQ(stats_.backlog_readings.load(), 5u);
  EXPECT_TRUE(stats_.store_healthy.load());
}

TEST_F(OutboxWriterTest, NothingQueuedIsLostWhenStoppedRightAfterIt) {
  Make(OpenStore(Options()));
  writer_->Start();
  constexpr std::size_t kReadings = 3000;
  std::vector<std::uint64_t> pushed;
  const PatientIndex p3 = *patients_.Intern("p-3");
  for (std::size_t i = 0; i < kReadings; ++i) {
    const PatientIndex who = i % 3 == 0 ? p1_ : i % 3 == 1 ? p2_ : p3;
    pushed.push_back(Push(who, static_cast<double>(60 + i % 40)));
    if (i % 500 == 499) wake_store_.Ring();
  }
  writer_->RequestStop();
  ASSERT_TRUE(WaitFor([&] { return stats_.readings_committed.load() == kReadings; }))
      << stats_.readings_committed.load() << " of " << kReadings << " committed";
  writer_->Join();

  std::vector<std::uint64_t> stored;
  std::map<std::string, std::uint64_t> last_of;
  for (const StoredRow& row : ReadRows(false)) {
    for (const std::string& id : IdsIn(row)) {
      const std::optional<std::uint64_t> n = ids_.Parse(id);
      ASSERT_TRUE(n) << id;
      EXPECT_LT(last_of[row.patient], *n) << "readings of " << row.patient << " out of order";
      last_of[row.patient] = *n;
      stored.push_back(*n);
    }
  }
  std::sort(stored.begin(), stored.end());
  EXPECT_EQ(stored, pushed);
}

TEST_F(OutboxWriterTest, AReadingADeviceMaySendAgainIsRemembered) {
  Reading r = NewReading(p1_, 120, Metric::kHeartRate);
  r.record_key = 0xBEEF;
  r.flags = kFlagStored | kFlagDeviceTime;
  ASSERT_TRUE(readings_.TryPush(r));
  Make(OpenStore(Options()));
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] { return stats_.readings_committed.load() == 1; }));
  Stop();
  auto keys = writer_->store()->LoadRecordKeys(0);
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].device, "monitor-1");
  EXPECT_EQ((*keys)[0].key, 0xBEEFu);
  EXPECT_EQ((*keys)[0].ts_ms, r.ts_ms);
}

TEST_F(OutboxWriterTest, AnAlertEventIsStoredAsAnEventRowAndReported) {
  AlertEvent e = NewAlert(0xA1, p1_);
  e.persist = "{\"engine\":\"state of A1\"}";
  PushAlert(e);
  const std::uint64_t r = Push(p1_, 86);
  const SimulatedClock gateway_clock(1'795'000'000'000);  // 2026-11-18; the event is from 2026-09
  OutboxWriterOptions o;
  o.clock = &gateway_clock;
  Make(OpenStore(Options()), o);
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] {
    return stats_.alerts_committed.load() == 1 && stats_.readings_committed.load() == 1;
  }));
  Stop();

  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(alerts_seen_, std::vector<std::uint64_t>{0xA1});
  }
  const std::vector<StoredRow> events = ReadRows(true);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, EventKind::kAlert);
  EXPECT_EQ(events[0].patient, "p-1");
  // Stored with the gateway's time, not the event's (a device's clock, here in 2026-09): the
  // age of an undelivered alert is how long the gateway has held it.
  EXPECT_EQ(events[0].rx_ms, gateway_clock.WallMs());
  const nlohmann::json body = nlohmann::json::parse(events[0].body);
  EXPECT_EQ(body.at("id"), ids_.Format(0xA1));
  EXPECT_EQ(body.at("patient"), "p-1");
  ASSERT_EQ(ReadRows(false).size(), 1u);
  EXPECT_EQ(ReadRows(false)[0].seq, r);
  // The open alarm's state is kept with its event, so a restart keeps the alarm.
  auto open = writer_->store()->LoadOpenAlarms();
  ASSERT_TRUE(open.ok()) << open.status().message();
  EXPECT_EQ(*open, std::vector<std::string>{e.persist});
  EXPECT_EQ(stats_.backlog_alerts.load(), 1u);
}

TEST_F(OutboxWriterTest, AnAlarmsStoredStateLeavesWhenItClearsAndEventsContinueAfterARestart) {
  AlertEvent raised = NewAlert(0xB1, p2_);
  raised.persist = "{\"engine\":\"state of B1\"}";
  PushAlert(raised);
  Make(OpenStore(Options()));
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] { return stats_.alerts_committed.load() == 1; }));
  Stop();
  ASSERT_EQ(writer_->store()->LoadOpenAlarms()->size(), 1u);
  writer_.reset();

  // The next start: the alarm clears.
  AlertEvent cleared = NewAlert(0xB2, p2_);
  cleared.alarm_id = 0xB1;
  cleared.state = AlertState::kCleared;
  PushAlert(cleared);
  Make(OpenStore(Options()));
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] { return stats_.alerts_committed.load() == 2; }));
  Stop();
  auto open = writer_->store()->LoadOpenAlarms();
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE(open->empty()) << "a cleared alarm is not restored";
  const std::vector<StoredRow> events = ReadRows(true);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].seq, 1u);
  EXPECT_EQ(events[1].seq, 2u) << "event rows continue after the ones already stored";
  EXPECT_EQ(nlohmann::json::parse(events[1].body).at("id"), ids_.Format(0xB2));
}

TEST_F(OutboxWriterTest, AnAcknowledgementIsRecordedInTheAuditTrail) {
  AlertEvent ack = NewAlert(0xC2, p1_);
  ack.alarm_id = 0xC1;
  ack.state = AlertState::kAcknowledged;
  ack.by_ack = true;
  ack.acked_by = "nurse-7";
  ack.persist = "{\"engine\":\"acknowledged\"}";
  PushAlert(ack);
  Make(OpenStore(Options()));
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] { return stats_.alerts_committed.load() == 2; }))
      << "the ack event and its audit event";
  Stop();

  std::string start;
  std::uint64_t head = 0;
  const std::vector<AuditEntry> audit = AllAudit(&start, &head);
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(head, 1u);
  EXPECT_EQ(audit[0].kind, "ack");
  EXPECT_EQ(audit[0].actor, "nurse-7");
  const nlohmann::json detail = nlohmann::json::parse(audit[0].detail);
  EXPECT_EQ(detail.at("alarm_id"), ids_.Format(0xC1));
  EXPECT_EQ(detail.at("patient"), "p-1");
  EXPECT_EQ(detail.at("priority"), "high");
  EXPECT_FALSE(detail.contains("value")) << "the audit trail holds no vital values";
  const std::vector<StoredRow> events = ReadRows(true);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, EventKind::kAlert);
  EXPECT_EQ(events[1].kind, EventKind::kAudit);
  EXPECT_EQ(events[1].body, AuditEventJson(audit[0], ids_));
  ASSERT_EQ(writer_->RecentAudit().size(), 1u);
  EXPECT_EQ(writer_->RecentAudit()[0].hash, audit[0].hash);
}

TEST_F(OutboxWriterTest, AStoreCommandIsCommittedAndItsAuditEntriesFormAVerifiableChain) {
  Make(OpenStore(Options()));
  writer_->Start();
  StoreCommand assign;
  assign.assignments.push_back(Assignment{"monitor-2", std::string("p-2"), "admin", 1000});
  assign.assignments.push_back(Assignment{"monitor-3", std::nullopt, "admin", 1000});
  assign.audit.push_back(Audit("assign", "{\"device\":\"monitor-2\",\"patient\":\"p-2\"}", 1000));
  assign.audit.push_back(Audit("assign", "{\"device\":\"monitor-3\",\"patient\":null}", 1001));
  const Status first = SubmitAndWait(std::move(assign));
  EXPECT_TRUE(first.ok()) << first.message();
  StoreCommand reload;
  reload.audit.push_back(Audit("reload", "{\"devices\":3}", 2000));
  const Status second = SubmitAndWait(std::move(reload));
  EXPECT_TRUE(second.ok()) << second.message();
  const std::vector<AuditEntry> recent = writer_->RecentAudit();
  Stop();

  auto assignments = writer_->store()->LoadAssignments();
  ASSERT_TRUE(assignments.ok()) << assignments.status().message();
  ASSERT_EQ(assignments->size(), 2u);
  EXPECT_EQ((*assignments)[0].device, "monitor-2");
  EXPECT_EQ((*assignments)[0].patient, std::optional<std::string>("p-2"));
  EXPECT_EQ((*assignments)[1].device, "monitor-3");
  EXPECT_EQ((*assignments)[1].patient, std::nullopt);

  std::string start;
  std::uint64_t head = 0;
  const std::vector<AuditEntry> audit = AllAudit(&start, &head);
  ASSERT_EQ(audit.size(), 3u);
  EXPECT_EQ(start, "");
  EXPECT_EQ(head, 3u);
  for (std::size_t i = 0; i < audit.size(); ++i) {
    EXPECT_EQ(audit[i].seq, i + 1);
    EXPECT_EQ(audit[i].hash, AuditHash(audit[i]));
    EXPECT_EQ(audit[i].prev, i == 0 ? "" : audit[i - 1].hash);
  }
  EXPECT_EQ(audit[2].kind, "reload");
  const AuditCheck intact = VerifyAuditChain(audit, start);
  EXPECT_TRUE(intact.ok) << intact.problem;
  ASSERT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent[0].seq, 3u) << "newest first";
  EXPECT_EQ(recent[2].seq, 1u);
  // Each entry is also an event row, delivered like alerts.
  const std::vector<StoredRow> events = ReadRows(true);
  ASSERT_EQ(events.size(), 3u);
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kind, EventKind::kAudit);
    EXPECT_EQ(events[i].body, AuditEventJson(audit[i], ids_));
  }

  // An edited detail is found, even when the editor recomputed that entry's hash.
  std::vector<AuditEntry> edited = audit;
  edited[1].detail = "{\"device\":\"monitor-3\",\"patient\":\"p-9\"}";
  AuditCheck check = VerifyAuditChain(edited, start);
  EXPECT_FALSE(check.ok);
  EXPECT_NE(check.problem.find("entry 2"), std::string::npos) << check.problem;
  edited[1].hash = AuditHash(edited[1]);
  check = VerifyAuditChain(edited, start);
  EXPECT_FALSE(check.ok);
  EXPECT_NE(check.problem.find("entry 3"), std::string::npos) << check.problem;
  // So is a deleted one.
  std::vector<AuditEntry> deleted = audit;
  deleted.erase(deleted.begin() + 1);
  check = VerifyAuditChain(deleted, start);
  EXPECT_FALSE(check.ok);
  EXPECT_NE(check.problem.find("missing"), std::string::npos) << check.problem;
}

TEST_F(OutboxWriterTest, TheAuditChainContinuesAcrossARestart) {
  Make(OpenStore(Options()));
  writer_->Start();
  StoreCommand first;
  first.audit = {Audit("login", "{}", 1000), Audit("reload", "{}", 2000)};
  ASSERT_TRUE(SubmitAndWait(std::move(first)).ok());
  Stop();
  writer_.reset();

  Make(OpenStore(Options()));
  ASSERT_EQ(writer_->RecentAudit().size(), 2u) << "the latest entries are known from the start";
  writer_->Start();
  StoreCommand second;
  second.audit = {Audit("certificate", "{\"days\":10}", 3000)};
  ASSERT_TRUE(SubmitAndWait(std::move(second)).ok());
  Stop();

  std::string start;
  std::uint64_t head = 0;
  const std::vector<AuditEntry> audit = AllAudit(&start, &head);
  ASSERT_EQ(audit.size(), 3u);
  EXPECT_EQ(audit[2].seq, 3u);
  EXPECT_EQ(audit[2].prev, audit[1].hash);
  EXPECT_EQ(head, 3u);
  const AuditCheck check = VerifyAuditChain(audit, start);
  EXPECT_TRUE(check.ok) << check.problem;
}

TEST_F(OutboxWriterTest, APrunedAuditTrailStillVerifiesFromItsRecordedStart) {
  Make(OpenStore(Options()));
  writer_->Start();
  StoreCommand many;
  for (std::int64_t i = 1; i <= 60; ++i) many.audit.push_back(Audit("login", "{}", i * 1000));
  ASSERT_TRUE(SubmitAndWait(std::move(many)).ok());
  StoreCommand prune;
  prune.prune_audit_before_ms = 30'000;
  ASSERT_TRUE(SubmitAndWait(std::move(prune)).ok());
  Stop();

  std::string start;
  std::uint64_t head = 0;
  const std::vector<AuditEntry> audit = AllAudit(&start, &head);
  // Older than 30 s are entries 1..29, but the newest 50 are always kept.
  ASSERT_EQ(audit.size(), 50u);
  EXPECT_EQ(audit.front().seq, 11u);
  EXPECT_EQ(head, 60u);
  EXPECT_FALSE(start.empty());
  EXPECT_EQ(start, audit.front().prev);
  const AuditCheck check = VerifyAuditChain(audit, start);
  EXPECT_TRUE(check.ok) << check.problem;
  EXPECT_FALSE(VerifyAuditChain(audit, "").ok) << "the chain starts at the pruned entry's hash";
}

TEST_F(OutboxWriterTest, WhatTheDestinationsAreDoneWithIsApplied) {
  StoreOptions so = Options();
  so.destinations = {"mqtt", "ehr"};
  std::unique_ptr<OutboxStore> store = OpenStore(so);
  const std::vector<int> bits = store->destination_bits();
  ASSERT_EQ(bits.size(), 2u);
  const std::uint64_t a = Push(p1_);
  const std::uint64_t b = Push(p2_);
  PushAlert(NewAlert(0xD1, p1_));
  Make(std::move(store));
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] {
    return stats_.readings_committed.load() == 2 && stats_.alerts_committed.load() == 1;
  }));
  const std::uint64_t event_seq = ReadRows(true).at(0).seq;

  // Both destinations have p-1's row and the alert; only the broker has p-2's row. The EHR
  // refused the alert for good.
  DeadLetter refused;
  refused.destination = "ehr";
  refused.kind = "alert";
  refused.patient = "p-1";
  refused.item_id = ids_.Format(0xD1);
  refused.reason = "HTTP 422";
  refused.body = "{}";
  delivered_.Push(bits[0], {a, b}, {event_seq});
  delivered_.Push(bits[1], {a}, {event_seq}, {refused});
  wake_store_.Ring();
  ASSERT_TRUE(WaitFor([&] {
    return stats_.backlog_readings.load() == 1 && stats_.backlog_alerts.load() == 0;
  })) << "backlog " << stats_.backlog_readings.load() << " readings, "
      << stats_.backlog_alerts.load() << " alerts";
  Stop();

  const std::vector<StoredRow> left = ReadRows(false, bits[1]);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].seq, b) << "only what a destination still owes stays";
  EXPECT_TRUE(ReadRows(true, bits[1]).empty());
  auto reader = OutboxReader::Open(path_);
  ASSERT_TRUE(reader.ok());
  auto dead = (*reader)->CountDeadLetters("ehr");
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(*dead, 1u);
}

TEST_F(OutboxWriterTest, ADrainedBacklogIsDeletedInStepsOfAcksPerCommit) {
  // 1,000 rows (one reading each of 1,000 patients) delivered at once: with 100 deletions per
  // transaction they take at least 10 commits. (That an alert goes ahead of the next step is
  // Fill's rule for new alerts, shown by bench/load.py's drain phase, not here.)
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 1000; ++i) {
    auto patient = patients_.Intern("drain-" + std::to_string(i));
    ASSERT_TRUE(patient.ok());
    seqs.push_back(Push(*patient));
  }
  OutboxWriterOptions o;
  o.acks_per_commit = 100;
  Make(OpenStore(Options()), o);
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] { return stats_.readings_committed.load() == 1000; }));
  ASSERT_EQ(ReadRows(false).size(), 1000u);
  const std::uint64_t commits_before = stats_.store_commits.load();

  const int bit = writer_->store()->destination_bits().at(0);
  delivered_.Push(bit, seqs, {});
  wake_store_.Ring();
  ASSERT_TRUE(WaitFor([&] { return stats_.backlog_readings.load() == 0; }))
      << stats_.backlog_readings.load() << " readings left";
  EXPECT_GE(stats_.store_commits.load() - commits_before, 10u)
      << "deleting 1,000 rows took fewer than 10 transactions of at most 100 deletions";
  Stop();
  EXPECT_TRUE(ReadRows(false).empty());
}

TEST_F(OutboxWriterTest, WithPayloadEncryptionBodiesAreStoredSealed) {
  AeadKey key{};
  key.fill(0x42);
  OutboxWriterOptions o;
  o.at_rest_key = key;
  const std::uint64_t id = Push(p1_, 131);
  PushAlert(NewAlert(0xE1, p1_));
  Make(OpenStore(Options()), o);
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] {
    return stats_.readings_committed.load() == 1 && stats_.alerts_committed.load() == 1;
  }));
  Stop();

  const std::vector<StoredRow> rows = ReadRows(false);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].body.find("131"), std::string::npos) << "no vital value in clear";
  EXPECT_EQ(rows[0].body.find("monitor-1"), std::string::npos);
  auto sealed = AeadUnpack(rows[0].body);
  ASSERT_TRUE(sealed.ok()) << sealed.status().message();
  auto plain = AeadOpen(key, BodyAad(false, RowFormat::kCompact, rows[0].seq), *sealed);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(IdsIn(*plain, rows[0].count), std::vector<std::string>{ids_.Format(id)});
  EXPECT_FALSE(AeadOpen(key, BodyAad(true, RowFormat::kCompact, rows[0].seq), *sealed).ok())
      << "a body is bound to its table";

  const std::vector<StoredRow> events = ReadRows(true);
  ASSERT_EQ(events.size(), 1u);
  auto sealed_event = AeadUnpack(events[0].body);
  ASSERT_TRUE(sealed_event.ok());
  auto event = AeadOpen(key, BodyAad(true, RowFormat::kSingle, events[0].seq), *sealed_event);
  ASSERT_TRUE(event.ok()) << event.status().message();
  EXPECT_EQ(nlohmann::json::parse(*event).at("id"), ids_.Format(0xE1));
}

TEST_F(OutboxWriterTest, WhenTheOutboxIsFullTheOldestReadingsAreEvictedAndAlertsKept) {
  StoreOptions so = Options();
  so.max_bytes = 1ull << 20;  // the least an outbox works in
  // The alerts are the oldest rows: eviction must pass them by.
  for (std::uint64_t i = 1; i <= 3; ++i) PushAlert(NewAlert(0xF0 + i, p1_));
  // Compact rows take about 10 bytes a reading: more than the ring holds at once fill 1 MB.
  constexpr std::size_t kWaves = 6;
  constexpr std::size_t kPerWave = 25000;
  constexpr std::size_t kReadings = kWaves * kPerWave;
  std::vector<std::uint64_t> pushed;
  Make(OpenStore(so));
  writer_->Start();
  for (std::size_t wave = 1; wave <= kWaves; ++wave) {
    for (std::size_t i = 0; i < kPerWave; ++i) pushed.push_back(Push(i % 2 == 0 ? p1_ : p2_));
    wake_store_.Ring();
    ASSERT_TRUE(WaitFor([&] { return stats_.readings_committed.load() == wave * kPerWave; },
                        std::chrono::seconds(60)))
        << stats_.readings_committed.load() << " of " << wave * kPerWave << " committed";
  }
  Stop();

  const std::uint64_t evicted = stats_.readings_evicted.load();
  EXPECT_GT(evicted, 0u);
  EXPECT_EQ(Dropped(), evicted) << "every eviction is reported";
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(dropped_patients_, (std::set<std::string>{"p-1", "p-2"}));
  }
  OutboxStore& store = *writer_->store();
  EXPECT_EQ(store.alert_rows(), 3u) << "alerts are never evicted";
  EXPECT_EQ(ReadRows(true).size(), 3u);
  EXPECT_EQ(store.reading_rows() + evicted, kReadings);
  // What is left is the newest: the last reading is there, the first is gone.
  const std::vector<StoredRow> rows = ReadRows(false);
  ASSERT_FALSE(rows.empty());
  EXPECT_GT(rows.front().seq, pushed.front());
  std::set<std::string> kept;
  for (const StoredRow& row : rows) {
    for (const std::string& id : IdsIn(row)) kept.insert(id);
  }
  EXPECT_EQ(kept.count(ids_.Format(pushed.back())), 1u);
  EXPECT_EQ(kept.count(ids_.Format(pushed.front())), 0u);
  EXPECT_TRUE(stats_.store_healthy.load()) << "a full outbox that could make room is healthy";
}

TEST_F(OutboxWriterTest, WithoutAnOutboxAlertsAndReadingsAreForwardedFromMemory) {
  OutboxWriterOptions o;
  o.reopen_every = std::chrono::hours(1);
  PushAlert(NewAlert(0x51, p1_));
  const std::uint64_t a = Push(p1_);
  const std::uint64_t b = Push(p1_);
  Make(nullptr, o);
  EXPECT_FALSE(stats_.store_healthy.load());
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] {
    TakeVolatile();
    return volatile_events_.size() == 1 && VolatileReadings() == 2;
  })) << volatile_events_.size() << " events, " << VolatileReadings() << " readings";
  EXPECT_TRUE(Rang(wake_primary_)) << "the primary destination is woken";
  EXPECT_EQ(volatile_events_[0].kind, EventKind::kAlert);
  EXPECT_EQ(nlohmann::json::parse(volatile_events_[0].body).at("id"), ids_.Format(0x51));
  ASSERT_EQ(volatile_batches_.size(), 1u);
  EXPECT_EQ(volatile_batches_[0].patient, "p-1");
  EXPECT_EQ(IdsIn(volatile_batches_[0]),
            (std::vector<std::string>{ids_.Format(a), ids_.Format(b)}));
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(alerts_seen_, std::vector<std::uint64_t>{0x51});
  }
  // Work that needs the outbox is answered, not left waiting.
  StoreCommand command;
  command.assignments.push_back(Assignment{"monitor-1", std::string("p-2"), "admin", 1});
  const Status s = SubmitAndWait(std::move(command));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
  Stop();
  EXPECT_EQ(writer_->store(), nullptr);
  EXPECT_EQ(stats_.readings_committed.load(), 0u);
}

TEST_F(OutboxWriterTest, ReadingsHeldInMemoryAreBoundedAndWhatIsDroppedIsCounted) {
  OutboxWriterOptions o;
  o.reopen_every = std::chrono::hours(1);
  Make(nullptr, o, /*volatile_max=*/5);
  writer_->Start();
  for (int i = 0; i < 4; ++i) Push(p1_);
  wake_store_.Ring();
  ASSERT_TRUE(WaitFor([&] { return volatile_->HasWork(); }));
  for (int i = 0; i < 4; ++i) Push(p2_);
  wake_store_.Ring();
  ASSERT_TRUE(WaitFor([&] { return Dropped() > 0; }));
  ASSERT_TRUE(WaitFor([&] { return readings_.SizeApprox() == 0; }));
  Stop();
  TakeVolatile();
  EXPECT_LE(VolatileReadings(), 5u);
  EXPECT_EQ(VolatileReadings() + Dropped(), 8u) << "every reading is either held or counted";
  EXPECT_EQ(stats_.readings_evicted.load(), Dropped());
  for (const StoredRow& row : volatile_batches_) {
    EXPECT_EQ(row.patient, "p-2") << "the oldest readings are the ones dropped";
  }
  // The report names the patients whose readings were dropped, not those of the batch handed on.
  std::lock_guard lock(mu_);
  EXPECT_EQ(dropped_patients_, std::set<std::string>{"p-1"});
}

TEST_F(OutboxWriterTest, AnOutboxThatCanBeOpenedLaterIsUsedFromThen) {
  OutboxWriterOptions o;
  o.reopen = Options();
  o.reopen_every = milliseconds(20);
  Make(nullptr, o);
  writer_->Start();
  ASSERT_TRUE(WaitFor([&] { return opened_.load() && HealthReported(true); }));
  EXPECT_TRUE(stats_.store_healthy.load());
  const std::uint64_t id = Push(p2_);
  wake_store_.Ring();
  ASSERT_TRUE(WaitFor([&] { return stats_.readings_committed.load() == 1; }));
  Stop();
  ASSERT_NE(writer_->store(), nullptr);
  const std::vector<StoredRow> rows = ReadRows(false);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].seq, id);
  TakeVolatile();
  EXPECT_TRUE(volatile_batches_.empty()) << "durable again: nothing goes from memory";
}

TEST_F(OutboxWriterTest, WhenCommitsFailAlertsGoOutFromMemoryAndAreStoredOnceCommitsWork) {
  RegisterFailingVfs();
  StoreOptions so = Options();
  so.vfs = kFailingVfsName;
  OutboxWriterOptions o;
  o.volatile_after = std::chrono::hours(1);  // readings wait in memory for the outbox
  Make(OpenStore(so), o);
  writer_->Start();
  g_fail_writes.store(true);
  PushAlert(NewAlert(0x61, p2_));
  const std::uint64_t a = Push(p2_);
  const std::uint64_t b = Push(p2_);
  wake_store_.Ring();
  ASSERT_TRUE(WaitFor([&] {
    TakeVolatile();
    return !volatile_events_.empty() && HealthReported(false);
  }));
  EXPECT_FALSE(stats_.store_healthy.load());
  EXPECT_GT(stats_.store_errors.load(), 0u);
  {
    std::lock_guard lock(mu_);
    EXPECT_FALSE(health_.front().second.empty()) << "unhealthy says why";
  }
  ASSERT_EQ(volatile_events_.size(), 1u) << "handed on once, not at every retry";
  EXPECT_EQ(nlohmann::json::parse(volatile_events_[0].body).at("id"), ids_.Format(0x61));
  EXPECT_TRUE(volatile_batches_.empty()) << "readings wait for the outbox first";

  g_fail_writes.store(false);
  ASSERT_TRUE(WaitFor([&] {
    return HealthReported(true) && stats_.readings_committed.load() == 2 &&
           stats_.alerts_committed.load() == 1;
  }));
  EXPECT_TRUE(stats_.store_healthy.load());
  Stop();
  const std::vector<StoredRow> events = ReadRows(true);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].body, volatile_events_[0].body) << "stored with the same id";
  const std::vector<StoredRow> rows = ReadRows(false);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(IdsIn(rows[0]), (std::vector<std::string>{ids_.Format(a), ids_.Format(b)}));
  TakeVolatile();
  EXPECT_EQ(VolatileReadings(), 0u);
}

TEST_F(OutboxWriterTest, ReadingsGoOutFromMemoryOnceCommitsHaveFailedForVolatileAfter) {
  RegisterFailingVfs();
  StoreOptions so = Options();
  so.vfs = kFailingVfsName;
  OutboxWriterOptions o;
  o.volatile_after = milliseconds(0);
  Make(OpenStore(so), o);
  writer_->Start();
  g_fail_writes.store(true);
  const std::uint64_t a = Push(p1_);
  const std::uint64_t b = Push(p1_);
  wake_store_.Ring();
  ASSERT_TRUE(WaitFor([&] {
    TakeVolatile();
    return VolatileReadings() == 2;
  }));
  EXPECT_TRUE(HealthReported(false));
  ASSERT_EQ(volatile_batches_.size(), 1u);
  EXPECT_EQ(IdsIn(volatile_batches_[0]),
            (std::vector<std::string>{ids_.Format(a), ids_.Format(b)}));

  g_fail_writes.store(false);
  const std::uint64_t c = Push(p1_);
  wake_store_.Ring();
  ASSERT_TRUE(WaitFor([&] { return stats_.readings_committed.load() == 1; }));
  EXPECT_TRUE(HealthReported(true));
  Stop();
  const std::vector<StoredRow> rows = ReadRows(false);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].seq, c) << "durable again for what comes next";
}

}  // namespace
}  // namespace vg
