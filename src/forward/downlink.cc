#include "vitalgate/forward/downlink.h"

#include "vitalgate/codec/flat_json.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/core/utf8.h"

namespace vg {
namespace {

constexpr std::size_t kMaxNonces = 100'000;

// What `by` may not hold besides invalid UTF-8.
bool Forbidden(char32_t cp) {
  if (IsControl(cp) || IsBidiControl(cp)) return true;
  switch (cp) {
    // Markup: whatever shows `by` (a dashboard, the status page) must not be tricked into
    // interpreting it.
    case U'<': case U'>': case U'&': case U'"': case U'\'': case U'`':
    // Line and paragraph separators, zero-width and invisible formatting, byte order mark.
    case 0x2028: case 0x2029: case 0x200B: case 0x200C: case 0x200D: case 0x2060: case 0xFEFF:
      return true;
    default:
      return false;
  }
}

// Reads the members every command may carry besides its own: "ts" and "nonce". Returns true
// when `m` was one of them (and valid), false when it is not one; errors in `status`.
bool StampMember(const FlatJsonMember& m, CommandStamp& stamp, Status& status) {
  if (m.key == "ts") {
    if (m.value.type != FlatJsonValue::Type::kString) {
      status = InvalidArgument("\"ts\" must be an RFC 3339 string");
      return true;
    }
    auto ts = ParseRfc3339(m.value.text);
    if (!ts.ok()) {
      status = InvalidArgument("\"ts\": " + ts.status().message());
      return true;
    }
    stamp.ts_ms = *ts;
    return true;
  }
  if (m.key == "nonce") {
    if (m.value.type != FlatJsonValue::Type::kString || m.value.text.size() < 8 ||
        m.value.text.size() > 64) {
      status = InvalidArgument("\"nonce\" must be a string of 8 to 64 characters");
      return true;
    }
    for (char c : m.value.text) {
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7E) {
        status = InvalidArgument("\"nonce\" must be printable ASCII");
        return true;
      }
    }
    stamp.nonce = std::string(m.value.text);
    return true;
  }
  return false;
}

Status ParseObject(std::string_view payload, FlatJsonObject& obj) {
  if (payload.size() > kMaxDownlinkBytes) return InvalidArgument("payload too large");
  if (!obj.Parse(payload)) {
    return InvalidArgument("not a JSON object: " + obj.error() + " at byte " +
                           std::to_string(obj.error_offset()));
  }
  return Status::Ok();
}

Result<std::string> IdString(const FlatJsonMember& m) {
  if (m.value.type != FlatJsonValue::Type::kString || m.value.text.empty() || m.value.text.size() > 64) {
    return InvalidArgument("\"" + std::string(m.key) + "\" must be a string of 1 to 64 bytes");
  }
  for (char c : m.value.text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return InvalidArgument("\"" + std::string(m.key) + "\" may hold only [A-Za-z0-9._-]");
  }
  return std::string(m.value.text);
}

}  // namespace

Status CheckActor(std::string_view by) {
  if (by.empty() || by.size() > 128) return InvalidArgument("\"by\" must be 1 to 128 bytes");
  std::size_t i = 0;
  while (i < by.size()) {
    const std::size_t at = i;
    const auto cp = NextCodePoint(by, i);
    if (!cp) return InvalidArgument("\"by\" is not valid UTF-8 at byte " + std::to_string(at));
    if (Forbidden(*cp)) {
      return InvalidArgument("\"by\" holds a control, bidirectional or markup character at byte " +
                             std::to_string(at));
    }
  }
  return Status::Ok();
}

