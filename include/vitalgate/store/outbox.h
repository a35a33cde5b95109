// The durable outbox: every accepted reading and every alert and audit event is committed here
// before it is published, and removed only when every destination has acknowledged it (MQTT
// QoS 1 PUBACK, HTTP 2xx, HL7 AA) or moved it to the dead-letter table. What was not
// acknowledged is delivered again after a restart.
//
// SQLite in WAL mode, synchronous=FULL by default: a committed row survives SIGKILL and power
// loss. One OutboxStore (the writer connection) belongs to the store thread; any number of
// OutboxReaders (read-only connections, one per thread) may read concurrently.
//
// Layout (schema version kOutboxSchemaVersion; older files are migrated step by step when
// opened, inside one transaction per step, and a file from a newer release is refused):
// - `batches`: the readings of one patient from one group commit, in acceptance order, as one
//   row (its key is the id of its first reading, so key order is commit order and each
//   patient's rows are in order). One B-tree insert and one delete per batch instead of per
//   reading is what keeps the store cheap at high rates.
// - `alerts`: one row per alert event or audit event (`kind`), keyed by the event's sequence.
// - `acked`: per row, a bit per destination that has acknowledged it; a row is deleted once all
//   configured destinations' bits are set. Destinations are numbered in `destinations`.
//   `batches_backlog` (acked, seq, count, rx_ms) covers the backlog queries (schema 3).
// - `dead_letters`, `open_alarms`, `assignments`, `records`, `audit_log`: see their structs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vitalgate/core/status.h"

