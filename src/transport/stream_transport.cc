#include "stream_transport.h"

#include <nlohmann/json.hpp>

#include "vitalgate/core/hex.h"

namespace vg {

Result<StreamOptions> ParseStreamOptions(const nlohmann::json& o) {
  StreamOptions s;
  s.reconnect_min_ms = o.at("reconnect_min_ms").get<std::int64_t>();
  s.reconnect_max_ms = o.at("reconnect_max_ms").get<std::int64_t>();
  if (s.reconnect_max_ms < s.reconnect_min_ms) {
    return InvalidArgument("reconnect_max_ms: must be >= reconnect_min_ms");
  }
  s.idle_reconnect_ms = static_cast<std::int64_t>(o.at("idle_reconnect_s").get<double>() * 1000);
  auto init = ParseHex(o.at("init_hex").get<std::string>());
  if (!init.ok()) return init.status().WithContext("init_hex");
  s.init_bytes = *init;
  auto keepalive = ParseHex(o.at("keepalive_hex").get<std::string>());
  if (!keepalive.ok()) return keepalive.status().WithContext("keepalive_hex");
  s.keepalive_bytes = *keepalive;
  s.keepalive_ms = o.at("keepalive_ms").get<std::int64_t>();
  if (!s.keepalive_bytes.empty() && s.keepalive_ms <= 0) {
    return InvalidArgument("keepalive_ms: must be > 0 when keepalive_hex is set");
  }
  return s;
}

}  // namespace vg
