// keyvalue codec: generic ASCII lines of NAME=VALUE fields, for monitors with a simple text
// export (e.g. Nonin's "SPO2=097 HR=072"). Which fields are read, and as which metric and unit,
// is configured by the `map` option; other fields are ignored. Dashes mean "no value". A field
// whose value is not a number is reported as an error and the other fields of the line still
// decode. See docs/codecs.md for the options and the exact tokenising rules.
//
// Promises: pure and bounded (one line of at most `max_line` bytes); every value in its metric's
// canonical unit; never emits NaN.
// Thread-safety: one instance per device, driven by one thread at a time (see codec.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/codec/codec.h"
#include "vitalgate/codec/line_framer.h"

namespace vg {

class KeyValueCodec final : public Codec {
 public:
  enum class Delimiter : std::uint8_t { kAny, kWhitespace, kComma, kSemicolon };

  struct Field {
    std::string name;  // the device's field name, matched ignoring ASCII case
    Metric metric;
    std::string unit;  // the unit the device uses; empty: the metric's canonical unit
  };
  struct Settings {
    std::vector<Field> fields;
    std::string separator = "=";
    Delimiter delimiter = Delimiter::kAny;
    std::string ts_field;  // empty: readings get the receive time
    std::size_t max_line = 1024;
  };

  explicit KeyValueCodec(Settings settings);
  void Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) override;
  void Reset() override { framer_.Reset(); }

  static std::span<const OptionSpec> Options();
  // Validates `map`, `separator` and `ts_field` (kObject options reach here unchecked); errors
  // name the offending key, e.g. "map.SPO2.metric: unknown metric \"spo\"".
  static Result<std::unique_ptr<Codec>> Make(const nlohmann::json& options);

 private:
  void DecodeLine(std::string_view line, std::uint64_t offset, CodecSink& sink);
  bool IsDelimiter(char c) const;

  const Settings settings_;
  LineFramer framer_;
  // Per-line scratch, reused: which fields were seen, and the values waiting for the line's time.
  std::vector<std::uint8_t> seen_;
  std::vector<DecodedValue> pending_;
};

}  // namespace vg
