// jsonl codec: one JSON object per line, {"metric": ..., "value": ..., "unit"?, "ts"?,
// "patient"?}. See docs/codecs.md. Invalid lines are reported and skipped; the stream goes on.
#pragma once

#include <memory>
#include <span>

#include "vitalgate/codec/codec.h"
#include "vitalgate/codec/flat_json.h"
#include "vitalgate/codec/line_framer.h"

namespace vg {

class JsonlCodec final : public Codec {
 public:
  explicit JsonlCodec(std::size_t max_line) : framer_(max_line) {}
  void Feed(std::span<const std::uint8_t> bytes, CodecSink& sink) override;
  void Reset() override { framer_.Reset(); }

  static std::span<const OptionSpec> Options();
  static Result<std::unique_ptr<Codec>> Make(const nlohmann::json& options);

 private:
  void DecodeLine(std::string_view line, std::uint64_t offset, CodecSink& sink);

  LineFramer framer_;
  FlatJsonObject object_;
};

}  // namespace vg
