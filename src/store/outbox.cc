#include "vitalgate/store/outbox.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "sqlite.h"

namespace vg {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings(
  seq INTEGER PRIMARY KEY, patient TEXT NOT NULL, rx_ms INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alerts(
  seq INTEGER PRIMARY KEY, patient TEXT NOT NULL, rx_ms INTEGER NOT NULL, body BLOB NOT NULL);
)sql";

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

}  // namespace

std::string BodyAad(bool alert, std::uint64_t seq) {
  return (alert ? "vitalgate-outbox:alert:" : "vitalgate-outbox:reading:") + std::to_string(seq);
}

struct OutboxStore::Impl {
  sqlite::Db db;
  sqlite::Stmt begin, commit, rollback;
  sqlite::Stmt insert_reading, insert_alert, delete_reading, delete_alert;
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
  auto check = db.QueryText("PRAGMA quick_check");
  if (!check.ok()) return check.status();
  if (*check != "ok") return DataLoss("storage: integrity check of " + path_ + " failed");
  VG_RETURN_IF_ERROR(db.Exec(kSchema));
  auto version = db.QueryText("SELECT value FROM meta WHERE key='schema'");
  if (version.ok() && *version != std::to_string(kSchemaVersion)) {
    return FailedPrecondition("storage: " + path_ + " has schema " + *version + ", expected " +
                              std::to_string(kSchemaVersion));
  }
  auto instance = db.QueryText("SELECT value FROM meta WHERE key='instance'");
  instance_ = instance.ok() ? *instance : RandomInstance();
  auto gen = db.QueryText("SELECT value FROM meta WHERE key='generation'");
  generation_ = gen.ok() ? static_cast<std::uint32_t>(std::stoul(*gen)) + 1 : 1;
  if (generation_ >= (1u << 24)) generation_ = 1;  // 16M restarts; instance keeps ids unique
  {
    sqlite::Stmt put;
    VG_RETURN_IF_ERROR(put.Prepare(db.get(), "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)"));
    for (const auto& [k, v] : {std::pair<std::string, std::string>{"schema", std::to_string(kSchemaVersion)},
                               {"instance", instance_},
                               {"generation", std::to_string(generation_)}}) {
      put.BindText(1, k);
      put.BindText(2, v);
      const int rc = put.Step();
      if (rc != SQLITE_DONE) return sqlite::ToStatus(db.get(), rc, "storage: write meta");
      put.Reset();
    }
  }
  // storage.max_bytes bounds the database file and its WAL together: the WAL is truncated back
  // to `wal_allowance` after each checkpoint and the database may use the rest.
  auto page_size = db.QueryInt("PRAGMA page_size");
  if (!page_size.ok()) return page_size.status();
  // The WAL is checkpointed once it holds a quarter of its allowance, and one transaction is
  // kept below another quarter (max_batch_rows), so database + WAL stay within max_bytes.
  const auto page = static_cast<std::uint64_t>(*page_size);
  const std::uint64_t wal_allowance = std::min<std::uint64_t>(options.max_bytes / 4, 16ull << 20);
  const std::uint64_t pages = (options.max_bytes - wal_allowance) / page;
  const std::uint64_t checkpoint_pages = std::clamp<std::uint64_t>(wal_allowance / page / 4, 16, 1000);
  max_batch_rows_ = static_cast<std::size_t>(std::max<std::uint64_t>(64, wal_allowance / 4 / 256));
  VG_RETURN_IF_ERROR(db.Exec("PRAGMA journal_size_limit=" + std::to_string(wal_allowance)));
  VG_RETURN_IF_ERROR(db.Exec("PRAGMA wal_autocheckpoint=" + std::to_string(checkpoint_pages)));
  VG_RETURN_IF_ERROR(db.Exec("PRAGMA max_page_count=" + std::to_string(pages)));
  auto nr = db.QueryInt("SELECT count(*) FROM readings");
  if (!nr.ok()) return nr.status();
  auto na = db.QueryInt("SELECT count(*) FROM alerts");
  if (!na.ok()) return na.status();
  reading_rows_ = static_cast<std::uint64_t>(*nr);
  alert_rows_ = static_cast<std::uint64_t>(*na);
  return Prepare();
}

