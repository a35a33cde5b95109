// ble transport: one Bluetooth LE health device through BlueZ's D-Bus API (service org.bluez),
// on the gateway's I/O thread. No HCI sockets: bluetoothd owns the radio, pairing and bonding.
//
// Promises:
// - Finds the device object under the adapter (ObjectManager.GetManagedObjects), connects it
//   (Device1.Connect) when it is not connected, waits for ServicesResolved, and enables
//   notifications/indications (StartNotify) on every characteristic the `gatt` codec decodes
//   (TransportContext::characteristics, from the device's codec), after the PropertiesChanged match is installed, so a device
//   that sends at once loses nothing. Every value goes to TransportSink::OnCharacteristic.
//   Battery Level (2A19) is read at connect and every `battery_poll_s`. Current Time (2A2B),
//   when the codec decodes it, is read at connect and also followed when it notifies.
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
//   records arrive (a few dozen bytes and an fsync; GlucoseRecordFetch).
// - Resources are per bus connection (4 match rules) and per attempt (pending calls and
//   timers); an attempt's are all released when it ends, so reconnecting forever does not grow.
// - Signals are accepted only from the bus name that currently owns org.bluez.
//
// This class is the connection state machine (phases, attempts, backoff, link reports). The
// pieces it drives live apart: AsioSdBus (the bus connection on the reactor), SdBusCalls (calls
// in flight, each with its completion), sd_bus_reader.h (typed message reading) and
// GlucoseRecordFetch (RACP stored records and their state file).
//
// Thread-safety: the I/O thread only (as every Transport).
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "asio_sd_bus.h"
#include "ble_protocol.h"
#include "glucose_fetch.h"
#include "sd_bus_calls.h"
#include "sd_bus_reader.h"
#include "vitalgate/core/file_system.h"
#include "vitalgate/core/log.h"
#include "vitalgate/transport/transport.h"

namespace vg {

class BleTransport final : public Transport {
 public:
  // The config's options; the initializers are the documented defaults (the option table in
  // ble.cc is generated from them).
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

  // `fs` keeps the glucose state file; it must outlive the transport.
  BleTransport(const TransportContext& ctx, Options options,
               FileSystem& fs = DefaultFileSystem());
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
  struct Characteristic {
    std::string path;
    std::uint16_t uuid = 0;
    ble::CharacteristicFlags flags;
    bool subscribed = false;  // StartNotify sent: values may arrive from now on
    bool read_pending = false;  // ReadValue sent, no reply yet
  };
  // What one GetManagedObjects reply says about the adapter, the device and its GATT.
  struct Snapshot {
    bool adapter = false;
    bool device = false;
    bool connected = false;
    bool services_resolved = false;
    std::vector<Characteristic> chars;  // the wanted ones, in handle order
  };
  // The bus connection and what belongs to it.
  struct BusLink {
    std::unique_ptr<AsioSdBus> bus;
    std::vector<SdBusSlot> match_slots;
    int matches_pending = 0;
    bool broken = false;
    std::string bluez_owner;  // unique name owning org.bluez; empty: unknown or none
  };
  // One connection attempt, from the first GetManagedObjects to the link going down.
  struct Session {
    bool connect_sent = false;
    std::vector<Characteristic> chars;
    int notify_pending = 0;
    int notify_ok = 0;
    std::string notify_error;
    std::optional<std::size_t> battery;       // read at connect and polled
    std::optional<std::size_t> current_time;  // read at connect, followed if it notifies
    std::optional<std::size_t> racp;
  };
  using Append = std::function<int(sd_bus_message*)>;

  // sd-bus callbacks; userdata is `this`.
  static int OnMatchInstalledThunk(sd_bus_message* m, void* userdata, sd_bus_error* error);
  // A signal handler `Handler` of the transport in `userdata`.
  template <void (BleTransport::*Handler)(sd_bus_message*)>
  static int SignalThunk(sd_bus_message* m, void* userdata, sd_bus_error* error);

  // The state machine.
  void Attempt();
  void OpenBus();
  void CloseBus();
  void RequestBluezOwner();
  void ListObjects();
  void Evaluate(const Snapshot& snapshot);
  void ConnectDevice();
  void Subscribe(const std::vector<Characteristic>& found);
  void LinkUp();
  void ArmSetupDeadline();
  // Ends the attempt (or the connection) and schedules the next one; `close_bus` also drops
  // the bus connection (bus errors). Safe inside sd-bus callbacks.
  void Fail(const std::string& why, bool close_bus = false);
  void EndAttempt();
  void RetrySoon();

  // Replies.
  void OnBluezOwner(sd_bus_message* reply);
  void OnObjects(sd_bus_message* reply);
  void OnConnected(sd_bus_message* reply);
  void OnNotifyStarted(std::size_t index, sd_bus_message* reply);
  void OnRead(std::size_t index, sd_bus_message* reply);

  // Values.
  // ReadValue, unless a read of the characteristic is pending; the reply goes to the sink.
  void ReadCharacteristic(std::size_t index);
  void ReadBattery();
  void ArmBatteryPoll();
  void OnValue(std::size_t index, std::span<const std::uint8_t> value);

  // Signals.
  bool FromBluez(sd_bus_message* m) const;
  void OnPropertiesChanged(sd_bus_message* m);
  void OnDevicePropertiesChanged(const sdbus::PropMap& changed);
  void OnInterfacesAdded(sd_bus_message* m);
  void OnInterfacesRemoved(sd_bus_message* m);
  void OnNameOwnerChanged(sd_bus_message* m);

  // Starts an asynchronous call whose reply goes to `on_reply` (unless the attempt ends
  // first); false (and a failed attempt) when it cannot be queued.
  bool Call(const char* destination, const char* path, const char* interface, const char* member,
            std::uint64_t timeout_us, const Append& append, SdBusCalls::OnReply on_reply);
  // Call() to org.bluez's GattCharacteristic1 `member` of characteristic `index`.
  bool CallCharacteristic(std::size_t index, const char* member, const Append& append,
                          SdBusCalls::OnReply on_reply);

  TransportContext ctx_;
  Options options_;
  std::string adapter_path_;
  std::string device_path_;
  std::vector<std::uint16_t> wanted_;

  Phase phase_ = Phase::kStopped;
  enum class LinkReport : std::uint8_t { kNone, kUp, kDown } link_report_ = LinkReport::kNone;
  Backoff backoff_;
  boost::asio::steady_timer retry_timer_;
  boost::asio::steady_timer setup_timer_;
  bool setup_armed_ = false;
  boost::asio::steady_timer battery_timer_;
  bool waiting_for_device_ = false;  // the last attempt found no device object
  std::string last_failure_;         // logged once per outage and reason

  BusLink link_;
  std::uint64_t attempt_ = 0;  // tells timers of an ended attempt apart
  Session session_;
  SdBusCalls calls_;  // after link_: released before the bus

  // Null when stored records are not fetched.
  std::unique_ptr<GlucoseRecordFetch> glucose_;

  RateLimiter value_error_log_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
