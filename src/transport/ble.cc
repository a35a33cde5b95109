#include "ble.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "sd_bus_reader.h"
#include "vitalgate/core/option_table.h"

namespace vg {
namespace {

using sdbus::PropMap;
using sdbus::PropValue;

constexpr const char* kBluez = "org.bluez";
constexpr const char* kDbusName = "org.freedesktop.DBus";
constexpr const char* kDbusPath = "/org/freedesktop/DBus";
constexpr const char* kObjectManager = "org.freedesktop.DBus.ObjectManager";
constexpr const char* kAdapterIface = "org.bluez.Adapter1";
constexpr const char* kDeviceIface = "org.bluez.Device1";
constexpr const char* kCharIface = "org.bluez.GattCharacteristic1";

// Calls that talk to bluetoothd only (no radio traffic) and those that wait for the device.
constexpr std::uint64_t kLocalCallTimeoutUs = 10'000'000;
constexpr std::uint64_t kGattCallTimeoutUs = 30'000'000;  // the ATT transaction timeout

using Options = BleTransport::Options;

// The option table bound to BleTransport::Options, whose initializers are the defaults.
const OptionTable<Options>& Table() {
  static const OptionTable<Options> table = [] {
    OptionTable<Options> t;
    t.Add(&Options::address,
          {.name = "address",
           .help = "Device address AA:BB:CC:DD:EE:FF, as `bluetoothctl devices` shows it.",
           .required = true});
    t.Add(&Options::adapter,
          {.name = "adapter", .help = "BlueZ adapter the device is paired on."});
    t.Add(&Options::bus,
          {.name = "bus",
           .help = "D-Bus to reach BlueZ on: \"system\" (honours DBUS_SYSTEM_BUS_ADDRESS) or an "
                   "address such as \"unix:path=/run/x\"."});
    t.Add(&Options::reconnect_min_ms,
          {.name = "reconnect_min_ms",
           .help = "First retry delay after a failed attempt or a disconnect.",
           .min = 10,
           .max = 3600000});
    t.Add(&Options::reconnect_max_ms, {.name = "reconnect_max_ms",
                                       .help = "Cap of the exponential retry delay.",
                                       .min = 10,
                                       .max = 3600000});
    t.Add(&Options::connect_timeout_ms,
          {.name = "connect_timeout_ms",
           .help = "Time allowed for Device1.Connect, and again for service resolution and "
                   "subscription.",
           .min = 100,
           .max = 600000});
    t.Add(&Options::battery_poll_s,
          {.name = "battery_poll_s",
           .help = "Battery Level (2A19) read interval while connected; 0 reads it at connect "
                   "only.",
           .min = 0,
           .max = 86400});
    t.Add(&Options::fetch_stored_records,
          {.name = "fetch_stored_records",
           .help = "Glucose: fetch the records stored since the last one seen (RACP) on every "
                   "connection."});
    return t;
  }();
  return table;
}

// ---- Appending call arguments (BlueZ's GattCharacteristic1 options are a{sv}). ----

int AppendReadValueArgs(sd_bus_message* m) {
  int r = sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
  if (r < 0) return r;
  return sd_bus_message_close_container(m);
}

int AppendWriteRequestArgs(sd_bus_message* m, const std::vector<std::uint8_t>& value) {
  int r = sd_bus_message_append_array(m, SD_BUS_TYPE_BYTE, value.data(), value.size());
  if (r < 0) return r;
  // "request": a write with response, as RACP requires (GLS 3.2.7: written, then indicated).
  return sd_bus_message_append(m, "a{sv}", 1, "type", "s", "request");
}

// For messages about the characteristics the transport reads.
std::string ReadableName(std::uint16_t uuid) {
  if (uuid == ble::kUuidBatteryLevel) return "battery level";
  if (uuid == ble::kUuidCurrentTime) return "current time";
  char buf[32];
  std::snprintf(buf, sizeof buf, "characteristic %04X", static_cast<unsigned>(uuid));
  return buf;
}

}  // namespace

// ---- Options ----

std::span<const OptionSpec> BleTransport::Specs() { return Table().specs(); }

Result<BleTransport::Options> BleTransport::ParseOptions(const nlohmann::json& o,
                                                         std::string_view path) {
  const std::string where(path);
  Options out = Table().Read(o);
  if (!ble::IsValidAddress(out.address)) {
    return InvalidArgument(where + ".address: \"" + out.address +
                           "\" is not a Bluetooth address like \"C0:FF:EE:00:00:01\"");
  }
  out.address = ble::CanonicalAddress(out.address);
  if (!ble::IsValidAdapterName(out.adapter)) {
    return InvalidArgument(where + ".adapter: \"" + out.adapter +
                           "\" is not an adapter name like \"hci0\" (letters, digits, '_')");
  }
  if (!ble::IsValidBusAddress(out.bus)) {
    return InvalidArgument(where + ".bus: \"" + out.bus +
                           "\" is neither \"system\" nor a D-Bus address like "
                           "\"unix:path=/run/dbus/system_bus_socket\"");
  }
  if (out.reconnect_max_ms < out.reconnect_min_ms) {
    return InvalidArgument(where + ".reconnect_max_ms: must be >= reconnect_min_ms");
  }
  return out;
}

Status BleTransport::Check(const nlohmann::json& options, std::string_view path) {
  auto parsed = ParseOptions(options, path);
  return parsed.ok() ? Status::Ok() : parsed.status();
}

Result<std::unique_ptr<Transport>> BleTransport::Make(const TransportContext& ctx,
                                                      const nlohmann::json& o) {
  auto options = ParseOptions(o, "transport");
  if (!options.ok()) return options.status();
  return std::unique_ptr<Transport>(std::make_unique<BleTransport>(ctx, std::move(*options)));
}

// ---- Life cycle ----

BleTransport::BleTransport(const TransportContext& ctx, Options options, FileSystem& fs)
    : ctx_(ctx),
      options_(std::move(options)),
      adapter_path_(ble::AdapterObjectPath(options_.adapter)),
      device_path_(ble::DeviceObjectPath(options_.adapter, options_.address)),
      backoff_(options_.reconnect_min_ms, options_.reconnect_max_ms),
      retry_timer_(*ctx.io),
      setup_timer_(*ctx.io),
      battery_timer_(*ctx.io),
      calls_(*ctx.io) {
  for (std::uint16_t uuid : ctx_.characteristics) wanted_.push_back(uuid);
  if (options_.fetch_stored_records) {
    wanted_.push_back(ble::kUuidRacp);
    glucose_ = std::make_unique<GlucoseRecordFetch>(ctx_, fs, options_.address);
  }
}

BleTransport::~BleTransport() {
  Stop();
  alive_.reset();
}

void BleTransport::Start() {
  if (phase_ != Phase::kStopped) return;
  if (glucose_ && glucose_->state_path().empty()) {
    spdlog::warn(
        "device {}: no state directory; stored glucose records are fetched in full "
        "after every restart",
        ctx_.device_id);
  }
  phase_ = Phase::kBackoff;
  Attempt();
}

void BleTransport::Stop() {
  if (phase_ == Phase::kStopped) return;
  phase_ = Phase::kStopped;
  retry_timer_.cancel();
  EndAttempt();
  if (glucose_) glucose_->Stop();  // saves the glucose position
  CloseBus();
}

void BleTransport::Attempt() {
  if (phase_ != Phase::kBackoff) return;
  if (link_.broken) CloseBus();
  if (!link_.bus) {
    OpenBus();
  } else if (link_.bluez_owner.empty()) {
    phase_ = Phase::kOpening;
    RequestBluezOwner();
  } else {
    ListObjects();
  }
}

// ---- The bus connection ----

template <void (BleTransport::*Handler)(sd_bus_message*)>
int BleTransport::SignalThunk(sd_bus_message* m, void* userdata, sd_bus_error*) {
  (static_cast<BleTransport*>(userdata)->*Handler)(m);
  return 0;
}

void BleTransport::OpenBus() {
  phase_ = Phase::kOpening;
  std::weak_ptr<bool> alive = alive_;
  auto opened = AsioSdBus::Open(*ctx_.io, options_.bus, [this, alive](std::string why) {
    if (!alive.expired()) Fail(why, /*close_bus=*/true);
  });
  if (!opened.ok()) {
    Fail(opened.status().message());
    return;
  }
  link_ = BusLink{};
  link_.bus = std::move(*opened);
  // Installed before anything is asked, so no change between a reply and the subscription
  // can slip through. PropertiesChanged is limited to the device's subtree (the device and its
  // GATT objects); sd-bus cannot check a well-known sender locally, hence FromBluez().
  const std::string rules[] = {
      "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
      "member='PropertiesChanged',path_namespace='" +
          device_path_ + "'",
      "type='signal',sender='org.bluez',path='/',interface='org.freedesktop.DBus.ObjectManager',"
      "member='InterfacesAdded'",
      "type='signal',sender='org.bluez',path='/',interface='org.freedesktop.DBus.ObjectManager',"
      "member='InterfacesRemoved'",
      "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
      "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
  };
  sd_bus_message_handler_t handlers[] = {&SignalThunk<&BleTransport::OnPropertiesChanged>,
                                         &SignalThunk<&BleTransport::OnInterfacesAdded>,
                                         &SignalThunk<&BleTransport::OnInterfacesRemoved>,
                                         &SignalThunk<&BleTransport::OnNameOwnerChanged>};
  for (std::size_t i = 0; i < std::size(rules); ++i) {
    sd_bus_slot* slot = nullptr;
    const int r = sd_bus_add_match_async(link_.bus->get(), &slot, rules[i].c_str(), handlers[i],
                                         &OnMatchInstalledThunk, this);
    if (r < 0) {
      Fail("cannot subscribe to BlueZ signals: " + SdBusErrorText(nullptr, r), true);
      return;
    }
    link_.match_slots.emplace_back(slot);
    ++link_.matches_pending;
  }
  link_.bus->Kick();
}

void BleTransport::CloseBus() {
  // Slots first: each holds a reference to the connection.
  calls_.Clear();
  link_.match_slots.clear();
  link_ = BusLink{};
}

int BleTransport::OnMatchInstalledThunk(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* self = static_cast<BleTransport*>(userdata);
  if (self->phase_ != Phase::kOpening) return 0;
  if (sd_bus_message_is_method_error(m, nullptr) != 0) {
    self->Fail("cannot subscribe to BlueZ signals: " + SdBusErrorText(sd_bus_message_get_error(m)),
               true);
    return 0;
  }
  if (--self->link_.matches_pending == 0) self->RequestBluezOwner();
  return 0;
}

void BleTransport::RequestBluezOwner() {
  Call(kDbusName, kDbusPath, kDbusName, "GetNameOwner", kLocalCallTimeoutUs,
       [](sd_bus_message* m) { return sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, kBluez); },
       [this](sd_bus_message* reply) { OnBluezOwner(reply); });
}

