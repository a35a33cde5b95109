#include "vitalgate/store/outbox.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <spdlog/spdlog.h>

#include "sqlite.h"

namespace vg {
namespace {

// Each step takes a file from schema `to - 1` to `to`, inside one transaction.
struct Migration {
  int to;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings(
  seq INTEGER PRIMARY KEY, patient TEXT NOT NULL, rx_ms INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alerts(
  seq INTEGER PRIMARY KEY, patient TEXT NOT NULL, rx_ms INTEGER NOT NULL, body BLOB NOT NULL);
)sql"},
    // Schema 2: readings in per-patient batches, acknowledgement bits per destination, and the
    // tables of dead letters, open alarms, assignments, device records and the audit trail.
    // Rows of schema 1 become batches of one reading in their old layout (format 0), so a
    // sealed body still opens with the associated data it was sealed with.
    {2, R"sql(
CREATE TABLE batches(
  seq INTEGER PRIMARY KEY, patient TEXT NOT NULL, rx_ms INTEGER NOT NULL,
  count INTEGER NOT NULL, format INTEGER NOT NULL, acked INTEGER NOT NULL DEFAULT 0,
  body BLOB NOT NULL);
INSERT INTO batches(seq, patient, rx_ms, count, format, body)
  SELECT seq, patient, rx_ms, 1, 0, body FROM readings;
DROP TABLE readings;
ALTER TABLE alerts ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN format INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN acked INTEGER NOT NULL DEFAULT 0;
CREATE TABLE destinations(name TEXT PRIMARY KEY, bit INTEGER NOT NULL UNIQUE) WITHOUT ROWID;
CREATE TABLE dead_letters(
  id INTEGER PRIMARY KEY, destination TEXT NOT NULL, kind TEXT NOT NULL, patient TEXT NOT NULL,
  item TEXT NOT NULL, reason TEXT NOT NULL, ts_ms INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE open_alarms(alarm TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE assignments(
  device TEXT PRIMARY KEY, patient TEXT, by TEXT NOT NULL, ts_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE records(
  device TEXT NOT NULL, key INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
  PRIMARY KEY(device, key)) WITHOUT ROWID;
CREATE TABLE audit_log(
  seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
  detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
)sql"},
    // Schema 3: a covering index for each destination's backlog and oldest undelivered row, so
    // that finding them reads small index pages instead of every batch row with its body (a
    // full scan of a large backlog each second otherwise).
    {3, R"sql(
CREATE INDEX batches_backlog ON batches(acked, seq, count, rx_ms);
)sql"},
    // Schema 4: reading rows may be written in the compact form (format 2). The tables do not
    // change; the version keeps a release that cannot read that form from opening the file.
    {4, R"sql(
SELECT 1;
)sql"},
};
static_assert(std::size(kMigrations) == kOutboxSchemaVersion);

constexpr int kMaxDestinations = 62;  // bits of `acked` (a signed 64-bit integer)

std::string RandomInstance() {
  unsigned char bytes[4] = {};
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
    const auto t = static_cast<unsigned long>(std::time(nullptr)) ^ static_cast<unsigned long>(::getpid());
    std::memcpy(bytes, &t, sizeof bytes);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char b : bytes) {
    s += kHex[b >> 4];
    s += kHex[b & 0xF];
  }
  return s;
}

Status EnsurePrivateFile(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    const std::string dir = path.substr(0, slash);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return Unavailable("storage.path: cannot create directory " + dir + ": " +
                           std::strerror(errno));
      }
    }
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("storage.path: cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) ::fchmod(fd, 0600);
  ::close(fd);
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string side = path + suffix;
    if (::stat(side.c_str(), &st) == 0 && (st.st_mode & 077) != 0) ::chmod(side.c_str(), 0600);
  }
  return Status::Ok();
}

std::string MoveAside(const std::string& path) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  const std::string target = path + ".damaged-" + stamp;
  ::rename(path.c_str(), target.c_str());
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string side = path + suffix;
    if (::access(side.c_str(), F_OK) == 0) ::rename(side.c_str(), (target + suffix).c_str());
  }
  return target;
}

std::string ReservePath(const std::string& path) { return path + ".reserve"; }

// Runs a statement that returns no rows; resets it.
Status Run(sqlite3* db, sqlite::Stmt& st, const char* what) {
  const int rc = st.Step();
  st.Reset();
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::ToStatus(db, rc, what);
}

}  // namespace

std::string BodyAad(bool event, RowFormat format, std::uint64_t seq) {
  std::string aad = event                           ? "vitalgate-outbox:alert:"
                    : format == RowFormat::kBatch   ? "vitalgate-outbox:batch:"
                    : format == RowFormat::kCompact ? "vitalgate-outbox:compact:"
                                                    : "vitalgate-outbox:reading:";
  aad += std::to_string(seq);
  return aad;
}

