#include "ble.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>


namespace vg {
namespace {

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
// A RACP transfer that sends nothing for this long is given up (the link stays up).
constexpr auto kRacpIdleTimeout = std::chrono::seconds(30);
// State file writes are coalesced while records stream in.
constexpr auto kPersistDelay = std::chrono::seconds(1);

// clang-format off
constexpr OptionSpec kSpecs[] = {
    {"address", OptionType::kString, "",
     "Device address AA:BB:CC:DD:EE:FF, as `bluetoothctl devices` shows it.", true},
    {"adapter", OptionType::kString, "\"hci0\"", "BlueZ adapter the device is paired on."},
    {"bus", OptionType::kString, "\"system\"",
     "D-Bus to reach BlueZ on: \"system\" (honours DBUS_SYSTEM_BUS_ADDRESS) or an address "
     "such as \"unix:path=/run/x\"."},
    {"reconnect_min_ms", OptionType::kInteger, "1000",
     "First retry delay after a failed attempt or a disconnect.", false, 10, 3600000},
    {"reconnect_max_ms", OptionType::kInteger, "60000", "Cap of the exponential retry delay.",
     false, 10, 3600000},
    {"connect_timeout_ms", OptionType::kInteger, "20000",
     "Time allowed for Device1.Connect, and again for service resolution and subscription.",
     false, 100, 600000},
    {"battery_poll_s", OptionType::kInteger, "300",
     "Battery Level (2A19) read interval while connected; 0 reads it at connect only.", false, 0,
     86400},
    {"fetch_stored_records", OptionType::kBool, "true",
     "Glucose: fetch the records stored since the last one seen (RACP) on every connection."},
};
// clang-format on

// ---- Reading D-Bus values. Every reader returns sd-bus's convention: < 0 error. ----

struct PropValue {
  enum class Type : std::uint8_t { kOther, kBool, kString, kStrings, kBytes } type = Type::kOther;
  bool b = false;
  std::string s;
  std::vector<std::string> strings;
  std::vector<std::uint8_t> bytes;
};
using PropMap = std::map<std::string, PropValue, std::less<>>;

int ReadStrings(sd_bus_message* m, std::vector<std::string>& out) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "s");
  if (r < 0) return r;
  const char* s = nullptr;
  while ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &s)) > 0) out.emplace_back(s);
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int ReadBytes(sd_bus_message* m, std::vector<std::uint8_t>& out) {
  const void* data = nullptr;
  std::size_t size = 0;
  const int r = sd_bus_message_read_array(m, SD_BUS_TYPE_BYTE, &data, &size);
  if (r < 0) return r;
  const auto* p = static_cast<const std::uint8_t*>(data);
  out.assign(p, p + size);
  return 1;
}

// Reads one variant; types the transport does not use are skipped.
int ReadVariant(sd_bus_message* m, PropValue& v) {
  char type = 0;
  const char* contents = nullptr;
  int r = sd_bus_message_peek_type(m, &type, &contents);
  if (r < 0) return r;
  if (type != SD_BUS_TYPE_VARIANT || contents == nullptr) return -EBADMSG;
  const std::string_view sig(contents);
  if (sig != "b" && sig != "s" && sig != "o" && sig != "as" && sig != "ay") {
    return sd_bus_message_skip(m, "v");
  }
  r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents);
  if (r < 0) return r;
  if (sig == "b") {
    int b = 0;
    r = sd_bus_message_read_basic(m, SD_BUS_TYPE_BOOLEAN, &b);
    v.type = PropValue::Type::kBool;
    v.b = b != 0;
  } else if (sig == "s" || sig == "o") {
    const char* s = nullptr;
    r = sd_bus_message_read_basic(m, sig[0], &s);
    v.type = PropValue::Type::kString;
    if (r > 0) v.s = s;
  } else if (sig == "as") {
    r = ReadStrings(m, v.strings);
    v.type = PropValue::Type::kStrings;
  } else {
    r = ReadBytes(m, v.bytes);
    v.type = PropValue::Type::kBytes;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

// a{sv}
int ReadProperties(sd_bus_message* m, PropMap& out) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
    const char* name = nullptr;
    r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &name);
    if (r < 0) return r;
    PropValue v;
    r = ReadVariant(m, v);
    if (r < 0) return r;
    out[name] = std::move(v);
    r = sd_bus_message_exit_container(m);
    if (r < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

const PropValue* Find(const PropMap& props, std::string_view name, PropValue::Type type) {
  const auto it = props.find(name);
  if (it == props.end() || it->second.type != type) return nullptr;
  return &it->second;
}

// ---- Appending call arguments. ----

int AppendEmptyOptions(sd_bus_message* m) {
  int r = sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
  if (r < 0) return r;
  return sd_bus_message_close_container(m);
}

int AppendReadValueArgs(sd_bus_message* m, const void* /*arg*/) { return AppendEmptyOptions(m); }

int AppendWriteRequestArgs(sd_bus_message* m, const void* arg) {
  const auto* value = static_cast<const std::vector<std::uint8_t>*>(arg);
  int r = sd_bus_message_append_array(m, SD_BUS_TYPE_BYTE, value->data(), value->size());
  if (r < 0) return r;
  // "request": a write with response, as RACP requires (GLS 3.2.7: written, then indicated).
  return sd_bus_message_append(m, "a{sv}", 1, "type", "s", "request");
}

int AppendNameArg(sd_bus_message* m, const void* arg) {
  return sd_bus_message_append_basic(m, SD_BUS_TYPE_STRING, static_cast<const char*>(arg));
}

}  // namespace

