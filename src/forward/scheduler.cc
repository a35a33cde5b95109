#include "vitalgate/forward/scheduler.h"

#include <algorithm>

#include "vitalgate/core/patient_directory.h"

namespace vg {
namespace {

// The public id of an item: every canonical object starts with {"id":"...".
std::string ItemId(std::string_view body) {
  constexpr std::string_view kPrefix = "{\"id\":\"";
  if (body.substr(0, kPrefix.size()) != kPrefix) return "";
  const std::size_t end = body.find('"', kPrefix.size());
  return end == std::string_view::npos ? "" : std::string(body.substr(kPrefix.size(), end - kPrefix.size()));
}

}  // namespace

std::deque<DeliveryScheduler::Item>& DeliveryScheduler::PatientQueue(const std::string& patient) {
  auto [it, added] = readings_.try_emplace(patient);
  if (added || it->second.empty()) {
    if (std::find(turns_.begin(), turns_.end(), patient) == turns_.end()) turns_.push_back(patient);
  }
  return it->second;
}

void DeliveryScheduler::AddEvents(std::vector<StoredRow> rows, DoneRows& done) {
  for (StoredRow& row : rows) {
    event_cursor_ = std::max(event_cursor_, row.seq);
    const bool audit = row.kind == EventKind::kAudit;
    if (audit ? !options_.take_audit : !options_.take_alerts) {
      done.events.push_back(row.seq);
      continue;
    }
    rows_[row.seq] = RowProgress{1, 0, true};
    events_.push_back(Whole(std::move(row), false));
  }
}

void DeliveryScheduler::AddVolatileEvent(StoredRow row) { events_.push_back(Whole(std::move(row), true)); }

DeliveryScheduler::Item DeliveryScheduler::Whole(StoredRow&& row, bool in_memory) {
  Item item;
  item.row = row.seq;
  item.size = static_cast<std::uint32_t>(row.body.size());
  item.text = std::make_shared<const std::string>(std::move(row.body));
  item.rx_ms = row.rx_ms;
  item.in_memory = in_memory;
  item.kind = row.kind == EventKind::kAudit ? DeliveryBatch::Kind::kAudit : DeliveryBatch::Kind::kAlert;
  item.patient = Name(row.patient);
  return item;
}

void DeliveryScheduler::AddBatches(std::vector<StoredRow> rows, DoneRows& done) {
  for (StoredRow& row : rows) {
    batch_cursor_ = std::max(batch_cursor_, row.seq);
    if (!options_.take_readings || (!options_.take_unassigned && IsPlaceholderPatient(row.patient))) {
      done.batches.push_back(row.seq);
      done.readings += row.count;
      continue;
    }
    std::shared_ptr<const std::string> text;
    const std::vector<std::string_view> parts = Share(row, text);
    if (parts.empty()) {
      done.batches.push_back(row.seq);
      done.readings += row.count;
      continue;
    }
    rows_[row.seq] = RowProgress{static_cast<std::uint32_t>(parts.size()), 0, false};
    std::deque<Item>& q = PatientQueue(row.patient);
    for (Item& item : Items(row, text, parts, false)) q.push_back(std::move(item));
    pending_items_ += parts.size();
  }
}

std::vector<std::string_view> DeliveryScheduler::Share(StoredRow& row,
                                                      std::shared_ptr<const std::string>& text) {
  text = std::make_shared<const std::string>(std::move(row.body));
  if (row.format == RowFormat::kBatch) return SplitBatchBody(*text);
  return {std::string_view(*text)};
}

std::vector<DeliveryScheduler::Item> DeliveryScheduler::Items(
    const StoredRow& row, const std::shared_ptr<const std::string>& text,
    const std::vector<std::string_view>& parts, bool in_memory) {
  std::vector<Item> items;
  items.reserve(parts.size());
  const std::string* name = Name(row.patient);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    Item item;
    item.row = row.seq;
    item.index = static_cast<std::uint32_t>(i);
    item.text = text;
    item.offset = static_cast<std::uint32_t>(parts[i].data() - text->data());
    item.size = static_cast<std::uint32_t>(parts[i].size());
    item.rx_ms = row.rx_ms;
    item.in_memory = in_memory;
    item.patient = name;
    items.push_back(std::move(item));
  }
  return items;
}