Status OutboxStore::Prepare() {
  sqlite3* db = impl_->db.get();
  VG_RETURN_IF_ERROR(impl_->begin.Prepare(db, "BEGIN IMMEDIATE"));
  VG_RETURN_IF_ERROR(impl_->commit.Prepare(db, "COMMIT"));
  VG_RETURN_IF_ERROR(impl_->rollback.Prepare(db, "ROLLBACK"));
  VG_RETURN_IF_ERROR(impl_->insert_reading.Prepare(
      db, "INSERT OR IGNORE INTO readings(seq, patient, rx_ms, body) VALUES(?, ?, ?, ?)"));
  VG_RETURN_IF_ERROR(impl_->insert_alert.Prepare(
      db, "INSERT OR IGNORE INTO alerts(seq, patient, rx_ms, body) VALUES(?, ?, ?, ?)"));
  VG_RETURN_IF_ERROR(impl_->delete_reading.Prepare(db, "DELETE FROM readings WHERE seq = ?"));
  VG_RETURN_IF_ERROR(impl_->delete_alert.Prepare(db, "DELETE FROM alerts WHERE seq = ?"));
  return Status::Ok();
}

Status OutboxStore::Commit(const WriteBatch& batch) {
  if (batch.empty()) return Status::Ok();
  sqlite3* db = impl_->db.get();
  auto run = [&](sqlite::Stmt& st, const char* what) {
    const int rc = st.Step();
    st.Reset();
    return rc == SQLITE_DONE ? Status::Ok() : sqlite::ToStatus(db, rc, what);
  };
  VG_RETURN_IF_ERROR(run(impl_->begin, "storage: begin"));
  std::uint64_t added_r = 0, added_a = 0, removed_r = 0, removed_a = 0;
  auto body = [&]() -> Status {
    auto insert = [&](sqlite::Stmt& st, const std::vector<OutboxRow>& rows, const char* what,
                      std::uint64_t& added) -> Status {
      for (const OutboxRow& row : rows) {
        st.BindInt(1, static_cast<std::int64_t>(row.seq));
        st.BindText(2, row.patient);
        st.BindInt(3, row.rx_ms);
        st.BindBlob(4, row.body);
        VG_RETURN_IF_ERROR(run(st, what));
        added += static_cast<std::uint64_t>(sqlite3_changes(db));
      }
      return Status::Ok();
    };
    VG_RETURN_IF_ERROR(insert(impl_->insert_alert, batch.alerts, "storage: insert alert", added_a));
    VG_RETURN_IF_ERROR(
        insert(impl_->insert_reading, batch.readings, "storage: insert reading", added_r));
    for (std::uint64_t seq : batch.acked_alerts) {
      impl_->delete_alert.BindInt(1, static_cast<std::int64_t>(seq));
      VG_RETURN_IF_ERROR(run(impl_->delete_alert, "storage: delete alert"));
      removed_a += static_cast<std::uint64_t>(sqlite3_changes(db));
    }
    for (std::uint64_t seq : batch.acked_readings) {
      impl_->delete_reading.BindInt(1, static_cast<std::int64_t>(seq));
      VG_RETURN_IF_ERROR(run(impl_->delete_reading, "storage: delete reading"));
      removed_r += static_cast<std::uint64_t>(sqlite3_changes(db));
    }
    return run(impl_->commit, "storage: commit");
  }();
  if (!body.ok()) {
    impl_->rollback.Step();
    impl_->rollback.Reset();
    return body;
  }
  reading_rows_ += added_r;
  reading_rows_ -= std::min(reading_rows_, removed_r);
  alert_rows_ += added_a;
  alert_rows_ -= std::min(alert_rows_, removed_a);
  return Status::Ok();
}

