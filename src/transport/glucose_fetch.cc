#include "glucose_fetch.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace vg {

GlucoseRecordFetch::GlucoseRecordFetch(const TransportContext& ctx, FileSystem& fs,
                                       std::string address, Timing timing)
    : ctx_(ctx),
      fs_(fs),
      address_(std::move(address)),
      timing_(timing),
      idle_timer_(*ctx.io),
      persist_timer_(*ctx.io) {
  if (ctx_.state_dir.empty()) return;
  state_path_ = ctx_.state_dir + "/" + ble::StateFileName(address_);
  auto loaded = ble::LoadBleState(fs_, state_path_, address_);
  if (loaded.ok()) {
    state_ = *loaded;
  } else {
    // Starting empty re-fetches stored records (duplicates a consumer can spot by device
    // time) instead of silently skipping some.
    spdlog::error("device {}: {}; starting without glucose record history", ctx_.device_id,
                  loaded.status().message());
  }
}

GlucoseRecordFetch::~GlucoseRecordFetch() {
  alive_.reset();
  idle_timer_.cancel();
  persist_timer_.cancel();
}

std::vector<std::uint8_t> GlucoseRecordFetch::Begin() {
  std::optional<std::uint16_t> from;
  if (state_.glucose_last_sequence) {
    // At the top of the range there is nothing "after" to ask for; asking for >= 0xFFFF and
    // dropping what was seen keeps the request valid.
    from = static_cast<std::uint16_t>(
        std::min<std::uint32_t>(*state_.glucose_last_sequence + 1u, 0xFFFFu));
  }
  ++transfer_;
  active_ = true;
  received_ = 0;
  skipped_ = 0;
  seen_up_to_ = state_.glucose_last_sequence;
  if (from) {
    spdlog::info("device {}: glucose: asking for stored records from sequence number {}",
                 ctx_.device_id, *from);
  } else {
    spdlog::info("device {}: glucose: asking for all stored records", ctx_.device_id);
  }
  ArmIdleTimer();
  return ble::RacpReportStoredRecords(from);
}

void GlucoseRecordFetch::OnRequestRefused(const std::string& why) {
  if (!active_) return;
  spdlog::warn("device {}: glucose: stored-record request refused: {}", ctx_.device_id, why);
  Finish();
}

void GlucoseRecordFetch::ArmIdleTimer() {
  idle_timer_.expires_after(timing_.idle_timeout);
  std::weak_ptr<bool> alive = alive_;
  const std::uint64_t transfer = transfer_;
  idle_timer_.async_wait([this, alive, transfer](const boost::system::error_code& ec) {
    if (ec || alive.expired() || transfer != transfer_ || !active_) return;
    spdlog::warn(
        "device {}: glucose: no RACP record or response for {} ms after {} records; "
        "giving up until the next connection",
        ctx_.device_id, timing_.idle_timeout.count(), received_);
    Finish();
  });
}

void GlucoseRecordFetch::Finish() {
  active_ = false;
  idle_timer_.cancel();
  Persist();
}

void GlucoseRecordFetch::OnRacpIndication(std::span<const std::uint8_t> value) {
  auto parsed = ble::ParseRacpIndication(value);
  if (!parsed.ok()) {
    spdlog::warn("device {}: glucose: ignored RACP indication: {}", ctx_.device_id,
                 parsed.status().message());
    return;
  }
  // A late response (after the idle timeout gave up) ends nothing: the transfer is over.
  if (!active_) return;
  if (parsed->op != ble::RacpOpCode::kResponseCode) return;  // a count; we never ask for one
  if (parsed->request_op != static_cast<std::uint8_t>(ble::RacpOpCode::kReportStoredRecords)) {
    return;
  }
  const auto code = static_cast<ble::RacpResponseCode>(parsed->response);
  if (code == ble::RacpResponseCode::kSuccess) {
    spdlog::info("device {}: glucose: {} stored records received{}", ctx_.device_id, received_,
                 skipped_ > 0 ? " (" + std::to_string(skipped_) + " already seen, skipped)"
                              : std::string());
  } else if (code == ble::RacpResponseCode::kNoRecordsFound) {
    spdlog::info("device {}: glucose: no new stored records", ctx_.device_id);
  } else {
    spdlog::warn("device {}: glucose: stored-record request answered \"{}\" after {} records",
                 ctx_.device_id, ble::RacpResponseName(parsed->response), received_);
  }
  Finish();
}

void GlucoseRecordFetch::OnRecord(std::span<const std::uint8_t> value) {
  const auto seq = ble::GlucoseSequenceNumber(value);
  if (active_) {
    ArmIdleTimer();  // the transfer is alive
    // A meter that ignores the filter must not repeat what the pipeline already has.
    if (seq && seen_up_to_ && *seq <= *seen_up_to_) {
      ++skipped_;
      return;
    }
    ++received_;
  }
  // Nothing else feeds the ingress ring between this check and the push (one I/O thread), and
  // an unsaturated ring has room for more than one item: only a saturated one may drop it.
  const bool may_be_dropped = ctx_.sink->Saturated();
  if (may_be_dropped && !position_held_ && seq) {
    spdlog::warn("device {}: glucose: pipeline full; records from sequence number {} are "
                 "fetched again at the next connection",
                 ctx_.device_id, *seq);
  }
  ctx_.sink->OnCharacteristic(ble::kUuidGlucoseMeasurement, value);
  if (ble::AdvanceGlucosePosition(state_, seq, may_be_dropped, position_held_)) MarkDirty();
}

void GlucoseRecordFetch::EndConnection() {
  ++transfer_;
  active_ = false;
  idle_timer_.cancel();
  position_held_ = false;  // the next connection asks again from the saved position
  Persist();
}

void GlucoseRecordFetch::Stop() {
  EndConnection();
  persist_timer_.cancel();
  persist_armed_ = false;
}

void GlucoseRecordFetch::MarkDirty() {
  if (state_path_.empty()) return;
  dirty_ = true;
  if (persist_armed_) return;
  persist_armed_ = true;
  persist_timer_.expires_after(timing_.persist_delay);
  std::weak_ptr<bool> alive = alive_;
  persist_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (alive.expired()) return;
    persist_armed_ = false;
    if (!ec) Persist();
  });
}

void GlucoseRecordFetch::Persist() {
  if (!dirty_ || state_path_.empty()) return;
  dirty_ = false;
  const Status s = ble::SaveBleState(fs_, state_path_, address_, state_);
  if (s.ok()) return;
  dirty_ = true;  // tried again with the next record, at the end of the transfer and at stop
  std::uint64_t suppressed = 0;
  if (error_log_.Allow(ctx_.clock->MonotonicNs(), suppressed)) {
    spdlog::error("device {}: cannot save the glucose record position: {}", ctx_.device_id,
                  s.message());
  }
}

}  // namespace vg
