// The compact stored form of a reading row (RowFormat::kCompact): the readings of one patient
// and commit as small binary records instead of their JSON text, so that the outbox writes,
// checkpoints and reads back about a sixth of the bytes. Expanding a compact row gives exactly
// the text AppendReadingJson writes for each reading, joined by '\n' (a RowFormat::kBatch body).
//
// Layout (outbox schema 4; tests/integration/conftest.py reads it too): a version byte, then
// one record per reading:
//   id          varint, zigzag difference from the previous reading's id (the first from 0)
//   instance, device, metric, unit
//               each a string reference: a varint n; n below the strings seen so far in this
//               row names one of them, n equal to their count is followed by a new string
//               (varint length, bytes)
//   head        byte: bits 0-1 value type (ValueType), bit 2 a device time follows, bit 3 the
//               value is a double (else a zigzag varint integer); other bits 0
//   flags       byte: kShownFlags bits
//   value       8 bytes (IEEE 754, little-endian) or a zigzag varint
//   ts          varint, zigzag difference from the previous reading's ts (the first from 0)
//   device_ts   varint, zigzag difference from ts (with head bit 2 only)
//
// Pure; an encoder belongs to one thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/core/payload.h"
#include "vitalgate/core/status.h"

namespace vg {

// The first byte of every compact row (a sealed body begins with "vg1", a JSON one with '{').
inline constexpr char kCompactRowVersion = '\x01';

inline bool IsCompactRow(std::string_view body) {
  return !body.empty() && body.front() == kCompactRowVersion;
}

class CompactRowEncoder {
 public:
  // Starts a new row in `out`, which must be empty.
  void Begin(std::string& out);
  // Appends one reading to the row begun in `out`.
  void Append(std::string& out, const ReadingText& t);

 private:
  void AppendString(std::string& out, std::string_view s, std::size_t& hint);

  struct Seen {
    std::uint32_t offset;  // of the string's bytes in the row
    std::uint32_t size;
  };
  std::vector<Seen> strings_;
  std::size_t instance_hint_ = 0, device_hint_ = 0, metric_hint_ = 0, unit_hint_ = 0;
  std::uint64_t last_id_ = 0;
  std::int64_t last_ts_ = 0;
};

// The row's readings as JSON text joined by '\n'; `count` is how many the row must hold. A
// damaged row is an error naming the byte offset where it stops making sense.
Result<std::string> ExpandCompactRow(std::string_view body, std::uint32_t count);

}  // namespace vg