Status OutboxStore::CheckpointTruncate() {
  // Moves the WAL into the database file and truncates it; on a full disk this frees the WAL's
  // space for the next commit.
  return impl_->db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

Result<std::uint64_t> OutboxStore::EvictOldestReadings(std::uint64_t n,
                                                       std::vector<std::string>* patients) {
  sqlite::Db& db = impl_->db;
  if (patients != nullptr) {
    sqlite::Stmt st;
    VG_RETURN_IF_ERROR(st.Prepare(db.get(),
                                  "SELECT DISTINCT patient FROM (SELECT patient FROM readings "
                                  "ORDER BY seq LIMIT ?)"));
    st.BindInt(1, static_cast<std::int64_t>(n));
    int rc;
    while ((rc = st.Step()) == SQLITE_ROW) patients->emplace_back(st.Text(0));
    if (rc != SQLITE_DONE) return sqlite::ToStatus(db.get(), rc, "storage: evict");
  }
  sqlite::Stmt del;
  VG_RETURN_IF_ERROR(del.Prepare(
      db.get(), "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)"));
  del.BindInt(1, static_cast<std::int64_t>(n));
  const int rc = del.Step();
  if (rc != SQLITE_DONE) return sqlite::ToStatus(db.get(), rc, "storage: evict");
  const auto deleted = static_cast<std::uint64_t>(sqlite3_changes(db.get()));
  reading_rows_ -= std::min(reading_rows_, deleted);
  return deleted;
}

std::uint64_t OutboxStore::SizeBytes() const {
  std::uint64_t total = 0;
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) total += static_cast<std::uint64_t>(st.st_size);
  if (::stat((path_ + "-wal").c_str(), &st) == 0) total += static_cast<std::uint64_t>(st.st_size);
  return total;
}

struct OutboxReader::Impl {
  sqlite::Db db;
  sqlite::Stmt alerts, readings;
};

Result<std::unique_ptr<OutboxReader>> OutboxReader::Open(const std::string& path,
                                                         const std::string& vfs) {
  std::unique_ptr<OutboxReader> r(new OutboxReader());
  r->impl_ = std::make_unique<Impl>();
  VG_RETURN_IF_ERROR(r->impl_->db.Open(path, SQLITE_OPEN_READONLY, vfs));
  sqlite3_busy_timeout(r->impl_->db.get(), 5000);
  VG_RETURN_IF_ERROR(r->impl_->alerts.Prepare(
      r->impl_->db.get(),
      "SELECT seq, patient, body, rx_ms FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?"));
  VG_RETURN_IF_ERROR(r->impl_->readings.Prepare(
      r->impl_->db.get(),
      "SELECT seq, patient, body, rx_ms FROM readings WHERE seq > ? ORDER BY seq LIMIT ?"));
  return r;
}

OutboxReader::~OutboxReader() = default;

namespace {

Status ReadRows(sqlite3* db, sqlite::Stmt& st, std::uint64_t after, std::size_t limit,
                std::vector<OutboxRow>& out) {
  st.BindInt(1, static_cast<std::int64_t>(after));
  st.BindInt(2, static_cast<std::int64_t>(limit));
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    OutboxRow row;
    row.seq = static_cast<std::uint64_t>(st.Int(0));
    row.patient = std::string(st.Text(1));
    row.body = std::string(st.Text(2));
    row.rx_ms = st.Int(3);
    out.push_back(std::move(row));
  }
  st.Reset();
  return rc == SQLITE_DONE ? Status::Ok() : sqlite::ToStatus(db, rc, "storage: read");
}

}  // namespace

Status OutboxReader::ReadAlerts(std::uint64_t after, std::size_t limit, std::vector<OutboxRow>& out) {
  return ReadRows(impl_->db.get(), impl_->alerts, after, limit, out);
}

Status OutboxReader::ReadReadings(std::uint64_t after, std::size_t limit,
                                  std::vector<OutboxRow>& out) {
  return ReadRows(impl_->db.get(), impl_->readings, after, limit, out);
}

Result<std::uint64_t> OutboxReader::CountReadings() {
  auto n = impl_->db.QueryInt("SELECT count(*) FROM readings");
  if (!n.ok()) return n.status();
  return static_cast<std::uint64_t>(*n);
}

Result<std::uint64_t> OutboxReader::CountAlerts() {
  auto n = impl_->db.QueryInt("SELECT count(*) FROM alerts");
  if (!n.ok()) return n.status();
  return static_cast<std::uint64_t>(*n);
}

Result<std::int64_t> OutboxReader::OldestReadingRxMs() {
  auto n = impl_->db.QueryInt("SELECT coalesce((SELECT rx_ms FROM readings ORDER BY seq LIMIT 1), 0)");
  if (!n.ok()) return n.status();
  return *n;
}

}  // namespace vg