void DeliveryScheduler::AddVolatileBatch(StoredRow row) {
  std::shared_ptr<const std::string> text;
  const std::vector<std::string_view> parts = Share(row, text);
  if (parts.empty()) return;
  std::deque<Item>& q = PatientQueue(row.patient);
  // In seq order with what the outbox still holds for this patient.
  auto pos = std::upper_bound(q.begin(), q.end(), row.seq,
                              [](std::uint64_t seq, const Item& it) { return seq < it.row; });
  std::vector<Item> items = Items(row, text, parts, true);
  q.insert(pos, std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
  pending_items_ += parts.size();
}

bool DeliveryScheduler::MayWait(const std::deque<Item>& q, bool busy, std::int64_t since_ms,
                                std::int64_t now_ms) const {
  if (!busy || options_.linger_ms <= 0 || q.size() >= options_.max_items_per_message) return false;
  // A clock stepped back (now before the start of the wait) waits for nothing.
  return now_ms >= since_ms && now_ms - since_ms < options_.linger_ms;
}

std::int64_t DeliveryScheduler::HeldUntilMs() const {
  return held_.empty() ? 0 : held_.front().since_ms + options_.linger_ms;
}

void DeliveryScheduler::Take(std::map<std::string, std::deque<Item>>::iterator it,
                             ScheduledMessage& msg, Flight& flight) {
  const std::string& patient = it->first;
  std::deque<Item>& q = it->second;
  const std::size_t max = options_.max_items_per_message;
  std::size_t n = std::min(q.size(), max);
  if (options_.align_to_rows) {
    // Stay within the first item's row and its chunk of `max` items.
    const Item& first = q.front();
    const std::size_t chunk_end = (first.index / max + 1) * max;
    std::size_t k = 0;
    while (k < n && q[k].row == first.row && q[k].index < chunk_end) ++k;
    n = k;
  }
  msg.kind = DeliveryBatch::Kind::kReadings;
  msg.patient = patient;
  msg.oldest_rx_ms = q.front().rx_ms;
  // Into a recycled message's items where there is one: assign() reuses their buffers.
  msg.items = std::move(spare_);
  spare_.clear();
  msg.items.resize(n);
  flight.items.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    Item& item = q.front();
    msg.oldest_rx_ms = std::min(msg.oldest_rx_ms, item.rx_ms);
    OutboxRow& out = msg.items[i];
    out.seq = item.row;
    out.patient.assign(patient);
    out.body.assign(item.body());
    out.rx_ms = item.rx_ms;
    flight.items.push_back(std::move(item));
    q.pop_front();
  }
  pending_items_ -= n;
  if (q.empty()) {
    readings_.erase(it);
  } else {
    turns_.push_back(msg.patient);
  }
}

std::optional<ScheduledMessage> DeliveryScheduler::Next(bool busy, std::int64_t now_ms) {
  ScheduledMessage msg;
  Flight flight;
  if (!events_.empty()) {
    Item item = std::move(events_.front());
    events_.pop_front();
    msg.kind = item.kind;
    msg.patient = *item.patient;
    msg.oldest_rx_ms = item.rx_ms;
    msg.items.push_back(OutboxRow{item.row, *item.patient, std::string(item.body()), item.rx_ms});
    flight.items.push_back(std::move(item));
  } else {
    // Held patients whose wait is over go first: their readings are the oldest.
    while (flight.items.empty() && !held_.empty()) {
      auto it = readings_.find(held_.front().patient);
      if (it == readings_.end() || it->second.empty()) {
        held_.pop_front();
        continue;
      }
      if (MayWait(it->second, busy, held_.front().since_ms, now_ms)) break;
      held_.pop_front();
      Take(it, msg, flight);
    }
    // Then patients in turn; each is looked at once at most, and a partial message that may
    // still wait moves to the held ones.
    for (std::size_t looked = turns_.size(); flight.items.empty() && looked > 0 && !turns_.empty(); --looked) {
      std::string patient = std::move(turns_.front());
      turns_.pop_front();
      auto it = readings_.find(patient);
      if (it == readings_.end() || it->second.empty()) continue;
      if (MayWait(it->second, busy, now_ms, now_ms)) {
        held_.push_back(Held{std::move(patient), now_ms});
        continue;
      }
      Take(it, msg, flight);
    }
    if (flight.items.empty()) return std::nullopt;
  }
  msg.token = next_token_++;
  in_flight_.emplace(msg.token, std::move(flight));
  return msg;
}

