// Helpers for the serial codec tests: build a codec from a config spec the way the daemon does,
// and feed input whole, byte by byte or in given pieces.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "unit/codec/codec_test_util.h"
#include "vitalgate/codec/codec.h"

namespace vg::testing {

// REQUIRES: the spec is valid (the test fails otherwise).
inline std::unique_ptr<Codec> MakeFromSpec(const nlohmann::json& spec) {
  auto validated = ValidateCodecSpec(spec, "codec");
  EXPECT_TRUE(validated.ok()) << validated.status().message();
  if (!validated.ok()) return nullptr;
  auto codec = MakeCodec(*validated);
  EXPECT_TRUE(codec.ok()) << codec.status().message();
  if (!codec.ok()) return nullptr;
  return std::move(*codec);
}

// The Status from validating and making the codec, for option tests.
inline Status MakeStatus(const nlohmann::json& spec) {
  auto validated = ValidateCodecSpec(spec, "codec");
  if (!validated.ok()) return validated.status();
  auto codec = MakeCodec(*validated);
  if (!codec.ok()) return codec.status();
  return Status::Ok();
}

inline Recorded FeedWhole(Codec& codec, const std::string& bytes) {
  RecordingSink sink;
  codec.Feed(Bytes(bytes), sink);
  return sink.rec;
}

inline Recorded FeedByteByByte(Codec& codec, const std::string& bytes) {
  RecordingSink sink;
  for (char c : bytes) codec.Feed(Bytes(std::string(1, c)), sink);
  return sink.rec;
}

// Everything a user would notice, for comparing two decodes of the same bytes.
inline std::string Summary(const Recorded& r) {
  std::string s;
  for (const DecodedValue& v : r.values) {
    s += "v " + std::to_string(static_cast<int>(v.metric)) + "=" + std::to_string(v.value) + " f" +
         std::to_string(v.flags) + " n" + std::to_string(v.status_count) +
         (v.ts_ms ? " t" + std::to_string(*v.ts_ms) : std::string()) + "\n";
  }
  for (const auto& [c, active] : r.conditions) {
    s += "c " + std::to_string(static_cast<int>(c)) + (active ? "+" : "-") + "\n";
  }
  for (const DecodeError& e : r.errors) {
    s += "e " + std::to_string(e.offset) + " " + e.message + (e.warning ? " (w)" : "") + "\n";
  }
  return s;
}

inline bool HasStatus(const DecodedValue& v, std::string_view word) {
  for (std::uint8_t i = 0; i < v.status_count; ++i) {
    if (v.status[i] == word) return true;
  }
  return false;
}

}  // namespace vg::testing
