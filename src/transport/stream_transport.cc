#include "stream_transport.h"

#include <nlohmann/json.hpp>

#include "vitalgate/core/hex.h"

namespace vg {

OptionTable<StreamConfig> StreamOptionTable(const StreamConfig& defaults) {
  OptionTable<StreamConfig> t(defaults);
  t.Add(&StreamConfig::reconnect_min_ms,
        {.name = "reconnect_min_ms",
         .help = "First reconnect delay after a failure or a disconnect.",
         .min = 10,
         .max = 3600000});
  t.Add(&StreamConfig::reconnect_max_ms, {.name = "reconnect_max_ms",
                                          .help = "Cap of the exponential reconnect delay.",
                                          .min = 10,
                                          .max = 3600000});
  t.Add(&StreamConfig::idle_reconnect_s,
        {.name = "idle_reconnect_s",
         .help = "Reconnect after this long without a byte (a dead peer or converter sends "
                 "nothing); 0 never.",
         .min = 0,
         .max = 86400});
  t.Add(&StreamConfig::init_hex,
        {.name = "init_hex",
         .help = "Bytes (hex) sent after every connection, for devices that stream only on "
                 "request."});
  t.Add(&StreamConfig::keepalive_hex,
        {.name = "keepalive_hex", .help = "Bytes (hex) sent every keepalive_ms."});
  t.Add(&StreamConfig::keepalive_ms,
        {.name = "keepalive_ms", .help = "Keep-alive period; 0 none.", .min = 0, .max = 3600000});
  return t;
}

Result<StreamOptions> ToStreamOptions(const StreamConfig& c) {
  StreamOptions s;
  s.reconnect_min_ms = c.reconnect_min_ms;
  s.reconnect_max_ms = c.reconnect_max_ms;
  if (s.reconnect_max_ms < s.reconnect_min_ms) {
    return InvalidArgument("reconnect_max_ms: must be >= reconnect_min_ms");
  }
  s.idle_reconnect_ms = static_cast<std::int64_t>(c.idle_reconnect_s * 1000);
  auto init = ParseHex(c.init_hex);
  if (!init.ok()) return init.status().WithContext("init_hex");
  s.init_bytes = *init;
  auto keepalive = ParseHex(c.keepalive_hex);
  if (!keepalive.ok()) return keepalive.status().WithContext("keepalive_hex");
  s.keepalive_bytes = *keepalive;
  s.keepalive_ms = c.keepalive_ms;
  if (!s.keepalive_bytes.empty() && s.keepalive_ms <= 0) {
    return InvalidArgument("keepalive_ms: must be > 0 when keepalive_hex is set");
  }
  return s;
}

Result<StreamOptions> ParseStreamOptions(const nlohmann::json& o) {
  static const OptionTable<StreamConfig> table = StreamOptionTable(StreamConfig{});
  return ToStreamOptions(table.Read(o));
}

}  // namespace vg