std::vector<std::string_view> SplitBatchBody(std::string_view body) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start < body.size()) {
    std::size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    if (end > start) out.push_back(body.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

struct OutboxStore::Impl {
  sqlite::Db db;
  sqlite::Stmt begin, commit, rollback;
  sqlite::Stmt insert_batch, insert_event;
  sqlite::Stmt delete_batch, delete_event;
  sqlite::Stmt ack_batch, ack_event;
  sqlite::Stmt insert_dead, upsert_alarm, delete_alarm, upsert_assignment, insert_record,
      insert_audit;
};

Result<std::unique_ptr<OutboxStore>> OutboxStore::Open(const StoreOptions& options,
                                                       OpenReport* report) {
  std::unique_ptr<OutboxStore> store(new OutboxStore());
  OpenReport local;
  OpenReport* rep = report != nullptr ? report : &local;
  Status s = store->Init(options, rep);
  if (s.code() == StatusCode::kDataLoss) {
    // A damaged file must not stop the gateway (a crash loop would lose every new reading):
    // keep it for inspection and start a fresh outbox.
    store->impl_.reset();
    rep->damage = s.message();
    rep->moved_aside = MoveAside(options.path);
    s = store->Init(options, rep);
  }
  if (!s.ok()) return s;
  return store;
}

OutboxStore::~OutboxStore() = default;

Status OutboxStore::Migrate(OpenReport* report) {
  sqlite::Db& db = impl_->db;
  int version = 0;
  auto has_meta = db.QueryInt("SELECT count(*) FROM sqlite_master WHERE name='meta'");
  if (!has_meta.ok()) return has_meta.status();
  if (*has_meta > 0) {
    auto v = db.QueryText("SELECT value FROM meta WHERE key='schema'");
    if (v.ok()) {
      char* end = nullptr;
      const long parsed = std::strtol(v->c_str(), &end, 10);
      if (end == v->c_str() || *end != '\0' || parsed < 1) {
        return DataLoss("storage: " + path_ + " has an unreadable schema version \"" + *v + "\"");
      }
      version = static_cast<int>(parsed);
    }
  }
  if (version > kOutboxSchemaVersion) {
    return FailedPrecondition("storage: " + path_ + " was written by a newer vitalgate (schema " +
                              std::to_string(version) + ", this release reads up to " +
                              std::to_string(kOutboxSchemaVersion) +
                              "); install that release again or move the file aside");
  }
  const bool fresh = version == 0;
  if (!fresh && version < kOutboxSchemaVersion) report->migrated_from = version;
  for (const Migration& m : kMigrations) {
    if (m.to <= version) continue;
    VG_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    Status s = db.Exec(m.sql);
    if (s.ok()) {
      s = db.Exec("INSERT OR REPLACE INTO meta(key, value) VALUES('schema', '" +
                  std::to_string(m.to) + "')");
    }
    if (s.ok()) s = db.Exec("COMMIT");
    if (!s.ok()) {
      (void)db.Exec("ROLLBACK");
      return s.WithContext("storage: migrating " + path_ + " to schema " + std::to_string(m.to));
    }
  }
  return Status::Ok();
}

Status OutboxStore::AssignDestinationBits(const std::vector<std::string>& configured) {
  std::vector<std::string> names = configured;
  if (names.empty()) names.push_back("mqtt");
  if (names.size() > static_cast<std::size_t>(kMaxDestinations)) {
    return InvalidArgument("destinations: at most " + std::to_string(kMaxDestinations));
  }
  sqlite3* db = impl_->db.get();
  std::vector<std::pair<std::string, int>> known;
  {
    sqlite::Stmt st;
    VG_RETURN_IF_ERROR(st.Prepare(db, "SELECT name, bit FROM destinations"));
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) known.emplace_back(std::string(st.Text(0)), static_cast<int>(st.Int(1)));
    if (rc != SQLITE_DONE) return sqlite::ToStatus(db, rc, "storage: destinations");
  }
  std::int64_t used = 0;
  bits_.assign(names.size(), -1);
  for (std::size_t i = 0; i < names.size(); ++i) {
    for (const auto& [name, bit] : known) {
      if (name == names[i]) {
        bits_[i] = bit;
        used |= std::int64_t{1} << bit;
      }
    }
  }
  // Destinations that are no longer configured: forget their acknowledgements, so their bits
  // can be given to new ones, and delete rows every configured destination has now taken.
  std::int64_t stale = 0;
  for (const auto& [name, bit] : known) {
    if (std::find(names.begin(), names.end(), name) == names.end()) stale |= std::int64_t{1} << bit;
  }
  VG_RETURN_IF_ERROR(impl_->db.Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> Status {
    if (stale != 0) {
      const std::string keep = std::to_string(~stale);
      VG_RETURN_IF_ERROR(impl_->db.Exec("DELETE FROM destinations WHERE (1 << bit) & " +
                                        std::to_string(stale) + " != 0"));
      VG_RETURN_IF_ERROR(impl_->db.Exec("UPDATE batches SET acked = acked & " + keep +
                                        " WHERE acked & " + std::to_string(stale) + " != 0"));
      VG_RETURN_IF_ERROR(impl_->db.Exec("UPDATE alerts SET acked = acked & " + keep +
                                        " WHERE acked & " + std::to_string(stale) + " != 0"));
    }
    sqlite::Stmt put;
    VG_RETURN_IF_ERROR(put.Prepare(db, "INSERT INTO destinations(name, bit) VALUES(?, ?)"));
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (bits_[i] >= 0) continue;
      int bit = 0;
      while ((used >> bit) & 1) ++bit;
      bits_[i] = bit;
      used |= std::int64_t{1} << bit;
      put.BindText(1, names[i]);
      put.BindInt(2, bit);
      VG_RETURN_IF_ERROR(Run(db, put, "storage: destinations"));
    }
    full_mask_ = 0;
    for (int bit : bits_) full_mask_ |= std::int64_t{1} << bit;
    const std::string full = std::to_string(full_mask_);
    VG_RETURN_IF_ERROR(impl_->db.Exec("DELETE FROM batches WHERE acked & " + full + " = " + full));
    VG_RETURN_IF_ERROR(impl_->db.Exec("DELETE FROM alerts WHERE acked & " + full + " = " + full));
    return impl_->db.Exec("COMMIT");
  }();
  if (!body.ok()) (void)impl_->db.Exec("ROLLBACK");
  return body;
}

Status OutboxStore::Init(const StoreOptions& options, OpenReport* report) {
  path_ = options.path;
  impl_ = std::make_unique<Impl>();
  struct stat st {};
  report->created = ::stat(path_.c_str(), &st) != 0 || st.st_size == 0;
  VG_RETURN_IF_ERROR(EnsurePrivateFile(path_));
  sqlite::Db& db = impl_->db;
  VG_RETURN_IF_ERROR(db.Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.vfs));
  sqlite3_busy_timeout(db.get(), 5000);
  auto mode = db.QueryText("PRAGMA journal_mode=WAL");
  if (!mode.ok()) return mode.status();
  if (*mode != "wal") return Unavailable("storage: cannot switch " + path_ + " to WAL mode");
  VG_RETURN_IF_ERROR(db.Exec(options.synchronous_full ? "PRAGMA synchronous=FULL"
                                                      : "PRAGMA synchronous=NORMAL"));
  VG_RETURN_IF_ERROR(db.Exec("PRAGMA secure_delete=FAST"));
  auto check = db.QueryText("PRAGMA quick_check");
  if (!check.ok()) return check.status();
  if (*check != "ok") return DataLoss("storage: integrity check of " + path_ + " failed");
  VG_RETURN_IF_ERROR(Migrate(report));
  auto instance = db.QueryText("SELECT value FROM meta WHERE key='instance'");
  instance_ = instance.ok() ? *instance : RandomInstance();
  auto gen = db.QueryText("SELECT value FROM meta WHERE key='generation'");
  generation_ = gen.ok() ? static_cast<std::uint32_t>(std::strtoul(gen->c_str(), nullptr, 10)) + 1 : 1;
  if (generation_ >= (1u << 24)) generation_ = 1;  // 16M restarts; instance keeps ids unique
  {
    sqlite::Stmt put;
    VG_RETURN_IF_ERROR(put.Prepare(db.get(), "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)"));
    for (const auto& [k, v] : {std::pair<std::string, std::string>{"instance", instance_},
                               {"generation", std::to_string(generation_)}}) {
      put.BindText(1, k);
      put.BindText(2, v);
      VG_RETURN_IF_ERROR(Run(db.get(), put, "storage: write meta"));
    }
  }
  VG_RETURN_IF_ERROR(AssignDestinationBits(options.destinations));
  // storage.max_bytes bounds the database file, its WAL and the reserve together: the WAL is
  // truncated back to `wal_allowance` after each checkpoint and the database may use the rest.
  auto page_size = db.QueryInt("PRAGMA page_size");
  if (!page_size.ok()) return page_size.status();
  std::uint64_t fs_total = 0, fs_room = 0;
  const std::size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) == 0) {
    fs_total = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
    fs_room = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    for (const std::string& f : {path_, path_ + "-wal", ReservePath(path_)}) {
      struct stat held {};
      if (::stat(f.c_str(), &held) == 0) fs_room += static_cast<std::uint64_t>(held.st_size);
    }
  }
  const OutboxLimits limits = PlanOutboxLimits(options.max_bytes, options.reserve_bytes,
                                               static_cast<std::uint64_t>(*page_size), fs_total, fs_room);
  if (limits.room < options.max_bytes) {
    spdlog::warn("storage: {} has room for {} KiB; until the next start the outbox keeps within "
                 "{} KiB (storage.max_bytes {} KiB)",
                 dir, fs_room / 1024, limits.room / 1024, options.max_bytes / 1024);
  }
  reserve_bytes_ = limits.reserve_bytes;
  max_batch_rows_ = limits.max_batch_rows;
  const std::uint64_t wal_allowance = limits.wal_allowance;
  const std::uint64_t pages = limits.max_pages;
  const std::uint64_t checkpoint_pages = limits.checkpoint_pages;
  VG_RETURN_IF_ERROR(db.Exec("PRAGMA journal_size_limit=" + std::to_string(wal_allowance)));
  VG_RETURN_IF_ERROR(db.Exec("PRAGMA wal_autocheckpoint=" + std::to_string(checkpoint_pages)));
  VG_RETURN_IF_ERROR(db.Exec("PRAGMA max_page_count=" + std::to_string(pages)));
  VG_RETURN_IF_ERROR(db.Exec("PRAGMA cache_size=-1024"));
  VG_RETURN_IF_ERROR(Count());
  RestoreReserve();
  return Prepare();
}

