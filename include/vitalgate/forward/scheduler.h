// DeliveryScheduler: what one destination sends next. Pure: no I/O, no clock, no thread; the
// destination (MQTT forwarder or request destination) feeds it stored rows and tells it what
// the far end acknowledged, and it answers with messages to send and rows that are done.
//
// Promises, per destination:
// - Alert and audit events go before any reading (a new alert overtakes a readings backlog).
// - Each patient's readings go out in the order they were accepted, oldest first, and patients
//   take turns so one patient's backlog does not hold the others back.
// - At least once: a row is reported done only when every item of it was acknowledged (or
//   rejected for good: then it is reported as a dead letter). What was in flight when the link
//   broke goes back to the front of its queue, in order (OnLinkLost).
// - Rows of another kind than the destination takes are done at once (filtered, not sent).
//
// Thread-safety: none; one destination thread owns a scheduler.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "vitalgate/forward/destination.h"
#include "vitalgate/store/outbox.h"

namespace vg {

struct SchedulerOptions {
  std::size_t max_items_per_message = 100;  // readings of one patient in one message
  // Messages never span two stored rows and start at multiples of max_items_per_message from
  // the start of their row, so a message resent after a restart has the same items (HL7
  // MSH-10 stays the same for the same content).
  bool align_to_rows = false;
  bool take_readings = true;
  bool take_alerts = true;
  bool take_audit = true;
  bool take_unassigned = true;  // readings of devices without a patient
  std::size_t max_pending_items = 16384;  // read ahead at most this many readings
  // While other messages are in flight, a patient's partial message of readings (fewer than
  // max_items_per_message) waits up to this long for more readings. A busy link then carries
  // fewer, fuller messages; an idle one sends at once. 0: never wait.
  std::int64_t linger_ms = 0;
};

// One message to send: one event, or readings of one patient.
struct ScheduledMessage {
  std::uint64_t token = 0;
  DeliveryBatch::Kind kind = DeliveryBatch::Kind::kReadings;
  std::string patient;
  std::vector<OutboxRow> items;  // each item's body is one JSON object; seq = its stored row
  std::int64_t oldest_rx_ms = 0;
};

// Rows this destination is done with, for the store.
struct DoneRows {
  std::vector<std::uint64_t> batches;
  std::vector<std::uint64_t> events;
  std::vector<DeadLetter> dead_letters;
  std::uint64_t readings = 0;  // readings in `batches`, for counters
  bool empty() const { return batches.empty() && events.empty() && dead_letters.empty(); }
};

class DeliveryScheduler {
 public:
  explicit DeliveryScheduler(SchedulerOptions options) : options_(options) {}
  // Not copyable: queued items point to this scheduler's names (moving keeps them valid).
  DeliveryScheduler(const DeliveryScheduler&) = delete;
  DeliveryScheduler& operator=(const DeliveryScheduler&) = delete;
  DeliveryScheduler(DeliveryScheduler&&) = default;
  DeliveryScheduler& operator=(DeliveryScheduler&&) = default;

  // Stored rows, opened (unsealed, reading rows expanded into their JSON text: see OutboxFeed),
  // in seq order (events and batches separately; each call continues the previous one). Rows
  // this destination does not take are returned as done at once.
  void AddEvents(std::vector<StoredRow> rows, DoneRows& done);
  void AddBatches(std::vector<StoredRow> rows, DoneRows& done);
  // Rows held only in memory (the store is failing): delivered like stored ones, never
  // reported as done (there is nothing to delete).
  void AddVolatileEvent(StoredRow row);
  void AddVolatileBatch(StoredRow row);

  // Rows up to `seq` were read (including rows that could not be opened).
  void AdvanceEventCursor(std::uint64_t seq) { event_cursor_ = std::max(event_cursor_, seq); }
  void AdvanceBatchCursor(std::uint64_t seq) { batch_cursor_ = std::max(batch_cursor_, seq); }
  std::uint64_t event_cursor() const { return event_cursor_; }
  std::uint64_t batch_cursor() const { return batch_cursor_; }
  // True when the read-ahead queues have room for more readings.
  bool WantsBatches() const { return pending_items_ < options_.max_pending_items; }
  bool HasEvents() const { return !events_.empty(); }
  bool HasReadings() const { return pending_items_ > 0; }
  std::size_t in_flight() const { return in_flight_.size(); }
  // Patient names held for queued and in-flight items (none once everything is done).
  std::size_t names_held() const { return names_.size(); }