namespace vg {

inline constexpr int kOutboxSchemaVersion = 4;

// One deliverable item: a reading, or an alert or audit event.
struct OutboxRow {
  std::uint64_t seq = 0;     // the reading id or the event's sequence
  std::string patient;       // patient id, or "unassigned/<device>"
  std::string body;          // the canonical JSON object (docs/mqtt.md)
  std::int64_t rx_ms = 0;    // when the gateway received it (for latency figures)
};

// How a stored row's body is laid out (and sealed, with payload encryption on).
enum class RowFormat : std::uint8_t {
  kSingle = 0,  // one JSON object (rows written by schema 1; readings and events)
  kBatch = 1,   // readings joined by '\n' (no JSON text contains a raw newline)
  kCompact = 2, // readings as compact binary records (core/compact_row.h; schema 4)
};

enum class EventKind : std::uint8_t { kAlert = 0, kAudit = 1 };

// One row of `batches` or `alerts` as stored.
struct StoredRow {
  std::uint64_t seq = 0;
  std::string patient;
  std::int64_t rx_ms = 0;
  std::uint32_t count = 1;   // readings in the row (events: 1)
  RowFormat format = RowFormat::kSingle;
  EventKind kind = EventKind::kAlert;  // events only
  std::string body;          // possibly sealed (see BodyAad)
};

// Associated data that binds a stored, sealed body to its table, layout and key.
std::string BodyAad(bool event, RowFormat format, std::uint64_t seq);

// An item a destination refused for good: kept, visible, counted; never silently deleted.
struct DeadLetter {
  std::string destination;
  std::string kind;     // "reading", "alert", "audit"
  std::string patient;
  std::string item_id;  // the item's public id
  std::string reason;   // what the destination said (no patient values)
  std::int64_t ts_ms = 0;
  std::string body;     // the item's JSON, sealed like outbox bodies
};

// An open alarm's engine state (JSON, sealed like bodies), so that a restart keeps its id.
struct OpenAlarmChange {
  std::string alarm;  // the alarm's public id
  std::string state;  // empty: the alarm ended (row deleted)
};

// A device's patient set by `cmd/assign`; wins over the config file until the next one.
struct Assignment {
  std::string device;
  std::optional<std::string> patient;  // nullopt: unassigned
  std::string by;
  std::int64_t ts_ms = 0;
};

// A record a device may send again (stored records, spot checks), to recognise repeats.
struct RecordKey {
  std::string device;
  std::uint64_t key = 0;
  std::int64_t ts_ms = 0;  // the record's device time (for pruning)
};

// One entry of the hash-chained audit trail.
struct AuditEntry {
  std::uint64_t seq = 0;
  std::int64_t ts_ms = 0;
  std::string kind;    // "ack", "assign", "reload", "certificate", "login", ...
  std::string actor;
  std::string detail;  // JSON object, no vital values
  std::string prev;    // hash of the previous entry (hex)
  std::string hash;    // hash of this entry (hex)
};

// Which destination acknowledged which rows.
struct DestinationAcks {
  int bit = 0;
  std::vector<std::uint64_t> batches;
  std::vector<std::uint64_t> events;
};

struct WriteBatch {
  std::vector<StoredRow> batches;  // reading rows (format kBatch), bodies already sealed
  std::vector<StoredRow> events;   // alert/audit rows, bodies already sealed
  std::vector<DestinationAcks> acks;
  std::vector<DeadLetter> dead_letters;
  std::vector<OpenAlarmChange> alarms;
  std::vector<Assignment> assignments;
  std::vector<RecordKey> records;
  std::vector<AuditEntry> audit;
  bool empty() const {
    return batches.empty() && events.empty() && acks.empty() && dead_letters.empty() &&
           alarms.empty() && assignments.empty() && records.empty() && audit.empty();
  }
  void clear() { *this = WriteBatch{}; }
};

struct StoreOptions {
  std::string path;
  std::uint64_t max_bytes = 512ull << 20;
  bool synchronous_full = true;
  std::string vfs;  // SQLite VFS name; empty: the default. Tests inject faults through this.
  // Names of the configured destinations; the first is the primary (MQTT). Empty: one, "mqtt".
  std::vector<std::string> destinations;
  // Bytes kept in reserve next to the database so that a full disk can still be cleaned up
  // (eviction and deletion need a little space for the WAL): released when the disk is full,
  // taken again when there is room. 0 disables it.
  std::uint64_t reserve_bytes = 4ull << 20;
};

// How the outbox divides its room: storage.max_bytes, or less when the file system holds less
// (what is free plus what the outbox already holds there, less one WAL allowance of slack for a
// checkpoint a reader blocks). Kept below that, the database reports itself full while there is
// still room for the WAL, so the oldest readings can be evicted; a disk that someone else fills
// later is what the reserve is for. The reserve and the WAL allowance are each at most a
// sixteenth of the file system (the WAL at least 64 pages), so a checkpoint never needs much
// more than the reserve gives back. Pure.
struct OutboxLimits {
  std::uint64_t room = 0;             // what database, WAL and reserve may use together
  std::uint64_t reserve_bytes = 0;
  std::uint64_t wal_allowance = 0;    // journal_size_limit
  std::uint64_t max_pages = 0;        // max_page_count of the database
  std::uint64_t checkpoint_pages = 0;  // wal_autocheckpoint
  std::size_t max_batch_rows = 0;     // rows per transaction, so one stays within the WAL
};
// `fs_total`: the file system's size; `fs_room`: free space plus the outbox's own files (both
// unknown: 0).
OutboxLimits PlanOutboxLimits(std::uint64_t max_bytes, std::uint64_t reserve_bytes, std::uint64_t page,
                              std::uint64_t fs_total, std::uint64_t fs_room);

struct OpenReport {
  bool created = false;             // a new file was created
  std::string moved_aside;          // a damaged file was moved here and a fresh one created
  std::string damage;               // what was wrong with it
  int migrated_from = 0;            // schema the file had when it needed a migration, else 0
};

class OutboxStore {
 public:
  // Opens or creates the outbox (mode 0600), checks its integrity, migrates an older schema,
  // moves a damaged file aside (keeping it for inspection) and bumps the durable id generation.
  static Result<std::unique_ptr<OutboxStore>> Open(const StoreOptions& options,
                                                   OpenReport* report = nullptr);
  ~OutboxStore();

  std::uint32_t generation() const { return generation_; }
  const std::string& instance() const { return instance_; }
  const std::string& path() const { return path_; }
  // Bit of each configured destination, in StoreOptions::destinations order.
  const std::vector<int>& destination_bits() const { return bits_; }

  // Inserts, acknowledgements, deletions and the side tables in one transaction (group
  // commit). On error nothing is applied.
  Status Commit(const WriteBatch& batch);