void BleTransport::OnBluezOwner(sd_bus_message* m) {
  if (const sd_bus_error* err = sd_bus_message_get_error(m)) {
    if (sd_bus_error_has_name(err, "org.freedesktop.DBus.Error.NameHasNoOwner") != 0) {
      Fail("bluetoothd is not running (nobody owns org.bluez on the bus)");
    } else {
      Fail("cannot ask the bus who owns org.bluez: " + SdBusErrorText(err));
    }
    return;
  }
  const char* owner = nullptr;
  if (sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &owner) <= 0 || owner == nullptr) {
    Fail("malformed GetNameOwner reply");
    return;
  }
  link_.bluez_owner = owner;
  ListObjects();
}

// ---- Calls ----

bool BleTransport::Call(const char* destination, const char* path, const char* interface,
                        const char* member, std::uint64_t timeout_us, const Append& append,
                        SdBusCalls::OnReply on_reply) {
  if (!link_.bus || link_.broken) {
    Fail("no D-Bus connection", true);
    return false;
  }
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(link_.bus->get(), &raw, destination, path, interface,
                                         member);
  const SdBusMessage msg(raw);
  if (r >= 0 && append) r = append(raw);
  if (r < 0) {
    Fail(std::string("cannot build ") + member + " call: " + SdBusErrorText(nullptr, r));
    return false;
  }
  r = calls_.Send(link_.bus->get(), raw, timeout_us, std::move(on_reply));
  if (r < 0) {
    // Sending fails only when the connection is gone.
    Fail(std::string("cannot send ") + member + ": " + SdBusErrorText(nullptr, r), true);
    return false;
  }
  link_.bus->Kick();
  return true;
}