Status OutboxStore::Count() {
  sqlite::Db& db = impl_->db;
  auto nr = db.QueryInt("SELECT coalesce(sum(count), 0) FROM batches");
  if (!nr.ok()) return nr.status();
  auto na = db.QueryInt("SELECT count(*) FROM alerts");
  if (!na.ok()) return na.status();
  auto bytes = db.QueryInt(
      "SELECT coalesce((SELECT sum(length(body)) FROM batches), 0) + "
      "coalesce((SELECT sum(length(body)) FROM alerts), 0)");
  if (!bytes.ok()) return bytes.status();
  auto max_seq = db.QueryInt("SELECT coalesce(max(seq), 0) FROM alerts");
  if (!max_seq.ok()) return max_seq.status();
  max_event_seq_ = static_cast<std::uint64_t>(*max_seq);
  readings_ = static_cast<std::uint64_t>(*nr);
  events_ = static_cast<std::uint64_t>(*na);
  backlog_bytes_ = static_cast<std::uint64_t>(*bytes);
  return Status::Ok();
}

Status OutboxStore::Prepare() {
  sqlite3* db = impl_->db.get();
  VG_RETURN_IF_ERROR(impl_->begin.Prepare(db, "BEGIN IMMEDIATE"));
  VG_RETURN_IF_ERROR(impl_->commit.Prepare(db, "COMMIT"));
  VG_RETURN_IF_ERROR(impl_->rollback.Prepare(db, "ROLLBACK"));
  VG_RETURN_IF_ERROR(impl_->insert_batch.Prepare(
      db, "INSERT OR IGNORE INTO batches(seq, patient, rx_ms, count, format, body) "
          "VALUES(?, ?, ?, ?, ?, ?)"));
  VG_RETURN_IF_ERROR(impl_->insert_event.Prepare(
      db, "INSERT OR IGNORE INTO alerts(seq, patient, rx_ms, kind, format, body) "
          "VALUES(?, ?, ?, ?, 0, ?)"));
  VG_RETURN_IF_ERROR(impl_->delete_batch.Prepare(
      db, "DELETE FROM batches WHERE seq = ? RETURNING count, length(body)"));
  VG_RETURN_IF_ERROR(impl_->delete_event.Prepare(
      db, "DELETE FROM alerts WHERE seq = ? RETURNING 1, length(body)"));
  VG_RETURN_IF_ERROR(impl_->ack_batch.Prepare(
      db, "UPDATE batches SET acked = acked | ? WHERE seq = ? RETURNING acked"));
  VG_RETURN_IF_ERROR(impl_->ack_event.Prepare(
      db, "UPDATE alerts SET acked = acked | ? WHERE seq = ? RETURNING acked"));
  VG_RETURN_IF_ERROR(impl_->insert_dead.Prepare(
      db, "INSERT INTO dead_letters(destination, kind, patient, item, reason, ts_ms, body) "
          "VALUES(?, ?, ?, ?, ?, ?, ?)"));
  VG_RETURN_IF_ERROR(impl_->upsert_alarm.Prepare(
      db, "INSERT OR REPLACE INTO open_alarms(alarm, state) VALUES(?, ?)"));
  VG_RETURN_IF_ERROR(impl_->delete_alarm.Prepare(db, "DELETE FROM open_alarms WHERE alarm = ?"));
  VG_RETURN_IF_ERROR(impl_->upsert_assignment.Prepare(
      db, "INSERT OR REPLACE INTO assignments(device, patient, by, ts_ms) VALUES(?, ?, ?, ?)"));
  VG_RETURN_IF_ERROR(impl_->insert_record.Prepare(
      db, "INSERT OR REPLACE INTO records(device, key, ts_ms) VALUES(?, ?, ?)"));
  VG_RETURN_IF_ERROR(impl_->insert_audit.Prepare(
      db, "INSERT INTO audit_log(seq, ts_ms, kind, actor, detail, prev, hash) "
          "VALUES(?, ?, ?, ?, ?, ?, ?)"));
  return Status::Ok();
}