  // The next message, or nullopt when nothing is queued or ready. Events first. `busy`: other
  // messages are in flight, so partial messages of readings may wait (linger_ms); `now_ms`:
  // a monotonic time, in the same clock for every call.
  std::optional<ScheduledMessage> Next(bool busy = false, std::int64_t now_ms = 0);
  // The items of a message the caller is done with (rendered and handed to the link): the
  // next message of readings reuses them, so their text buffers keep their capacity and a
  // message costs no allocation per reading.
  void Recycle(std::vector<OutboxRow> items) { spare_ = std::move(items); }
  // When the first waiting partial message is due (in the clock of `now_ms`), or 0 when none
  // waits.
  std::int64_t HeldUntilMs() const;
  // The far end's verdict on a message (one outcome per item, or all delivered when
  // `outcomes` is empty). kRetry items go back to the front of their queue.
  void OnOutcome(std::uint64_t token, const std::vector<RowOutcome>& outcomes,
                 const std::string& destination, std::int64_t now_ms, DoneRows& done);
  // The link broke: everything in flight goes back to the front of its queue, in order.
  void OnLinkLost();
  // The oldest receive time queued or in flight; 0 when nothing is waiting.
  std::int64_t OldestRxMs() const;

 private:
  struct Item {
    std::uint64_t row = 0;     // stored row seq
    // The item's JSON object: [offset, offset + size) of its row's body, which the row's items
    // share (one allocation per stored row, not per reading).
    std::shared_ptr<const std::string> text;
    std::uint32_t offset = 0;
    std::uint32_t size = 0;
    std::uint32_t index = 0;   // position in the row
    bool in_memory = false;
    DeliveryBatch::Kind kind = DeliveryBatch::Kind::kReadings;
    std::int64_t rx_ms = 0;
    const std::string* patient = nullptr;  // in names_: one copy per patient, not per reading
    std::string_view body() const { return std::string_view(*text).substr(offset, size); }
  };
  struct RowProgress {
    std::uint32_t count = 0;
    std::uint32_t finished = 0;  // delivered or rejected
    bool event = false;
  };
  struct Flight {
    std::vector<Item> items;
  };

  // The items of `row`, one per part of `text` (its body, shared by them).
  std::vector<Item> Items(const StoredRow& row, const std::shared_ptr<const std::string>& text,
                          const std::vector<std::string_view>& parts, bool in_memory);
  // A row's body, shared, and its parts: one JSON object per reading (kBatch) or the whole body.
  static std::vector<std::string_view> Share(StoredRow& row, std::shared_ptr<const std::string>& text);
  Item Whole(StoredRow&& row, bool in_memory);
  // The scheduler's one copy of a patient's name, for its items. Kept while any item may point
  // to it: all names are dropped whenever nothing is queued or in flight (ForgetNamesIfIdle).
  const std::string* Name(const std::string& patient) { return &*names_.insert(patient).first; }
  void ForgetNamesIfIdle();
  void Finish(const Item& item, DoneRows& done);
  void Requeue(std::vector<Item> items);
  std::deque<Item>& PatientQueue(const std::string& patient);
  // True when `q`, a partial message held since `since_ms`, may still wait for more readings.
  bool MayWait(const std::deque<Item>& q, bool busy, std::int64_t since_ms, std::int64_t now_ms) const;
  // Moves up to max_items_per_message of `patient`'s readings into a message.
  void Take(std::map<std::string, std::deque<Item>>::iterator it, ScheduledMessage& msg, Flight& flight);

  SchedulerOptions options_;
  std::uint64_t event_cursor_ = 0;
  std::uint64_t batch_cursor_ = 0;
  std::uint64_t next_token_ = 1;
  std::deque<Item> events_;
  std::map<std::string, std::deque<Item>> readings_;  // per patient, in order
  std::deque<std::string> turns_;                    // patients with queued readings
  struct Held {
    std::string patient;
    std::int64_t since_ms = 0;
  };
  std::deque<Held> held_;  // patients whose partial message waits, in the order held
  std::size_t pending_items_ = 0;
  std::set<std::string> names_;  // see Name()
  std::vector<OutboxRow> spare_;  // a sent message's items, for the next message (Recycle)
  std::unordered_map<std::uint64_t, RowProgress> rows_;  // stored rows with items not finished
  std::map<std::uint64_t, Flight> in_flight_;             // by token (send order)
};

}  // namespace vg
