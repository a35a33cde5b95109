// HL7 v2 escaping and the segment writer.
#include <cassert>

#include "vitalgate/core/hex.h"
#include "vitalgate/forward/hl7.h"

namespace vg::hl7 {
namespace {

constexpr char kHexDigits[] = "0123456789ABCDEF";

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7F; }

// The escape sequence for `c`, or nullptr when it needs none (control characters aside).
const char* SequenceFor(char c) {
  switch (c) {
    case '|': return "\\F\\";
    case '^': return "\\S\\";
    case '~': return "\\R\\";
    case '\\': return "\\E\\";
    case '&': return "\\T\\";
    default: return nullptr;
  }
}

void AppendPart(std::string& out, const Part& part) {
  if (part.encoded()) {
    out += part.text();
  } else {
    AppendEscaped(out, part.text());
  }
}

// Appends the parts joined by `separator`, dropping trailing empty parts.
void AppendJoined(std::string& out, std::initializer_list<Part> parts, char separator) {
  std::size_t count = parts.size();
  while (count > 0 && (parts.begin() + count - 1)->text().empty()) --count;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out += separator;
    AppendPart(out, *(parts.begin() + i));
  }
}

// Appends the bytes of the hex pairs in `hex` (\Xhhhh\); false when they are not hex pairs.
bool AppendHexBytes(std::string& out, std::string_view hex) {
  if (hex.empty() || hex.size() % 2 != 0) return false;
  std::string bytes;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = HexDigit(hex[i]);
    const int lo = HexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    bytes += static_cast<char>(hi * 16 + lo);
  }
  out += bytes;
  return true;
}

}  // namespace

void AppendEscaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (const char* seq = SequenceFor(c)) {
      out += seq;
    } else if (IsControl(static_cast<unsigned char>(c))) {
      const auto b = static_cast<unsigned char>(c);
      out += "\\X";
      out += kHexDigits[b >> 4];
      out += kHexDigits[b & 0x0F];
      out += '\\';
    } else {
      out += c;
    }
  }
}

std::string Escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendEscaped(out, text);
  return out;
}

std::string Unescape(std::string_view text, const Delimiters& d) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != d.escape) {
      out += c;
      ++i;
      continue;
    }
    const std::size_t close = text.find(d.escape, i + 1);
    if (close == std::string_view::npos) {  // unterminated: keep as written
      out.append(text.substr(i));
      break;
    }
    const std::string_view seq = text.substr(i + 1, close - i - 1);
    if (seq == "F") {
      out += d.field;
    } else if (seq == "S") {
      out += d.component;
    } else if (seq == "R") {
      out += d.repetition;
    } else if (seq == "E") {
      out += d.escape;
    } else if (seq == "T") {
      out += d.subcomponent;
    } else if (seq.size() > 1 && seq[0] == 'X') {
      if (!AppendHexBytes(out, seq.substr(1))) out.append(text.substr(i, close - i + 1));
    }
    // Highlighting (\H\ \N\), formatting (\.br\ ...), character sets (\C..\ \M..\) and
    // locally defined (\Z..\) sequences carry no characters: dropped.
    i = close + 1;
  }
  return out;
}

std::string JoinSubcomponents(std::initializer_list<Part> parts) {
  std::string out;
  AppendJoined(out, parts, '&');
  return out;
}

SegmentWriter::SegmentWriter(std::string& out, std::string_view segment_id) : out_(out) {
  out_ += segment_id;
  if (segment_id == "MSH") {
    out_ += "|^~\\&";  // MSH-1 is the field separator itself, MSH-2 the encoding characters
    field_ = 2;
  }
}

void SegmentWriter::MoveTo(std::size_t field) {
  assert(field > field_ && "HL7 fields must be written in increasing order");
  out_.append(field - field_, '|');
  field_ = field;
}

SegmentWriter& SegmentWriter::Text(std::size_t field, std::string_view text) {
  if (text.empty()) return *this;
  MoveTo(field);
  AppendEscaped(out_, text);
  return *this;
}

SegmentWriter& SegmentWriter::Components(std::size_t field, std::initializer_list<Part> parts) {
  bool any = false;
  for (const Part& p : parts) any = any || !p.text().empty();
  if (!any) return *this;
  MoveTo(field);
  AppendJoined(out_, parts, '^');
  return *this;
}

SegmentWriter& SegmentWriter::Repeats(std::size_t field, std::initializer_list<Part> parts) {
  bool first = true;
  for (const Part& p : parts) {
    if (p.text().empty()) continue;
    if (first) MoveTo(field);
    if (!first) out_ += '~';
    AppendPart(out_, p);
    first = false;
  }
  return *this;
}

void SegmentWriter::End() {
  // A segment of empty fields still gets its first separator ("PID|"): some parsers do not
  // take an id alone for a segment.
  if (field_ == 0) out_ += '|';
  out_ += kCarriageReturn;
}

}  // namespace vg::hl7
