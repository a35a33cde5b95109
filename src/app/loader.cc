#include "vitalgate/app/loader.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <ctime>
#include <sstream>

#include "vitalgate/app/http_server.h"
#include "vitalgate/forward/envelope.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/forward/tls_files.h"

namespace vg {
namespace {

// Two devices on one serial port, TCP endpoint or BLE address would each get half the bytes
// (or fight over the connection): refused.
Status CheckDistinctEndpoints(const LoadedConfig& loaded) {
  std::map<std::string, std::string> seen;  // endpoint -> device id
  for (const DeviceSetup& d : loaded.devices) {
    const nlohmann::json& t = d.transport_options;
    std::string key;
    std::string what;
    if (d.transport->name == "serial" && t.contains("path")) {
      key = "serial:" + t["path"].get<std::string>();
      what = "serial port " + t["path"].get<std::string>();
    } else if (d.transport->name == "tcp" && t.contains("host") && t.contains("port")) {
      key = "tcp:" + t["host"].get<std::string>() + ":" + t["port"].dump();
      what = "TCP endpoint " + t["host"].get<std::string>() + ":" + t["port"].dump();
    } else if (d.transport->name == "ble" && t.contains("address")) {
      std::string address = t["address"].get<std::string>();
      std::transform(address.begin(), address.end(), address.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      key = "ble:" + t.value("adapter", std::string("hci0")) + ":" + address;
      what = "BLE address " + address;
    }
    if (key.empty()) continue;
    auto [it, added] = seen.emplace(key, d.config.id);
    if (!added) {
      return InvalidArgument("devices: \"" + it->second + "\" and \"" + d.config.id + "\" both use " +
                             what + "; one device per endpoint");
    }
  }
  return Status::Ok();
}
std::string DateOf(std::int64_t unix_s) { return FormatRfc3339(unix_s * 1000).substr(0, 10); }

}  // namespace

Result<LoadedConfig> LoadEverything(const std::string& path, PatientDirectory& patients,
                                    const LoadOptions& options) {
  auto cfg = config::LoadConfigFile(path, config::ParseOptions{options.check_files});
  if (!cfg.ok()) return cfg.status();
  LoadedConfig out;
  out.config = std::move(*cfg);
  out.effective = out.config.effective;
  const OptionContext ctx{out.config.base_dir, options.check_files};

  if (out.config.mqtt.tls && options.check_files && options.check_tls_contents) {
    const config::TlsConfig& t = *out.config.mqtt.tls;
    const TlsFiles files{t.ca_file, t.cert_file, t.key_file};
    VG_RETURN_IF_ERROR(CheckTlsFiles(files).WithContext(path));
    auto certificates = ReadCertificates(files);
    if (!certificates.ok()) return certificates.status().WithContext(path);
    out.certificates = std::move(*certificates);
    out.warnings = TlsWarnings(files, static_cast<std::int64_t>(std::time(nullptr)));
  }
  if (options.check_files && options.check_tls_contents) {
    VG_RETURN_IF_ERROR(CheckHttpAccess(out.config.http).WithContext(path));
  }
  if (out.config.mqtt.payload_encryption && options.check_files) {
    const config::EncryptionConfig& enc = *out.config.mqtt.payload_encryption;
    auto key = LoadPayloadKey(enc.key_file, enc.key_id);
    if (!key.ok()) {
      return key.status().WithContext(path + ": mqtt.payload_encryption.key_file");
    }
  }

  std::vector<PatientRuleInput> inputs;
  for (const config::PatientConfig& p : out.config.patients) {
    auto index = patients.Intern(p.id);
    if (!index.ok()) return index.status().WithContext(path);
    inputs.push_back(PatientRuleInput{*index, p.id, p.news2_scale, p.rules});
  }
  auto rules = CompileRules(out.config.rules, inputs);
  if (!rules.ok()) return rules.status().WithContext(path);
  out.rules = *rules;
  out.effective["rules"] = out.rules->effective.value("*", nlohmann::json::object());

  if (out.config.devices.size() > 65535) {
    return InvalidArgument(path + ": devices: at most 65535 devices");
  }
  for (std::size_t i = 0; i < out.config.devices.size(); ++i) {
    const config::DeviceConfig& d = out.config.devices[i];
    const std::string where = "devices[" + std::to_string(i) + "]";
    DeviceSetup setup;
    setup.config = d;
    auto transport = ValidateTransportSpec(d.transport, where + ".transport", ctx);
    if (!transport.ok()) return transport.status().WithContext(path);
    setup.transport = FindTransport(d.transport["type"].get<std::string>());
    setup.transport_options = *transport;
    nlohmann::json codec = d.codec;
    if (codec.is_null()) {
      if (setup.transport->default_codec.empty()) {
        return InvalidArgument(path + ": " + where + ".codec: required for transport \"" +
                               std::string(setup.transport->name) + "\"");
      }
      codec = nlohmann::json{{"type", setup.transport->default_codec}};
    }
    auto validated = ValidateCodecSpec(codec, where + ".codec");
    if (!validated.ok()) return validated.status().WithContext(path);
    setup.codec_options = *validated;
    const std::string& codec_name = setup.codec_options["type"].get_ref<const std::string&>();
    if (setup.transport->name == "simulator" && codec_name != "jsonl") {
      return InvalidArgument(path + ": " + where + ".codec: the simulator speaks jsonl only");
    }
    setup.codec = FindCodec(codec_name);
    const bool message_codec = !setup.codec->characteristics.empty();
    if (setup.transport->delivers == TransportDelivers::kCharacteristics && !message_codec) {
      return InvalidArgument(path + ": " + where + ".codec: the " +
                             std::string(setup.transport->name) +
                             " transport needs a codec that decodes GATT characteristics (gatt), "
                             "not \"" + codec_name + "\"");
    }
    if (setup.transport->delivers == TransportDelivers::kBytes && message_codec) {
      return InvalidArgument(path + ": " + where + ".codec: \"" + codec_name +
                             "\" decodes BLE characteristics; this transport delivers a byte stream");
    }
    if (!d.timezone.empty()) {
      // The device's clock zone goes to its codec, which reads device time stamps.
      const bool takes_zone = std::any_of(setup.codec->options.begin(), setup.codec->options.end(),
                                          [](const OptionSpec& o) { return o.name == "timezone"; });
      if (!takes_zone) {
        return InvalidArgument(path + ": " + where + ".timezone: codec \"" + codec_name +
                               "\" reads no device clock (its time stamps carry their zone or none)");
      }
      if (codec.contains("utc_offset_minutes") || codec.contains("timezone")) {
        return InvalidArgument(path + ": " + where + ".timezone: replaces codec.utc_offset_minutes "
                               "and codec.timezone; set only one");
      }
      setup.codec_options["timezone"] = d.timezone;
      auto zoned = ValidateCodecSpec(setup.codec_options, where + ".codec");
      if (!zoned.ok()) return zoned.status().WithContext(path);
      setup.codec_options = *zoned;
    }
    if (!setup.codec_options.value("timezone", std::string()).empty()) {
      if (codec.contains("utc_offset_minutes")) {
        return InvalidArgument(path + ": " + where +
                               ".timezone: replaces utc_offset_minutes; set only one");
      }
      // The zone must exist now, not when the device first sends a time stamp.
      auto zone = ZoneOption(setup.codec_options);
      if (!zone.ok()) {
        return zone.status().WithContext(path + ": " + where +
                                         (d.timezone.empty() ? ".codec" : ""));
      }
    }
    if (d.patient) setup.patient = *patients.Find(*d.patient);
    out.effective["devices"][i]["transport"] = setup.transport_options;
    out.effective["devices"][i]["codec"] = setup.codec_options;
    out.devices.push_back(std::move(setup));
  }
  VG_RETURN_IF_ERROR(CheckDistinctEndpoints(out).WithContext(path));
  for (std::size_t i = 0; i < out.config.destinations.size(); ++i) {
    const config::DestinationConfig& d = out.config.destinations[i];
    DestinationSetup setup;
    setup.config = d;
    setup.descriptor = FindDestination(d.type);
    if (setup.descriptor == nullptr) {
      std::string known;
      for (const DestinationDescriptor* t : AllDestinations()) {
        known += (known.empty() ? "" : ", ") + std::string(t->type);
      }
      return InvalidArgument(path + ": " + d.path + ".type: unknown destination type \"" + d.type +
                             "\" (known: " + (known.empty() ? "none in this build" : known) + ")");
    }
    auto own = ApplyOptionSpecs(d.options, setup.descriptor->options, d.path, ctx);
    if (!own.ok()) return own.status().WithContext(path);
    if (setup.descriptor->check != nullptr) {
      VG_RETURN_IF_ERROR(setup.descriptor->check(*own, d.path).WithContext(path));
    }
    setup.options = *own;
    for (const auto& [k, v] : own->items()) out.effective["destinations"][i][k] = v;
    out.destinations.push_back(std::move(setup));
  }
  return out;
}

std::string Summarize(const LoadedConfig& loaded) {
  const config::Config& c = loaded.config;
  std::ostringstream s;
  s << "config:     " << c.source << " (valid)\n";
  s << "gateway:    " << c.gateway_id << (c.site.empty() ? "" : " at " + c.site) << "\n";
  s << "broker:     " << (c.mqtt.tls ? "mqtts://" : "mqtt://") << c.mqtt.host << ":" << c.mqtt.port
    << " client " << c.mqtt.client_id;
  if (c.mqtt.tls) {
    s << ", TLS >= " << c.mqtt.tls->min_version
      << (c.mqtt.tls->cert_file.empty() ? ", no client certificate" : ", mutual TLS");
  } else {
    s << ", plain TCP (loopback only)";
  }
  s << "\n";
  s << "topics:     " << c.mqtt.topic_prefix << "/" << c.gateway_id << "/{status,readings/+,alerts/+}"
    << ", format " << c.mqtt.format
    << (c.mqtt.payload_encryption ? ", payloads encrypted (kid " + c.mqtt.payload_encryption->key_id + ")"
                                  : "")
    << "\n";
  s << "storage:    " << c.storage.path << ", max " << (c.storage.max_bytes >> 20) << " MiB, synchronous="
    << c.storage.synchronous << "\n";
  for (const CertificateInfo& cert : loaded.certificates) {
    s << "cert:       " << cert.key << " " << cert.subject << ", notBefore "
      << FormatRfc3339(cert.not_before * 1000) << ", notAfter " << FormatRfc3339(cert.not_after * 1000)
      << "\n";
  }
  s << "http:       " << (c.http.listen.empty() ? "disabled" : c.http.listen) << "\n";
  s << "patients:   " << c.patients.size() << "\n";
  s << "devices:    " << loaded.devices.size() << "\n";
  for (const DeviceSetup& d : loaded.devices) {
    s << "  " << d.config.id << " -> " << d.config.patient.value_or("(no patient)") << " via "
      << d.transport->name
      << ", codec " << d.codec_options["type"].get<std::string>() << "\n";
  }
  for (const std::string& w : loaded.warnings) s << "warning:    " << w << "\n";
  return s.str();
}

std::string SummaryLine(const LoadedConfig& loaded) {
  const config::Config& c = loaded.config;
  std::ostringstream s;
  s << c.source << ": valid: gateway " << c.gateway_id << ", broker "
    << (c.mqtt.tls ? "mqtts://" : "mqtt://") << c.mqtt.host << ":" << c.mqtt.port << ", "
    << c.patients.size() << (c.patients.size() == 1 ? " patient, " : " patients, ")
    << loaded.devices.size() << (loaded.devices.size() == 1 ? " device" : " devices");
  const auto first = std::min_element(
      loaded.certificates.begin(), loaded.certificates.end(),
      [](const CertificateInfo& a, const CertificateInfo& b) { return a.not_after < b.not_after; });
  if (first != loaded.certificates.end()) {
    s << ", first certificate expiry " << DateOf(first->not_after) << " (" << first->key << ")";
  }
  if (!loaded.warnings.empty()) s << ", " << loaded.warnings.size() << " warning(s)";
  return s.str();
}

}  // namespace vg