Status OutboxStore::Commit(const WriteBatch& batch) {
  if (batch.empty()) return Status::Ok();
  sqlite3* db = impl_->db.get();
  VG_RETURN_IF_ERROR(Run(db, impl_->begin, "storage: begin"));
  std::uint64_t added_r = 0, added_e = 0, removed_r = 0, removed_e = 0;
  std::int64_t added_bytes = 0, removed_bytes = 0;
  auto body = [&]() -> Status {
    for (const StoredRow& row : batch.events) {
      sqlite::Stmt& st = impl_->insert_event;
      st.BindInt(1, static_cast<std::int64_t>(row.seq));
      st.BindText(2, row.patient);
      st.BindInt(3, row.rx_ms);
      st.BindInt(4, static_cast<std::int64_t>(row.kind));
      st.BindBlob(5, row.body);
      VG_RETURN_IF_ERROR(Run(db, st, "storage: insert alert"));
      if (sqlite3_changes(db) > 0) {
        ++added_e;
        added_bytes += static_cast<std::int64_t>(row.body.size());
      }
    }
    for (const StoredRow& row : batch.batches) {
      sqlite::Stmt& st = impl_->insert_batch;
      st.BindInt(1, static_cast<std::int64_t>(row.seq));
      st.BindText(2, row.patient);
      st.BindInt(3, row.rx_ms);
      st.BindInt(4, row.count);
      st.BindInt(5, static_cast<std::int64_t>(row.format));
      st.BindBlob(6, row.body);
      VG_RETURN_IF_ERROR(Run(db, st, "storage: insert readings"));
      if (sqlite3_changes(db) > 0) {
        added_r += row.count;
        added_bytes += static_cast<std::int64_t>(row.body.size());
      }
    }
    // A row leaves the outbox once every configured destination has acknowledged it. With a
    // single destination that is its first acknowledgement: delete at once.
    auto acknowledge = [&](sqlite::Stmt& ack, sqlite::Stmt& del, std::int64_t bit_mask,
                           std::uint64_t seq, std::uint64_t& removed, const char* what) -> Status {
      bool remove = bit_mask == full_mask_;
      if (!remove) {
        ack.BindInt(1, bit_mask);
        ack.BindInt(2, static_cast<std::int64_t>(seq));
        const int rc = ack.Step();
        const bool found = rc == SQLITE_ROW;
        const std::int64_t acked = found ? ack.Int(0) : 0;
        const int rc2 = found ? ack.Step() : rc;
        ack.Reset();
        if (rc2 != SQLITE_DONE) return sqlite::ToStatus(db, rc2, what);
        remove = found && (acked & full_mask_) == full_mask_;
      }
      if (!remove) return Status::Ok();
      del.BindInt(1, static_cast<std::int64_t>(seq));
      int rc = del.Step();
      if (rc == SQLITE_ROW) {
        removed += static_cast<std::uint64_t>(del.Int(0));
        removed_bytes += del.Int(1);
        rc = del.Step();
      }
      del.Reset();
      return rc == SQLITE_DONE ? Status::Ok() : sqlite::ToStatus(db, rc, what);
    };
    for (const DestinationAcks& a : batch.acks) {
      const std::int64_t mask = std::int64_t{1} << a.bit;
      for (std::uint64_t seq : a.events) {
        VG_RETURN_IF_ERROR(acknowledge(impl_->ack_event, impl_->delete_event, mask, seq, removed_e,
                                       "storage: delete alert"));
      }
      for (std::uint64_t seq : a.batches) {
        VG_RETURN_IF_ERROR(acknowledge(impl_->ack_batch, impl_->delete_batch, mask, seq, removed_r,
                                       "storage: delete readings"));
      }
    }
    for (const DeadLetter& d : batch.dead_letters) {
      sqlite::Stmt& st = impl_->insert_dead;
      st.BindText(1, d.destination);
      st.BindText(2, d.kind);
      st.BindText(3, d.patient);
      st.BindText(4, d.item_id);
      st.BindText(5, d.reason);
      st.BindInt(6, d.ts_ms);
      st.BindBlob(7, d.body);
      VG_RETURN_IF_ERROR(Run(db, st, "storage: insert dead letter"));
    }
    for (const OpenAlarmChange& a : batch.alarms) {
      sqlite::Stmt& st = a.state.empty() ? impl_->delete_alarm : impl_->upsert_alarm;
      st.BindText(1, a.alarm);
      if (!a.state.empty()) st.BindBlob(2, a.state);
      VG_RETURN_IF_ERROR(Run(db, st, "storage: open alarm"));
    }
    for (const Assignment& a : batch.assignments) {
      sqlite::Stmt& st = impl_->upsert_assignment;
      st.BindText(1, a.device);
      if (a.patient) st.BindText(2, *a.patient);  // else NULL
      st.BindText(3, a.by);
      st.BindInt(4, a.ts_ms);
      VG_RETURN_IF_ERROR(Run(db, st, "storage: assignment"));
    }
    for (const RecordKey& k : batch.records) {
      sqlite::Stmt& st = impl_->insert_record;
      st.BindText(1, k.device);
      st.BindInt(2, static_cast<std::int64_t>(k.key));
      st.BindInt(3, k.ts_ms);
      VG_RETURN_IF_ERROR(Run(db, st, "storage: record"));
    }
    if (!batch.audit.empty()) {
      // The head of the chain, so that deleting the newest entries shows too.
      VG_RETURN_IF_ERROR(impl_->db.Exec("INSERT OR REPLACE INTO meta(key, value) VALUES('audit_head', '" +
                                        std::to_string(batch.audit.back().seq) + "')"));
    }
    for (const AuditEntry& e : batch.audit) {
      sqlite::Stmt& st = impl_->insert_audit;
      st.BindInt(1, static_cast<std::int64_t>(e.seq));
      st.BindInt(2, e.ts_ms);
      st.BindText(3, e.kind);
      st.BindText(4, e.actor);
      st.BindText(5, e.detail);
      st.BindText(6, e.prev);
      st.BindText(7, e.hash);
      VG_RETURN_IF_ERROR(Run(db, st, "storage: audit"));
    }
    return Run(db, impl_->commit, "storage: commit");
  }();
  if (!body.ok()) {
    impl_->rollback.Step();
    impl_->rollback.Reset();
    return body;
  }
  readings_ += added_r;
  readings_ -= std::min(readings_, removed_r);
  events_ += added_e;
  events_ -= std::min(events_, removed_e);
  const std::int64_t bytes = static_cast<std::int64_t>(backlog_bytes_) + added_bytes - removed_bytes;
  backlog_bytes_ = static_cast<std::uint64_t>(std::max<std::int64_t>(0, bytes));
  return Status::Ok();
}

