// Codecs turn device bytes into normalized values. A codec is a pure, stateful decoder: it keeps
// only framing state (a partial line or frame), does no I/O, starts no thread and reads no clock,
// so it can be unit-tested and fuzzed in isolation. Every buffer it keeps is bounded.
//
// Thread-safety: a Codec instance belongs to one device and is driven by one thread at a time.
// The descriptor table is immutable and may be read from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "vitalgate/core/hex.h"
#include "vitalgate/core/metric.h"
#include "vitalgate/core/options.h"
#include "vitalgate/core/reading.h"
#include "vitalgate/core/status.h"
#include "vitalgate/core/timezone.h"

namespace vg {

// One value decoded from a frame, already in its metric's canonical unit.
struct DecodedValue {
  Metric metric = Metric::kHeartRate;
  double value = 0;
  std::optional<std::int64_t> ts_ms;  // device time when the frame carries one
  std::string_view patient;           // non-empty: overrides the device's patient (jsonl)
  std::uint8_t flags = 0;             // ReadingFlag bits (device time, questionable, spot, stored)
  // The device's number for a stored record (e.g. a glucose sequence number), to recognise a
  // record the device sends again.
  std::optional<std::uint32_t> record_seq;
  // Frame-level status words for `vitalgate decode` (static strings, e.g. "contact_detected").
  std::array<std::string_view, 8> status{};
  std::uint8_t status_count = 0;

  void AddStatus(std::string_view word) {
    if (status_count < status.size()) status[status_count++] = word;
  }
};

struct DecodeError {
  std::uint64_t offset = 0;  // byte offset of the bad frame or line in the device's stream
  std::string message;       // what was wrong; never contains device text or values (logged)
  std::string detail;        // the offending device text, for `vitalgate decode` only; never logged
  bool warning = false;      // the frame was decoded, but something in it was ignored
};

class CodecSink {
 public:
  virtual ~CodecSink() = default;
  virtual void OnValue(const DecodedValue& value) = 0;
  // A device-reported condition (sensor off, out of track...) started or ended.
  virtual void OnCondition(DeviceCondition condition, bool active) = 0;
  virtual void OnDecodeError(const DecodeError& error) = 0;
  // The device said what its clock reads now (e.g. BLE Current Time), in the same convention as
  // the time stamps it decodes (the configured time zone applied).
  virtual void OnDeviceClock(std::int64_t /*device_now_ms*/) {}
};

class Codec {
 public:
  virtual ~Codec() = default;

  // Stream input: bytes in arrival order, split anywhere.
  virtual void Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) = 0;

  // Message input: one characteristic value from a BLE device. Stream codecs report an error.
  virtual void FeedCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> value,
                                  CodecSink& sink);

  // The link was lost or re-established: drop partial frames so they never merge with new bytes.
  virtual void Reset() = 0;
};

// How `vitalgate decode CODEC ARG` interprets its argument.
enum class DecodeInput : std::uint8_t {
  kText,            // the argument is one line of text (a newline is appended)
  kHex,             // the argument is bytes in hex, spaces optional
  kCharacteristic,  // two arguments: a 16-bit UUID in hex, then the value in hex
};

struct CodecDescriptor {
  std::string_view name;
  std::string_view summary;
  std::span<const OptionSpec> options;
  DecodeInput cli_input;
  // REQUIRES: options were validated against `options` (defaults filled in).
  Result<std::unique_ptr<Codec>> (*make)(const nlohmann::json& options);
  // Message codecs: the BLE characteristics (16-bit UUIDs) they decode; empty for streams.
  std::span<const std::uint16_t> characteristics = {};
};

std::span<const CodecDescriptor> AllCodecs();
const CodecDescriptor* FindCodec(std::string_view name);

// Validates a codec spec {"type": name, options...} (path names it in messages) and returns the
// spec with defaults filled in.
Result<nlohmann::json> ValidateCodecSpec(const nlohmann::json& spec, std::string_view path);
// REQUIRES: spec came from ValidateCodecSpec.
Result<std::unique_ptr<Codec>> MakeCodec(const nlohmann::json& spec);

// The device clock's zone of a codec's options: `timezone` (a tz database name) when set, else
// the fixed `utc_offset_minutes`. Errors name the key.
Result<TimeZone> ZoneOption(const nlohmann::json& options);


}  // namespace vg
