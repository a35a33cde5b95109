// HL7 v2 escaping: a property test against an unescaper written here from the standard's
// table (independent of the product's), plus the segment writer's layout.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "hl7_test_util.h"
#include "vitalgate/forward/hl7.h"

namespace vg::hl7 {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // escaping writes upper-case digits only
}

// HL7 v2.6 section 2.7.4/2.7.5, default encoding characters. Returns false on anything that is
// not a well-formed sequence.
bool ReferenceUnescape(const std::string& in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      out += in[i];
      continue;
    }
    const std::size_t end = in.find('\\', i + 1);
    if (end == std::string::npos) return false;
    const std::string seq = in.substr(i + 1, end - i - 1);
    if (seq == "F") {
      out += '|';
    } else if (seq == "S") {
      out += '^';
    } else if (seq == "R") {
      out += '~';
    } else if (seq == "E") {
      out += '\\';
    } else if (seq == "T") {
      out += '&';
    } else if (seq.size() == 3 && seq[0] == 'X' && HexValue(seq[1]) >= 0 && HexValue(seq[2]) >= 0) {
      out += static_cast<char>(HexValue(seq[1]) * 16 + HexValue(seq[2]));
    } else {
      return false;
    }
    i = end;
  }
  return true;
}

std::string RandomText(std::mt19937& rng) {
  // Biased towards the characters that matter: delimiters, escape, CR/LF, controls, UTF-8.
  static const std::string kSpecial = "|^~\\&\r\n\t\x0b\x1c\x7f";
  std::uniform_int_distribution<int> length(0, 40);
  std::uniform_int_distribution<int> pick(0, 9);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> special(0, kSpecial.size() - 1);
  std::string s;
  const int n = length(rng);
  for (int i = 0; i < n; ++i) {
    const int k = pick(rng);
    if (k < 4) {
      s += kSpecial[special(rng)];
    } else if (k < 5) {
      s += "\xC3\xA9";  // é
    } else {
      s += static_cast<char>(byte(rng));
    }
  }
  return s;
}

TEST(Hl7Escape, PropertyRoundTripThroughIndependentUnescape) {
  std::mt19937 rng(20261130);
  for (int i = 0; i < 20000; ++i) {
    const std::string text = RandomText(rng);
    const std::string escaped = Escape(text);
    ASSERT_TRUE(testing::OnlySafeCharacters(escaped)) << "escaped: " << escaped;
    std::string back;
    ASSERT_TRUE(ReferenceUnescape(escaped, back)) << "malformed escape: " << escaped;
    ASSERT_EQ(back, text);
    // The product's own unescaper (used on ACK texts) agrees.
    ASSERT_EQ(Unescape(escaped), text);
  }
}

TEST(Hl7Escape, EveryDelimiterAndControlCharacter) {
  EXPECT_EQ(Escape("a|b^c~d\\e&f"), "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f");
  EXPECT_EQ(Escape("line1\rline2\n"), "line1\\X0D\\line2\\X0A\\");
  EXPECT_EQ(Escape(std::string("\0\x1f\x7f", 3)), "\\X00\\\\X1F\\\\X7F\\");
  EXPECT_EQ(Escape("Zürich 37.5 °C"), "Zürich 37.5 °C");  // UTF-8 passes through
  EXPECT_EQ(Escape(""), "");
}

TEST(Hl7Unescape, PeerTextWithFormattingAndOtherDelimiters) {
  EXPECT_EQ(Unescape("\\H\\bold\\N\\ text"), "bold text");
  EXPECT_EQ(Unescape("a\\.br\\b"), "ab");
  EXPECT_EQ(Unescape("\\X0D0A\\"), "\r\n");
  EXPECT_EQ(Unescape("bad \\X0\\ hex"), "bad \\X0\\ hex");
  EXPECT_EQ(Unescape("open \\F"), "open \\F");
  Delimiters d;
  d.field = '#';
  d.escape = '!';
  EXPECT_EQ(Unescape("a!F!b!E!", d), "a#b!");
}

TEST(Hl7SegmentWriter, NumbersFieldsAsTheStandardDoes) {
  std::string out;
  SegmentWriter(out, "MSH").Text(3, "app").Text(7, "2026").Components(9, {"ORU", "R01", "ORU_R01"}).End();
  EXPECT_EQ(out, "MSH|^~\\&|app||||2026||ORU^R01^ORU_R01\r");
  out.clear();
  SegmentWriter(out, "PID").Components(3, {"p|1", "", "", "", "MR"}).End();
  EXPECT_EQ(out, "PID|||p\\F\\1^^^^MR\r");
}

TEST(Hl7SegmentWriter, DropsTrailingEmptiesAndSkipsEmptyRepeats) {
  std::string out;
  SegmentWriter(out, "OBX").Text(1, "1").Components(3, {"a", "b", "", ""}).Text(5, "").End();
  EXPECT_EQ(out, "OBX|1||a^b\r");
  out.clear();
  SegmentWriter(out, "OBX").Repeats(8, {"", "PH", "S~P"}).End();
  EXPECT_EQ(out, "OBX||||||||PH~S\\R\\P\r");
  out.clear();
  SegmentWriter(out, "PID").Text(3, "").End();  // a segment of empty fields keeps one separator
  EXPECT_EQ(out, "PID|\r");
}

TEST(Hl7SegmentWriter, EncodedPartsAreNotEscapedAgain) {
  std::string out;
  const std::string authority = JoinSubcomponents({"HOSP", "1.2.3", "ISO"});
  SegmentWriter(out, "PID").Components(3, {"p-1", "", "", Part::Encoded(authority), "MR"}).End();
  EXPECT_EQ(out, "PID|||p-1^^^HOSP&1.2.3&ISO^MR\r");
  EXPECT_EQ(JoinSubcomponents({"a&b", "", ""}), "a\\T\\b");
}

}  // namespace
}  // namespace vg::hl7