Status OutboxStore::CheckpointTruncate() {
  // Moves the WAL into the database file and truncates it; on a full disk this frees the WAL's
  // space for the next commit.
  return impl_->db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

bool OutboxStore::ReleaseReserve() {
  if (reserve_bytes_ == 0) return false;
  const std::string reserve = ReservePath(path_);
  struct stat st {};
  if (::stat(reserve.c_str(), &st) != 0 || st.st_size == 0) return false;
  return ::unlink(reserve.c_str()) == 0;
}

void OutboxStore::RestoreReserve() {
  if (reserve_bytes_ == 0) return;
  const std::string reserve = ReservePath(path_);
  struct stat st {};
  if (::stat(reserve.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) >= reserve_bytes_) {
    return;
  }
  const int fd = ::open(reserve.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  // Real blocks, not a hole: the space must be there to give back.
  const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(reserve_bytes_));
  if (rc == 0) {
    ::fsync(fd);
  } else {
    // No room yet; try again later (a failed truncate leaves a short file, tried again too).
    const int truncated = ::ftruncate(fd, 0);
    (void)truncated;
  }
  ::close(fd);
}

Result<std::uint64_t> OutboxStore::EvictOldestReadings(std::uint64_t n,
                                                       std::vector<std::string>* patients) {
  sqlite::Db& db = impl_->db;
  sqlite::Stmt oldest;
  VG_RETURN_IF_ERROR(oldest.Prepare(
      db.get(), "SELECT seq, patient, count, length(body) FROM batches ORDER BY seq LIMIT 64"));
  sqlite::Stmt del;
  VG_RETURN_IF_ERROR(del.Prepare(db.get(), "DELETE FROM batches WHERE seq = ?"));
  std::uint64_t deleted = 0;
  // Small transactions: on a full disk each needs only a few pages of WAL.
  while (deleted < n) {
    struct Victim {
      std::uint64_t seq;
      std::uint64_t count;
      std::int64_t bytes;
    };
    std::vector<Victim> victims;
    int rc;
    while ((rc = oldest.Step()) == SQLITE_ROW) {
      victims.push_back(Victim{static_cast<std::uint64_t>(oldest.Int(0)),
                               static_cast<std::uint64_t>(oldest.Int(2)), oldest.Int(3)});
      if (patients != nullptr) {
        const std::string_view p = oldest.Text(1);
        if (std::find(patients->begin(), patients->end(), p) == patients->end()) {
          patients->emplace_back(p);
        }
      }
    }
    oldest.Reset();
    if (rc != SQLITE_DONE) return sqlite::ToStatus(db.get(), rc, "storage: evict");
    if (victims.empty()) break;
    VG_RETURN_IF_ERROR(Run(db.get(), impl_->begin, "storage: evict"));
    std::uint64_t batch_readings = 0;
    std::int64_t batch_bytes = 0;
    Status s;
    for (const Victim& v : victims) {
      del.BindInt(1, static_cast<std::int64_t>(v.seq));
      s = Run(db.get(), del, "storage: evict");
      if (!s.ok()) break;
      batch_readings += v.count;
      batch_bytes += v.bytes;
      if (deleted + batch_readings >= n) break;
    }
    if (s.ok()) s = Run(db.get(), impl_->commit, "storage: evict");
    if (!s.ok()) {
      impl_->rollback.Step();
      impl_->rollback.Reset();
      if (deleted > 0) break;  // report what was freed; the caller retries the rest
      return s;
    }
    deleted += batch_readings;
    readings_ -= std::min(readings_, batch_readings);
    backlog_bytes_ -= std::min<std::uint64_t>(backlog_bytes_, static_cast<std::uint64_t>(batch_bytes));
  }
  return deleted;
}

std::string OutboxStore::SynchronousMode() const {
  auto mode = impl_->db.QueryInt("PRAGMA synchronous");
  if (!mode.ok()) return "unknown";
  switch (*mode) {
    case 0: return "off";
    case 1: return "normal";
    case 2: return "full";
    case 3: return "extra";
    default: return std::to_string(*mode);
  }
}


Result<std::vector<std::string>> OutboxStore::LoadOpenAlarms() {
  sqlite::Stmt st;
  VG_RETURN_IF_ERROR(st.Prepare(impl_->db.get(), "SELECT state FROM open_alarms ORDER BY alarm"));
  std::vector<std::string> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) out.emplace_back(st.Text(0));
  if (rc != SQLITE_DONE) return sqlite::ToStatus(impl_->db.get(), rc, "storage: open alarms");
  return out;
}

