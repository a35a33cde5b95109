// Loads a configuration file completely: the config sections (config module), each device's
// transport and codec options (their modules' option tables), and the rules (engine module).
// `vitalgate check`, `run` and SIGHUP all go through here, so they accept exactly the same files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vitalgate/codec/codec.h"
#include "vitalgate/config/config.h"
#include "vitalgate/core/patient_directory.h"
#include "vitalgate/engine/rules.h"
#include "vitalgate/forward/destination.h"
#include "vitalgate/forward/tls_files.h"
#include "vitalgate/transport/transport.h"

namespace vg {

struct DeviceSetup {
  config::DeviceConfig config;
  const TransportDescriptor* transport = nullptr;
  nlohmann::json transport_options;  // validated, defaults filled in
  nlohmann::json codec_options;      // validated {"type": ..., ...}
  const CodecDescriptor* codec = nullptr;  // the codec codec_options names
  PatientIndex patient = 0;  // valid when config.patient is set
};

struct DestinationSetup {
  config::DestinationConfig config;
  const DestinationDescriptor* descriptor = nullptr;
  nlohmann::json options;  // the type's keys, validated, defaults filled in
};

struct LoadedConfig {
  config::Config config;
  std::vector<DeviceSetup> devices;
  std::vector<DestinationSetup> destinations;
  std::shared_ptr<const RuleBook> rules;
  nlohmann::json effective;  // everything, defaults filled in
  // Every configured certificate (broker CA bundle, client certificate) with its validity.
  std::vector<CertificateInfo> certificates;
  // Problems that do not stop the gateway (a certificate expiring, expired, not yet valid or not
  // verified by the CA bundle): `check` prints them, `run` logs them as warnings.
  std::vector<std::string> warnings;
};

struct LoadOptions {
  bool check_files = true;
  bool check_tls_contents = true;  // parse certificates and keys, match key to certificate
};

// Interns every configured patient into `patients` (the caller's directory) and compiles rules
// against those indices.
Result<LoadedConfig> LoadEverything(const std::string& path, PatientDirectory& patients,
                                    const LoadOptions& options = {});

// The one-screen summary printed by `vitalgate check`.
std::string Summarize(const LoadedConfig& loaded);

// One line for `vitalgate check --quiet` (the unit's ExecStartPre): file, gateway, broker,
// devices, and the earliest certificate expiry.
std::string SummaryLine(const LoadedConfig& loaded);

}  // namespace vg