void DeliveryScheduler::Finish(const Item& item, DoneRows& done) {
  if (item.in_memory) return;
  auto it = rows_.find(item.row);
  if (it == rows_.end()) return;
  RowProgress& p = it->second;
  if (++p.finished < p.count) return;
  if (p.event) {
    done.events.push_back(item.row);
  } else {
    done.batches.push_back(item.row);
    done.readings += p.count;
  }
  rows_.erase(it);
}

void DeliveryScheduler::Requeue(std::vector<Item> items) {
  // Back to the front, keeping their order: events before events, readings before the rest of
  // their patient's queue.
  for (auto it = items.rbegin(); it != items.rend(); ++it) {
    Item& item = *it;
    if (item.kind != DeliveryBatch::Kind::kReadings) {
      events_.push_front(std::move(item));
      continue;
    }
    const std::string& patient = *item.patient;
    std::deque<Item>& q = readings_[patient];
    if (q.empty() && std::find(turns_.begin(), turns_.end(), patient) == turns_.end()) {
      turns_.push_front(patient);
    }
    q.push_front(std::move(item));
    ++pending_items_;
  }
}

void DeliveryScheduler::OnOutcome(std::uint64_t token, const std::vector<RowOutcome>& outcomes,
                                  const std::string& destination, std::int64_t now_ms,
                                  DoneRows& done) {
  auto it = in_flight_.find(token);
  if (it == in_flight_.end()) return;
  Flight flight = std::move(it->second);
  in_flight_.erase(it);
  std::vector<Item> retry;
  for (std::size_t i = 0; i < flight.items.size(); ++i) {
    Item& item = flight.items[i];
    const RowOutcome::Kind kind = i < outcomes.size() ? outcomes[i].kind : RowOutcome::Kind::kDelivered;
    switch (kind) {
      case RowOutcome::Kind::kDelivered:
        Finish(item, done);
        break;
      case RowOutcome::Kind::kRejected: {
        DeadLetter d;
        d.destination = destination;
        d.kind = item.kind == DeliveryBatch::Kind::kReadings ? "reading"
                 : item.kind == DeliveryBatch::Kind::kAlert  ? "alert"
                                                             : "audit";
        d.patient = *item.patient;
        d.item_id = ItemId(item.body());
        d.reason = outcomes[i].reason;
        d.ts_ms = now_ms;
        d.body = std::string(item.body());
        done.dead_letters.push_back(std::move(d));
        Finish(item, done);
        break;
      }
      case RowOutcome::Kind::kRetry:
        retry.push_back(std::move(item));
        break;
    }
  }
  if (!retry.empty()) Requeue(std::move(retry));
  ForgetNamesIfIdle();
}

void DeliveryScheduler::ForgetNamesIfIdle() {
  // No item left to point to a name: patients come and go (transfers, discharges), so the
  // names are not kept for the life of the gateway.
  if (events_.empty() && pending_items_ == 0 && in_flight_.empty()) names_.clear();
}

void DeliveryScheduler::OnLinkLost() {
  // Newest first, so that each Requeue puts older messages in front of newer ones.
  std::vector<Item> all;
  for (auto& [token, flight] : in_flight_) {
    for (Item& item : flight.items) all.push_back(std::move(item));
  }
  in_flight_.clear();
  Requeue(std::move(all));
}

std::int64_t DeliveryScheduler::OldestRxMs() const {
  std::int64_t oldest = 0;
  auto consider = [&oldest](std::int64_t rx) {
    if (rx > 0 && (oldest == 0 || rx < oldest)) oldest = rx;
  };
  if (!events_.empty()) consider(events_.front().rx_ms);
  for (const auto& [patient, q] : readings_) {
    if (!q.empty()) consider(q.front().rx_ms);
  }
  for (const auto& [token, flight] : in_flight_) {
    for (const Item& item : flight.items) consider(item.rx_ms);
  }
  return oldest;
}

}  // namespace vg