struct BleTransport::Snapshot {
  bool adapter = false;
  bool device = false;
  bool connected = false;
  bool services_resolved = false;
  std::vector<Characteristic> chars;
};

// ---- Options ----

std::span<const OptionSpec> BleTransport::Specs() { return kSpecs; }

Result<BleTransport::Options> BleTransport::ParseOptions(const nlohmann::json& o,
                                                         std::string_view path) {
  const std::string where(path);
  Options out;
  const std::string address = o.at("address").get<std::string>();
  if (!ble::IsValidAddress(address)) {
    return InvalidArgument(where + ".address: \"" + address +
                           "\" is not a Bluetooth address like \"C0:FF:EE:00:00:01\"");
  }
  out.address = ble::CanonicalAddress(address);
  out.adapter = o.at("adapter").get<std::string>();
  if (!ble::IsValidAdapterName(out.adapter)) {
    return InvalidArgument(where + ".adapter: \"" + out.adapter +
                           "\" is not an adapter name like \"hci0\" (letters, digits, '_')");
  }
  out.bus = o.at("bus").get<std::string>();
  if (!ble::IsValidBusAddress(out.bus)) {
    return InvalidArgument(where + ".bus: \"" + out.bus +
                           "\" is neither \"system\" nor a D-Bus address like "
                           "\"unix:path=/run/dbus/system_bus_socket\"");
  }
  out.reconnect_min_ms = o.at("reconnect_min_ms").get<std::int64_t>();
  out.reconnect_max_ms = o.at("reconnect_max_ms").get<std::int64_t>();
  if (out.reconnect_max_ms < out.reconnect_min_ms) {
    return InvalidArgument(where + ".reconnect_max_ms: must be >= reconnect_min_ms");
  }
  out.connect_timeout_ms = o.at("connect_timeout_ms").get<std::int64_t>();
  out.battery_poll_s = o.at("battery_poll_s").get<std::int64_t>();
  out.fetch_stored_records = o.at("fetch_stored_records").get<bool>();
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

BleTransport::BleTransport(const TransportContext& ctx, Options options)
    : ctx_(ctx),
      options_(std::move(options)),
      adapter_path_(ble::AdapterObjectPath(options_.adapter)),
      device_path_(ble::DeviceObjectPath(options_.adapter, options_.address)),
      backoff_(options_.reconnect_min_ms, options_.reconnect_max_ms),
      retry_timer_(*ctx.io),
      setup_timer_(*ctx.io),
      battery_timer_(*ctx.io),
      racp_timer_(*ctx.io),
      persist_timer_(*ctx.io) {
  for (std::uint16_t uuid : ctx_.characteristics) wanted_.push_back(uuid);
  if (options_.fetch_stored_records) wanted_.push_back(ble::kUuidRacp);
  // The state file holds the stored-record position only: without fetching there is none.
  if (options_.fetch_stored_records && !ctx_.state_dir.empty()) {
    state_path_ = ctx_.state_dir + "/" + ble::StateFileName(options_.address);
    auto loaded = ble::LoadBleState(state_path_, options_.address);
    if (loaded.ok()) {
      state_ = *loaded;
    } else {
      // Starting empty re-fetches stored records (duplicates a consumer can spot by device
      // time) instead of silently skipping some.
      spdlog::error("device {}: {}; starting without glucose record history", ctx_.device_id,
                    loaded.status().message());
    }
  }
}

BleTransport::~BleTransport() {
  Stop();
  alive_.reset();
}

void BleTransport::Start() {
  if (phase_ != Phase::kStopped) return;
  if (state_path_.empty() && options_.fetch_stored_records) {
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
  persist_timer_.cancel();
  EndAttempt();  // saves the glucose position
  CloseBus();
  retired_.clear();
}

void BleTransport::Attempt() {
  if (phase_ != Phase::kBackoff) return;
  if (bus_broken_) CloseBus();
  if (!bus_) {
    OpenBus();
  } else if (bluez_owner_.empty()) {
    phase_ = Phase::kOpening;
    RequestBluezOwner();
  } else {
    ListObjects();
  }
}

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
  bus_ = std::move(*opened);
  bus_broken_ = false;
  bluez_owner_.clear();
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
  sd_bus_message_handler_t handlers[] = {
      &SignalThunk<&BleTransport::OnPropertiesChanged>, &SignalThunk<&BleTransport::OnInterfacesAdded>,
      &SignalThunk<&BleTransport::OnInterfacesRemoved>, &SignalThunk<&BleTransport::OnNameOwnerChanged>};
  matches_pending_ = 0;
  for (std::size_t i = 0; i < std::size(rules); ++i) {
    sd_bus_slot* slot = nullptr;
    const int r = sd_bus_add_match_async(bus_->get(), &slot, rules[i].c_str(), handlers[i],
                                         &OnMatchInstalledThunk, this);
    if (r < 0) {
      Fail("cannot subscribe to BlueZ signals: " + SdBusErrorText(nullptr, r), true);
      return;
    }
    match_slots_.emplace_back(slot);
    ++matches_pending_;
  }
  bus_->Kick();
}

void BleTransport::CloseBus() {
  // Slots first: each holds a reference to the connection.
  calls_.clear();
  retired_.clear();
  match_slots_.clear();
  bus_.reset();
  bus_broken_ = false;
  bluez_owner_.clear();
  matches_pending_ = 0;
}

int BleTransport::OnMatchInstalledThunk(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* self = static_cast<BleTransport*>(userdata);
  if (self->phase_ != Phase::kOpening) return 0;
  if (sd_bus_message_is_method_error(m, nullptr) != 0) {
    self->Fail("cannot subscribe to BlueZ signals: " + SdBusErrorText(sd_bus_message_get_error(m)),
               true);
    return 0;
  }
  if (--self->matches_pending_ == 0) self->RequestBluezOwner();
  return 0;
}

void BleTransport::RequestBluezOwner() {
  StartCall(CallKind::kGetNameOwner, 0, kDbusName, kDbusPath, kDbusName, "GetNameOwner",
            kLocalCallTimeoutUs, &AppendNameArg, kBluez);
}

// ---- Calls ----

bool BleTransport::StartCall(CallKind kind, std::size_t index, const char* destination,
                             const char* path, const char* interface, const char* member,
                             std::uint64_t timeout_us, int (*append)(sd_bus_message*, const void*),
                             const void* arg) {
  if (!bus_ || bus_broken_) {
    Fail("no D-Bus connection", true);
    return false;
  }
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(bus_->get(), &raw, destination, path, interface, member);
  SdBusMessage msg(raw);
  if (r >= 0 && append != nullptr) r = append(raw, arg);
  if (r < 0) {
    Fail(std::string("cannot build ") + member + " call: " + SdBusErrorText(nullptr, r));
    return false;
  }
  calls_.push_back(Call{this, kind, index, attempt_, nullptr});
  struct Call& call = calls_.back();
  sd_bus_slot* slot = nullptr;
  r = sd_bus_call_async(bus_->get(), &slot, raw, &OnReplyThunk, &call, timeout_us);
  if (r < 0) {
    calls_.pop_back();
    // Sending fails only when the connection is gone.
    Fail(std::string("cannot send ") + member + ": " + SdBusErrorText(nullptr, r), true);
    return false;
  }
  call.slot.reset(slot);
  bus_->Kick();
  return true;
}

int BleTransport::OnReplyThunk(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* call = static_cast<struct Call*>(userdata);
  BleTransport* self = call->self;
  if (call->attempt != self->attempt_) return 0;  // retired with its attempt
  const CallKind kind = call->kind;
  const std::size_t index = call->index;
  // Retire rather than free: sd-bus is still using this call's slot.
  for (auto it = self->calls_.begin(); it != self->calls_.end(); ++it) {
    if (&*it == call) {
      it->attempt = UINT64_MAX;
      self->retired_.splice(self->retired_.end(), self->calls_, it);
      break;
    }
  }
  self->ScheduleCleanup();
  self->OnReply(kind, index, m);
  return 0;
}

void BleTransport::ScheduleCleanup() {
  if (!cleanup_posted_ && !retired_.empty()) {
    cleanup_posted_ = true;
    std::weak_ptr<bool> alive = alive_;
    boost::asio::post(*ctx_.io, [this, alive] {
      if (alive.expired()) return;
      cleanup_posted_ = false;
      retired_.clear();
    });
  }
}

void BleTransport::OnReply(CallKind kind, std::size_t index, sd_bus_message* m) {
  const sd_bus_error* err = sd_bus_message_get_error(m);
  switch (kind) {
    case CallKind::kGetNameOwner: {
      if (err != nullptr) {
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
      bluez_owner_ = owner;
      ListObjects();
      return;
    }
    case CallKind::kListObjects:
      if (err != nullptr) {
        Fail("cannot list BlueZ objects: " + SdBusErrorText(err));
        return;
      }
      OnObjects(m);
      return;
    case CallKind::kConnect:
      if (err != nullptr && sd_bus_error_has_name(err, "org.bluez.Error.AlreadyConnected") == 0) {
        Fail("connect failed: " + SdBusErrorText(err));
        return;
      }
      // Connected; BlueZ may still be resolving services. Look again.
      phase_ = Phase::kResolving;
      ArmSetupDeadline();
      ListObjects();
      return;
    case CallKind::kStartNotify: {
      if (phase_ != Phase::kSubscribing || index >= chars_.size()) return;
      --notify_pending_;
      const std::uint16_t uuid = chars_[index].uuid;
      if (err != nullptr) {
        notify_error_ = SdBusErrorText(err);
        spdlog::warn("device {}: cannot enable notifications on {:04X}: {}", ctx_.device_id, uuid,
                     notify_error_);
        if (racp_index_ == index) racp_index_.reset();
      } else if (uuid != ble::kUuidRacp) {
        ++notify_ok_;
      }
      if (notify_pending_ == 0) {
        if (notify_ok_ == 0) {
          Fail("notifications could not be enabled on any characteristic (" + notify_error_ +
               "); is the device paired?");
          return;
        }
        LinkUp();
      }
      return;
    }
    case CallKind::kReadBattery: {
      battery_pending_ = false;
      if (phase_ != Phase::kUp) return;
      if (err != nullptr) {
        std::uint64_t suppressed = 0;
        if (value_error_log_.Allow(ctx_.clock->MonotonicNs(), suppressed)) {
          spdlog::warn("device {}: battery level read failed: {}", ctx_.device_id,
                       SdBusErrorText(err));
        }
        return;
      }
      std::vector<std::uint8_t> value;
      if (ReadBytes(m, value) < 0) return;
      ctx_.sink->OnCharacteristic(ble::kUuidBatteryLevel, value);
      return;
    }
    case CallKind::kWriteRacp:
      if (err != nullptr && racp_active_) {
        spdlog::warn("device {}: glucose: stored-record request refused: {}", ctx_.device_id,
                     SdBusErrorText(err));
        racp_active_ = false;
        racp_timer_.cancel();
      }
      return;
  }
}

// ---- The attempt ----

void BleTransport::ListObjects() {
  if (phase_ == Phase::kOpening || phase_ == Phase::kBackoff) {
    phase_ = Phase::kListing;
    connect_sent_ = false;
  }
  StartCall(CallKind::kListObjects, 0, kBluez, "/", kObjectManager, "GetManagedObjects",
            kLocalCallTimeoutUs);
}

void BleTransport::OnObjects(sd_bus_message* m) {
  Snapshot snap;
  const std::string char_prefix = device_path_ + "/";
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{oa{sa{sv}}}");
  while (r >= 0 &&
         (r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "oa{sa{sv}}")) > 0) {
    const char* path_c = nullptr;
    if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_OBJECT_PATH, &path_c)) < 0) break;
    const std::string path = path_c;
    if ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sa{sv}}")) < 0) break;
    while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sa{sv}")) > 0) {
      const char* iface_c = nullptr;
      if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &iface_c)) < 0) break;
      const std::string_view iface = iface_c;
      const bool is_adapter = path == adapter_path_ && iface == kAdapterIface;
      const bool is_device = path == device_path_ && iface == kDeviceIface;
      const bool is_char = iface == kCharIface && path.starts_with(char_prefix);
      if (!is_adapter && !is_device && !is_char) {
        if ((r = sd_bus_message_skip(m, "a{sv}")) < 0) break;
      } else {
        PropMap props;
        if ((r = ReadProperties(m, props)) < 0) break;
        if (is_adapter) snap.adapter = true;
        if (is_device) {
          const PropValue* addr = Find(props, "Address", PropValue::Type::kString);
          // The path is derived from the address; a different Address would be another device.
          snap.device = addr == nullptr || ble::CanonicalAddress(addr->s) == options_.address;
          const PropValue* c = Find(props, "Connected", PropValue::Type::kBool);
          const PropValue* sr = Find(props, "ServicesResolved", PropValue::Type::kBool);
          snap.connected = c != nullptr && c->b;
          snap.services_resolved = sr != nullptr && sr->b;
        }
        if (is_char) {
          const PropValue* uuid = Find(props, "UUID", PropValue::Type::kString);
          const auto uuid16 = uuid != nullptr ? ble::Uuid16From128(uuid->s) : std::nullopt;
          if (uuid16 && std::find(wanted_.begin(), wanted_.end(), *uuid16) != wanted_.end()) {
            Characteristic ch;
            ch.path = path;
            ch.uuid = *uuid16;
            if (const PropValue* f = Find(props, "Flags", PropValue::Type::kStrings)) {
              ch.flags = ble::ParseCharacteristicFlags(f->strings);
            }
            snap.chars.push_back(std::move(ch));
          }
        }
      }
      if ((r = sd_bus_message_exit_container(m)) < 0) break;
    }
    if (r < 0) break;
    if ((r = sd_bus_message_exit_container(m)) < 0) break;
    if ((r = sd_bus_message_exit_container(m)) < 0) break;
  }
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
    if (connect_sent_) {
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
  connect_sent_ = true;
  StartCall(CallKind::kConnect, 0, kBluez, device_path_.c_str(), kDeviceIface, "Connect",
            static_cast<std::uint64_t>(options_.connect_timeout_ms) * 1000);
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
  chars_ = found;
  notify_pending_ = 0;
  notify_ok_ = 0;
  notify_error_.clear();
  battery_index_.reset();
  racp_index_.reset();
  bool glucose = false;
  std::vector<std::size_t> to_subscribe;
  for (std::size_t i = 0; i < chars_.size(); ++i) {
    const Characteristic& ch = chars_[i];
    if (ch.uuid == ble::kUuidBatteryLevel) {
      if (ch.flags.read && !battery_index_) battery_index_ = i;
      continue;
    }
    if (ch.uuid == ble::kUuidRacp) {
      if (ch.flags.write && ch.flags.indicate && !racp_index_) racp_index_ = i;
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
  // RACP only serves the glucose measurements; without them its records would go nowhere.
  if (racp_index_ && glucose) {
    to_subscribe.push_back(*racp_index_);
  } else {
    racp_index_.reset();
  }
  phase_ = Phase::kSubscribing;
  ArmSetupDeadline();
  for (std::size_t i : to_subscribe) {
    // The PropertiesChanged match has been in place since the bus connection was opened, so
    // a value the device sends right after the CCCD write is not missed.
    chars_[i].subscribed = true;
    ++notify_pending_;
    if (!StartCall(CallKind::kStartNotify, i, kBluez, chars_[i].path.c_str(), kCharIface,
                   "StartNotify", kGattCallTimeoutUs)) {
      return;
    }
  }
}

void BleTransport::LinkUp() {
  phase_ = Phase::kUp;
  setup_timer_.cancel();
  setup_armed_ = false;
  backoff_.Reset();
  waiting_for_device_ = false;
  last_failure_.clear();
  spdlog::info("device {}: BLE connected, {} characteristics notifying{}", ctx_.device_id,
               notify_ok_, racp_index_ ? ", fetching stored glucose records" : "");
  if (link_report_ != LinkReport::kUp) {
    link_report_ = LinkReport::kUp;
    ctx_.sink->OnLink(true, "");
  }
  ReadBattery();
  ArmBatteryPoll();
  if (racp_index_) StartRacp();
}

void BleTransport::ReadBattery() {
  if (!battery_index_ || battery_pending_ || phase_ != Phase::kUp) return;
  battery_pending_ = true;
  StartCall(CallKind::kReadBattery, *battery_index_, kBluez, chars_[*battery_index_].path.c_str(),
            kCharIface, "ReadValue", kGattCallTimeoutUs, &AppendReadValueArgs, nullptr);
}

void BleTransport::ArmBatteryPoll() {
  if (!battery_index_ || options_.battery_poll_s <= 0) return;
  battery_timer_.expires_after(std::chrono::seconds(options_.battery_poll_s));
  std::weak_ptr<bool> alive = alive_;
  const std::uint64_t attempt = attempt_;
  battery_timer_.async_wait([this, alive, attempt](const boost::system::error_code& ec) {
    if (ec || alive.expired() || attempt != attempt_ || phase_ != Phase::kUp) return;
    ReadBattery();
    ArmBatteryPoll();
  });
}

// ---- Glucose stored records ----

void BleTransport::StartRacp() {
  std::optional<std::uint16_t> from;
  if (state_.glucose_last_sequence) {
    // At the top of the range there is nothing "after" to ask for; asking for >= 0xFFFF and
    // dropping what was seen keeps the request valid.
    from = static_cast<std::uint16_t>(
        std::min<std::uint32_t>(*state_.glucose_last_sequence + 1u, 0xFFFFu));
  }
  const std::vector<std::uint8_t> request = ble::RacpReportStoredRecords(from);
  racp_active_ = true;
  racp_records_ = 0;
  racp_skipped_ = 0;
  if (from) {
    spdlog::info("device {}: glucose: asking for stored records from sequence number {}",
                 ctx_.device_id, *from);
  } else {
    spdlog::info("device {}: glucose: asking for all stored records", ctx_.device_id);
  }
  racp_seen_up_to_ = state_.glucose_last_sequence;
  if (!StartCall(CallKind::kWriteRacp, *racp_index_, kBluez, chars_[*racp_index_].path.c_str(),
                 kCharIface, "WriteValue", kGattCallTimeoutUs, &AppendWriteRequestArgs, &request)) {
    return;
  }
  ArmRacpIdleTimer();
}

void BleTransport::ArmRacpIdleTimer() {
  racp_timer_.expires_after(kRacpIdleTimeout);
  std::weak_ptr<bool> alive = alive_;
  const std::uint64_t attempt = attempt_;
  racp_timer_.async_wait([this, alive, attempt](const boost::system::error_code& ec) {
    if (ec || alive.expired() || attempt != attempt_ || !racp_active_) return;
    spdlog::warn(
        "device {}: glucose: no RACP record or response for {} s after {} records; "
        "giving up until the next connection",
        ctx_.device_id, kRacpIdleTimeout.count(), racp_records_);
    FinishRacp();
  });
}

void BleTransport::FinishRacp() {
  racp_active_ = false;
  racp_timer_.cancel();
  PersistState();
}

void BleTransport::OnRacpIndication(std::span<const std::uint8_t> value) {
  auto parsed = ble::ParseRacpIndication(value);
  if (!parsed.ok()) {
    spdlog::warn("device {}: glucose: ignored RACP indication: {}", ctx_.device_id,
                 parsed.status().message());
    return;
  }
  // A late response (after the idle timeout gave up) ends nothing: the transfer is over.
  if (!racp_active_) return;
  if (parsed->op != ble::RacpOpCode::kResponseCode) return;  // a count; we never ask for one
  if (parsed->request_op != static_cast<std::uint8_t>(ble::RacpOpCode::kReportStoredRecords)) {
    return;
  }
  const auto code = static_cast<ble::RacpResponseCode>(parsed->response);
  if (code == ble::RacpResponseCode::kSuccess) {
    spdlog::info("device {}: glucose: {} stored records received{}", ctx_.device_id, racp_records_,
                 racp_skipped_ > 0
                     ? " (" + std::to_string(racp_skipped_) + " already seen, skipped)"
                     : std::string());
  } else if (code == ble::RacpResponseCode::kNoRecordsFound) {
    spdlog::info("device {}: glucose: no new stored records", ctx_.device_id);
  } else {
    spdlog::warn("device {}: glucose: stored-record request answered \"{}\" after {} records",
                 ctx_.device_id, ble::RacpResponseName(parsed->response), racp_records_);
  }
  FinishRacp();
}

void BleTransport::OnGlucoseRecord(std::span<const std::uint8_t> value) {
  const auto seq = ble::GlucoseSequenceNumber(value);
  if (racp_active_) {
    ArmRacpIdleTimer();  // the transfer is alive
    // A meter that ignores the filter must not repeat what the pipeline already has.
    if (seq && racp_seen_up_to_ && *seq <= *racp_seen_up_to_) {
      ++racp_skipped_;
      return;
    }
    ++racp_records_;
  }
  // Nothing else feeds the ingress ring between this check and the push (one I/O thread), and
  // an unsaturated ring has room for more than one item: only a saturated one may drop it.
  const bool may_be_dropped = ctx_.sink->Saturated();
  if (may_be_dropped && !glucose_position_held_ && seq) {
    spdlog::warn("device {}: glucose: pipeline full; records from sequence number {} are "
                 "fetched again at the next connection",
                 ctx_.device_id, *seq);
  }
  ctx_.sink->OnCharacteristic(ble::kUuidGlucoseMeasurement, value);
  if (ble::AdvanceGlucosePosition(state_, seq, may_be_dropped, glucose_position_held_)) {
    MarkStateDirty();
  }
}

void BleTransport::MarkStateDirty() {
  if (state_path_.empty()) return;
  state_dirty_ = true;
  if (persist_armed_) return;
  persist_armed_ = true;
  persist_timer_.expires_after(kPersistDelay);
  std::weak_ptr<bool> alive = alive_;
  persist_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (alive.expired()) return;
    persist_armed_ = false;
    if (!ec) PersistState();
  });
}

