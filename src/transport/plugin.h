// plugin transport: a device transport from a shared library, loaded at start through the
// versioned C ABI of include/vitalgate/plugin.h.
//
// Promises:
// - Loading refuses, with a message naming the file: a library dlopen() cannot load (with
//   dlerror()'s text), one without the vitalgate_plugin_v1 entry point, one whose table has
//   another ABI version (both versions named) or misses a function.
// - The plugin may call the host from its own threads (one at a time per instance). Those calls
//   never take a lock and never wait: each chunk goes into a bounded lock-free SPSC ring and a
//   Doorbell (eventfd) wakes the I/O thread, which hands the chunks to the TransportSink in
//   order. A full ring drops the chunk, counts it and tells the plugin
//   (VITALGATE_PLUGIN_DROPPED); a link change that finds the ring full is kept aside and
//   delivered after the queued data (data is refused until then, to keep the order), so the
//   latest link state is never lost.
// - Stop() calls the plugin's stop() (after which it makes no more host calls), then delivers
//   what is still queued; no sink callback after Stop() returns. The destructor calls
//   destroy() and then unloads the library.
//
// Thread-safety: Start()/Stop()/destruction on the I/O thread; the host functions from the
// plugin's threads as described in plugin.h; sink callbacks on the I/O thread only.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "read_pause.h"
#include "vitalgate/core/doorbell.h"
#include "vitalgate/core/log.h"
#include "vitalgate/core/spsc_ring.h"
#include "vitalgate/plugin.h"
#include "vitalgate/transport/transport.h"

namespace vg {

// A plugin library opened and checked; dlclose()d when the last reference goes.
struct PluginLibrary {
  std::shared_ptr<void> handle;  // null for tables linked into the process (tests)
  const vitalgate_plugin* table = nullptr;
  std::string path;
};

// dlopen + dlsym + ABI check. Errors are InvalidArgument and name `path`.
Result<PluginLibrary> LoadPluginLibrary(const std::string& path);
// The ABI check alone, for tables that do not come from a file.
Status CheckPluginTable(const vitalgate_plugin* table, const std::string& where);

// One host call in flight from a plugin thread to the I/O thread. (At namespace scope: a ring
// of a nested type with member initializers cannot be declared inside its enclosing class.)
struct PluginEvent {
  enum class Kind : std::uint8_t { kBytes, kCharacteristic, kLinkUp, kLinkDown };
  Kind kind = Kind::kBytes;
  std::uint16_t uuid = 0;
  std::uint16_t size = 0;
  // Only the first `size` bytes are ever read: left uninitialized, so a short chunk does not
  // pay for zeroing 512 bytes.
  std::array<std::uint8_t, VITALGATE_PLUGIN_MAX_CHUNK> data;
};

class PluginTransport final : public Transport {
 public:
  // Chunks the ring holds; at the rates of bedside devices the I/O thread empties it long
  // before. 1024 chunks of 512 bytes is ~0.5 MiB per plugin device.
  static constexpr std::size_t kRingCapacity = 1024;

  PluginTransport(const TransportContext& ctx, PluginLibrary library,
                  std::size_t ring_capacity = kRingCapacity);
  ~PluginTransport() override;
  PluginTransport(const PluginTransport&) = delete;
  PluginTransport& operator=(const PluginTransport&) = delete;

  // Calls the plugin's create() with the config as JSON text. REQUIRES: called once, before
  // Start(), on the I/O thread.
  Status Create(const std::string& config_json);
  void Start() override;
  void Stop() override;

  // Chunks dropped because the ring was full (any thread).
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  static std::span<const OptionSpec> Specs();
  static Result<std::unique_ptr<Transport>> Make(const TransportContext& ctx,
                                                 const nlohmann::json& o);
  static Status Check(const nlohmann::json& options, std::string_view path);

 private:
  using Event = PluginEvent;
  enum : int { kNoLink = 0, kOverflowDown = 1, kOverflowUp = 2 };

  // Host functions (plugin threads).
  static int HostEmitBytes(void* ctx, const std::uint8_t* data, std::size_t len);
  static int HostEmitCharacteristic(void* ctx, std::uint16_t uuid, const std::uint8_t* data,
                                    std::size_t len);
  static void HostLink(void* ctx, int up, const char* reason);
  static void HostLog(void* ctx, int level, const char* message);

  // I/O thread.
  void WatchDoorbell();
  void DrainSome();
  void Deliver(const Event& e);
  void DeliverLinkOverflow();
  bool LinkOverflowPending() const {
    return overflow_link_.load(std::memory_order_acquire) != kNoLink;
  }
  void ReportDrops(bool final = false);  // final: at stop, never rate-limited

  TransportContext ctx_;
  PluginLibrary library_;
  std::string name_;
  vitalgate_host host_{};
  void* instance_ = nullptr;
  bool started_ = false;
  bool stopped_ = false;
  SpscRing<Event> ring_;
  Doorbell doorbell_;
  boost::asio::posix::stream_descriptor bell_;
  ReadPause pause_;  // the pipeline is full: the plugin's data waits in ring_
  bool drain_posted_ = false;
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<int> overflow_link_{kNoLink};
  std::uint64_t dropped_reported_ = 0;
  RateLimiter drop_log_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
