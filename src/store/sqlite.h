// Minimal RAII wrappers over the SQLite C API, returning Status instead of error codes.
// A Db and its Stmts belong to one thread.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg::sqlite {

// Maps an SQLite result code to a Status with the database's message.
Status ToStatus(sqlite3* db, int rc, std::string_view what);
bool IsCorruption(int rc);

class Stmt {
 public:
  Stmt() = default;
  Stmt(Stmt&& o) noexcept : stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  ~Stmt();
  Status Prepare(sqlite3* db, std::string_view sql);

  sqlite3_stmt* get() const { return stmt_; }
  void BindInt(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindText(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void BindBlob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string_view Text(int col) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class Db {
 public:
  Db() = default;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();
  // `vfs` names a registered SQLite VFS; empty uses the default (unix).
  Status Open(const std::string& path, int flags, const std::string& vfs = "");
  void Close();
  Status Exec(std::string_view sql);
  sqlite3* get() const { return db_; }
  // Runs a query returning one integer, e.g. "PRAGMA page_count".
  Result<std::int64_t> QueryInt(std::string_view sql);
  Result<std::string> QueryText(std::string_view sql);

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace vg::sqlite
