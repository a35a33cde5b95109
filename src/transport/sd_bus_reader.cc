#include "sd_bus_reader.h"

#include <cerrno>

namespace vg::sdbus {

int ReadStrings(sd_bus_message* m, std::vector<std::string>& out) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "s");
  if (r < 0) return r;
  const char* s = nullptr;
  while ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &s)) > 0) out.emplace_back(s);
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int ReadBytes(sd_bus_message* m, std::vector<std::uint8_t>& out) {
  const void* data = nullptr;
  std::size_t size = 0;
  const int r = sd_bus_message_read_array(m, SD_BUS_TYPE_BYTE, &data, &size);
  if (r < 0) return r;
  const auto* p = static_cast<const std::uint8_t*>(data);
  out.assign(p, p + size);
  return 1;
}

int ReadVariant(sd_bus_message* m, PropValue& v) {
  char type = 0;
  const char* contents = nullptr;
  int r = sd_bus_message_peek_type(m, &type, &contents);
  if (r < 0) return r;
  if (type != SD_BUS_TYPE_VARIANT || contents == nullptr) return -EBADMSG;
  const std::string_view sig(contents);
  if (sig != "b" && sig != "s" && sig != "o" && sig != "as" && sig != "ay") {
    return sd_bus_message_skip(m, "v");
  }
  r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents);
  if (r < 0) return r;
  if (sig == "b") {
    int b = 0;
    r = sd_bus_message_read_basic(m, SD_BUS_TYPE_BOOLEAN, &b);
    v.type = PropValue::Type::kBool;
    v.b = b != 0;
  } else if (sig == "s" || sig == "o") {
    const char* s = nullptr;
    r = sd_bus_message_read_basic(m, sig[0], &s);
    v.type = PropValue::Type::kString;
    if (r > 0) v.s = s;
  } else if (sig == "as") {
    r = ReadStrings(m, v.strings);
    v.type = PropValue::Type::kStrings;
  } else {
    r = ReadBytes(m, v.bytes);
    v.type = PropValue::Type::kBytes;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

int ReadProperties(sd_bus_message* m, PropMap& out) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
    const char* name = nullptr;
    r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &name);
    if (r < 0) return r;
    PropValue v;
    r = ReadVariant(m, v);
    if (r < 0) return r;
    out[name] = std::move(v);
    r = sd_bus_message_exit_container(m);
    if (r < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

const PropValue* FindProperty(const PropMap& props, std::string_view name, PropValue::Type type) {
  const auto it = props.find(name);
  if (it == props.end() || it->second.type != type) return nullptr;
  return &it->second;
}

bool BoolProperty(const PropMap& props, std::string_view name, bool absent) {
  const PropValue* v = FindProperty(props, name, PropValue::Type::kBool);
  return v != nullptr ? v->b : absent;
}

namespace {

// One "{sa{sv}}" list of interfaces of the object at `path`.
int ReadInterfaces(sd_bus_message* m, const std::string& path, const InterfaceFilter& wanted,
                   const InterfaceVisitor& visit) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sa{sv}}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sa{sv}")) > 0) {
    const char* iface = nullptr;
    if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &iface)) < 0) return r;
    if (wanted(path, iface)) {
      PropMap props;
      if ((r = ReadProperties(m, props)) < 0) return r;
      visit(path, iface, props);
    } else if ((r = sd_bus_message_skip(m, "a{sv}")) < 0) {
      return r;
    }
    if ((r = sd_bus_message_exit_container(m)) < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

}  // namespace

int ReadManagedObjects(sd_bus_message* m, const InterfaceFilter& wanted,
                       const InterfaceVisitor& visit) {
  int r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{oa{sa{sv}}}");
  if (r < 0) return r;
  while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "oa{sa{sv}}")) > 0) {
    const char* path = nullptr;
    if ((r = sd_bus_message_read_basic(m, SD_BUS_TYPE_OBJECT_PATH, &path)) < 0) return r;
    if ((r = ReadInterfaces(m, path, wanted, visit)) < 0) return r;
    if ((r = sd_bus_message_exit_container(m)) < 0) return r;
  }
  if (r < 0) return r;
  return sd_bus_message_exit_container(m);
}

}  // namespace vg::sdbus
