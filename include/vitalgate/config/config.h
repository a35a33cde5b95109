// The vitalgate configuration file (JSON), per docs/config.md.
//
// ParseConfig() validates the sections it owns strictly (unknown keys, types, ranges, files it
// names, plain TCP only to loopback) and fills in every default. Device transport/codec options
// and rules are validated by their own modules' tables (see app/loader.h), so this module stays
// free of downstream dependencies. The result is an immutable value: build it on the control
// thread, then share it read-only.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vitalgate/core/options.h"
#include "vitalgate/core/status.h"

namespace vg::config {

struct TlsConfig {
  std::string ca_file;
  std::string cert_file;  // empty: no client certificate
  std::string key_file;
  std::string min_version;  // "1.2" or "1.3"
};

struct EncryptionConfig {
  std::string key_file;
  std::string key_id;
  // The key dashboards seal downlink commands with (never the payload key); empty: with
  // payload encryption on, every downlink command is refused.
  std::string downlink_key_file;
  std::string downlink_key_id;
};

struct MqttConfig {
  std::string host;
  int port = 0;
  std::string client_id;
  std::optional<TlsConfig> tls;
  std::string username;
  std::string password_file;
  std::string topic_prefix;
  std::string format;  // "json" or "fhir"
  std::optional<EncryptionConfig> payload_encryption;
  int keepalive_s = 30;
  int reconnect_min_ms = 500;
  int reconnect_max_ms = 30000;
  int max_inflight = 64;
  int max_readings_per_message = 100;
};

struct StorageConfig {
  std::string path;
  std::uint64_t max_bytes = 0;
  std::string synchronous;  // "full" or "normal"
  int batch_max_rows = 4096;
};

struct HttpTlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;  // empty: no client certificates
};

struct HttpConfig {
  std::string listen;  // "host:port"; empty disables
  std::optional<HttpTlsConfig> tls;  // HTTPS; every request then authenticates
  std::string users_file;            // HTTP Basic users (name:crypt hash); empty: none
  int max_connections = 16;
};

struct PatientConfig {
  std::string id;
  std::string location;  // bed/room, for HL7 PV1-3 and the status page
  int news2_scale = 1;
  nlohmann::json rules;  // merge patch over the global rules; validated by the engine
};

struct DeviceClockConfig {
  std::int64_t max_ahead_ms = 60'000;
  std::int64_t max_behind_ms = 600'000;
  std::int64_t max_record_age_ms = 30ll * 86'400'000;
};

struct DeviceConfig {
  std::string id;
  std::optional<std::string> patient;  // none: the device has no patient (unassigned)
  std::vector<std::string> allowed_patients;  // a reading may name these itself (jsonl)
  bool allow_any_patient = false;             // allowed_patients: ["*"]
  bool spot = false;                          // every reading is a spot check
  bool intermittent = false;                  // connects only to send: link down is normal
  std::string timezone;                       // tz database name of the device clock
  DeviceClockConfig clock;
  std::string serial_number, manufacturer, model;
  nlohmann::json transport;  // {"type": ..., options...}; options validated by the transport
  nlohmann::json codec;      // {"type": ..., options...}; normalized from a string
  std::optional<double> no_data_s;          // overrides rules.technical.no_data_s
  std::optional<double> disconnect_alarm_s;  // overrides rules.technical.disconnect_alarm_s
};

// One further destination of the outbox (the `mqtt` section is the primary one).
struct DestinationConfig {
  std::string type;  // "fhir", "hl7v2"
  std::string name;  // unique; default: the type
  bool readings = true;
  bool alerts = true;
  bool audit = false;
  bool include_unassigned = false;  // readings of devices without a patient
  std::int64_t backlog_alarm_ms = 900'000;
  int reconnect_min_ms = 1000;
  int reconnect_max_ms = 60000;
  nlohmann::json options;  // the type's own keys; validated by its descriptor (app/loader.h)
  std::string path;        // "destinations[i]", for messages
};

struct Config {
  std::string source;  // file the config came from
  std::string base_dir;
  std::string gateway_id;
  std::string site;
  std::string log_level;
  std::array<int, 3> certificate_alarm_days{30, 7, 1};  // low, medium, high
  int audit_retention_days = 400;
  StorageConfig storage;
  MqttConfig mqtt;
  HttpConfig http;
  std::vector<PatientConfig> patients;
  std::vector<DeviceConfig> devices;
  std::vector<DestinationConfig> destinations;
  std::int64_t primary_backlog_alarm_ms = 900'000;  // mqtt.backlog_alarm_s
  nlohmann::json rules;      // validated by the engine
  nlohmann::json effective;  // the whole config with defaults filled in
};

struct ParseOptions {
  bool check_files = true;  // stat the files the config names
};

// Parses config text. `source` names it in messages; relative file names are resolved against
// `base_dir`. Errors name the key path, e.g. "mqtt.tls.ca_file: ... No such file or directory",
// or the line and column of a JSON syntax error.
Result<Config> ParseConfig(std::string_view text, std::string_view source, std::string_view base_dir,
                           const ParseOptions& options = {});
Result<Config> LoadConfigFile(const std::string& path, const ParseOptions& options = {});
// A config file's text: a regular file (or a symlink to one) of at most 4 MiB; a FIFO, device
// or directory is refused at once with a message naming the file.
Result<std::string> ReadConfigText(const std::string& path);

// Parses JSON text with a message that gives line, column and byte offset on error, and rejects
// duplicate object keys (usually a mistake). Shared by every JSON input that is a document.
Result<nlohmann::json> ParseJsonDocument(std::string_view text, std::string_view source);

// Topic-safe identifier: 1-64 of [A-Za-z0-9._-] (no MQTT wildcards or separators).
bool IsValidId(std::string_view id);


// The option tables (also used to generate docs/config.md).
std::span<const OptionSpec> GatewaySpecs();
std::span<const OptionSpec> StorageSpecs();
std::span<const OptionSpec> MqttSpecs();
std::span<const OptionSpec> TlsSpecs();
std::span<const OptionSpec> EncryptionSpecs();
std::span<const OptionSpec> HttpSpecs();
std::span<const OptionSpec> HttpTlsSpecs();
std::span<const OptionSpec> PatientSpecs();
std::span<const OptionSpec> DeviceSpecs();
std::span<const OptionSpec> DeviceClockSpecs();
std::span<const OptionSpec> DestinationSpecs();

}  // namespace vg::config
