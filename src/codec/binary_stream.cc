#include "binary_stream.h"

namespace vg {

std::string HexBytes(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (std::uint8_t b : bytes) {
    if (!out.empty()) out += ' ';
    out += kDigits[b >> 4];
    out += kDigits[b & 0x0F];
  }
  return out;
}

void FrameWindow::Report(CodecSink& sink, std::uint64_t offset, std::string message,
                         std::string detail, bool warning) const {
  sink.OnDecodeError(DecodeError{offset, std::string(codec_) + ": " + std::move(message),
                                 std::move(detail), warning});
}

void FrameWindow::DropFirst(CodecSink& sink) {
  if (skipped_ == 0) skip_offset_ = offset_;
  ++skipped_;
  for (std::size_t i = 1; i < size_; ++i) bytes_[i - 1] = bytes_[i];
  --size_;
  ++offset_;
  if (skipped_ >= kSkipReportBytes) {
    Report(sink, skip_offset_,
           "no valid frame in " + std::to_string(kSkipReportBytes) + " bytes (" +
               std::string(hint_) + ")");
    skipped_ = 0;
    skip_reported_ = true;
  }
}

void FrameWindow::EndSkipRun(std::size_t tolerated, CodecSink& sink) {
  if (!skip_reported_ && !(at_start_ && skipped_ < tolerated)) {
    Report(sink, skip_offset_, std::to_string(skipped_) + " bytes skipped before a valid frame");
  }
  skipped_ = 0;
}

void FrameWindow::LostSync(std::string_view why, std::size_t size, CodecSink& sink) {
  Report(sink, offset_, std::string(why) + ", resynchronising",
         HexBytes(std::span(bytes_.data(), size)));
  skip_reported_ = true;
}

void FrameWindow::Reset() {
  offset_ += size_;
  size_ = 0;
  at_start_ = true;
  skip_reported_ = false;
  skipped_ = 0;
}

}  // namespace vg
