// libFuzzer target: everything that arrives from the broker: the cmd/ack and cmd/assign parsers,
// the downlink gate (plain and sealed), alert id parsing, and the payload envelope opener (as
// `vitalgate decrypt` and consumers use it).
#include <string_view>

#include "vitalgate/core/ids.h"
#include "vitalgate/forward/downlink.h"
#include "vitalgate/forward/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cmd = vg::ParseAckCommand(text);
  static const vg::IdFormat ids("cd6fac20");
  if (cmd.ok()) {
    if (cmd->alert_id.empty() || cmd->by.empty() || cmd->alert_id.size() > 64) __builtin_trap();
    (void)ids.Parse(cmd->alert_id);
  }
  (void)ids.Parse(text);
  auto assign = vg::ParseAssignCommand(text);
  if (assign.ok() && (assign->device.empty() || !vg::CheckActor(assign->by).ok())) __builtin_trap();
  static vg::DownlinkGate plain([] {
    vg::DownlinkGateOptions o;
    o.ack_topic = "vitalgate/v1/gw/cmd/ack";
    o.assign_topic = "vitalgate/v1/gw/cmd/assign";
    return o;
  }());
  static vg::DownlinkGate sealed([] {
    vg::DownlinkGateOptions o;
    o.ack_topic = "vitalgate/v1/gw/cmd/ack";
    o.assign_topic = "vitalgate/v1/gw/cmd/assign";
    o.encryption = true;
    o.downlink_key = vg::PayloadKey{"dl1", {}};
    return o;
  }());
  vg::DownlinkRefusal why;
  (void)plain.Admit("vitalgate/v1/gw/cmd/assign", text, size % 2 == 0, 1'796'000'000'000, &why);
  (void)sealed.Admit("vitalgate/v1/gw/cmd/ack", text, false, 1'796'000'000'000, &why);
  static const vg::PayloadKey key{"k1", {}};
  auto opened = vg::OpenEnvelope(std::span<const vg::PayloadKey>(&key, 1), "vitalgate/v1/gw/alerts/p", text);
  (void)opened;
  (void)vg::Base64Decode(text);
  return 0;
}
