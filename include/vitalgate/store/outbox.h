// The durable outbox: every accepted reading and every alert event is committed here before it
// is published, and removed only when the broker has acknowledged it (QoS 1 PUBACK). What was not
// acknowledged is published again after a restart.
//
// SQLite in WAL mode, synchronous=FULL by default: a committed row survives SIGKILL and power
// loss. One OutboxStore (the writer connection) belongs to the store thread; any number of
// OutboxReaders (read-only connections, one per thread) may read concurrently. Rows are keyed by
// their id, which grows monotonically, so reading in key order is reading in commit order.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vitalgate/core/status.h"

namespace vg {

struct OutboxRow {
  std::uint64_t seq = 0;     // the reading or alert event id
  std::string patient;
  std::string body;          // the JSON object published for this row
  std::int64_t rx_ms = 0;    // when the gateway received it (for latency figures)
};

// Associated data that binds a stored, sealed body to its table and id.
std::string BodyAad(bool alert, std::uint64_t seq);

struct WriteBatch {
  std::vector<OutboxRow> readings;
  std::vector<OutboxRow> alerts;
  std::vector<std::uint64_t> acked_readings;
  std::vector<std::uint64_t> acked_alerts;
  bool empty() const {
    return readings.empty() && alerts.empty() && acked_readings.empty() && acked_alerts.empty();
  }
  void clear() {
    readings.clear();
    alerts.clear();
    acked_readings.clear();
    acked_alerts.clear();
  }
};

struct StoreOptions {
  std::string path;
  std::uint64_t max_bytes = 512ull << 20;
  bool synchronous_full = true;
  std::string vfs;  // SQLite VFS name; empty: the default. Tests inject faults through this.
};

struct OpenReport {
  bool created = false;             // a new file was created
  std::string moved_aside;          // a damaged file was moved here and a fresh one created
  std::string damage;               // what was wrong with it
};

class OutboxStore {
 public:
  // Opens or creates the outbox (mode 0600), checks its integrity, moves a damaged file aside
  // (keeping it for inspection) and bumps the durable id generation.
  static Result<std::unique_ptr<OutboxStore>> Open(const StoreOptions& options,
                                                   OpenReport* report = nullptr);
  ~OutboxStore();

  std::uint32_t generation() const { return generation_; }
  const std::string& instance() const { return instance_; }
  const std::string& path() const { return path_; }

  // Inserts and deletes in one transaction (group commit). On error nothing is applied.
  Status Commit(const WriteBatch& batch);

  // Checkpoints the WAL into the database and truncates it (frees disk space in WAL mode).
  Status CheckpointTruncate();

  // Deletes the `n` oldest undelivered readings to make room (storage.max_bytes reached or disk
  // full); alerts are never evicted. Returns how many were deleted and, in `patients`, whose.
  Result<std::uint64_t> EvictOldestReadings(std::uint64_t n, std::vector<std::string>* patients);

  std::uint64_t reading_rows() const { return reading_rows_; }
  // The most readings one transaction should hold so that the WAL stays within its share of
  // storage.max_bytes (~256 bytes a row).
  std::size_t max_batch_rows() const { return max_batch_rows_; }
  std::uint64_t alert_rows() const { return alert_rows_; }
  // Current size of the database file and its WAL.
  std::uint64_t SizeBytes() const;

 private:
  OutboxStore() = default;
  Status Init(const StoreOptions& options, OpenReport* report);
  Status Prepare();

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::string instance_;
  std::uint32_t generation_ = 0;
  std::size_t max_batch_rows_ = 4096;
  std::uint64_t reading_rows_ = 0;
  std::uint64_t alert_rows_ = 0;
};

class OutboxReader {
 public:
  static Result<std::unique_ptr<OutboxReader>> Open(const std::string& path,
                                                    const std::string& vfs = "");
  ~OutboxReader();

  // Rows with seq > after, in seq order, at most `limit`. Appends to `out`.
  Status ReadAlerts(std::uint64_t after, std::size_t limit, std::vector<OutboxRow>& out);
  Status ReadReadings(std::uint64_t after, std::size_t limit, std::vector<OutboxRow>& out);
  // Counts for /metrics and tests.
  Result<std::uint64_t> CountReadings();
  Result<std::uint64_t> CountAlerts();
  // Receive time of the oldest undelivered reading, 0 when none.
  Result<std::int64_t> OldestReadingRxMs();

 private:
  OutboxReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vg
