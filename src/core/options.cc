#include "vitalgate/core/options.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

namespace vg {
namespace {

// A group's name and its listed members (not users whose primary group it is).
struct GroupEntry {
  std::string name;
  std::vector<std::string> members;
};

std::optional<GroupEntry> LookUpGroup(gid_t gid, const char* name) {
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found = nullptr;
  const int rc = name != nullptr ? ::getgrnam_r(name, &gr, buf.data(), buf.size(), &found)
                                 : ::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found);
  if (rc != 0 || found == nullptr) return std::nullopt;
  GroupEntry e{gr.gr_name, {}};
  for (char** m = gr.gr_mem; m != nullptr && *m != nullptr; ++m) e.members.emplace_back(*m);
  return e;
}

std::string UserName(uid_t uid) {
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return std::to_string(uid);
  }
  return pw.pw_name;
}

std::string FormatMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::string_view TypeWanted(OptionType type) {
  switch (type) {
    case OptionType::kString: return "a string";
    case OptionType::kInteger: return "an integer";
    case OptionType::kNumber: return "a number";
    case OptionType::kBool: return "true or false";
    case OptionType::kStringArray: return "an array of strings";
    case OptionType::kObject: return "an object";
    case OptionType::kObjectArray: return "an array of objects";
  }
  return "?";
}

bool TypeMatches(OptionType type, const nlohmann::json& v) {
  switch (type) {
    case OptionType::kString: return v.is_string();
    case OptionType::kInteger: return v.is_number_integer();
    case OptionType::kNumber: return v.is_number();
    case OptionType::kBool: return v.is_boolean();
    case OptionType::kStringArray:
      if (!v.is_array()) return false;
      for (const auto& e : v) {
        if (!e.is_string()) return false;
      }
      return true;
    case OptionType::kObject: return v.is_object();
    case OptionType::kObjectArray:
      if (!v.is_array()) return false;
      for (const auto& e : v) {
        if (!e.is_object()) return false;
      }
      return true;
  }
  return false;
}

std::string FormatLimit(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  return std::to_string(v);
}

Status CheckValue(const OptionSpec& spec, const nlohmann::json& v, const std::string& key_path) {
  if (!TypeMatches(spec.type, v)) {
    return InvalidArgument(key_path + ": expected " + std::string(TypeWanted(spec.type)) +
                           ", got " + std::string(JsonTypeName(v)));
  }
  if (spec.type == OptionType::kInteger || spec.type == OptionType::kNumber) {
    const double d = v.get<double>();
    if (d < spec.min || d > spec.max) {
      return InvalidArgument(key_path + ": " + v.dump() + " is out of range, expected " +
                             FormatLimit(spec.min) + " to " + FormatLimit(spec.max));
    }
  }
  if (spec.type == OptionType::kString && !spec.choices.empty()) {
    const auto& s = v.get_ref<const std::string&>();
    bool found = false;
    std::string list;
    for (std::string_view c : spec.choices) {
      if (c == s) found = true;
      if (!list.empty()) list += ", ";
      list += '"';
      list += c;
      list += '"';
    }
    if (!found) return InvalidArgument(key_path + ": \"" + s + "\" is not one of " + list);
  }
  if (spec.type == OptionType::kString && spec.required && v.get_ref<const std::string&>().empty()) {
    return InvalidArgument(key_path + ": must not be empty");
  }
  return Status::Ok();
}

}  // namespace

std::string_view JsonTypeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "an integer";
    case nlohmann::json::value_t::number_float: return "a number";
    default: return "a value of another type";
  }
}

std::string JoinPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string p(parent);
  p += '.';
  p += key;
  return p;
}

