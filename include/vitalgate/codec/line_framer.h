// LineFramer: splits a byte stream into lines with a bound on the line length.
//
// Lines end at '\n' ("\r\n" and a lone '\r' terminator are accepted too). A line longer than the
// bound is reported once as oversized and discarded up to its terminator, so a device that never
// sends a newline costs at most `max_line` bytes. Tracks the stream offset of every line for
// error messages. Single-threaded.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace vg {

class LineFramer {
 public:
  explicit LineFramer(std::size_t max_line) : max_line_(max_line) { buffer_.reserve(256); }

  // Calls on_line(std::string_view line, uint64_t offset) for each complete line (terminator
  // removed, empty lines skipped) and on_oversize(uint64_t offset) for each discarded long line.
  template <typename OnLine, typename OnOversize>
  void Feed(std::span<const std::uint8_t> bytes, OnLine&& on_line, OnOversize&& on_oversize) {
    std::size_t i = 0;
    const auto* data = reinterpret_cast<const char*>(bytes.data());
    while (i < bytes.size()) {
      const char c = data[i];
      if (c == '\n' || c == '\r') {
        if (discarding_) {
          discarding_ = false;
        } else if (!buffer_.empty()) {
          on_line(std::string_view(buffer_), line_start_);
        }
        buffer_.clear();
        ++i;
        ++offset_;
        line_start_ = offset_;
        continue;
      }
      if (discarding_) {
        ++i;
        ++offset_;
        continue;
      }
      // Fast path: copy up to the next terminator in one go.
      std::size_t j = i;
      while (j < bytes.size() && data[j] != '\n' && data[j] != '\r') ++j;
      const std::size_t n = j - i;
      if (buffer_.size() + n > max_line_) {
        on_oversize(line_start_);
        buffer_.clear();
        discarding_ = true;
      } else {
        buffer_.append(data + i, n);
      }
      offset_ += n;
      i = j;
    }
  }

  void Reset() {
    buffer_.clear();
    discarding_ = false;
    line_start_ = offset_;
  }
  std::uint64_t offset() const { return offset_; }

 private:
  const std::size_t max_line_;
  std::string buffer_;
  bool discarding_ = false;
  std::uint64_t offset_ = 0;      // bytes consumed since creation
  std::uint64_t line_start_ = 0;  // offset of the first byte of the current line
};

}  // namespace vg