bool BleTransport::CallCharacteristic(std::size_t index, const char* member, const Append& append,
                                      SdBusCalls::OnReply on_reply) {
  return Call(kBluez, session_.chars[index].path.c_str(), kCharIface, member, kGattCallTimeoutUs,
              append, std::move(on_reply));
}

// ---- The attempt ----

void BleTransport::ListObjects() {
  if (phase_ == Phase::kOpening || phase_ == Phase::kBackoff) {
    phase_ = Phase::kListing;
    session_.connect_sent = false;
  }
  Call(kBluez, "/", kObjectManager, "GetManagedObjects", kLocalCallTimeoutUs, nullptr,
       [this](sd_bus_message* reply) { OnObjects(reply); });
}

void BleTransport::OnObjects(sd_bus_message* m) {
  if (const sd_bus_error* err = sd_bus_message_get_error(m)) {
    Fail("cannot list BlueZ objects: " + SdBusErrorText(err));
    return;
  }
  Snapshot snap;
  const std::string char_prefix = device_path_ + "/";
  const int r = sdbus::ReadManagedObjects(
      m,
      [&](std::string_view path, std::string_view iface) {
        return (path == adapter_path_ && iface == kAdapterIface) ||
               (path == device_path_ && iface == kDeviceIface) ||
               (iface == kCharIface && path.starts_with(char_prefix));
      },
      [&](const std::string& path, std::string_view iface, const PropMap& props) {
        if (iface == kAdapterIface) {
          snap.adapter = true;
        } else if (iface == kDeviceIface) {
          const PropValue* addr = sdbus::FindProperty(props, "Address", PropValue::Type::kString);
          // The path is derived from the address; a different Address would be another device.
          snap.device = addr == nullptr || ble::CanonicalAddress(addr->s) == options_.address;
          snap.connected = sdbus::BoolProperty(props, "Connected");
          snap.services_resolved = sdbus::BoolProperty(props, "ServicesResolved");
        } else {
          const PropValue* uuid = sdbus::FindProperty(props, "UUID", PropValue::Type::kString);
          const auto uuid16 = uuid != nullptr ? ble::Uuid16From128(uuid->s) : std::nullopt;
          if (!uuid16 || std::find(wanted_.begin(), wanted_.end(), *uuid16) == wanted_.end()) {
            return;
          }
          Characteristic ch;
          ch.path = path;
          ch.uuid = *uuid16;
          if (const PropValue* f = sdbus::FindProperty(props, "Flags", PropValue::Type::kStrings)) {
            ch.flags = ble::ParseCharacteristicFlags(f->strings);
          }
          snap.chars.push_back(std::move(ch));
        }
      });
  if (r < 0) {
    Fail("malformed GetManagedObjects reply from BlueZ: " + SdBusErrorText(nullptr, r));
    return;
  }
  // Handle order (BlueZ paths carry the attribute handle) keeps subscriptions deterministic.
  std::sort(snap.chars.begin(), snap.chars.end(),
            [](const Characteristic& a, const Characteristic& b) { return a.path < b.path; });
  Evaluate(snap);
}