Result<std::vector<Assignment>> OutboxStore::LoadAssignments() {
  sqlite::Stmt st;
  VG_RETURN_IF_ERROR(
      st.Prepare(impl_->db.get(), "SELECT device, patient, by, ts_ms FROM assignments ORDER BY device"));
  std::vector<Assignment> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    Assignment a;
    a.device = std::string(st.Text(0));
    if (sqlite3_column_type(st.get(), 1) != SQLITE_NULL) a.patient = std::string(st.Text(1));
    a.by = std::string(st.Text(2));
    a.ts_ms = st.Int(3);
    out.push_back(std::move(a));
  }
  if (rc != SQLITE_DONE) return sqlite::ToStatus(impl_->db.get(), rc, "storage: assignments");
  return out;
}

Result<std::vector<RecordKey>> OutboxStore::LoadRecordKeys(std::int64_t since_ms) {
  sqlite::Db& db = impl_->db;
  // Records older than the window can no longer be accepted again: prune them first.
  VG_RETURN_IF_ERROR(db.Exec("DELETE FROM records WHERE ts_ms < " + std::to_string(since_ms)));
  sqlite::Stmt st;
  VG_RETURN_IF_ERROR(st.Prepare(db.get(), "SELECT device, key, ts_ms FROM records"));
  std::vector<RecordKey> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    out.push_back(RecordKey{std::string(st.Text(0)), static_cast<std::uint64_t>(st.Int(1)), st.Int(2)});
  }
  if (rc != SQLITE_DONE) return sqlite::ToStatus(db.get(), rc, "storage: records");
  return out;
}