  // Checkpoints the WAL into the database and truncates it (frees disk space in WAL mode).
  Status CheckpointTruncate();

  // Deletes about `n` of the oldest undelivered readings (whole batches, oldest first) to make
  // room (storage.max_bytes reached or disk full), in small transactions; alerts and audit
  // events are never evicted. Returns how many readings were deleted and, in `patients`, whose.
  Result<std::uint64_t> EvictOldestReadings(std::uint64_t n, std::vector<std::string>* patients);

  // The reserve file: released on a full disk (true when it gave space back), restored later.
  bool ReleaseReserve();
  void RestoreReserve();

  // Readings (not rows) waiting for delivery, and events.
  std::uint64_t reading_rows() const { return readings_; }
  std::uint64_t alert_rows() const { return events_; }
  // Highest event row key in the file when it was opened (new events continue after it).
  std::uint64_t max_event_seq() const { return max_event_seq_; }
  // Bytes of undelivered bodies (readings and events).
  std::uint64_t backlog_bytes() const { return backlog_bytes_; }
  // The most readings one transaction should hold so that the WAL stays within its share of
  // storage.max_bytes (~256 bytes a reading).
  std::size_t max_batch_rows() const { return max_batch_rows_; }
  // SQLite's synchronous setting as the writer connection has it: "full", "normal", ...
  std::string SynchronousMode() const;

  // Start-up reads (store thread, before it starts delivering).
  Result<std::vector<std::string>> LoadOpenAlarms();       // states, in alarm order
  Result<std::vector<Assignment>> LoadAssignments();
  Result<std::vector<RecordKey>> LoadRecordKeys(std::int64_t since_ms);
  // The last `n` audit entries, oldest first.
  Result<std::vector<AuditEntry>> RecentAudit(std::size_t n);
  // Deletes audit entries older than `before_ms` (keeping the newest `keep` at least) and
  // records the hash of the last one deleted, so the rest still verifies.
  Result<std::uint64_t> PruneAudit(std::int64_t before_ms, std::size_t keep);

 private:
  OutboxStore() = default;
  Status Init(const StoreOptions& options, OpenReport* report);
  Status Migrate(OpenReport* report);
  Status AssignDestinationBits(const std::vector<std::string>& names);
  Status Prepare();
  Status Count();

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::string instance_;
  std::uint32_t generation_ = 0;
  std::vector<int> bits_;
  std::int64_t full_mask_ = 1;
  std::uint64_t reserve_bytes_ = 0;
  std::size_t max_batch_rows_ = 4096;
  std::uint64_t readings_ = 0;
  std::uint64_t events_ = 0;
  std::uint64_t backlog_bytes_ = 0;
  std::uint64_t max_event_seq_ = 0;
};

class OutboxReader {
 public:
  static Result<std::unique_ptr<OutboxReader>> Open(const std::string& path,
                                                    const std::string& vfs = "");
  ~OutboxReader();

  // Rows with seq > after that destination `bit` has not acknowledged, in seq order, at most
  // `limit`. Appends to `out`.
  Status ReadEvents(int bit, std::uint64_t after, std::size_t limit, std::vector<StoredRow>& out);
  Status ReadBatches(int bit, std::uint64_t after, std::size_t limit, std::vector<StoredRow>& out);
  // Receive time of the oldest reading or event `bit` has not acknowledged; 0 when none.
  Result<std::int64_t> OldestUnackedRxMs(int bit);
  // Rows and readings `bit` has not acknowledged (for metrics).
  struct Backlog {
    std::uint64_t readings = 0;
    std::uint64_t events = 0;
  };
  Result<Backlog> CountUnacked(int bit);
  Result<std::uint64_t> CountDeadLetters(const std::string& destination);
  // Every audit entry in order; `chain_start` is the hash the chain starts from (that of the
  // last pruned entry, "" when none was pruned), and `head` the last entry the writer
  // recorded (seq, 0 when none), so a deleted last entry is found too.
  Result<std::vector<AuditEntry>> AllAudit(std::string* chain_start, std::uint64_t* head);

 private:
  OutboxReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Splits a kBatch body into its readings (views into `body`).
std::vector<std::string_view> SplitBatchBody(std::string_view body);

}  // namespace vg
