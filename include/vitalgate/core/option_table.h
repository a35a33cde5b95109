// OptionTable<S>: an option table (OptionSpec, options.h) bound to the fields of a typed struct
// S, so that every default is written once, as S's default member initializer (or in the
// `defaults` instance a table is built from), and the config, `vitalgate help config` and
// docs/config.md all show that value.
//
//   struct Options { std::string adapter = "hci0"; std::int64_t retry_ms = 1000; };
//   const OptionTable<Options>& Table() {
//     static const OptionTable<Options> table = [] {
//       OptionTable<Options> t;
//       t.Add(&Options::adapter, {.name = "adapter", .help = "..."});
//       t.Add(&Options::retry_ms, {.name = "retry_ms", .help = "...", .min = 10, .max = 3600000});
//       return t;
//     }();
//     return table;
//   }
//   ApplyOptionSpecs(json, Table().specs(), ...)  then  Options o = Table().Read(validated);
//
// A field's OptionType follows from its C++ type (std::string, std::int64_t, double, bool,
// std::vector<std::string>); the spec's `type` and `default_json` are filled in by Add. A
// required key (spec.required) gets no default. Include() adds the keys of another table for a
// member struct, so keys shared by several tables (e.g. the stream transports') are declared
// once.
//
// Thread-safety: build once (a function-local static), then read from any thread.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "vitalgate/core/options.h"

namespace vg {

template <class S>
class OptionTable {
 public:
  explicit OptionTable(S defaults = S{}) : defaults_(std::move(defaults)) {}

  // Adds the key `spec.name` bound to `field`; its default is `field` of the defaults.
  template <class T>
  OptionTable& Add(T S::*field, OptionSpec spec) {
    spec.type = TypeOf<T>();
    nlohmann::json value = defaults_.*field;
    AddSpec(spec, value, [field](S& out, const nlohmann::json& v) { out.*field = v.get<T>(); });
    return *this;
  }

  // Adds every key of the table `build(defaults.*member)` returns (an OptionTable<Sub> built
  // from the given defaults), bound to the member struct `member`. The member's default
  // initializer in S thus sets the defaults of the shared keys for this table.
  template <class Sub, class Build>
  OptionTable& Include(Sub S::*member, Build build) {
    const OptionTable<Sub> sub = build(defaults_.*member);
    texts_.insert(texts_.end(), sub.texts_.begin(), sub.texts_.end());
    for (std::size_t i = 0; i < sub.specs_.size(); ++i) {
      auto read = sub.readers_[i];
      AddSpec(sub.specs_[i], std::nullopt,
              [member, read](S& out, const nlohmann::json& v) { read(out.*member, v); });
    }
    return *this;
  }

  std::span<const OptionSpec> specs() const { return specs_; }
  const S& defaults() const { return defaults_; }

  // The struct for a validated option object: the defaults, then every key of the table that
  // `validated` holds. REQUIRES: `validated` came from ApplyOptionSpecs with specs().
  S Read(const nlohmann::json& validated) const {
    S out = defaults_;
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      const auto it = validated.find(std::string(specs_[i].name));
      if (it != validated.end()) readers_[i](out, *it);
    }
    return out;
  }

 private:
  template <class>
  friend class OptionTable;
  using Reader = std::function<void(S&, const nlohmann::json&)>;

  template <class T>
  static constexpr OptionType TypeOf() {
    if constexpr (std::is_same_v<T, std::string>) {
      return OptionType::kString;
    } else if constexpr (std::is_same_v<T, bool>) {
      return OptionType::kBool;
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      return OptionType::kInteger;
    } else if constexpr (std::is_same_v<T, double>) {
      return OptionType::kNumber;
    } else {
      static_assert(std::is_same_v<T, std::vector<std::string>>,
                    "an option field is a string, bool, int64_t, double or vector<string>");
      return OptionType::kStringArray;
    }
  }

  // The default's JSON text as people write it: a whole number without ".0".
  static std::string DefaultText(const nlohmann::json& value) {
    if (value.is_number_float()) {
      const double d = value.get<double>();
      if (d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
    }
    return value.dump();
  }

  // `value`: the default to show, or nullopt to keep `spec.default_json` (an included spec).
  void AddSpec(OptionSpec spec, const std::optional<nlohmann::json>& value, Reader read) {
    if (value) {
      if (spec.required) {
        spec.default_json = {};
      } else {
        texts_.push_back(std::make_unique<const std::string>(DefaultText(*value)));
        spec.default_json = *texts_.back();
      }
    }
    specs_.push_back(spec);
    readers_.push_back(std::move(read));
  }

  S defaults_;
  std::vector<OptionSpec> specs_;
  std::vector<Reader> readers_;
  // The default texts specs_ point into; shared with the tables that include this one.
  std::vector<std::shared_ptr<const std::string>> texts_;
};

}  // namespace vg