void BleTransport::PersistState() {
  if (!state_dirty_ || state_path_.empty()) return;
  state_dirty_ = false;
  const Status s = ble::SaveBleState(state_path_, options_.address, state_);
  if (!s.ok()) {
    state_dirty_ = true;  // tried again with the next record, at link down and at stop
    std::uint64_t suppressed = 0;
    if (state_error_log_.Allow(ctx_.clock->MonotonicNs(), suppressed)) {
      spdlog::error("device {}: cannot save the glucose record position: {}", ctx_.device_id,
                    s.message());
    }
  }
}

// ---- Signals ----

bool BleTransport::FromBluez(sd_bus_message* m) const {
  const char* sender = sd_bus_message_get_sender(m);
  return sender != nullptr && !bluez_owner_.empty() && bluez_owner_ == sender;
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
  if (ReadProperties(m, changed) < 0) return;

  if (about_device) {
    if (phase_ == Phase::kBackoff) {
      // Something else connected the device (bluetoothd reconnecting a bonded device, an
      // operator with bluetoothctl): a meter that wakes briefly may be gone before the backoff
      // ends, so set it up now.
      const PropValue* c = Find(changed, "Connected", PropValue::Type::kBool);
      if (c != nullptr && c->b) RetrySoon();
      return;
    }
    const bool past_connect =
        phase_ == Phase::kResolving || phase_ == Phase::kSubscribing || phase_ == Phase::kUp;
    if (const PropValue* c = Find(changed, "Connected", PropValue::Type::kBool)) {
      if (!c->b && past_connect) {
        Fail("device disconnected");
        return;
      }
    }
    if (const PropValue* sr = Find(changed, "ServicesResolved", PropValue::Type::kBool)) {
      if (sr->b && phase_ == Phase::kResolving) {
        ListObjects();
      } else if (!sr->b && (phase_ == Phase::kSubscribing || phase_ == Phase::kUp)) {
        // BlueZ drops this first on a disconnect, and also when the device changed its
        // services: either way the characteristic paths are no longer valid.
        Fail("device disconnected (services no longer resolved)");
      }
    }
    return;
  }
  if (iface != kCharIface || (phase_ != Phase::kSubscribing && phase_ != Phase::kUp)) return;
  const PropValue* value = Find(changed, "Value", PropValue::Type::kBytes);
  if (value == nullptr) return;
  for (std::size_t i = 0; i < chars_.size(); ++i) {
    // Only characteristics we subscribed to: BlueZ also announces the cached Value after a
    // ReadValue (battery), which arrives through the reply already.
    if (chars_[i].subscribed && chars_[i].path == path) {
      OnValue(i, value->bytes);
      return;
    }
  }
}

