// ble transport: one Bluetooth LE health device through BlueZ's D-Bus API (service org.bluez),
// on the gateway's I/O thread. No HCI sockets: bluetoothd owns the radio, pairing and bonding.
//
// Promises:
// - Finds the device object under the adapter (ObjectManager.GetManagedObjects), connects it
//   (Device1.Connect) when it is not connected, waits for ServicesResolved, and enables
//   notifications/indications (StartNotify) on every characteristic the `gatt` codec decodes
//   (TransportContext::characteristics, from the device's codec), after the PropertiesChanged match is installed, so a device
//   that sends at once loses nothing. Every value goes to TransportSink::OnCharacteristic.
//   Battery Level (2A19) is read at connect and every `battery_poll_s`.
// - OnLink(true) once notifications are enabled; OnLink(false, why) when the device
//   disconnects, disappears, bluetoothd leaves the bus, the bus connection fails, or an attempt
//   fails. Reconnects by itself, forever, with capped exponential backoff (reset by every
//   successful connection).
// - Glucose (2A18 + Record Access Control Point 2A52): on every connection asks for the stored
//   records after the highest sequence number seen ("all records" the first time), and keeps
//   that number in `<state_dir>/ble-<address>.state` (atomic, fsync'ed, mode 0600), so a restart
//   neither loses nor repeats records (see docs/ble.md for the remaining window).
// - Never blocks the I/O thread: every D-Bus call and match installation is asynchronous (see
//   AsioSdBus). The one exception is the state file, written at most once a second while
//   records arrive (a few dozen bytes and an fsync).
// - Resources are per bus connection (4 match rules) and per attempt (pending calls and
//   timers); an attempt's are all released when it ends, so reconnecting forever does not grow.
// - Signals are accepted only from the bus name that currently owns org.bluez.
//
// Thread-safety: the I/O thread only (as every Transport).
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "asio_sd_bus.h"
#include "ble_protocol.h"
#include "vitalgate/core/log.h"
#include "vitalgate/transport/transport.h"

namespace vg {

class BleTransport final : public Transport {
 public:
  struct Options {
    std::string address;  // canonical: upper case
    std::string adapter = "hci0";
    std::string bus = "system";
    std::int64_t reconnect_min_ms = 1000;
    std::int64_t reconnect_max_ms = 60000;
    std::int64_t connect_timeout_ms = 20000;
    std::int64_t battery_poll_s = 300;  // 0: read at connect only
    bool fetch_stored_records = true;
  };

  BleTransport(const TransportContext& ctx, Options options);
  ~BleTransport() override;

  void Start() override;
  void Stop() override;

  static std::span<const OptionSpec> Specs();
  // REQUIRES: `o` validated against Specs(). Checks what the table cannot (address format,
  // adapter name, bus address, backoff bounds); `path` names the object in messages.
  static Result<Options> ParseOptions(const nlohmann::json& o, std::string_view path);
  static Result<std::unique_ptr<Transport>> Make(const TransportContext& ctx,
                                                 const nlohmann::json& o);
  static Status Check(const nlohmann::json& options, std::string_view path);

 private:
  enum class Phase : std::uint8_t {
    kStopped,
    kBackoff,      // waiting for the retry timer
    kOpening,      // bus connection: installing match rules, asking who owns org.bluez
    kListing,      // first GetManagedObjects of an attempt
    kConnecting,   // Device1.Connect pending
    kResolving,    // connected, waiting for ServicesResolved
    kSubscribing,  // StartNotify calls pending
    kUp,
  };
  enum class CallKind : std::uint8_t {
    kGetNameOwner,
    kListObjects,
    kConnect,
    kStartNotify,
    kReadBattery,
    kWriteRacp,
  };
  struct Characteristic {
    std::string path;
    std::uint16_t uuid = 0;
    ble::CharacteristicFlags flags;
    bool subscribed = false;  // StartNotify sent: values may arrive from now on
  };
  struct Snapshot;
  // One pending asynchronous method call. Lives in calls_ (then retired_) so its address is
  // stable for sd-bus's userdata; `attempt` tells replies of an ended attempt apart.
  struct Call {
    BleTransport* self = nullptr;
    CallKind kind = CallKind::kListObjects;
    std::size_t index = 0;  // characteristic index for per-characteristic calls
    std::uint64_t attempt = 0;
    SdBusSlot slot;
  };

