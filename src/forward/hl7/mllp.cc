// MLLP framing, the bounded frame reader and acknowledgement parsing.
#include <vector>

#include "vitalgate/forward/hl7.h"

namespace vg::hl7 {
namespace {

std::string Offset(std::uint64_t offset) { return "byte " + std::to_string(offset); }

std::string Printable(char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto b = static_cast<unsigned char>(c);
  return std::string("0x") + kHex[b >> 4] + kHex[b & 0x0F];
}

// Splits `text` at `sep` (all parts, empty ones included).
std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = text.find(sep, start);
    parts.push_back(text.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

// One segment split into fields; field(n) is HL7 field n (for MSH, field 1 is the separator,
// so fields are shifted by one to keep the standard's numbering).
class ParsedSegment {
 public:
  ParsedSegment(std::string_view segment, const Delimiters& d, bool msh) : d_(d) {
    fields_ = Split(segment, d.field);
    if (msh) fields_.insert(fields_.begin() + 1, std::string_view("|"));
  }
  std::string_view id() const { return fields_.empty() ? std::string_view() : fields_[0]; }
  std::string_view field(std::size_t n) const {
    return n < fields_.size() ? fields_[n] : std::string_view();
  }
  // Component `c` (1-based) of the first repetition of field `n`.
  std::string_view component(std::size_t n, std::size_t c) const {
    const std::string_view first = Split(field(n), d_.repetition).front();
    const auto parts = Split(first, d_.component);
    return c - 1 < parts.size() ? parts[c - 1] : std::string_view();
  }

 private:
  Delimiters d_;
  std::vector<std::string_view> fields_;
};

std::optional<AckCode> AckCodeFromName(std::string_view name) {
  static constexpr std::pair<std::string_view, AckCode> kCodes[] = {
      {"AA", AckCode::kAA}, {"AE", AckCode::kAE}, {"AR", AckCode::kAR},
      {"CA", AckCode::kCA}, {"CE", AckCode::kCE}, {"CR", AckCode::kCR},
  };
  for (const auto& [n, code] : kCodes) {
    if (n == name) return code;
  }
  return std::nullopt;
}

// The most specific human text of an ERR segment (v2.5+ fields first, then the v2.4 ERR-1).
std::string ErrorText(const ParsedSegment& err, const Delimiters& d) {
  for (std::string_view text : {err.field(8), err.field(7), err.component(3, 2),
                                err.component(3, 9)}) {
    if (!text.empty()) return Unescape(text, d);
  }
  // ERR-1 (v2.4): segment^sequence^field^code&text&system; the text is subcomponent 2 of 4.
  const auto sub = Split(err.component(1, 4), d.subcomponent);
  if (sub.size() > 1 && !sub[1].empty()) return Unescape(sub[1], d);
  if (!sub.empty() && !sub[0].empty()) return Unescape(sub[0], d);
  return {};
}

}  // namespace

void AppendMllpFrame(std::string& out, std::string_view message) {
  out.reserve(out.size() + message.size() + 3);
  out += kStartBlock;
  out += message;
  out += kEndBlock;
  out += kCarriageReturn;
}

Status MllpReader::Feed(std::string_view bytes) {
  if (state_ == State::kFailed) return failure_;
  for (const char c : bytes) {
    const std::uint64_t at = offset_++;
    switch (state_) {
      case State::kIdle:
        if (c == kStartBlock) {
          state_ = State::kBody;
          current_.clear();
        } else if (c != '\r' && c != '\n') {
          failure_ = InvalidArgument("MLLP: " + Offset(at) + ": expected a start block (0x0b), got " +
                                     Printable(c));
        }
        break;
      case State::kBody:
        if (c == kEndBlock) {
          state_ = State::kEnd;
        } else if (c == kStartBlock) {
          failure_ = InvalidArgument("MLLP: " + Offset(at) + ": start block inside a message");
        } else if (current_.size() >= max_) {
          failure_ = ResourceExhausted("MLLP: " + Offset(at) + ": message longer than " +
                                       std::to_string(max_) + " bytes");
        } else {
          current_ += c;
        }
        break;
      case State::kEnd:
        if (c == kCarriageReturn) {
          complete_.push_back(std::move(current_));
          current_.clear();
          state_ = State::kIdle;
        } else {
          failure_ = InvalidArgument("MLLP: " + Offset(at) + ": end block not followed by CR, got " +
                                     Printable(c));
        }
        break;
      case State::kFailed: break;
    }
    if (!failure_.ok()) {
      state_ = State::kFailed;
      current_.clear();
      return failure_;
    }
  }
  return Status::Ok();
}

std::optional<std::string> MllpReader::Next() {
  if (next_ >= complete_.size()) {
    complete_.clear();
    next_ = 0;
    return std::nullopt;
  }
  return std::move(complete_[next_++]);
}

std::string_view Name(AckCode code) {
  switch (code) {
    case AckCode::kAA: return "AA";
    case AckCode::kAE: return "AE";
    case AckCode::kAR: return "AR";
    case AckCode::kCA: return "CA";
    case AckCode::kCE: return "CE";
    case AckCode::kCR: return "CR";
  }
  return "?";
}

Result<Ack> ParseAck(std::string_view message) {
  if (message.size() < 8 || message.substr(0, 3) != "MSH") {
    return InvalidArgument("ACK: does not start with an MSH segment");
  }
  Delimiters d;
  d.field = message[3];
  d.component = message[4];
  d.repetition = message[5];
  d.escape = message[6];
  d.subcomponent = message[7];
  // Segments end with CR; LF and CR LF are accepted from receivers that write them.
  std::vector<std::string_view> segments;
  for (std::string_view line : Split(message, '\r')) {
    for (std::string_view part : Split(line, '\n')) {
      if (!part.empty()) segments.push_back(part);
    }
  }
  const ParsedSegment* msa = nullptr;
  const ParsedSegment* err = nullptr;
  std::vector<ParsedSegment> parsed;
  parsed.reserve(segments.size());
  for (std::string_view s : segments) parsed.emplace_back(s, d, s.starts_with("MSH"));
  for (const ParsedSegment& s : parsed) {
    if (s.id() == "MSA" && msa == nullptr) msa = &s;
    if (s.id() == "ERR" && err == nullptr) err = &s;
  }
  if (msa == nullptr) return InvalidArgument("ACK: no MSA segment");
  const std::string_view code_text = msa->field(1);
  const auto code = AckCodeFromName(code_text);
  if (!code) {
    return InvalidArgument("ACK: MSA-1: unknown acknowledgment code \"" +
                           Unescape(code_text.substr(0, 8), d) + "\"");
  }
  Ack ack;
  ack.code = *code;
  ack.control_id = Unescape(msa->field(2), d);
  if (ack.control_id.empty()) return InvalidArgument("ACK: MSA-2: message control id is empty");
  if (err != nullptr) ack.text = ErrorText(*err, d);
  if (ack.text.empty()) ack.text = Unescape(msa->field(3), d);
  return ack;
}

}  // namespace vg::hl7