void BleTransport::Evaluate(const Snapshot& snap) {
  if (!snap.adapter) {
    Fail("adapter " + adapter_path_ + " not found (no controller, or bluetoothd without it)");
    return;
  }
  waiting_for_device_ = !snap.device;
  if (!snap.device) {
    Fail("device " + options_.address + " is not known to BlueZ on " + options_.adapter +
         " (pair it first: docs/ble.md)");
    return;
  }
  if (!snap.connected) {
    if (session_.connect_sent) {
      Fail("device disconnected while connecting");
      return;
    }
    ConnectDevice();
    return;
  }
  if (!snap.services_resolved) {
    if (phase_ != Phase::kResolving) {
      phase_ = Phase::kResolving;
      ArmSetupDeadline();
    }
    return;  // PropertiesChanged(ServicesResolved=true) lists again
  }
  if (phase_ == Phase::kSubscribing || phase_ == Phase::kUp) return;
  Subscribe(snap.chars);
}

void BleTransport::ConnectDevice() {
  phase_ = Phase::kConnecting;
  session_.connect_sent = true;
  Call(kBluez, device_path_.c_str(), kDeviceIface, "Connect",
       static_cast<std::uint64_t>(options_.connect_timeout_ms) * 1000, nullptr,
       [this](sd_bus_message* reply) { OnConnected(reply); });
}