namespace {

Result<std::vector<AuditEntry>> ReadAudit(sqlite3* db, const std::string& sql) {
  sqlite::Stmt st;
  VG_RETURN_IF_ERROR(st.Prepare(db, sql));
  std::vector<AuditEntry> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    AuditEntry e;
    e.seq = static_cast<std::uint64_t>(st.Int(0));
    e.ts_ms = st.Int(1);
    e.kind = std::string(st.Text(2));
    e.actor = std::string(st.Text(3));
    e.detail = std::string(st.Text(4));
    e.prev = std::string(st.Text(5));
    e.hash = std::string(st.Text(6));
    out.push_back(std::move(e));
  }
  if (rc != SQLITE_DONE) return sqlite::ToStatus(db, rc, "storage: audit");
  return out;
}

constexpr const char* kAuditColumns = "SELECT seq, ts_ms, kind, actor, detail, prev, hash FROM audit_log";

}  // namespace

Result<std::vector<AuditEntry>> OutboxStore::RecentAudit(std::size_t n) {
  auto rows = ReadAudit(impl_->db.get(), std::string(kAuditColumns) + " ORDER BY seq DESC LIMIT " +
                                            std::to_string(n));
  if (!rows.ok()) return rows.status();
  std::reverse(rows->begin(), rows->end());
  return rows;
}


Result<std::uint64_t> OutboxStore::PruneAudit(std::int64_t before_ms, std::size_t keep) {
  sqlite::Db& db = impl_->db;
  auto boundary = db.QueryInt(
      "SELECT coalesce(max(seq), 0) FROM audit_log WHERE ts_ms < " + std::to_string(before_ms) +
      " AND seq <= coalesce((SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1 OFFSET " +
      std::to_string(keep) + "), 0)");
  if (!boundary.ok()) return boundary.status();
  if (*boundary == 0) return std::uint64_t{0};
  auto hash = db.QueryText("SELECT hash FROM audit_log WHERE seq = " + std::to_string(*boundary));
  if (!hash.ok()) return hash.status();
  VG_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> Status {
    sqlite::Stmt put;
    VG_RETURN_IF_ERROR(put.Prepare(db.get(), "INSERT OR REPLACE INTO meta(key, value) VALUES('audit_pruned_hash', ?)"));
    put.BindText(1, *hash);
    VG_RETURN_IF_ERROR(Run(db.get(), put, "storage: audit prune"));
    VG_RETURN_IF_ERROR(db.Exec("DELETE FROM audit_log WHERE seq <= " + std::to_string(*boundary)));
    return db.Exec("COMMIT");
  }();
  if (!body.ok()) {
    (void)db.Exec("ROLLBACK");
    return body;
  }
  return static_cast<std::uint64_t>(sqlite3_changes(db.get()));
}

struct OutboxReader::Impl {
  sqlite::Db db;
  sqlite::Stmt events, batches;
};

Result<std::unique_ptr<OutboxReader>> OutboxReader::Open(const std::string& path,
                                                         const std::string& vfs) {
  std::unique_ptr<OutboxReader> r(new OutboxReader());
  r->impl_ = std::make_unique<Impl>();
  VG_RETURN_IF_ERROR(r->impl_->db.Open(path, SQLITE_OPEN_READONLY, vfs));
  sqlite3_busy_timeout(r->impl_->db.get(), 5000);
  // A destination reads each row once, just after it was written: a small page cache does
  // (SQLite's default is 2 MB per connection).
  VG_RETURN_IF_ERROR(r->impl_->db.Exec("PRAGMA cache_size=-256"));
  VG_RETURN_IF_ERROR(r->impl_->events.Prepare(
      r->impl_->db.get(),
      "SELECT seq, patient, rx_ms, 1, format, kind, body FROM alerts "
      "WHERE seq > ? AND acked & ? = 0 ORDER BY seq LIMIT ?"));
  VG_RETURN_IF_ERROR(r->impl_->batches.Prepare(
      r->impl_->db.get(),
      "SELECT seq, patient, rx_ms, count, format, 0, body FROM batches "
      "WHERE seq > ? AND acked & ? = 0 ORDER BY seq LIMIT ?"));
  return r;
}

OutboxReader::~OutboxReader() = default;

