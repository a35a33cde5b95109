// OptionTable: the defaults a table shows and validates with are the struct's, and what it reads
// back is typed.
#include "vitalgate/core/option_table.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace vg {
namespace {

using nlohmann::json;

struct Line {
  std::int64_t retry_ms = 500;
  double idle_s = 0;
  std::string init_hex{};
};

struct Port {
  std::string path{};
  std::int64_t baud = 9600;
  bool raw = true;
  std::vector<std::string> args{"-v"};
  Line line{.retry_ms = 500, .idle_s = 30, .init_hex = ""};
};

OptionTable<Line> LineTable(const Line& defaults) {
  OptionTable<Line> t(defaults);
  t.Add(&Line::retry_ms, {.name = "retry_ms", .help = "Retry.", .min = 10, .max = 1000});
  t.Add(&Line::idle_s, {.name = "idle_s", .help = "Idle."});
  t.Add(&Line::init_hex, {.name = "init_hex", .help = "Init."});
  return t;
}

const OptionTable<Port>& PortTable() {
  static const OptionTable<Port> table = [] {
    OptionTable<Port> t;
    t.Add(&Port::path, {.name = "path", .help = "Path.", .required = true});
    t.Add(&Port::baud, {.name = "baud", .help = "Baud.", .min = 50, .max = 4000000});
    t.Add(&Port::raw, {.name = "raw", .help = "Raw."});
    t.Add(&Port::args, {.name = "args", .help = "Args."});
    t.Include(&Port::line, &LineTable);
    return t;
  }();
  return table;
}

TEST(OptionTableTest, DefaultsComeFromTheStructAndTypesFromTheFields) {
  const auto specs = PortTable().specs();
  ASSERT_EQ(specs.size(), 7u);
  EXPECT_EQ(specs[0].name, "path");
  EXPECT_TRUE(specs[0].required);
  EXPECT_EQ(specs[0].default_json, "");  // required: no default
  EXPECT_EQ(specs[1].type, OptionType::kInteger);
  EXPECT_EQ(specs[1].default_json, "9600");
  EXPECT_EQ(specs[1].min, 50);
  EXPECT_EQ(specs[2].type, OptionType::kBool);
  EXPECT_EQ(specs[2].default_json, "true");
  EXPECT_EQ(specs[3].type, OptionType::kStringArray);
  EXPECT_EQ(specs[3].default_json, R"(["-v"])");
  // Included keys take their defaults from the member's initializer in the outer struct.
  EXPECT_EQ(specs[4].name, "retry_ms");
  EXPECT_EQ(specs[5].type, OptionType::kNumber);
  EXPECT_EQ(specs[5].default_json, "30");  // a whole number is written without ".0"
  EXPECT_EQ(specs[6].default_json, R"("")");
  EXPECT_EQ(LineTable(Line{}).specs()[1].default_json, "0");
  EXPECT_EQ(LineTable(Line{.idle_s = 2.5}).specs()[1].default_json, "2.5");
}

TEST(OptionTableTest, ReadsWhatApplyOptionSpecsValidated) {
  auto validated =
      ApplyOptionSpecs(json{{"path", "/dev/ttyS0"}, {"retry_ms", 20}}, PortTable().specs(), "t",
                       OptionContext{});
  ASSERT_TRUE(validated.ok()) << validated.status().message();
  const Port p = PortTable().Read(*validated);
  EXPECT_EQ(p.path, "/dev/ttyS0");
  EXPECT_EQ(p.baud, 9600);
  EXPECT_TRUE(p.raw);
  EXPECT_EQ(p.args, std::vector<std::string>{"-v"});
  EXPECT_EQ(p.line.retry_ms, 20);
  EXPECT_EQ(p.line.idle_s, 30);
  // The table's checks are the spec's: out of range and missing required keys are errors.
  EXPECT_FALSE(ApplyOptionSpecs(json{{"path", "/x"}, {"retry_ms", 5}}, PortTable().specs(), "t",
                                OptionContext{})
                   .ok());
  EXPECT_FALSE(ApplyOptionSpecs(json::object(), PortTable().specs(), "t", OptionContext{}).ok());
}

}  // namespace
}  // namespace vg
