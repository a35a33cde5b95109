// GlucoseRecordFetch: the stored glucose records of one BLE meter (Glucose Service: Record
// Access Control Point 2A52 and Glucose Measurement 2A18), fetched on every connection without
// losing or repeating any across reconnects and gateway restarts.
//
// Promises:
// - Begin() (a connection is up, 2A18 notifies and the RACP indicates) returns the RACP request
//   to write: "all records" the first time, afterwards the records from the one after the
//   highest sequence number seen ("greater than or equal to", filter: sequence number).
// - Every 2A18 value goes to the sink (OnCharacteristic(0x2A18, value)); during a transfer a
//   record at or below the position it started from is skipped (meters that ignore the
//   filter). The position moves past each record handed to an unsaturated pipeline. A record
//   handed to a saturated one may be dropped there: the position then stays where it is for
//   the rest of the connection, so that record and all after it are fetched again at the next
//   connection (a duplicate at worst, never a loss).
// - The position is kept in `<state_dir>/ble-<ADDRESS>.state` (JSON, mode 0600) through the
//   FileSystem seam, written atomically at most once per `persist_delay` while records arrive,
//   and at the end of a transfer, of a connection and at Stop(). A failed write is logged
//   (rate-limited) and tried again at the next of those moments; until one succeeds a restart
//   re-fetches from the last position written. An unreadable or damaged state file is logged
//   and treated as empty: everything is fetched again rather than anything skipped.
// - A transfer ends with the RACP response, with a refused write (OnRequestRefused), after
//   `idle_timeout` without a record or response, or with the connection (EndConnection).
//
// Without a state directory (TransportContext::state_dir empty) nothing is kept, and every
// gateway start fetches all stored records again.
//
// Thread-safety: the I/O thread only. Timers run on ctx.io; the destructor cancels them and
// writes nothing (the owner calls Stop() first for a clean shutdown; a destruction without it
// is what a crash looks like to the state file).
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ble_protocol.h"
#include "vitalgate/core/file_system.h"
#include "vitalgate/core/log.h"
#include "vitalgate/transport/transport.h"

namespace vg {

class GlucoseRecordFetch {
 public:
  struct Timing {
    // A transfer that sends nothing for this long is given up (the link stays up).
    std::chrono::milliseconds idle_timeout{30000};
    // State file writes are coalesced while records stream in.
    std::chrono::milliseconds persist_delay{1000};
  };

  // `address`: the device's canonical address (names the state file and is recorded in it).
  // Loads the state file at once.
  GlucoseRecordFetch(const TransportContext& ctx, FileSystem& fs, std::string address,
                     Timing timing);
  GlucoseRecordFetch(const TransportContext& ctx, FileSystem& fs, std::string address)
      : GlucoseRecordFetch(ctx, fs, std::move(address), Timing{}) {}
  ~GlucoseRecordFetch();
  GlucoseRecordFetch(const GlucoseRecordFetch&) = delete;
  GlucoseRecordFetch& operator=(const GlucoseRecordFetch&) = delete;

  // The state file's path; empty when nothing is kept across restarts.
  const std::string& state_path() const { return state_path_; }
  // The highest sequence number handed on (and to be saved), if any.
  std::optional<std::uint16_t> last_sequence() const { return state_.glucose_last_sequence; }
  bool transfer_active() const { return active_; }

  // Starts a transfer on a new connection; returns the RACP request to write (with response).
  std::vector<std::uint8_t> Begin();
  // The RACP write was answered with an error: the transfer is over.
  void OnRequestRefused(const std::string& why);
  // An indication on the RACP (2A52).
  void OnRacpIndication(std::span<const std::uint8_t> value);
  // A Glucose Measurement (2A18) value, stored or live.
  void OnRecord(std::span<const std::uint8_t> value);
  // The connection ended: the transfer with it; the position is saved, and the next
  // connection asks again from it.
  void EndConnection();
  // EndConnection() and no more timers. Start again with Begin() on the next connection.
  void Stop();

 private:
  void ArmIdleTimer();
  void Finish();
  void MarkDirty();
  void Persist();

  TransportContext ctx_;
  FileSystem& fs_;
  std::string address_;
  Timing timing_;
  std::string state_path_;
  ble::BleState state_;
  bool dirty_ = false;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer persist_timer_;
  bool persist_armed_ = false;

  // The current transfer.
  std::uint64_t transfer_ = 0;  // tells a stale idle timer apart
  bool active_ = false;
  std::uint32_t received_ = 0;
  std::uint32_t skipped_ = 0;
  std::optional<std::uint16_t> seen_up_to_;  // records up to here are skipped
  // A record went to a saturated pipeline this connection: the saved position stays.
  bool position_held_ = false;

  RateLimiter error_log_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