void BleTransport::OnConnected(sd_bus_message* m) {
  const sd_bus_error* err = sd_bus_message_get_error(m);
  if (err != nullptr && sd_bus_error_has_name(err, "org.bluez.Error.AlreadyConnected") == 0) {
    Fail("connect failed: " + SdBusErrorText(err));
    return;
  }
  // Connected; BlueZ may still be resolving services. Look again.
  phase_ = Phase::kResolving;
  ArmSetupDeadline();
  ListObjects();
}

void BleTransport::ArmSetupDeadline() {
  // One window from Connect's reply (or from finding the device connected) to the link up.
  if (setup_armed_) return;
  setup_armed_ = true;
  setup_timer_.expires_after(std::chrono::milliseconds(options_.connect_timeout_ms));
  std::weak_ptr<bool> alive = alive_;
  const std::uint64_t attempt = attempt_;
  setup_timer_.async_wait([this, alive, attempt](const boost::system::error_code& ec) {
    if (ec || alive.expired() || attempt != attempt_) return;
    setup_armed_ = false;
    if (phase_ == Phase::kResolving || phase_ == Phase::kSubscribing) {
      Fail(std::string(phase_ == Phase::kResolving ? "services were not resolved"
                                                   : "notifications were not enabled") +
           " within " + std::to_string(options_.connect_timeout_ms) + " ms");
    }
  });
}

void BleTransport::Subscribe(const std::vector<Characteristic>& found) {
  const bool connect_sent = session_.connect_sent;
  session_ = Session{};
  session_.connect_sent = connect_sent;
  session_.chars = found;
  bool glucose = false;
  std::vector<std::size_t> to_subscribe;
  for (std::size_t i = 0; i < session_.chars.size(); ++i) {
    const Characteristic& ch = session_.chars[i];
    if (ch.uuid == ble::kUuidBatteryLevel) {
      if (ch.flags.read && !session_.battery) session_.battery = i;
      continue;
    }
    if (ch.uuid == ble::kUuidCurrentTime) {
      if ((ch.flags.read || ch.flags.notify) && !session_.current_time) session_.current_time = i;
      continue;
    }
    if (ch.uuid == ble::kUuidRacp) {
      if (ch.flags.write && ch.flags.indicate && !session_.racp) session_.racp = i;
      continue;
    }
    if (ch.flags.notify || ch.flags.indicate) {
      to_subscribe.push_back(i);
      if (ch.uuid == ble::kUuidGlucoseMeasurement) glucose = true;
    }
  }
  if (to_subscribe.empty()) {
    Fail("the device has no characteristic the gatt codec decodes that notifies or indicates");
    return;
  }
  // The device's clock: read at LinkUp(), and its changes (an adjustment, a new day) followed.
  if (session_.current_time && session_.chars[*session_.current_time].flags.notify) {
    to_subscribe.push_back(*session_.current_time);
  }
  // RACP only serves the glucose measurements; without them its records would go nowhere.
  if (session_.racp && glucose) {
    to_subscribe.push_back(*session_.racp);
  } else {
    session_.racp.reset();
  }
  phase_ = Phase::kSubscribing;
  ArmSetupDeadline();
  for (std::size_t i : to_subscribe) {
    // The PropertiesChanged match has been in place since the bus connection was opened, so
    // a value the device sends right after the CCCD write is not missed.
    session_.chars[i].subscribed = true;
    ++session_.notify_pending;
    if (!CallCharacteristic(i, "StartNotify", nullptr,
                            [this, i](sd_bus_message* reply) { OnNotifyStarted(i, reply); })) {
      return;
    }
  }
}

