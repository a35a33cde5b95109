#include "vitalgate/config/config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <set>
#include <sstream>

#include "vitalgate/core/net.h"

namespace vg::config {
namespace {

constexpr std::size_t kMaxConfigBytes = 4 << 20;

using nlohmann::json;

constexpr std::array<std::string_view, 2> kFormats{"json", "fhir"};
constexpr std::array<std::string_view, 2> kTlsVersions{"1.2", "1.3"};
constexpr std::array<std::string_view, 2> kSyncModes{"full", "normal"};
constexpr std::array<std::string_view, 6> kLogLevels{"trace", "debug", "info",
                                                      "warn",  "error", "off"};

constexpr OptionSpec kGateway[] = {
    {"id", OptionType::kString, "", "Gateway id; part of every topic. [A-Za-z0-9._-], 1-64.", true},
    {"site", OptionType::kString, "\"\"", "Free-form site label, reported in /healthz."},
    {"log_level", OptionType::kString, "\"info\"", "trace, debug, info, warn, error or off.",
     false, -1e300, 1e300, kLogLevels},
    {"certificate_alarm_days", OptionType::kObject, "{\"low\": 30, \"medium\": 7, \"high\": 1}",
     "Technical alarm `certificate` this many days before a certificate expires, by priority."},
    {"audit_retention_days", OptionType::kInteger, "400",
     "Audit entries older than this are pruned (the chain stays verifiable).", false, 1, 36500},
};

constexpr OptionSpec kStorage[] = {
    {"path", OptionType::kString, "\"/var/lib/vitalgate/buffer.db\"",
     "SQLite outbox file; created with mode 0600."},
    {"max_bytes", OptionType::kInteger, "536870912",
     "Upper bound of the outbox size on disk.", false, 1048576, 1e15},
    {"synchronous", OptionType::kString, "\"full\"",
     "SQLite synchronous mode: full (no committed row lost on power loss) or normal.", false,
     -1e300, 1e300, kSyncModes},
    {"batch_max_rows", OptionType::kInteger, "4096",
     "Most readings written in one transaction (group commit).", false, 1, 1000000},
};

constexpr OptionSpec kTls[] = {
    {"ca_file", OptionType::kString, "", "PEM CA bundle that signed the broker's certificate.",
     true, -1e300, 1e300, {}, FileCheck::kReadable},
    {"cert_file", OptionType::kString, "\"\"", "PEM client certificate (mutual TLS).", false,
     -1e300, 1e300, {}, FileCheck::kReadable},
    {"key_file", OptionType::kString, "\"\"",
     "PEM private key of cert_file; a secret file: 0600, or root:vitalgate 0640.", false, -1e300,
     1e300, {}, FileCheck::kSecret},
    {"min_version", OptionType::kString, "\"1.2\"", "Lowest TLS version accepted: 1.2 or 1.3.",
     false, -1e300, 1e300, kTlsVersions},
};

constexpr OptionSpec kEncryption[] = {
    {"key_file", OptionType::kString, "",
     "32 random bytes in base64 on one line (openssl rand -base64 32); a secret file.", true, -1e300,
     1e300, {}, FileCheck::kSecret},
    {"key_id", OptionType::kString, "", "Key id written as \"kid\" in every envelope.", true},
    {"downlink_key_file", OptionType::kString, "\"\"",
     "Key (same format) that dashboards seal cmd/ack and cmd/assign with; must differ from "
     "key_file. Without it every downlink command is refused while payloads are encrypted.",
     false, -1e300, 1e300, {}, FileCheck::kSecret},
    {"downlink_key_id", OptionType::kString, "\"\"",
     "The \"kid\" downlink envelopes must carry; default: any kid sealed with downlink_key_file."},
    {"downlink_window_s", OptionType::kInteger, "120",
     "A downlink command's \"ts\" may differ from the gateway's clock by at most this much; "
     "older ones, and nonces seen within twice this window, are refused as replays.",
     false, 5, 3600},
};

constexpr OptionSpec kMqtt[] = {
    {"host", OptionType::kString, "", "Broker host name or IP address.", true},
    {"port", OptionType::kInteger, "", "Broker port; default 8883 with tls, 1883 without.", false,
     1, 65535},
    {"client_id", OptionType::kString, "", "MQTT client id; default gateway.id."},
    {"tls", OptionType::kObject, "",
     "TLS settings; absent means plain TCP, allowed only to a loopback host."},
    {"username", OptionType::kString, "\"\"", "MQTT user name."},
    {"password_file", OptionType::kString, "\"\"",
     "File holding the MQTT password on its first line; a secret file.", false, -1e300, 1e300, {},
     FileCheck::kSecret},
    {"topic_prefix", OptionType::kString, "\"vitalgate/v1\"", "First levels of every topic."},
    {"format", OptionType::kString, "\"json\"", "Readings payload: json or fhir.", false, -1e300,
     1e300, kFormats},
    {"payload_encryption", OptionType::kObject, "", "AES-256-GCM envelope for every payload."},
    {"keepalive_s", OptionType::kInteger, "30", "MQTT keep-alive interval.", false, 5, 3600},
    {"reconnect_min_ms", OptionType::kInteger, "500", "First reconnect delay.", false, 10, 600000},
    {"reconnect_max_ms", OptionType::kInteger, "30000",
     "Cap of the exponential reconnect delay.", false, 100, 3600000},
    {"max_inflight", OptionType::kInteger, "64",
     "Messages published but not yet acknowledged (PUBACK).", false, 1, 65535},
    {"max_readings_per_message", OptionType::kInteger, "100",
     "Most readings of one patient in one readings message.", false, 1, 10000},
    {"backlog_alarm_s", OptionType::kNumber, "900",
     "Technical alarm `destination` while the oldest undelivered item is older than this.", false,
     10, 604800},
};

constexpr OptionSpec kHttp[] = {
    {"listen", OptionType::kString, "\"127.0.0.1:9102\"",
     "IP address and port of the status page, /api/status, /healthz and /metrics, e.g. "
     "127.0.0.1:9102; \"\" disables. An address beyond loopback needs `tls` and "
     "`users_file` or `tls.ca_file`."},
    {"tls", OptionType::kObject, "",
     "HTTPS for the local endpoints; with it every request must authenticate (client "
     "certificate or HTTP Basic). See http.tls."},
    {"users_file", OptionType::kString, "\"\"",
     "Users allowed in with HTTP Basic over TLS: `name:hash` lines made by `vitalgate passwd` "
     "(yescrypt or bcrypt); mode 0600.",
     false, -1e300, 1e300, {}, FileCheck::kSecret},
    {"max_connections", OptionType::kInteger, "16",
     "Connections served at once; further ones replace the oldest idle one. Never more than a "
     "quarter of the open-file limit.",
     false, 2, 4096},
};

constexpr OptionSpec kHttpTls[] = {
    {"cert_file", OptionType::kString, "", "PEM certificate (chain) the gateway presents.", true,
     -1e300, 1e300, {}, FileCheck::kReadable},
    {"key_file", OptionType::kString, "",
     "PEM private key of cert_file; must not be readable by group or others.", true, -1e300,
     1e300, {}, FileCheck::kSecret},
    {"ca_file", OptionType::kString, "\"\"",
     "PEM CA bundle for client certificates; a client presenting a certificate it signed needs "
     "no password.",
     false, -1e300, 1e300, {}, FileCheck::kReadable},
};


constexpr OptionSpec kPatient[] = {
    {"id", OptionType::kString, "", "Patient id; part of topics. [A-Za-z0-9._-], 1-64.", true},
    {"location", OptionType::kString, "\"\"",
     "Bed or room (HL7 PV1-3 point of care^room^bed, e.g. \"ICU^12^1\"), shown on the status page."},
    {"news2_scale", OptionType::kInteger, "1",
     "NEWS2 SpO2 scale: 1, or 2 for confirmed hypercapnic respiratory failure.", false, 1, 2},
    {"rules", OptionType::kObject, "{}", "Overrides of the global rules (JSON merge patch)."},
};

constexpr OptionSpec kDevice[] = {
    {"id", OptionType::kString, "", "Device id. [A-Za-z0-9._-], 1-64.", true},
    {"patient", OptionType::kString, "",
     "Id of the patient the device is attached to; null or absent: none (its readings go to "
     "readings/unassigned/{device}, not evaluated, technical alarm `unassigned`). A cmd/assign "
     "for the device wins over this until the next cmd/assign."},
    {"allowed_patients", OptionType::kStringArray, "[]",
     "Patients a reading may name itself (the jsonl \"patient\" key) besides the device's own; "
     "[\"*\"]: any configured patient."},
    {"spot", OptionType::kBool, "false",
     "Every reading is a spot check (no condition delay; NEWS2 neither averages nor settles it)."},
    {"intermittent", OptionType::kBool, "false",
     "The device connects only to send (e.g. a BLE cuff or scale): its link being down is normal "
     "(no `disconnected` alarm, healthy in /healthz); only its no-data time counts."},
    {"timezone", OptionType::kString, "\"\"",
     "tz database name of the device's clock (e.g. \"Europe/Berlin\"), so daylight saving is "
     "right; replaces the codec's utc_offset_minutes."},
    {"clock", OptionType::kObject, "{}", "How far the device's time stamps may be from the "
     "gateway's; see devices[].clock."},
    {"serial_number", OptionType::kString, "\"\"", "Device serial number (FHIR Device, HL7 OBX-18)."},
    {"manufacturer", OptionType::kString, "\"\"", "Device manufacturer (FHIR Device)."},
    {"model", OptionType::kString, "\"\"", "Device model (FHIR Device)."},
    {"transport", OptionType::kObject, "", "How bytes arrive; see the transport tables.", true},
    {"codec", OptionType::kObject, "",
     "How bytes become readings: a name or {\"type\": name, options...}."},
    {"no_data_s", OptionType::kNumber, "",
     "Technical alarm after this long without a reading; overrides rules.technical.", false, 1,
     86400},
    {"disconnect_alarm_s", OptionType::kNumber, "",
     "Technical alarm after the link is down this long; overrides rules.technical.", false, 0,
     86400},
};

constexpr OptionSpec kDeviceClock[] = {
    {"max_ahead_s", OptionType::kNumber, "60",
     "A device time further ahead of the gateway's clock is implausible.", false, 1, 86400},
    {"max_behind_s", OptionType::kNumber, "600",
     "A live reading whose device time is further behind is implausible.", false, 1, 31536000},
    {"max_record_age_s", OptionType::kNumber, "2592000",
     "A spot check or stored record older than this is implausible (30 days).", false, 60,
     315360000},
};

constexpr OptionSpec kDestination[] = {
    {"type", OptionType::kString, "", "fhir or hl7v2; their own keys are in their tables.", true},
    {"name", OptionType::kString, "", "Unique name (metrics, logs, dead letters); default: the type."},
    {"kinds", OptionType::kStringArray, "[\"readings\", \"alerts\"]",
     "What it receives: readings, alerts, audit."},
    {"include_unassigned", OptionType::kBool, "false",
     "Also deliver readings of devices without a patient."},
    {"backlog_alarm_s", OptionType::kNumber, "900",
     "Technical alarm `destination` while its oldest undelivered item is older than this.", false,
     10, 604800},
    {"reconnect_min_ms", OptionType::kInteger, "1000", "First retry delay.", false, 10, 600000},
    {"reconnect_max_ms", OptionType::kInteger, "60000", "Cap of the retry delay.", false, 100,
     3600000},
};

constexpr std::array<std::string_view, 9> kTopLevelKeys{
    "gateway", "storage", "mqtt", "http", "patients", "devices", "destinations", "rules", "$schema"};

std::string IndexPath(std::string_view parent, std::size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
}

const std::string& Str(const json& j, const char* key) { return j.at(key).get_ref<const std::string&>(); }
int Int(const json& j, const char* key) { return j.at(key).get<int>(); }

Status ParseMqtt(const json& in, const OptionContext& ctx, const std::string& gateway_id,
                 MqttConfig& out, json& effective) {
  json raw = in;
  // A string codec-like shorthand is not offered here; mqtt must be an object.
  auto mqtt = ApplyOptionSpecs(raw, kMqtt, "mqtt", ctx);
  if (!mqtt.ok()) return mqtt.status();
  json& m = *mqtt;
  out.host = Str(m, "host");
  if (out.host.empty()) return InvalidArgument("mqtt.host: must not be empty");
  if (m.contains("tls")) {
    auto tls = ApplyOptionSpecs(m["tls"], kTls, "mqtt.tls", ctx);
    if (!tls.ok()) return tls.status();
    TlsConfig t;
    t.ca_file = Str(*tls, "ca_file");
    t.cert_file = Str(*tls, "cert_file");
    t.key_file = Str(*tls, "key_file");
    t.min_version = Str(*tls, "min_version");
    if (t.cert_file.empty() != t.key_file.empty()) {
      return InvalidArgument(
          "mqtt.tls: cert_file and key_file go together (mutual TLS needs both)");
    }
    m["tls"] = *tls;
    out.tls = t;
  } else if (!IsLoopbackHost(out.host)) {
    return InvalidArgument("mqtt.tls: required for host \"" + out.host +
                           "\"; plain TCP is allowed only to 127.0.0.1, ::1 or localhost");
  }
  if (!m.contains("port")) m["port"] = out.tls ? 8883 : 1883;
  if (!m.contains("client_id")) m["client_id"] = gateway_id;
  out.port = Int(m, "port");
  out.client_id = Str(m, "client_id");
  if (out.client_id.empty() || out.client_id.size() > 128) {
    return InvalidArgument("mqtt.client_id: must be 1 to 128 characters");
  }
  out.username = Str(m, "username");
  out.password_file = Str(m, "password_file");
  if (!out.password_file.empty() && out.username.empty()) {
    return InvalidArgument("mqtt.password_file: needs mqtt.username");
  }
  out.topic_prefix = Str(m, "topic_prefix");
  if (out.topic_prefix.empty() || out.topic_prefix.find_first_of("+#") != std::string::npos ||
      out.topic_prefix.front() == '/' || out.topic_prefix.back() == '/') {
    return InvalidArgument(
        "mqtt.topic_prefix: must be non-empty, without '+', '#' or a leading/trailing '/'");
  }
  out.format = Str(m, "format");
  if (m.contains("payload_encryption")) {
    auto enc = ApplyOptionSpecs(m["payload_encryption"], kEncryption, "mqtt.payload_encryption", ctx);
    if (!enc.ok()) return enc.status();
    out.payload_encryption = EncryptionConfig{Str(*enc, "key_file"), Str(*enc, "key_id"),
                                              Str(*enc, "downlink_key_file"),
                                              Str(*enc, "downlink_key_id")};
    if (out.payload_encryption->key_id.empty()) {
      return InvalidArgument("mqtt.payload_encryption.key_id: must not be empty");
    }
    if (!out.payload_encryption->downlink_key_file.empty() &&
        out.payload_encryption->downlink_key_file == out.payload_encryption->key_file) {
      return InvalidArgument(
          "mqtt.payload_encryption.downlink_key_file: must not be the payload key (key_file)");
    }
    m["payload_encryption"] = *enc;
  }
  out.keepalive_s = Int(m, "keepalive_s");
  out.reconnect_min_ms = Int(m, "reconnect_min_ms");
  out.reconnect_max_ms = Int(m, "reconnect_max_ms");
  if (out.reconnect_max_ms < out.reconnect_min_ms) {
    return InvalidArgument("mqtt.reconnect_max_ms: must be >= mqtt.reconnect_min_ms");
  }
  out.max_inflight = Int(m, "max_inflight");
  out.max_readings_per_message = Int(m, "max_readings_per_message");
  effective["mqtt"] = m;
  return Status::Ok();
}

Status ParseDevices(const json& devices, const OptionContext& ctx,
                    const std::set<std::string>& patient_ids, Config& cfg, json& effective) {
  if (!devices.is_array()) {
    return InvalidArgument("devices: expected an array, got " + std::string(JsonTypeName(devices)));
  }
  std::set<std::string> seen;
  json eff = json::array();
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const std::string path = IndexPath("devices", i);
    json raw = devices[i];
    // "codec" may be a plain name; normalize it to {"type": name}.
    if (raw.is_object() && raw.contains("codec") && raw["codec"].is_string()) {
      raw["codec"] = json{{"type", raw["codec"]}};
    }
    // "patient": null says explicitly that the device has no patient.
    if (raw.is_object() && raw.contains("patient") && raw["patient"].is_null()) raw.erase("patient");
    auto dev = ApplyOptionSpecs(raw, kDevice, path, ctx);
    if (!dev.ok()) return dev.status();
    DeviceConfig d;
    d.id = Str(*dev, "id");
    if (!IsValidId(d.id)) {
      return InvalidArgument(path + ".id: \"" + d.id + "\" is not a valid id ([A-Za-z0-9._-], 1-64)");
    }
    if (!seen.insert(d.id).second) {
      return InvalidArgument(path + ".id: duplicate device id \"" + d.id + "\"");
    }
    if (dev->contains("patient")) {
      d.patient = Str(*dev, "patient");
      if (patient_ids.count(*d.patient) == 0) {
        return InvalidArgument(path + ".patient: \"" + *d.patient + "\" is not in patients[]");
      }
    } else {
      (*dev)["patient"] = nullptr;
    }
    for (const auto& a : (*dev)["allowed_patients"]) {
      const std::string& id = a.get_ref<const std::string&>();
      if (id == "*") {
        d.allow_any_patient = true;
      } else if (patient_ids.count(id) == 0) {
        return InvalidArgument(path + ".allowed_patients: \"" + id + "\" is not in patients[]");
      } else {
        d.allowed_patients.push_back(id);
      }
    }
    d.spot = (*dev)["spot"].get<bool>();
    d.intermittent = (*dev)["intermittent"].get<bool>();
    d.timezone = Str(*dev, "timezone");
    d.serial_number = Str(*dev, "serial_number");
    d.manufacturer = Str(*dev, "manufacturer");
    d.model = Str(*dev, "model");
    auto clock = ApplyOptionSpecs((*dev)["clock"], kDeviceClock, path + ".clock", ctx);
    if (!clock.ok()) return clock.status();
    d.clock.max_ahead_ms = static_cast<std::int64_t>((*clock)["max_ahead_s"].get<double>() * 1000);
    d.clock.max_behind_ms = static_cast<std::int64_t>((*clock)["max_behind_s"].get<double>() * 1000);
    d.clock.max_record_age_ms =
        static_cast<std::int64_t>((*clock)["max_record_age_s"].get<double>() * 1000);
    (*dev)["clock"] = *clock;
    d.transport = (*dev)["transport"];
    if (!d.transport.contains("type") || !d.transport["type"].is_string()) {
      return InvalidArgument(path + ".transport.type: required string is missing");
    }
    if (dev->contains("codec")) {
      d.codec = (*dev)["codec"];
      if (!d.codec.contains("type") || !d.codec["type"].is_string()) {
        return InvalidArgument(path + ".codec.type: required string is missing");
      }
    }
    if (dev->contains("no_data_s")) d.no_data_s = (*dev)["no_data_s"].get<double>();
    if (dev->contains("disconnect_alarm_s")) {
      d.disconnect_alarm_s = (*dev)["disconnect_alarm_s"].get<double>();
    }
    eff.push_back(*dev);
    cfg.devices.push_back(std::move(d));
  }
  effective["devices"] = eff;
  return Status::Ok();
}

Status ParseDestinations(const json& list, const OptionContext& ctx, Config& cfg, json& effective) {
  if (!list.is_array()) {
    return InvalidArgument("destinations: expected an array, got " + std::string(JsonTypeName(list)));
  }
  std::set<std::string> names{"mqtt"};
  json eff = json::array();
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string path = IndexPath("destinations", i);
    if (!list[i].is_object()) {
      return InvalidArgument(path + ": expected an object, got " + std::string(JsonTypeName(list[i])));
    }
    // The common keys are checked here; the rest belongs to the destination type.
    json common = json::object();
    json own = json::object();
    for (const auto& item : list[i].items()) {
      const std::string& key = item.key();  // a plain name: lambdas may not capture bindings (clang)
      const bool is_common = std::any_of(std::begin(kDestination), std::end(kDestination),
                                         [&](const OptionSpec& s) { return s.name == key; });
      (is_common ? common : own)[key] = item.value();
    }
    auto c = ApplyOptionSpecs(common, kDestination, path, ctx);
    if (!c.ok()) return c.status();
    DestinationConfig d;
    d.path = path;
    d.type = Str(*c, "type");
    d.name = c->contains("name") ? Str(*c, "name") : d.type;
    if (!IsValidId(d.name)) {
      return InvalidArgument(path + ".name: \"" + d.name + "\" is not a valid name ([A-Za-z0-9._-], 1-64)");
    }
    if (!names.insert(d.name).second) {
      return InvalidArgument(path + ".name: \"" + d.name + "\" is used twice (\"mqtt\" is the primary destination)");
    }
    d.readings = d.alerts = d.audit = false;
    for (const auto& k : (*c)["kinds"]) {
      const std::string& kind = k.get_ref<const std::string&>();
      if (kind == "readings") {
        d.readings = true;
      } else if (kind == "alerts") {
        d.alerts = true;
      } else if (kind == "audit") {
        d.audit = true;
      } else {
        return InvalidArgument(path + ".kinds: \"" + kind + "\" is not one of readings, alerts, audit");
      }
    }
    d.include_unassigned = (*c)["include_unassigned"].get<bool>();
    d.backlog_alarm_ms = static_cast<std::int64_t>((*c)["backlog_alarm_s"].get<double>() * 1000);
    d.reconnect_min_ms = Int(*c, "reconnect_min_ms");
    d.reconnect_max_ms = Int(*c, "reconnect_max_ms");
    if (d.reconnect_max_ms < d.reconnect_min_ms) {
      return InvalidArgument(path + ".reconnect_max_ms: must be >= reconnect_min_ms");
    }
    d.options = std::move(own);
    json e = *c;
    e["name"] = d.name;
    eff.push_back(std::move(e));
    cfg.destinations.push_back(std::move(d));
  }
  effective["destinations"] = eff;
  return Status::Ok();
}

}  // namespace

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<json> ParseJsonDocument(std::string_view text, std::string_view source) {
  // Duplicate keys are accepted by JSON parsers (last wins) but in a config they are almost
  // always a mistake, so the parse callback records the first one with its path.
  std::vector<std::set<std::string>> keys_per_object;
  std::vector<std::string> path;
  std::string duplicate;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys_per_object.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys_per_object.empty()) keys_per_object.pop_back();
        if (!path.empty()) path.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!keys_per_object.empty() && !keys_per_object.back().insert(key).second &&
            duplicate.empty()) {
          duplicate = key;
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    json doc = json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                           /*ignore_comments=*/false);
    if (!duplicate.empty()) {
      return InvalidArgument(std::string(source) + ": duplicate key \"" + duplicate + "\"");
    }
    return doc;
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    const auto pos = what.find("] ");
    if (pos != std::string::npos) what = what.substr(pos + 2);
    return InvalidArgument(std::string(source) + ": " + what + " (byte offset " +
                           std::to_string(e.byte) + ")");
  } catch (const std::exception& e) {
    return InvalidArgument(std::string(source) + ": " + e.what());
  }
}