  // sd-bus callbacks (C linkage-compatible trampolines); userdata is `this` or a Call.
  static int OnReplyThunk(sd_bus_message* m, void* userdata, sd_bus_error* error);
  static int OnMatchInstalledThunk(sd_bus_message* m, void* userdata, sd_bus_error* error);
  // A signal handler `Handler` of the transport in `userdata`.
  template <void (BleTransport::*Handler)(sd_bus_message*)>
  static int SignalThunk(sd_bus_message* m, void* userdata, sd_bus_error* error);

  void Attempt();
  void OpenBus();
  void CloseBus();
  void RequestBluezOwner();
  void ListObjects();
  void OnObjects(sd_bus_message* reply);
  void Evaluate(const Snapshot& snapshot);
  void ConnectDevice();
  void Subscribe(const std::vector<Characteristic>& found);
  void LinkUp();
  void ReadBattery();
  void ArmBatteryPoll();
  void StartRacp();
  void OnValue(std::size_t index, std::span<const std::uint8_t> value);
  void OnGlucoseRecord(std::span<const std::uint8_t> value);
  void OnRacpIndication(std::span<const std::uint8_t> value);
  void ArmRacpIdleTimer();
  void FinishRacp();
  void OnReply(CallKind kind, std::size_t index, sd_bus_message* reply);
  void OnPropertiesChanged(sd_bus_message* m);
  void OnInterfacesAdded(sd_bus_message* m);
  void OnInterfacesRemoved(sd_bus_message* m);
  void OnNameOwnerChanged(sd_bus_message* m);

  // Starts an asynchronous call; false (and a failed attempt) when it cannot be queued.
  bool StartCall(CallKind kind, std::size_t index, const char* destination, const char* path,
                 const char* interface, const char* member, std::uint64_t timeout_us,
                 int (*append)(sd_bus_message*, const void*) = nullptr, const void* arg = nullptr);
  bool FromBluez(sd_bus_message* m) const;
  void ArmSetupDeadline();
  // Ends the attempt (or the connection) and schedules the next one; `close_bus` also drops
  // the bus connection (bus errors). Safe inside sd-bus callbacks.
  void Fail(const std::string& why, bool close_bus = false);
  void EndAttempt();
  void ScheduleCleanup();
  void RetrySoon();
  void MarkStateDirty();
  void PersistState();

  TransportContext ctx_;
  Options options_;
  std::string adapter_path_;
  std::string device_path_;
  std::string state_path_;  // empty: no state directory, nothing kept
  std::vector<std::uint16_t> wanted_;

  Phase phase_ = Phase::kStopped;
  enum class LinkReport : std::uint8_t { kNone, kUp, kDown } link_report_ = LinkReport::kNone;
  Backoff backoff_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer setup_timer_;
  bool setup_armed_ = false;
  boost::asio::steady_timer battery_timer_;
  boost::asio::steady_timer racp_timer_;
  boost::asio::steady_timer persist_timer_;
  bool persist_armed_ = false;

  // Per bus connection.
  std::unique_ptr<AsioSdBus> bus_;
  std::vector<SdBusSlot> match_slots_;
  int matches_pending_ = 0;
  bool bus_broken_ = false;
  std::string bluez_owner_;          // unique name owning org.bluez; empty: unknown or none
  bool waiting_for_device_ = false;  // the last attempt found no device object
  std::string last_failure_;         // logged once per outage and reason

  // Per attempt.
  std::uint64_t attempt_ = 0;
  std::list<Call> calls_;
  std::list<Call> retired_;
  bool cleanup_posted_ = false;
  bool connect_sent_ = false;
  std::vector<Characteristic> chars_;
  int notify_pending_ = 0;
  int notify_ok_ = 0;
  std::string notify_error_;
  std::optional<std::size_t> battery_index_;
  bool battery_pending_ = false;
  std::optional<std::size_t> racp_index_;
  bool racp_active_ = false;
  std::uint32_t racp_records_ = 0;
  std::uint32_t racp_skipped_ = 0;
  std::optional<std::uint16_t> racp_seen_up_to_;  // records up to here are skipped
  // A glucose record went to a saturated pipeline this connection: the saved position stays.
  bool glucose_position_held_ = false;

  // Survives attempts and restarts (the state file).
  ble::BleState state_;
  bool state_dirty_ = false;

  RateLimiter value_error_log_;
  RateLimiter state_error_log_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