void BleTransport::OnNotifyStarted(std::size_t index, sd_bus_message* m) {
  if (phase_ != Phase::kSubscribing || index >= session_.chars.size()) return;
  --session_.notify_pending;
  const std::uint16_t uuid = session_.chars[index].uuid;
  if (const sd_bus_error* err = sd_bus_message_get_error(m)) {
    session_.notify_error = SdBusErrorText(err);
    spdlog::warn("device {}: cannot enable notifications on {:04X}: {}", ctx_.device_id, uuid,
                 session_.notify_error);
    if (session_.racp == index) session_.racp.reset();
  } else if (uuid != ble::kUuidRacp && uuid != ble::kUuidCurrentTime) {
    ++session_.notify_ok;  // a measurement: the link is of use
  }
  if (session_.notify_pending > 0) return;
  if (session_.notify_ok == 0) {
    Fail("notifications could not be enabled on any characteristic (" + session_.notify_error +
         "); is the device paired?");
    return;
  }
  LinkUp();
}

void BleTransport::LinkUp() {
  phase_ = Phase::kUp;
  setup_timer_.cancel();
  setup_armed_ = false;
  backoff_.Reset();
  waiting_for_device_ = false;
  last_failure_.clear();
  spdlog::info("device {}: BLE connected, {} characteristics notifying{}", ctx_.device_id,
               session_.notify_ok, session_.racp ? ", fetching stored glucose records" : "");
  if (link_report_ != LinkReport::kUp) {
    link_report_ = LinkReport::kUp;
    ctx_.sink->OnLink(true, "");
  }
  ReadBattery();
  ArmBatteryPoll();
  if (session_.current_time && session_.chars[*session_.current_time].flags.read) {
    ReadCharacteristic(*session_.current_time);
  }
  if (session_.racp && glucose_) {
    const std::vector<std::uint8_t> request = glucose_->Begin();
    CallCharacteristic(
        *session_.racp, "WriteValue",
        [&request](sd_bus_message* m) { return AppendWriteRequestArgs(m, request); },
        [this](sd_bus_message* reply) {
          if (const sd_bus_error* err = sd_bus_message_get_error(reply)) {
            glucose_->OnRequestRefused(SdBusErrorText(err));
          }
        });
  }
}

// ---- Values ----

void BleTransport::ReadCharacteristic(std::size_t index) {
  if (session_.chars[index].read_pending) return;
  session_.chars[index].read_pending = true;
  CallCharacteristic(index, "ReadValue", &AppendReadValueArgs,
                     [this, index](sd_bus_message* reply) { OnRead(index, reply); });
}

void BleTransport::ReadBattery() {
  if (!session_.battery || phase_ != Phase::kUp) return;
  ReadCharacteristic(*session_.battery);
}

void BleTransport::ArmBatteryPoll() {
  if (!session_.battery || options_.battery_poll_s <= 0) return;
  battery_timer_.expires_after(std::chrono::seconds(options_.battery_poll_s));
  std::weak_ptr<bool> alive = alive_;
  const std::uint64_t attempt = attempt_;
  battery_timer_.async_wait([this, alive, attempt](const boost::system::error_code& ec) {
    if (ec || alive.expired() || attempt != attempt_ || phase_ != Phase::kUp) return;
    ReadBattery();
    ArmBatteryPoll();
  });
}

void BleTransport::OnRead(std::size_t index, sd_bus_message* m) {
  if (index >= session_.chars.size()) return;
  const std::uint16_t uuid = session_.chars[index].uuid;
  session_.chars[index].read_pending = false;
  if (phase_ != Phase::kUp) return;
  if (const sd_bus_error* err = sd_bus_message_get_error(m)) {
    std::uint64_t suppressed = 0;
    if (value_error_log_.Allow(ctx_.clock->MonotonicNs(), suppressed)) {
      spdlog::warn("device {}: {} read failed: {}", ctx_.device_id, ReadableName(uuid),
                   SdBusErrorText(err));
    }
    return;
  }
  std::vector<std::uint8_t> value;
  if (sdbus::ReadBytes(m, value) < 0) return;
  ctx_.sink->OnCharacteristic(uuid, value);
}

