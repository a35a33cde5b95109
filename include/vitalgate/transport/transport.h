// Transports: how bytes arrive from a device (serial port, TCP, a child process, BLE, the
// simulator, a plugin). A transport owns its connection, reconnects on its own with capped
// backoff, and never blocks: it runs on the gateway's I/O thread (Boost.Asio) or, for plugins,
// on threads of its own, and reports through a TransportSink.
//
// Thread-safety: Start()/Stop() on the I/O thread. Sink callbacks arrive on the I/O thread,
// except for transports documented otherwise (plugins), which use their own producer ring.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "vitalgate/core/clock.h"
#include "vitalgate/core/options.h"
#include "vitalgate/core/status.h"

namespace vg {

class TransportSink {
 public:
  virtual ~TransportSink() = default;
  // Bytes from a stream device, in order, split anywhere.
  virtual void OnBytes(std::span<const std::uint8_t> bytes) = 0;
  // One characteristic value from a BLE device (16-bit UUID).
  virtual void OnCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> value) = 0;
  // The link came up or went down; `reason` says why it went down (no patient data).
  virtual void OnLink(bool up, std::string_view reason) = 0;
  // True while the pipeline behind the sink is full. Stream transports then stop reading for a
  // moment (the device's bytes wait in the kernel, the pipe or the TCP window) instead of
  // delivering readings that would have to be dropped.
  virtual bool Saturated() const { return false; }
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void Start() = 0;
  // Stops reading and releases the device; no sink callback after it returns.
  virtual void Stop() = 0;
};

struct TransportContext {
  boost::asio::io_context* io = nullptr;
  const Clock* clock = nullptr;
  std::string device_id;
  TransportSink* sink = nullptr;
  // A directory, private to the gateway, where a transport may keep small state files that
  // must survive a restart (e.g. the last BLE glucose record fetched). Empty: keep none.
  std::string state_dir;
  // The BLE characteristics (16-bit UUIDs) the device's codec decodes, so a message-based
  // transport knows what to subscribe to; given by the app, which knows both modules.
  std::vector<std::uint16_t> characteristics;
};

// What a transport hands its sink, so the loader can pair it only with codecs that decode it.
enum class TransportDelivers {
  kBytes,            // OnBytes: a byte stream for a stream codec (jsonl, nonin, ...)
  kCharacteristics,  // OnCharacteristic: GATT values for a message codec (gatt)
  kEither,           // decided at run time (plugins)
};

struct TransportDescriptor {
  std::string_view name;
  std::string_view summary;
  std::span<const OptionSpec> options;
  std::string_view default_codec;  // empty: the device must name one
  TransportDelivers delivers;
  // REQUIRES: options were validated against `options`.
  Result<std::unique_ptr<Transport>> (*make)(const TransportContext& ctx,
                                             const nlohmann::json& options);
  // Extra checks beyond the option table (e.g. the command exists); may be null.
  Status (*check)(const nlohmann::json& options, std::string_view path);
};

std::span<const TransportDescriptor> AllTransports();
const TransportDescriptor* FindTransport(std::string_view name);

// Validates {"type": name, options...}; returns it with defaults filled in.
Result<nlohmann::json> ValidateTransportSpec(const nlohmann::json& spec, std::string_view path,
                                             const OptionContext& ctx);

// Capped exponential backoff shared by every reconnecting transport.
class Backoff {
 public:
  Backoff(std::int64_t min_ms, std::int64_t max_ms) : min_ms_(min_ms), max_ms_(max_ms) {}
  std::int64_t NextMs() {
    const std::int64_t d = current_ == 0 ? min_ms_ : std::min(max_ms_, current_ * 2);
    current_ = d;
    return d;
  }
  void Reset() { current_ = 0; }

 private:
  std::int64_t min_ms_;
  std::int64_t max_ms_;
  std::int64_t current_ = 0;
};

}  // namespace vg
