// The downlink: inbound MQTT commands (`cmd/ack`, `cmd/assign`). Every inbound byte is
// untrusted: size-limited, strictly schema-checked, errors name what was wrong.
//
// Authority (docs/security.md):
// - Retained messages (delivered from the broker's store on subscription, not sent now) never
//   count: a stale command must not act on today's alarms.
// - With payload encryption on, a command counts only when it is sealed in the envelope with the
//   downlink key (a key of its own, never the payload key) for its topic, and carries a time
//   stamp within the window of the gateway's clock and a nonce not seen before: a replayed
//   message is refused. Plaintext commands are refused.
// - Without payload encryption, authority rests on the broker's ACL (docs/security.md has one
//   for a fleet); `ts` and `nonce` are then optional but checked when present.
// - `by` is printable text: no control characters, no bidirectional overrides or isolates, no
//   markup characters, valid UTF-8.
// Thread-safety: DownlinkGate belongs to one thread (the forwarder's); the parse functions are
// pure.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "vitalgate/core/status.h"
#include "vitalgate/forward/envelope.h"

namespace vg {

inline constexpr std::size_t kMaxDownlinkBytes = 1024;

struct AckCommand {
  std::string alert_id;
  std::string by;
};

struct AssignCommand {
  std::string device;
  std::optional<std::string> patient;  // nullopt: unassign
  std::string by;
};

// Freshness fields of a command.
struct CommandStamp {
  std::optional<std::int64_t> ts_ms;
  std::string nonce;
};

// {"alert_id": "<id>", "by": "<who>"[, "ts": "<RFC 3339>", "nonce": "<8-64 chars>"]}
Result<AckCommand> ParseAckCommand(std::string_view payload, CommandStamp* stamp = nullptr);
// {"device": "<id>", "patient": "<id>" | null, "by": "<who>"[, "ts", "nonce"]}
Result<AssignCommand> ParseAssignCommand(std::string_view payload, CommandStamp* stamp = nullptr);

// Checks `by`: 1-128 bytes of valid UTF-8 without control, bidi or markup characters.
Status CheckActor(std::string_view by);

enum class DownlinkRefusal : std::uint8_t {
  kTopic,      // not a command topic
  kRetained,   // delivered from the broker's retained store
  kSize,       // larger than kMaxDownlinkBytes
  kNotSealed,  // plaintext while payload encryption is on (or no downlink key configured)
  kSeal,       // an envelope that does not open with the downlink key
  kStale,      // time stamp missing or outside the window
  kReplayed,   // nonce seen before
  kInvalid,    // not a valid command
};
inline constexpr std::size_t kDownlinkRefusalCount = 8;
std::string_view Name(DownlinkRefusal refusal);

struct DownlinkCommand {
  enum class Kind : std::uint8_t { kAck, kAssign };
  Kind kind = Kind::kAck;
  AckCommand ack;
  AssignCommand assign;
};

struct DownlinkGateOptions {
  std::string ack_topic;
  std::string assign_topic;
  bool encryption = false;               // mqtt.payload_encryption is on
  std::optional<PayloadKey> downlink_key;  // required for any command when encryption is on
  std::int64_t window_ms = 120'000;
  std::int64_t not_before_ms = 0;  // commands stamped before the gateway started are stale
};

class DownlinkGate {
 public:
  explicit DownlinkGate(DownlinkGateOptions options) : options_(std::move(options)) {}

  // The command, or the reason it does not count (in `refusal`) with a message.
  Result<DownlinkCommand> Admit(std::string_view topic, std::string_view payload, bool retained,
                                std::int64_t now_ms, DownlinkRefusal* refusal);

 private:
  bool Fresh(const CommandStamp& stamp, std::int64_t now_ms, DownlinkRefusal* refusal,
             std::string* why);

  DownlinkGateOptions options_;
  std::unordered_set<std::string> nonces_;
  std::deque<std::pair<std::int64_t, std::string>> nonce_expiry_;  // oldest first
};

}  // namespace vg
