#include "vitalgate/forward/outbox_feed.h"

#include <spdlog/spdlog.h>

#include "vitalgate/core/compact_row.h"

namespace vg {
namespace {

constexpr std::int64_t kMsNs = 1'000'000;
constexpr std::size_t kEventsPerRead = 64;
constexpr std::size_t kBatchesPerRead = 256;

}  // namespace

bool OutboxFeed::EnsureReader() {
  if (reader_) return true;
  if (options_.store_path.empty()) return false;
  const std::int64_t now = clock_.MonotonicNs();
  if (now < next_reader_attempt_ns_) return false;
  next_reader_attempt_ns_ = now + 1000 * kMsNs;
  auto reader = OutboxReader::Open(options_.store_path, options_.store_vfs);
  if (!reader.ok()) {
    if (error_log_.Allow(now, errors_suppressed_)) {
      spdlog::warn("{}: cannot read the outbox: {}", options_.name, reader.status().message());
    }
    return false;
  }
  reader_ = std::move(*reader);
  events_dirty_ = batches_dirty_ = true;
  return true;
}

bool OutboxFeed::Unseal(StoredRow& row, bool event) {
  if (!row.body.empty() && row.body.front() == '{') return true;  // stored in clear
  if (row.format == RowFormat::kCompact && IsCompactRow(row.body)) return true;
  if (options_.at_rest_key) {
    auto sealed = AeadUnpack(row.body);
    if (sealed.ok()) {
      auto plain = AeadOpen(*options_.at_rest_key, BodyAad(event, row.format, row.seq), *sealed);
      if (plain.ok()) {
        row.body = std::move(*plain);
        return true;
      }
    }
  }
  if (error_log_.Allow(clock_.MonotonicNs(), errors_suppressed_)) {
    spdlog::error("{}: an outbox row cannot be decrypted (key changed or row damaged); skipped",
                  options_.name);
  }
  return false;
}

bool OutboxFeed::Expand(StoredRow& row) {
  if (row.format != RowFormat::kCompact) return true;
  auto text = ExpandCompactRow(row.body, row.count);
  if (!text.ok()) {
    if (error_log_.Allow(clock_.MonotonicNs(), errors_suppressed_)) {
      spdlog::error("{}: reading row {} cannot be read ({}); kept as a dead letter", options_.name,
                    row.seq, text.status().message());
    }
    return false;
  }
  row.body = std::move(*text);
  row.format = RowFormat::kBatch;
  return true;
}

DeadLetter OutboxFeed::DeadLetterOf(const StoredRow& row, bool event, std::string reason) const {
  DeadLetter d;
  d.destination = options_.name;
  d.kind = event ? "alert" : "reading";
  d.patient = row.patient;
  d.reason = std::move(reason);
  d.ts_ms = clock_.WallMs();
  d.body = row.body;
  return d;
}

void OutboxFeed::AddInMemory(std::vector<StoredRow> events, std::vector<StoredRow> batches,
                             DeliveryScheduler& scheduler, DoneRows& done) {
  for (StoredRow& row : events) scheduler.AddVolatileEvent(std::move(row));
  for (StoredRow& row : batches) {
    if (Expand(row)) {
      scheduler.AddVolatileBatch(std::move(row));
    } else {
      // Counted and kept like a damaged stored row; there is no row to delete.
      done.dead_letters.push_back(DeadLetterOf(row, false, "the row held in memory is damaged"));
    }
  }
}

void OutboxFeed::Refill(DeliveryScheduler& scheduler, DoneRows& done) {
  // Commits since the last look say whether there is anything new to read.
  const std::uint64_t events = stats_.alerts_committed.load(std::memory_order_acquire);
  if (events != seen_event_commits_) {
    seen_event_commits_ = events;
    events_dirty_ = true;
  }
  const std::uint64_t readings = stats_.readings_committed.load(std::memory_order_acquire);
  if (readings != seen_batch_commits_) {
    seen_batch_commits_ = readings;
    batches_dirty_ = true;
  }
  if (!(events_dirty_ && !scheduler.HasEvents()) && !(batches_dirty_ && scheduler.WantsBatches())) {
    return;
  }
  if (!EnsureReader()) return;
  auto read = [&](bool event) {
    std::vector<StoredRow> rows;
    const std::uint64_t after = event ? scheduler.event_cursor() : scheduler.batch_cursor();
    const std::size_t limit = event ? kEventsPerRead : kBatchesPerRead;
    const Status s = event ? reader_->ReadEvents(options_.bit, after, limit, rows)
                           : reader_->ReadBatches(options_.bit, after, limit, rows);
    if (!s.ok()) {
      if (error_log_.Allow(clock_.MonotonicNs(), errors_suppressed_)) {
        spdlog::error("{}: reading the outbox: {}", options_.name, s.message());
      }
      return;
    }
    (event ? events_dirty_ : batches_dirty_) = rows.size() == limit;
    std::vector<StoredRow> open;
    open.reserve(rows.size());
    for (StoredRow& row : rows) {
      std::string reason;
      if (!Unseal(row, event)) {
        reason = "the stored row cannot be decrypted with the configured key";
      } else if (!Expand(row)) {
        reason = "the stored row is damaged";
      }
      if (reason.empty()) {
        open.push_back(std::move(row));
      } else {
        // Cannot ever be delivered: keep it for inspection, never block the rest.
        done.dead_letters.push_back(DeadLetterOf(row, event, std::move(reason)));
        (event ? done.events : done.batches).push_back(row.seq);
        if (!event) done.readings += row.count;
      }
    }
    if (event) {
      scheduler.AddEvents(std::move(open), done);
    } else {
      scheduler.AddBatches(std::move(open), done);
    }
    if (!rows.empty()) {
      const std::uint64_t last = rows.back().seq;
      if (event) {
        scheduler.AdvanceEventCursor(last);
      } else {
        scheduler.AdvanceBatchCursor(last);
      }
    }
  };
  if (events_dirty_ && !scheduler.HasEvents()) read(true);
  if (batches_dirty_ && scheduler.WantsBatches()) read(false);
}

std::optional<std::int64_t> OutboxFeed::OldestUnackedRxMs() {
  if (!EnsureReader()) return std::nullopt;
  auto oldest = reader_->OldestUnackedRxMs(options_.bit);
  if (!oldest.ok()) return std::nullopt;
  return *oldest;
}

std::optional<OutboxReader::Backlog> OutboxFeed::Backlog() {
  if (!EnsureReader()) return std::nullopt;
  auto b = reader_->CountUnacked(options_.bit);
  if (!b.ok()) return std::nullopt;
  return *b;
}

}  // namespace vg
