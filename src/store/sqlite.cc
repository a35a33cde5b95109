#include "sqlite.h"

namespace vg::sqlite {

Status ToStatus(sqlite3* db, int rc, std::string_view what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return Status::Ok();
  std::string msg(what);
  msg += ": ";
  msg += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xFF) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return DataLoss(std::move(msg));
    case SQLITE_FULL: return ResourceExhausted(std::move(msg));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN: return Unavailable(std::move(msg));
    default: return Internal(std::move(msg));
  }
}

bool IsCorruption(int rc) {
  return (rc & 0xFF) == SQLITE_CORRUPT || (rc & 0xFF) == SQLITE_NOTADB;
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    stmt_ = o.stmt_;
    o.stmt_ = nullptr;
  }
  return *this;
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Status Stmt::Prepare(sqlite3* db, std::string_view sql) {
  sqlite3_finalize(stmt_);
  stmt_ = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  return ToStatus(db, rc, "prepare");
}

std::string_view Stmt::Text(int col) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string_view() : std::string_view(p, static_cast<std::size_t>(n));
}

Db::~Db() { Close(); }

void Db::Close() {
  if (db_ != nullptr) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
}

Status Db::Open(const std::string& path, int flags, const std::string& vfs) {
  Close();
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX,
                                 vfs.empty() ? nullptr : vfs.c_str());
  if (rc != SQLITE_OK) {
    Status s = ToStatus(db_, rc, "open " + path);
    Close();
    return s;
  }
  sqlite3_extended_result_codes(db_, 1);
  return Status::Ok();
}

Status Db::Exec(std::string_view sql) {
  char* err = nullptr;
  const std::string q(sql);
  const int rc = sqlite3_exec(db_, q.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Status s = ToStatus(db_, rc, q.substr(0, 40));
    return Status(s.code(), q.substr(0, 40) + ": " + msg);
  }
  return Status::Ok();
}

Result<std::int64_t> Db::QueryInt(std::string_view sql) {
  Stmt st;
  VG_RETURN_IF_ERROR(st.Prepare(db_, sql));
  const int rc = st.Step();
  if (rc == SQLITE_ROW) return st.Int(0);
  if (rc == SQLITE_DONE) return NotFound(std::string(sql) + ": no row");
  return ToStatus(db_, rc, sql);
}

Result<std::string> Db::QueryText(std::string_view sql) {
  Stmt st;
  VG_RETURN_IF_ERROR(st.Prepare(db_, sql));
  const int rc = st.Step();
  if (rc == SQLITE_ROW) return std::string(st.Text(0));
  if (rc == SQLITE_DONE) return NotFound(std::string(sql) + ": no row");
  return ToStatus(db_, rc, sql);
}

}  // namespace vg::sqlite