void BleTransport::OnValue(std::size_t index, std::span<const std::uint8_t> value) {
  const std::uint16_t uuid = chars_[index].uuid;
  if (uuid == ble::kUuidRacp) {
    OnRacpIndication(value);
  } else if (uuid == ble::kUuidGlucoseMeasurement) {
    OnGlucoseRecord(value);
  } else {
    ctx_.sink->OnCharacteristic(uuid, value);
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
    if (ReadStrings(m, ifaces) < 0) return;
    if (std::find(ifaces.begin(), ifaces.end(), kDeviceIface) != ifaces.end()) {
      Fail("device removed from BlueZ");
    }
    return;
  }
  if (phase_ != Phase::kSubscribing && phase_ != Phase::kUp) return;
  for (const Characteristic& ch : chars_) {
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
  const bool had_owner = !bluez_owner_.empty();
  bluez_owner_ = new_owner != nullptr ? new_owner : "";
  if (had_owner && phase_ != Phase::kBackoff && phase_ != Phase::kStopped &&
      phase_ != Phase::kOpening) {
    Fail(bluez_owner_.empty() ? "bluetoothd left the bus" : "bluetoothd restarted");
    return;
  }
  if (!bluez_owner_.empty()) RetrySoon();
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
  racp_timer_.cancel();
  // Pending calls are cancelled by releasing their slots; sd-bus may be inside one of them,
  // so the release happens in a posted clean-up (or at once when the bus goes away).
  for (struct Call& c : calls_) c.attempt = UINT64_MAX;
  retired_.splice(retired_.end(), calls_);
  ScheduleCleanup();
  chars_.clear();
  notify_pending_ = 0;
  notify_ok_ = 0;
  battery_index_.reset();
  battery_pending_ = false;
  racp_index_.reset();
  racp_active_ = false;
  glucose_position_held_ = false;  // the next connection asks again from the saved position
  connect_sent_ = false;
  PersistState();
}

void BleTransport::Fail(const std::string& why, bool close_bus) {
  if (phase_ == Phase::kStopped) return;
  const bool was_up = link_report_ == LinkReport::kUp;
  EndAttempt();
  if (close_bus && bus_) {
    bus_broken_ = true;
    // Not here: this may run inside one of the bus's callbacks.
    std::weak_ptr<bool> alive = alive_;
    boost::asio::post(*ctx_.io, [this, alive] {
      if (!alive.expired() && bus_broken_) CloseBus();
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
