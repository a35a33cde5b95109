// Declarative option tables: one table per config section, transport type and codec serves
// config validation (types, ranges, choices, required keys, unknown keys), defaults, file checks,
// `vitalgate check`'s effective config and the reference in docs/config.md.
//
// Pure except for the file checks (stat/access on paths marked as files). Thread-safe.
#pragma once

#include <limits>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "vitalgate/core/status.h"

namespace vg {

enum class OptionType : std::uint8_t {
  kString,
  kInteger,
  kNumber,
  kBool,
  kStringArray,
  kObject,       // free-form object validated by its consumer (e.g. rules)
  kObjectArray,  // array of objects validated by its consumer (e.g. patients)
};

enum class FileCheck : std::uint8_t {
  kNone,
  kReadable,  // must exist and be readable by this process
  kSecret,    // kReadable, and private to the service: see CheckSecretFile
};

// The system user and group the Debian package creates and the systemd unit runs as.
inline constexpr std::string_view kServiceAccount = "vitalgate";

struct OptionSpec {
  std::string_view name = {};
  OptionType type = OptionType::kString;
  std::string_view default_json = {};  // JSON text of the default; empty: no default
  std::string_view help = {};
  bool required = false;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::span<const std::string_view> choices = {};  // kString only; empty: any
  FileCheck file = FileCheck::kNone;                // kString only; relative paths are resolved
};

struct OptionContext {
  std::string_view base_dir;  // directory relative file paths are resolved against
  bool check_files = true;
};

// Validates `obj` against `specs` and returns a copy with every default filled in and relative
// file paths made absolute. `path` names `obj` in messages, e.g. "devices[2].transport".
// Errors name the full key path and what was expected, e.g.
//   "devices[2].transport.baud: expected an integer, got a string".
// Keys listed in `ignore` are passed through untouched (e.g. a discriminator like "type").
Result<nlohmann::json> ApplyOptionSpecs(const nlohmann::json& obj, std::span<const OptionSpec> specs,
                                        std::string_view path, const OptionContext& ctx,
                                        std::span<const std::string_view> ignore = {});

// "a string", "an integer", ... for messages.
std::string_view JsonTypeName(const nlohmann::json& value);
std::string JoinPath(std::string_view parent, std::string_view key);

// Checks one file named by the config (existence, readability, and for kSecret the mode).
Status CheckFile(const std::string& file, FileCheck check, std::string_view key_path);

// The one rule for every secret file (TLS private keys, password files, payload keys, tokens of
// other destinations); call it for any file whose content must stay with the service. The file
// must be a regular file readable by this process, others must have no access at all, and
// either
//   - only its owner has access (0600, 0400), or
//   - its group may read it but not write it (0640, 0440), its owner is root or this process's
//     user, its group is the service's group (this process's effective group, or the group
//     `vitalgate` of the package), and that group lists no member other than the service user.
// So `root:vitalgate 0640` (the package's layout: root administers, the service reads) and
// `vitalgate:vitalgate 0600` are accepted; world-readable, group-writable and files readable by
// some other group are refused with a message that names `key_path`, the file, its mode and the
// command that fixes it. Thread-safe (stat, access, getgrgid_r, getpwuid_r).
Status CheckSecretFile(const std::string& file, std::string_view key_path);

// A Markdown table of the options, for docs and --help.
std::string FormatOptionTable(std::span<const OptionSpec> specs);

}  // namespace vg
