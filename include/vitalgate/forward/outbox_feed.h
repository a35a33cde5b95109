// OutboxFeed: reads what one destination has not acknowledged from the outbox (its own
// read-only connection), opens sealed bodies, and hands the rows to the destination's
// DeliveryScheduler: new events whenever the store committed some, readings while the
// scheduler wants more. Shared by every destination type.
//
// Thread-safety: one destination thread owns a feed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/log.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/forward/scheduler.h"
#include "vitalgate/store/outbox.h"

namespace vg {

struct OutboxFeedOptions {
  std::string store_path;  // empty: no outbox (nothing to read)
  std::string store_vfs;
  int bit = 0;  // the destination's acknowledgement bit
  std::optional<AeadKey> at_rest_key;
  std::string name;  // for messages
};

class OutboxFeed {
 public:
  OutboxFeed(OutboxFeedOptions options, const Clock& clock, const GatewayStats& stats)
      : options_(std::move(options)), clock_(clock), stats_(stats) {}

  // Reads what is new into `scheduler`; rows it filters out or cannot open land in `done`.
  void Refill(DeliveryScheduler& scheduler, DoneRows& done);
  // Rows the store holds only in memory while its commits fail, opened like stored ones: a
  // reading row that cannot be read becomes a dead letter in `done` (nothing to delete).
  void AddInMemory(std::vector<StoredRow> events, std::vector<StoredRow> batches,
                   DeliveryScheduler& scheduler, DoneRows& done);
  // Oldest receive time of what this destination has not acknowledged, from the outbox (0:
  // nothing); nullopt when it cannot be read now.
  std::optional<std::int64_t> OldestUnackedRxMs();
  std::optional<OutboxReader::Backlog> Backlog();

 private:
  bool EnsureReader();
  // Opens a sealed body in place; false (logged, counted) when it cannot be opened.
  bool Unseal(StoredRow& row, bool event);
  // Turns a compact reading row into its JSON text; false (logged) when it is damaged.
  bool Expand(StoredRow& row);
  DeadLetter DeadLetterOf(const StoredRow& row, bool event, std::string reason) const;

  OutboxFeedOptions options_;
  const Clock& clock_;
  const GatewayStats& stats_;
  std::unique_ptr<OutboxReader> reader_;
  std::int64_t next_reader_attempt_ns_ = 0;
  bool events_dirty_ = true;
  bool batches_dirty_ = true;
  std::uint64_t seen_event_commits_ = ~0ull;
  std::uint64_t seen_batch_commits_ = ~0ull;
  RateLimiter error_log_;
  std::uint64_t errors_suppressed_ = 0;
};

}  // namespace vg
