#include <nlohmann/json.hpp>

#include "ble.h"
#include "exec.h"
#include "plugin.h"
#include "serial.h"
#include "simulator.h"
#include "tcp.h"
#include "vitalgate/transport/transport.h"

namespace vg {
namespace {

const TransportDescriptor kTransports[] = {
    {"exec", "a child process's standard output", ExecTransport::Specs(), "jsonl",
     TransportDelivers::kBytes, &ExecTransport::Make, &ExecTransport::Check},
    {"simulator", "simulated patient monitor (jsonl)", SimulatorTransport::Specs(), "jsonl",
     TransportDelivers::kBytes, &SimulatorTransport::Make, nullptr},
    {"ble", "a Bluetooth LE health device through BlueZ (D-Bus)", BleTransport::Specs(), "gatt",
     TransportDelivers::kCharacteristics, &BleTransport::Make, &BleTransport::Check},
    {"plugin", "a transport from a shared library (include/vitalgate/plugin.h)",
     PluginTransport::Specs(), "", TransportDelivers::kEither, &PluginTransport::Make, &PluginTransport::Check},
    {"serial", "an RS-232 or USB-serial port", SerialTransport::Specs(), "", TransportDelivers::kBytes,
     &SerialTransport::Make, &SerialTransport::Check},
    {"tcp", "a TCP client to a serial-over-IP converter", TcpTransport::Specs(), "",
     TransportDelivers::kBytes, &TcpTransport::Make, &TcpTransport::Check},
};

}  // namespace

std::span<const TransportDescriptor> AllTransports() { return kTransports; }

const TransportDescriptor* FindTransport(std::string_view name) {
  for (const TransportDescriptor& t : kTransports) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Result<nlohmann::json> ValidateTransportSpec(const nlohmann::json& spec, std::string_view path,
                                             const OptionContext& ctx) {
  const std::string where(path);
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return InvalidArgument(where + ".type: required string is missing");
  }
  const auto& name = spec["type"].get_ref<const std::string&>();
  const TransportDescriptor* desc = FindTransport(name);
  if (desc == nullptr) {
    std::string known;
    for (const TransportDescriptor& t : kTransports) {
      if (!known.empty()) known += ", ";
      known += t.name;
    }
    return InvalidArgument(where + ".type: unknown transport \"" + name + "\" (known: " + known + ")");
  }
  static constexpr std::string_view kIgnore[] = {"type"};
  auto validated = ApplyOptionSpecs(spec, desc->options, path, ctx, kIgnore);
  if (!validated.ok()) return validated.status();
  if (desc->check != nullptr && ctx.check_files) {
    VG_RETURN_IF_ERROR(desc->check(*validated, path));
  }
  return validated;
}

}  // namespace vg