Status CheckFile(const std::string& file, FileCheck check, std::string_view key_path) {
  if (check == FileCheck::kNone) return Status::Ok();
  if (check == FileCheck::kSecret) return CheckSecretFile(file, key_path);
  const std::string where = std::string(key_path) + ": " + file;
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return NotFound(where + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgument(where + ": not a regular file");
  if (::access(file.c_str(), R_OK) != 0) {
    return PermissionDenied(where + ": not readable by this user: " + std::strerror(errno));
  }
  return Status::Ok();
}

Status CheckSecretFile(const std::string& file, std::string_view key_path) {
  VG_RETURN_IF_ERROR(CheckFile(file, FileCheck::kReadable, key_path));
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return NotFound(std::string(key_path) + ": " + file + ": " + std::strerror(errno));
  }
  const std::string service(kServiceAccount);
  const std::string refused = std::string(key_path) + ": " + file + ": secret file ";
  const std::string mode = " (mode " + FormatMode(st.st_mode) + ")";
  const std::string fix = "; run: chmod 600 " + file + ", or chown root:" + service + " " + file +
                          " && chmod 640 " + file;
  if ((st.st_mode & 007) != 0) {
    return PermissionDenied(refused + "is accessible by group or others" + mode + fix);
  }
  if ((st.st_mode & 070) == 0) return Status::Ok();  // owner only
  if ((st.st_mode & 030) != 0) {
    return PermissionDenied(refused + "is writable or executable by its group" + mode +
                            "; run: chmod 640 " + file);
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != me) {
    return PermissionDenied(refused + "is readable by its group and owned by " +
                            UserName(st.st_uid) + mode + ": a group-readable secret must be owned "
                            "by root or by the service user" + fix);
  }
  const auto service_group = LookUpGroup(0, service.c_str());
  const auto group = LookUpGroup(st.st_gid, nullptr);
  const std::string group_name = group ? group->name : std::to_string(st.st_gid);
  const bool own_group = st.st_gid == ::getegid() || (service_group && group && group->name == service);
  if (!own_group) {
    return PermissionDenied(refused + "is readable by group " + group_name + mode +
                            ", which is not the service's group (" + service + ")" + fix);
  }
  if (group) {
    const std::string me_name = UserName(me);
    for (const std::string& member : group->members) {
      if (member != me_name && member != service) {
        return PermissionDenied(refused + "is readable by group " + group_name + mode +
                                ", which also has the member " + member +
                                "; remove it from the group, or run: chmod 600 " + file);
      }
    }
  }
  return Status::Ok();
}

Result<nlohmann::json> ApplyOptionSpecs(const nlohmann::json& obj, std::span<const OptionSpec> specs,
                                        std::string_view path, const OptionContext& ctx,
                                        std::span<const std::string_view> ignore) {
  const std::string where = path.empty() ? std::string("config") : std::string(path);
  if (!obj.is_object()) {
    return InvalidArgument(where + ": expected an object, got " + std::string(JsonTypeName(obj)));
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, value] : obj.items()) {
    bool ignored = false;
    for (std::string_view ig : ignore) ignored = ignored || ig == key;
    if (ignored) {
      out[key] = value;
      continue;
    }
    const OptionSpec* spec = nullptr;
    for (const OptionSpec& s : specs) {
      if (s.name == key) spec = &s;
    }
    if (spec == nullptr) {
      std::string known;
      for (const OptionSpec& s : specs) {
        if (!known.empty()) known += ", ";
        known += s.name;
      }
      return InvalidArgument(JoinPath(path, key) + ": unknown key (known keys: " + known + ")");
    }
    VG_RETURN_IF_ERROR(CheckValue(*spec, value, JoinPath(path, key)));
    out[key] = value;
  }
  for (const OptionSpec& spec : specs) {
    const std::string name(spec.name);
    if (!out.contains(name)) {
      if (spec.required) return InvalidArgument(JoinPath(path, spec.name) + ": required key is missing");
      if (!spec.default_json.empty()) {
        auto parsed = nlohmann::json::parse(spec.default_json, nullptr, /*allow_exceptions=*/false);
        if (parsed.is_discarded()) {
          return Internal(JoinPath(path, spec.name) + ": built-in default is not valid JSON");
        }
        out[name] = std::move(parsed);
      }
    }
    if (spec.file != FileCheck::kNone && out.contains(name) && out[name].is_string()) {
      std::string file = out[name].get<std::string>();
      if (!file.empty() && file[0] != '/' && !ctx.base_dir.empty()) {
        file = std::string(ctx.base_dir) + "/" + file;
        out[name] = file;
      }
      if (ctx.check_files && !file.empty()) {
        VG_RETURN_IF_ERROR(CheckFile(file, spec.file, JoinPath(path, spec.name)));
      }
    }
  }
  return out;
}

std::string FormatOptionTable(std::span<const OptionSpec> specs) {
  std::string out = "| key | type | default | description |\n| --- | --- | --- | --- |\n";
  for (const OptionSpec& s : specs) {
    out += "| `";
    out += s.name;
    out += "` | ";
    out += TypeWanted(s.type);
    out += " | ";
    if (s.required) {
      out += "required";
    } else if (s.default_json.empty()) {
      out += "(none)";
    } else {
      out += '`';
      out += s.default_json;
      out += '`';
    }
    out += " | ";
    out += s.help;
    out += " |\n";
  }
  return out;
}

}  // namespace vg