namespace {

Status ReadRows(sqlite3* db, sqlite::Stmt& st, int bit, std::uint64_t after, std::size_t limit,
                std::vector<StoredRow>& out) {
  st.BindInt(1, static_cast<std::int64_t>(after));
  st.BindInt(2, std::int64_t{1} << bit);
  st.BindInt(3, static_cast<std::int64_t>(limit));
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    StoredRow row;
    row.seq = static_cast<std::uint64_t>(st.Int(0));
    row.patient = std::string(st.Text(1));
    row.rx_ms = st.Int(2);
    row.count = static_cast<std::uint32_t>(st.Int(3));
    const std::int64_t format = st.Int(4);
    row.format = format == 1   ? RowFormat::kBatch
                 : format == 2 ? RowFormat::kCompact
                               : RowFormat::kSingle;
    row.kind = st.Int(5) == 1 ? EventKind::kAudit : EventKind::kAlert;
    row.body = std::string(st.Text(6));
    out.push_back(std::move(row));
  }
  st.Reset();
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::ToStatus(db, rc, "storage: read");
}

}  // namespace

Status OutboxReader::ReadEvents(int bit, std::uint64_t after, std::size_t limit,
                                std::vector<StoredRow>& out) {
  return ReadRows(impl_->db.get(), impl_->events, bit, after, limit, out);
}

Status OutboxReader::ReadBatches(int bit, std::uint64_t after, std::size_t limit,
                                 std::vector<StoredRow>& out) {
  return ReadRows(impl_->db.get(), impl_->batches, bit, after, limit, out);
}

Result<std::int64_t> OutboxReader::OldestUnackedRxMs(int bit) {
  const std::string mask = std::to_string(std::int64_t{1} << bit);
  // Rows other destinations have acknowledged stay until this one has too, so the batches are
  // searched through their covering index, not in key order over every row's body.
  auto n = impl_->db.QueryInt(
      "SELECT coalesce(min(rx), 0) FROM ("
      "SELECT (SELECT rx_ms FROM batches INDEXED BY batches_backlog WHERE acked & " + mask +
      " = 0 ORDER BY seq LIMIT 1) AS rx "
      "UNION ALL SELECT (SELECT rx_ms FROM alerts WHERE acked & " + mask + " = 0 ORDER BY seq LIMIT 1))");
  if (!n.ok()) return n.status();
  return *n;
}

Result<OutboxReader::Backlog> OutboxReader::CountUnacked(int bit) {
  const std::string mask = std::to_string(std::int64_t{1} << bit);
  auto r = impl_->db.QueryInt("SELECT coalesce(sum(count), 0) FROM batches INDEXED BY batches_backlog "
                              "WHERE acked & " + mask + " = 0");
  if (!r.ok()) return r.status();
  auto e = impl_->db.QueryInt("SELECT count(*) FROM alerts WHERE acked & " + mask + " = 0");
  if (!e.ok()) return e.status();
  return Backlog{static_cast<std::uint64_t>(*r), static_cast<std::uint64_t>(*e)};
}

Result<std::vector<AuditEntry>> OutboxReader::AllAudit(std::string* chain_start, std::uint64_t* head) {
  auto start = impl_->db.QueryText("SELECT value FROM meta WHERE key='audit_pruned_hash'");
  *chain_start = start.ok() ? *start : "";
  auto last = impl_->db.QueryText("SELECT value FROM meta WHERE key='audit_head'");
  *head = last.ok() ? std::strtoull(last->c_str(), nullptr, 10) : 0;
  return ReadAudit(impl_->db.get(), std::string(kAuditColumns) + " ORDER BY seq");
}

Result<std::uint64_t> OutboxReader::CountDeadLetters(const std::string& destination) {
  sqlite::Stmt st;
  VG_RETURN_IF_ERROR(st.Prepare(impl_->db.get(), "SELECT count(*) FROM dead_letters WHERE destination = ?"));
  st.BindText(1, destination);
  const int rc = st.Step();
  if (rc != SQLITE_ROW) return sqlite::ToStatus(impl_->db.get(), rc, "storage: dead letters");
  return static_cast<std::uint64_t>(st.Int(0));
}

OutboxLimits PlanOutboxLimits(std::uint64_t max_bytes, std::uint64_t reserve_bytes, std::uint64_t page,
                              std::uint64_t fs_total, std::uint64_t fs_room) {
  OutboxLimits l;
  page = std::max<std::uint64_t>(page, 512);
  const std::uint64_t floor = 256 * page;  // the least an outbox can work in
  std::uint64_t wal_cap = 16ull << 20;
  if (fs_total > 0) wal_cap = std::min(wal_cap, std::max(fs_total / 16, 64 * page));
  l.room = max_bytes;
  if (fs_total > 0 && fs_room < max_bytes) {
    l.room = std::max(fs_room > wal_cap ? fs_room - wal_cap : 0, floor);
  }
  l.room = std::max(l.room, floor);
  l.reserve_bytes = std::min(reserve_bytes, l.room / 16);
  if (fs_total > 0) l.reserve_bytes = std::min(l.reserve_bytes, fs_total / 16);
  const std::uint64_t budget = l.room - l.reserve_bytes;  // reserve <= room / 16
  // The WAL is checkpointed once it holds a quarter of its allowance, and one transaction is
  // kept below another quarter (max_batch_rows), so database + WAL stay within the budget.
  l.wal_allowance = std::min(budget / 4, wal_cap);
  l.max_pages = (budget - l.wal_allowance) / page;
  l.checkpoint_pages = std::clamp<std::uint64_t>(l.wal_allowance / page / 4, 16, 1000);
  l.max_batch_rows = static_cast<std::size_t>(std::max<std::uint64_t>(64, l.wal_allowance / 4 / 256));
  return l;
}

}  // namespace vg