Result<AckCommand> ParseAckCommand(std::string_view payload, CommandStamp* stamp) {
  FlatJsonObject obj;
  VG_RETURN_IF_ERROR(ParseObject(payload, obj));
  AckCommand cmd;
  CommandStamp local;
  bool have_id = false, have_by = false;
  for (const FlatJsonMember& m : obj.members()) {
    Status s;
    if (StampMember(m, stamp != nullptr ? *stamp : local, s)) {
      if (!s.ok()) return s;
      continue;
    }
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
      VG_RETURN_IF_ERROR(CheckActor(m.value.text));
      cmd.by = std::string(m.value.text);
      have_by = true;
    } else {
      return InvalidArgument("unknown key \"" + std::string(m.key.substr(0, 32)) +
                             "\" (expected alert_id, by, ts, nonce)");
    }
  }
  if (!have_id) return InvalidArgument("\"alert_id\" is missing");
  if (!have_by) return InvalidArgument("\"by\" is missing");
  return cmd;
}

Result<AssignCommand> ParseAssignCommand(std::string_view payload, CommandStamp* stamp) {
  FlatJsonObject obj;
  VG_RETURN_IF_ERROR(ParseObject(payload, obj));
  AssignCommand cmd;
  CommandStamp local;
  bool have_device = false, have_patient = false, have_by = false;
  for (const FlatJsonMember& m : obj.members()) {
    Status s;
    if (StampMember(m, stamp != nullptr ? *stamp : local, s)) {
      if (!s.ok()) return s;
      continue;
    }
    if (m.key == "device") {
      auto id = IdString(m);
      if (!id.ok()) return id.status();
      cmd.device = *id;
      have_device = true;
    } else if (m.key == "patient") {
      if (m.value.type != FlatJsonValue::Type::kNull) {
        auto id = IdString(m);
        if (!id.ok()) return InvalidArgument(id.status().message() + ", or null to unassign");
        cmd.patient = *id;
      }
      have_patient = true;
    } else if (m.key == "by") {
      if (m.value.type != FlatJsonValue::Type::kString) return InvalidArgument("\"by\" must be a string");
      VG_RETURN_IF_ERROR(CheckActor(m.value.text));
      cmd.by = std::string(m.value.text);
      have_by = true;
    } else {
      return InvalidArgument("unknown key \"" + std::string(m.key.substr(0, 32)) +
                             "\" (expected device, patient, by, ts, nonce)");
    }
  }
  if (!have_device) return InvalidArgument("\"device\" is missing");
  if (!have_patient) return InvalidArgument("\"patient\" is missing (null unassigns)");
  if (!have_by) return InvalidArgument("\"by\" is missing");
  return cmd;
}

std::string_view Name(DownlinkRefusal refusal) {
  switch (refusal) {
    case DownlinkRefusal::kTopic: return "topic";
    case DownlinkRefusal::kRetained: return "retained";
    case DownlinkRefusal::kSize: return "size";
    case DownlinkRefusal::kNotSealed: return "not_sealed";
    case DownlinkRefusal::kSeal: return "seal";
    case DownlinkRefusal::kStale: return "stale";
    case DownlinkRefusal::kReplayed: return "replayed";
    case DownlinkRefusal::kInvalid: return "invalid";
  }
  return "?";
}

bool DownlinkGate::Fresh(const CommandStamp& stamp, std::int64_t now_ms, DownlinkRefusal* refusal,
                         std::string* why) {
  // Forget nonces whose commands would be stale anyway.
  while (!nonce_expiry_.empty() && nonce_expiry_.front().first < now_ms) {
    nonces_.erase(nonce_expiry_.front().second);
    nonce_expiry_.pop_front();
  }
  const bool required = options_.encryption;
  if (!stamp.ts_ms || stamp.nonce.empty()) {
    if (!required && !stamp.ts_ms && stamp.nonce.empty()) return true;
    *refusal = DownlinkRefusal::kStale;
    *why = "a command needs both \"ts\" and \"nonce\"";
    return false;
  }
  if (*stamp.ts_ms < now_ms - options_.window_ms || *stamp.ts_ms > now_ms + options_.window_ms ||
      *stamp.ts_ms < options_.not_before_ms) {
    *refusal = DownlinkRefusal::kStale;
    *why = "\"ts\" is outside the accepted window (" + std::to_string(options_.window_ms / 1000) +
           " s, and not before the gateway started)";
    return false;
  }
  if (nonces_.count(stamp.nonce) != 0) {
    *refusal = DownlinkRefusal::kReplayed;
    *why = "nonce seen before (a replayed command)";
    return false;
  }
  if (nonces_.size() >= kMaxNonces) {
    *refusal = DownlinkRefusal::kReplayed;
    *why = "too many commands within the window";
    return false;
  }
  nonces_.insert(stamp.nonce);
  nonce_expiry_.emplace_back(*stamp.ts_ms + 2 * options_.window_ms, stamp.nonce);
  // Keep the expiry queue ordered: a command stamped earlier may arrive later.
  for (std::size_t i = nonce_expiry_.size() - 1; i > 0 && nonce_expiry_[i - 1].first > nonce_expiry_[i].first; --i) {
    std::swap(nonce_expiry_[i - 1], nonce_expiry_[i]);
  }
  return true;
}

