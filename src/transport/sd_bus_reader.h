// Typed reading of sd-bus messages as BlueZ sends them: property dictionaries (a{sv}) reduced to
// the value types the ble transport uses, string and byte arrays, and ObjectManager snapshots
// (GetManagedObjects replies, a{oa{sa{sv}}}).
//
// Every reader follows sd-bus's convention: it returns < 0 (a negative errno, -EBADMSG for a
// message of the wrong shape) on error, and otherwise leaves the message positioned after what
// it read. Values of types nobody here uses are skipped, not rejected: BlueZ adds properties
// over time.
//
// Pure functions of the message; any thread that owns the message.
#pragma once

#include <systemd/sd-bus.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vg::sdbus {

// One property value; `type` says which member holds it (kOther: skipped, not read).
struct PropValue {
  enum class Type : std::uint8_t { kOther, kBool, kString, kStrings, kBytes } type = Type::kOther;
  bool b = false;
  std::string s;  // "s" and "o"
  std::vector<std::string> strings;
  std::vector<std::uint8_t> bytes;
};
using PropMap = std::map<std::string, PropValue, std::less<>>;

// "as"
int ReadStrings(sd_bus_message* m, std::vector<std::string>& out);
// "ay"
int ReadBytes(sd_bus_message* m, std::vector<std::uint8_t>& out);
// "v" holding b, s, o, as or ay; any other type is skipped (v.type stays kOther).
int ReadVariant(sd_bus_message* m, PropValue& v);
// "a{sv}"
int ReadProperties(sd_bus_message* m, PropMap& out);

// The property `name` when it is present with `type`; null otherwise.
const PropValue* FindProperty(const PropMap& props, std::string_view name, PropValue::Type type);
// A boolean property; `absent` when it is missing or not a boolean.
bool BoolProperty(const PropMap& props, std::string_view name, bool absent = false);

// Reads a GetManagedObjects reply (a{oa{sa{sv}}}). For every (object path, interface) that
// `wanted` accepts, its properties are read and handed to `visit`; the others are skipped
// unread, so a snapshot of a busy BlueZ costs little.
using InterfaceFilter = std::function<bool(std::string_view path, std::string_view iface)>;
using InterfaceVisitor =
    std::function<void(const std::string& path, std::string_view iface, const PropMap& props)>;
int ReadManagedObjects(sd_bus_message* m, const InterfaceFilter& wanted,
                       const InterfaceVisitor& visit);

}  // namespace vg::sdbus