void BleTransport::OnValue(std::size_t index, std::span<const std::uint8_t> value) {
  const std::uint16_t uuid = session_.chars[index].uuid;
  if (glucose_ && uuid == ble::kUuidRacp) {
    glucose_->OnRacpIndication(value);
  } else if (glucose_ && uuid == ble::kUuidGlucoseMeasurement) {
    glucose_->OnRecord(value);
  } else {
    ctx_.sink->OnCharacteristic(uuid, value);
  }
}

// ---- Signals ----

bool BleTransport::FromBluez(sd_bus_message* m) const {
  const char* sender = sd_bus_message_get_sender(m);
  return sender != nullptr && !link_.bluez_owner.empty() && link_.bluez_owner == sender;
}

void BleTransport::OnPropertiesChanged(sd_bus_message* m) {
  if (!FromBluez(m) || phase_ == Phase::kStopped) return;
  const char* path_c = sd_bus_message_get_path(m);
  const char* iface_c = nullptr;
  if (path_c == nullptr || sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &iface_c) <= 0) return;
  const std::string_view path = path_c;
  const std::string_view iface = iface_c;
  const bool about_device = path == device_path_ && iface == kDeviceIface;
  if (phase_ == Phase::kBackoff && !about_device) return;
  PropMap changed;
  if (sdbus::ReadProperties(m, changed) < 0) return;
  if (about_device) {
    OnDevicePropertiesChanged(changed);
    return;
  }
  if (iface != kCharIface || (phase_ != Phase::kSubscribing && phase_ != Phase::kUp)) return;
  const PropValue* value = sdbus::FindProperty(changed, "Value", PropValue::Type::kBytes);
  if (value == nullptr) return;
  for (std::size_t i = 0; i < session_.chars.size(); ++i) {
    // Only characteristics we subscribed to: BlueZ also announces the cached Value after a
    // ReadValue (battery), which arrives through the reply already. For the same reason, a
    // subscribed one with a read pending (Current Time) waits for that reply.
    if (session_.chars[i].subscribed && session_.chars[i].path == path) {
      if (!session_.chars[i].read_pending) OnValue(i, value->bytes);
      return;
    }
  }
}

void BleTransport::OnDevicePropertiesChanged(const PropMap& changed) {
  const PropValue* connected = sdbus::FindProperty(changed, "Connected", PropValue::Type::kBool);
  if (phase_ == Phase::kBackoff) {
    // Something else connected the device (bluetoothd reconnecting a bonded device, an
    // operator with bluetoothctl): a meter that wakes briefly may be gone before the backoff
    // ends, so set it up now.
    if (connected != nullptr && connected->b) RetrySoon();
    return;
  }
  const bool past_connect =
      phase_ == Phase::kResolving || phase_ == Phase::kSubscribing || phase_ == Phase::kUp;
  if (connected != nullptr && !connected->b && past_connect) {
    Fail("device disconnected");
    return;
  }
  if (const PropValue* sr = sdbus::FindProperty(changed, "ServicesResolved", PropValue::Type::kBool)) {
    if (sr->b && phase_ == Phase::kResolving) {
      ListObjects();
    } else if (!sr->b && (phase_ == Phase::kSubscribing || phase_ == Phase::kUp)) {
      // BlueZ drops this first on a disconnect, and also when the device changed its
      // services: either way the characteristic paths are no longer valid.
      Fail("device disconnected (services no longer resolved)");
    }
  }
}

void BleTransport::OnInterfacesAdded(sd_bus_message* m) {
  if (!FromBluez(m)) return;
  const char* path = nullptr;
  if (sd_bus_message_read_basic(m, SD_BUS_TYPE_OBJECT_PATH, &path) <= 0) return;
  // The device object appeared (discovered by a scan, or paired): no need to wait out the
  // backoff that its absence started.
  if (device_path_ == path && waiting_for_device_) RetrySoon();
}