Result<DownlinkCommand> DownlinkGate::Admit(std::string_view topic, std::string_view payload,
                                            bool retained, std::int64_t now_ms,
                                            DownlinkRefusal* refusal) {
  DownlinkRefusal local;
  DownlinkRefusal* r = refusal != nullptr ? refusal : &local;
  DownlinkCommand cmd;
  if (topic == options_.ack_topic) {
    cmd.kind = DownlinkCommand::Kind::kAck;
  } else if (topic == options_.assign_topic) {
    cmd.kind = DownlinkCommand::Kind::kAssign;
  } else {
    *r = DownlinkRefusal::kTopic;
    return InvalidArgument("unexpected topic");
  }
  const std::string_view name = cmd.kind == DownlinkCommand::Kind::kAck ? "cmd/ack" : "cmd/assign";
  if (retained) {
    *r = DownlinkRefusal::kRetained;
    return InvalidArgument(std::string(name) + ": retained message ignored");
  }
  if (payload.size() > kMaxDownlinkBytes + 512) {
    *r = DownlinkRefusal::kSize;
    return InvalidArgument(std::string(name) + ": payload of " + std::to_string(payload.size()) +
                           " bytes exceeds the limit");
  }
  std::string opened;
  std::string_view body = payload;
  if (options_.encryption) {
    if (!options_.downlink_key) {
      *r = DownlinkRefusal::kNotSealed;
      return InvalidArgument(std::string(name) +
                             ": refused: payload encryption is on and no downlink key is configured");
    }
    if (payload.find("\"ct\"") == std::string_view::npos) {
      *r = DownlinkRefusal::kNotSealed;
      return InvalidArgument(std::string(name) + ": refused: not sealed with the downlink key");
    }
    auto plain = OpenEnvelope(std::span<const PayloadKey>(&*options_.downlink_key, 1), topic, payload);
    if (!plain.ok()) {
      *r = DownlinkRefusal::kSeal;
      return InvalidArgument(std::string(name) + ": refused: " + plain.status().message());
    }
    opened = std::move(*plain);
    body = opened;
  }
  if (body.size() > kMaxDownlinkBytes) {
    *r = DownlinkRefusal::kSize;
    return InvalidArgument(std::string(name) + ": payload of " + std::to_string(body.size()) +
                           " bytes exceeds " + std::to_string(kMaxDownlinkBytes));
  }
  CommandStamp stamp;
  Status parsed;
  if (cmd.kind == DownlinkCommand::Kind::kAck) {
    auto ack = ParseAckCommand(body, &stamp);
    if (ack.ok()) {
      cmd.ack = std::move(*ack);
    } else {
      parsed = ack.status();
    }
  } else {
    auto assign = ParseAssignCommand(body, &stamp);
    if (assign.ok()) {
      cmd.assign = std::move(*assign);
    } else {
      parsed = assign.status();
    }
  }
  if (!parsed.ok()) {
    *r = DownlinkRefusal::kInvalid;
    return InvalidArgument(std::string(name) + ": " + parsed.message());
  }
  std::string why;
  if (!Fresh(stamp, now_ms, r, &why)) return InvalidArgument(std::string(name) + ": refused: " + why);
  return cmd;
}

}  // namespace vg