Result<Config> ParseConfig(std::string_view text, std::string_view source, std::string_view base_dir,
                           const ParseOptions& options) {
  auto doc = ParseJsonDocument(text, source);
  if (!doc.ok()) return doc.status();
  const json& root = *doc;
  const std::string src(source);
  if (!root.is_object()) {
    return InvalidArgument(src + ": expected a JSON object at the top level, got " +
                           std::string(JsonTypeName(root)));
  }
  auto fail = [&](const Status& s) { return s.WithContext(src); };
  for (const auto& [key, value] : root.items()) {
    bool known = false;
    for (std::string_view k : kTopLevelKeys) known = known || k == key;
    if (!known) {
      return fail(InvalidArgument(
          key + ": unknown key (known keys: gateway, storage, mqtt, http, patients, devices, "
                "destinations, rules)"));
    }
  }
  // The file the package installs names neither a broker nor a device: say what to do rather
  // than which key is missing.
  const bool no_devices = !root.contains("devices") ||
                          (root["devices"].is_array() && root["devices"].empty());
  if (!root.contains("mqtt") && no_devices) {
    return fail(InvalidArgument(
        "not configured yet: set gateway.id, the broker (mqtt) and the devices (devices[]); "
        "see vitalgate(8) and /usr/share/doc/vitalgate/operations.md"));
  }
  const OptionContext ctx{base_dir, options.check_files};
  Config cfg;
  cfg.source = src;
  cfg.base_dir = std::string(base_dir);
  json effective = json::object();

  if (!root.contains("gateway")) return fail(InvalidArgument("gateway: required section is missing"));
  auto gw = ApplyOptionSpecs(root["gateway"], kGateway, "gateway", ctx);
  if (!gw.ok()) return fail(gw.status());
  cfg.gateway_id = Str(*gw, "id");
  if (!IsValidId(cfg.gateway_id)) {
    return fail(InvalidArgument("gateway.id: \"" + cfg.gateway_id +
                                "\" is not a valid id ([A-Za-z0-9._-], 1-64)"));
  }
  cfg.site = Str(*gw, "site");
  cfg.log_level = Str(*gw, "log_level");
  {
    const json& ladder = (*gw)["certificate_alarm_days"];
    for (const auto& [k, v] : ladder.items()) {
      if (k != "low" && k != "medium" && k != "high") {
        return fail(InvalidArgument("gateway.certificate_alarm_days." + k +
                                    ": unknown key (expected low, medium, high)"));
      }
      if (!v.is_number_integer() || v.get<int>() < 0 || v.get<int>() > 3650) {
        return fail(InvalidArgument("gateway.certificate_alarm_days." + k +
                                    ": expected a number of days from 0 to 3650"));
      }
    }
    cfg.certificate_alarm_days = {ladder.value("low", 30), ladder.value("medium", 7),
                                  ladder.value("high", 1)};
    if (!(cfg.certificate_alarm_days[2] <= cfg.certificate_alarm_days[1] &&
          cfg.certificate_alarm_days[1] <= cfg.certificate_alarm_days[0])) {
      return fail(InvalidArgument("gateway.certificate_alarm_days: expected high <= medium <= low"));
    }
    cfg.audit_retention_days = Int(*gw, "audit_retention_days");
  }
  effective["gateway"] = *gw;

  auto st = ApplyOptionSpecs(root.value("storage", json::object()), kStorage, "storage", ctx);
  if (!st.ok()) return fail(st.status());
  cfg.storage.path = Str(*st, "path");
  if (cfg.storage.path.empty()) return fail(InvalidArgument("storage.path: must not be empty"));
  if (cfg.storage.path[0] != '/' && !base_dir.empty() && cfg.storage.path != ":memory:") {
    cfg.storage.path = std::string(base_dir) + "/" + cfg.storage.path;
    (*st)["path"] = cfg.storage.path;
  }
  cfg.storage.max_bytes = (*st)["max_bytes"].get<std::uint64_t>();
  cfg.storage.synchronous = Str(*st, "synchronous");
  cfg.storage.batch_max_rows = Int(*st, "batch_max_rows");
  effective["storage"] = *st;

  if (!root.contains("mqtt")) return fail(InvalidArgument("mqtt: required section is missing"));
  VG_RETURN_IF_ERROR(fail(ParseMqtt(root["mqtt"], ctx, cfg.gateway_id, cfg.mqtt, effective)));
  cfg.primary_backlog_alarm_ms =
      static_cast<std::int64_t>(effective["mqtt"]["backlog_alarm_s"].get<double>() * 1000);

  auto http = ApplyOptionSpecs(root.value("http", json::object()), kHttp, "http", ctx);
  if (!http.ok()) return fail(http.status());
  cfg.http.listen = Str(*http, "listen");
  cfg.http.users_file = Str(*http, "users_file");
  cfg.http.max_connections = Int(*http, "max_connections");
  if (http->contains("tls")) {
    auto tls = ApplyOptionSpecs((*http)["tls"], kHttpTls, "http.tls", ctx);
    if (!tls.ok()) return fail(tls.status());
    cfg.http.tls = HttpTlsConfig{Str(*tls, "cert_file"), Str(*tls, "key_file"), Str(*tls, "ca_file")};
    (*http)["tls"] = *tls;
  }
  if (cfg.http.tls && cfg.http.users_file.empty() && cfg.http.tls->ca_file.empty()) {
    return fail(InvalidArgument(
        "http.tls: every request over HTTPS must authenticate: set http.users_file (HTTP Basic) "
        "or http.tls.ca_file (client certificates)"));
  }
  if (!cfg.http.users_file.empty() && !cfg.http.tls) {
    return fail(InvalidArgument(
        "http.users_file: passwords are accepted only over HTTPS: set http.tls as well"));
  }
  if (!cfg.http.listen.empty()) {
    const auto colon = cfg.http.listen.rfind(':');
    std::string host = colon == std::string::npos ? "" : cfg.http.listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string port = colon == std::string::npos ? "" : cfg.http.listen.substr(colon + 1);
    in6_addr a6{};
    in_addr a4{};
    const bool ip = ::inet_pton(AF_INET, host.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
    const bool numeric = !port.empty() && port.size() <= 5 &&
                         port.find_first_not_of("0123456789") == std::string::npos &&
                         std::stoi(port) >= 1 && std::stoi(port) <= 65535;
    if (!ip || !numeric) {
      return fail(InvalidArgument("http.listen: \"" + cfg.http.listen +
                                  "\" is not an IP address and port, e.g. 127.0.0.1:9102"));
    }
    if (!IsLoopbackHost(host) && !cfg.http.tls) {
      return fail(InvalidArgument(
          "http.listen: \"" + cfg.http.listen +
          "\" is beyond loopback: set http.tls (cert_file, key_file) and http.users_file or "
          "http.tls.ca_file, so that every request is encrypted and authenticated"));
    }
  }
  effective["http"] = *http;

  const json patients = root.value("patients", json::array());
  if (!patients.is_array()) {
    return fail(InvalidArgument("patients: expected an array, got " +
                                std::string(JsonTypeName(patients))));
  }
  std::set<std::string> patient_ids;
  json eff_patients = json::array();
  for (std::size_t i = 0; i < patients.size(); ++i) {
    const std::string path = IndexPath("patients", i);
    auto p = ApplyOptionSpecs(patients[i], kPatient, path, ctx);
    if (!p.ok()) return fail(p.status());
    PatientConfig pc;
    pc.id = Str(*p, "id");
    if (!IsValidId(pc.id)) {
      return fail(InvalidArgument(path + ".id: \"" + pc.id +
                                  "\" is not a valid id ([A-Za-z0-9._-], 1-64)"));
    }
    if (!patient_ids.insert(pc.id).second) {
      return fail(InvalidArgument(path + ".id: duplicate patient id \"" + pc.id + "\""));
    }
    pc.news2_scale = Int(*p, "news2_scale");
    pc.location = Str(*p, "location");
    pc.rules = (*p)["rules"];
    eff_patients.push_back(*p);
    cfg.patients.push_back(std::move(pc));
  }
  effective["patients"] = eff_patients;

  VG_RETURN_IF_ERROR(
      fail(ParseDevices(root.value("devices", json::array()), ctx, patient_ids, cfg, effective)));

  VG_RETURN_IF_ERROR(fail(ParseDestinations(root.value("destinations", json::array()), ctx, cfg,
                                            effective)));

  cfg.rules = root.value("rules", json::object());
  if (!cfg.rules.is_object()) {
    return fail(InvalidArgument("rules: expected an object, got " +
                                std::string(JsonTypeName(cfg.rules))));
  }
  effective["rules"] = cfg.rules;
  cfg.effective = std::move(effective);
  return cfg;
}

Result<std::string> ReadConfigText(const std::string& path) {
  // Only a regular file (or a symlink to one) of bounded size: a FIFO would block, a device
  // (/dev/zero) never ends, a directory is not a configuration. O_NONBLOCK keeps open() from
  // waiting on a FIFO before fstat() can refuse it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return NotFound(path + ": cannot open config file: " + std::strerror(err));
    return PermissionDenied(path + ": cannot open config file: " + std::strerror(err));
  }
  struct stat st {};
  std::string text;
  Status status;
  if (::fstat(fd, &st) != 0) {
    status = Unavailable(path + ": cannot read config file: " + std::strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    status = InvalidArgument(path + ": is a directory, not a config file");
  } else if (!S_ISREG(st.st_mode)) {
    status = InvalidArgument(path + ": not a regular file (a FIFO, socket or device is not a config file)");
  } else if (st.st_size > static_cast<off_t>(kMaxConfigBytes)) {
    status = InvalidArgument(path + ": " + std::to_string(st.st_size) + " bytes; a config file may have at most " +
                             std::to_string(kMaxConfigBytes));
  } else {
    text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    text.resize(got);
  }
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

Result<Config> LoadConfigFile(const std::string& path, const ParseOptions& options) {
  auto text = ReadConfigText(path);
  if (!text.ok()) return text.status();
  std::string_view ss_view = *text;
  // Relative file names in the config are relative to the config file's own directory.
  std::string dir = ".";
  const auto slash = path.rfind('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  if (char* real = ::realpath(dir.c_str(), nullptr)) {
    dir = real;
    std::free(real);
  }
  return ParseConfig(ss_view, path, dir, options);
}

std::span<const OptionSpec> GatewaySpecs() { return kGateway; }
std::span<const OptionSpec> StorageSpecs() { return kStorage; }
std::span<const OptionSpec> MqttSpecs() { return kMqtt; }
std::span<const OptionSpec> TlsSpecs() { return kTls; }
std::span<const OptionSpec> EncryptionSpecs() { return kEncryption; }
std::span<const OptionSpec> HttpSpecs() { return kHttp; }
std::span<const OptionSpec> HttpTlsSpecs() { return kHttpTls; }
std::span<const OptionSpec> PatientSpecs() { return kPatient; }
std::span<const OptionSpec> DeviceSpecs() { return kDevice; }
std::span<const OptionSpec> DeviceClockSpecs() { return kDeviceClock; }
std::span<const OptionSpec> DestinationSpecs() { return kDestination; }

}  // namespace vg::config