void BleTransport::OnInterfacesRemoved(sd_bus_message* m) {
  if (!FromBluez(m) || phase_ == Phase::kStopped || phase_ == Phase::kBackoff) return;
  const char* path_c = nullptr;
  if (sd_bus_message_read_basic(m, SD_BUS_TYPE_OBJECT_PATH, &path_c) <= 0) return;
  const std::string_view path = path_c;
  if (path == device_path_) {
    std::vector<std::string> ifaces;
    if (sdbus::ReadStrings(m, ifaces) < 0) return;
    if (std::find(ifaces.begin(), ifaces.end(), kDeviceIface) != ifaces.end()) {
      Fail("device removed from BlueZ");
    }
    return;
  }
  if (phase_ != Phase::kSubscribing && phase_ != Phase::kUp) return;
  for (const Characteristic& ch : session_.chars) {
    if (ch.subscribed && ch.path == path) {
      Fail("device disconnected (GATT characteristic removed)");
      return;
    }
  }
}

void BleTransport::OnNameOwnerChanged(sd_bus_message* m) {
  const char* sender = sd_bus_message_get_sender(m);
  if (sender == nullptr || std::strcmp(sender, kDbusName) != 0) return;
  const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
  if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) return;
  if (std::strcmp(name, kBluez) != 0) return;
  const bool had_owner = !link_.bluez_owner.empty();
  link_.bluez_owner = new_owner != nullptr ? new_owner : "";
  if (had_owner && phase_ != Phase::kBackoff && phase_ != Phase::kStopped &&
      phase_ != Phase::kOpening) {
    Fail(link_.bluez_owner.empty() ? "bluetoothd left the bus" : "bluetoothd restarted");
    return;
  }
  if (!link_.bluez_owner.empty()) RetrySoon();
}

// ---- Failure and retry ----

void BleTransport::RetrySoon() {
  if (phase_ != Phase::kBackoff) return;
  retry_timer_.cancel();
  std::weak_ptr<bool> alive = alive_;
  boost::asio::post(*ctx_.io, [this, alive] {
    if (!alive.expired()) Attempt();
  });
}

void BleTransport::EndAttempt() {
  ++attempt_;
  setup_timer_.cancel();
  setup_armed_ = false;
  battery_timer_.cancel();
  // Pending calls are forgotten; sd-bus may be inside one of them, so their slots go in a
  // posted clean-up (or at once when the bus goes away).
  calls_.CancelAll();
  session_ = Session{};
  if (glucose_) glucose_->EndConnection();  // saves the glucose position
}

void BleTransport::Fail(const std::string& why, bool close_bus) {
  if (phase_ == Phase::kStopped) return;
  const bool was_up = link_report_ == LinkReport::kUp;
  EndAttempt();
  if (close_bus && link_.bus) {
    link_.broken = true;
    // Not here: this may run inside one of the bus's callbacks.
    std::weak_ptr<bool> alive = alive_;
    boost::asio::post(*ctx_.io, [this, alive] {
      if (!alive.expired() && link_.broken) CloseBus();
    });
  }
  phase_ = Phase::kBackoff;
  const std::int64_t delay = backoff_.NextMs();
  if (was_up) {
    spdlog::warn("device {}: BLE link down: {}; reconnecting in {} ms", ctx_.device_id, why, delay);
  } else {
    // A device that sleeps (a meter between measurements) fails the same way for hours: say
    // it once, and again only when the reason changes.
    spdlog::log(why == last_failure_ ? spdlog::level::debug : spdlog::level::warn,
                "device {}: BLE: {}; retrying in {} ms", ctx_.device_id, why, delay);
  }
  last_failure_ = why;
  if (link_report_ != LinkReport::kDown) {
    link_report_ = LinkReport::kDown;
    ctx_.sink->OnLink(false, why);
  }
  retry_timer_.expires_after(std::chrono::milliseconds(delay));
  std::weak_ptr<bool> alive = alive_;
  retry_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (!ec && !alive.expired()) Attempt();
  });
}

}  // namespace vg
