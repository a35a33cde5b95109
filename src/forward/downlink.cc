#include "vitalgate/forward/downlink.h"

#include "vitalgate/codec/flat_json.h"

namespace vg {
namespace {

bool Printable(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  }
  return true;
}

}  // namespace

Result<AckCommand> ParseAckCommand(std::string_view payload) {
  if (payload.size() > kMaxDownlinkBytes) return InvalidArgument("payload too large");
  FlatJsonObject obj;
  if (!obj.Parse(payload)) {
    return InvalidArgument("not a JSON object: " + obj.error() + " at byte " +
                           std::to_string(obj.error_offset()));
  }
  AckCommand cmd;
  bool have_id = false, have_by = false;
  for (const FlatJsonMember& m : obj.members()) {
    if (m.value.type != FlatJsonValue::Type::kString) {
      return InvalidArgument("\"" + std::string(m.key.substr(0, 32)) + "\" must be a string");
    }
    if (m.key == "alert_id") {
      if (m.value.text.empty() || m.value.text.size() > 64) {
        return InvalidArgument("\"alert_id\" must be 1 to 64 bytes");
      }
      cmd.alert_id = std::string(m.value.text);
      have_id = true;
    } else if (m.key == "by") {
      if (m.value.text.empty() || m.value.text.size() > 128 || !Printable(m.value.text)) {
        return InvalidArgument("\"by\" must be 1 to 128 printable characters");
      }
      cmd.by = std::string(m.value.text);
      have_by = true;
    } else {
      return InvalidArgument("unknown key \"" + std::string(m.key.substr(0, 32)) +
                             "\" (expected alert_id, by)");
    }
  }
  if (!have_id) return InvalidArgument("\"alert_id\" is missing");
  if (!have_by) return InvalidArgument("\"by\" is missing");
  return cmd;
}

}  // namespace vg
