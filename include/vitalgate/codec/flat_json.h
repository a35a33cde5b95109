// FlatJsonObject: a strict, allocation-light parser for one-line JSON objects whose values are
// scalars (string, number, true/false, null), as the jsonl codec receives them at high rate.
//
// Follows RFC 8259 for the subset it accepts; nested objects and arrays are rejected. String
// values with escapes are unescaped into an internal buffer; others are views into the input.
// Errors give the byte offset within the line. Single-threaded; reusable across lines.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <deque>
#include <vector>

namespace vg {

struct FlatJsonValue {
  enum class Type : std::uint8_t { kString, kNumber, kBool, kNull };
  Type type = Type::kNull;
  std::string_view text;  // kString: unescaped contents; kNumber: the literal
  double number = 0;
  bool boolean = false;
};

struct FlatJsonMember {
  std::string_view key;
  FlatJsonValue value;
};

class FlatJsonObject {
 public:
  // Parses `line`. On failure returns false and sets error() and error_offset().
  // Views returned by members() stay valid until the next Parse() and while `line` lives.
  bool Parse(std::string_view line);

  const std::vector<FlatJsonMember>& members() const { return members_; }
  const std::string& error() const { return error_; }
  std::size_t error_offset() const { return error_offset_; }

 private:
  bool Fail(std::size_t offset, std::string message);
  bool ParseString(std::string_view s, std::size_t& pos, std::string_view& out);
  bool ParseNumber(std::string_view s, std::size_t& pos, FlatJsonValue& out);

  std::vector<FlatJsonMember> members_;
  std::deque<std::string> unescaped_;  // strings that had escapes; deque: elements never move
  std::size_t unescaped_used_ = 0;
  std::string error_;
  std::size_t error_offset_ = 0;
};

}  // namespace vg
