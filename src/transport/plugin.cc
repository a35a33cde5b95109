#include "plugin.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstring>
#include <nlohmann/json.hpp>

#include "vitalgate/core/unique_fd.h"

namespace vg {
namespace {

// clang-format off
constexpr OptionSpec kSpecs[] = {
    {"path", OptionType::kString, "", "The plugin's shared library (.so).", true, -1e300, 1e300,
     {}, FileCheck::kReadable},
    {"config", OptionType::kObject, "{}",
     "Handed to the plugin's create() as JSON text; its meaning is the plugin's."},
};
// clang-format on

// Chunks delivered per turn of the I/O thread before other handlers get their turn.
constexpr std::size_t kMaxPerTurn = 256;
// Log lines from plugins are cut here and kept on one line.
constexpr std::size_t kMaxLogLine = 480;

// Text from a plugin bound for one log line: at most `max` bytes, control characters (line
// breaks, terminal escapes) made spaces, so a plugin cannot forge or garble log lines.
std::string OneLine(const char* text, std::size_t max) {
  std::string line = text != nullptr ? std::string(text, ::strnlen(text, max)) : "";
  std::replace_if(
      line.begin(), line.end(),
      [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == '\x7f'; }, ' ');
  return line;
}

std::string DlError() {
  const char* e = ::dlerror();
  return e != nullptr ? e : "unknown error";
}

void* FindSymbol(void* handle, const char* name) {
  ::dlerror();
  return ::dlsym(handle, name);
}

}  // namespace

Status CheckPluginTable(const vitalgate_plugin* table, const std::string& where) {
  if (table == nullptr)
    return InvalidArgument(where + ": " VITALGATE_PLUGIN_ENTRY_SYMBOL "() returned NULL");
  if (table->abi_version != VITALGATE_PLUGIN_ABI_VERSION) {
    return InvalidArgument(where + ": plugin ABI version " + std::to_string(table->abi_version) +
                           ", but this gateway supports version " +
                           std::to_string(VITALGATE_PLUGIN_ABI_VERSION) +
                           " (rebuild the plugin against this gateway's vitalgate/plugin.h)");
  }
  if (table->create == nullptr || table->start == nullptr || table->stop == nullptr ||
      table->destroy == nullptr) {
    return InvalidArgument(where + ": plugin table lacks one of create, start, stop, destroy");
  }
  return Status::Ok();
}

Result<PluginLibrary> LoadPluginLibrary(const std::string& path) {
  // RTLD_NOW: an unresolved symbol is an error now, not a crash later on a plugin thread.
  // RTLD_LOCAL: two plugins may use the same symbol names.
  // RTLD_NODELETE: `check` (and every SIGHUP) loads the library and lets it go before the
  // transport loads it again; it stays mapped, so its static constructors run once and a
  // thread an SDK started in one never finds its code unmapped.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) return InvalidArgument(path + ": cannot load plugin: " + DlError());
  std::shared_ptr<void> owner(handle, [](void* h) { ::dlclose(h); });
  void* sym = FindSymbol(handle, VITALGATE_PLUGIN_ENTRY_SYMBOL);
  if (sym == nullptr) {
    const std::string why = DlError();
    std::string hint;
    if (FindSymbol(handle, "vitalgate_plugin_v2") != nullptr) {
      hint = "; it exports vitalgate_plugin_v2, for a newer gateway";
    }
    return InvalidArgument(path + ": not a vitalgate plugin: no entry point " +
                           VITALGATE_PLUGIN_ENTRY_SYMBOL + " (" + why + ")" + hint);
  }
  // dlsym returns an object pointer; POSIX guarantees it converts to a function pointer.
  vitalgate_plugin_entry_fn entry = nullptr;
  static_assert(sizeof entry == sizeof sym);
  std::memcpy(&entry, &sym, sizeof entry);
  PluginLibrary lib;
  lib.table = entry();
  VG_RETURN_IF_ERROR(CheckPluginTable(lib.table, path));
  lib.handle = std::move(owner);
  lib.path = path;
  return lib;
}

std::span<const OptionSpec> PluginTransport::Specs() { return kSpecs; }

Status PluginTransport::Check(const nlohmann::json& options, std::string_view path) {
  auto lib = LoadPluginLibrary(options.at("path").get<std::string>());
  if (!lib.ok()) return lib.status().WithContext(std::string(path) + ".path");
  return Status::Ok();
}

Result<std::unique_ptr<Transport>> PluginTransport::Make(const TransportContext& ctx,
                                                         const nlohmann::json& o) {
  auto lib = LoadPluginLibrary(o.at("path").get<std::string>());
  if (!lib.ok()) return lib.status();
  auto t = std::make_unique<PluginTransport>(ctx, std::move(*lib));
  VG_RETURN_IF_ERROR(t->Create(o.at("config").dump()));
  return std::unique_ptr<Transport>(std::move(t));
}

PluginTransport::PluginTransport(const TransportContext& ctx, PluginLibrary library,
                                 std::size_t ring_capacity)
    : ctx_(ctx),
      library_(std::move(library)),
      name_(library_.table != nullptr && library_.table->name != nullptr ? library_.table->name
                                                                         : "unnamed"),
      ring_(ring_capacity),
      bell_(*ctx.io),
      pause_(*ctx.io) {
  host_.abi_version = VITALGATE_PLUGIN_ABI_VERSION;
  host_.ctx = this;
  host_.emit_bytes = &HostEmitBytes;
  host_.emit_characteristic = &HostEmitCharacteristic;
  host_.link = &HostLink;
  host_.log = &HostLog;
  // Asio watches its own duplicate, so closing it never closes the Doorbell's eventfd. (A
  // plain dup() would drop close-on-exec: exec children would inherit it.)
  UniqueFd fd(::fcntl(doorbell_.fd(), F_DUPFD_CLOEXEC, 0));
  boost::system::error_code ec;
  if (fd) bell_.assign(fd.get(), ec);
  if (fd && !ec) {
    (void)fd.release();  // bell_ owns it now
  } else {
    spdlog::error("device {}: plugin {}: cannot watch its queue; its data is delivered at stop",
                  ctx_.device_id, name_);
  }
}

PluginTransport::~PluginTransport() {
  Stop();
  if (instance_ != nullptr) library_.table->destroy(instance_);
  instance_ = nullptr;
  alive_.reset();
  // library_ goes after this body: the plugin's code stays mapped until destroy() returned.
}

Status PluginTransport::Create(const std::string& config_json) {
  instance_ = library_.table->create(config_json.c_str(), &host_);
  if (instance_ == nullptr) {
    return InvalidArgument(library_.path + ": plugin " + name_ +
                           " refused its configuration (see its messages above)");
  }
  return Status::Ok();
}

void PluginTransport::Start() {
  if (instance_ == nullptr || started_ || stopped_) return;
  WatchDoorbell();
  const int r = library_.table->start(instance_);
  if (r != 0) {
    spdlog::error("device {}: plugin {}: start failed (code {})", ctx_.device_id, name_, r);
    ctx_.sink->OnLink(false, "plugin failed to start");
    return;
  }
  started_ = true;
  spdlog::info("device {}: plugin {} started", ctx_.device_id, name_);
}

void PluginTransport::Stop() {
  if (stopped_) return;
  stopped_ = true;
  pause_.Cancel();
  if (started_) library_.table->stop(instance_);
  started_ = false;
  boost::system::error_code ignored;
  bell_.close(ignored);
  // What the plugin queued before it stopped still reaches the pipeline (SIGTERM commits
  // everything received).
  ring_.Drain([this](Event& e) { Deliver(e); }, ring_.capacity());
  DeliverLinkOverflow();
  ReportDrops(/*final=*/true);
}

// ---- Producer side: the plugin's thread ----

int PluginTransport::HostEmitBytes(void* ctx, const std::uint8_t* data, std::size_t len) {
  auto* self = static_cast<PluginTransport*>(ctx);
  if (data == nullptr && len > 0) return VITALGATE_PLUGIN_INVALID;
  if (self->LinkOverflowPending()) {
    self->dropped_.fetch_add((len + VITALGATE_PLUGIN_MAX_CHUNK - 1) / VITALGATE_PLUGIN_MAX_CHUNK,
                             std::memory_order_relaxed);
    return VITALGATE_PLUGIN_DROPPED;
  }
  int result = VITALGATE_PLUGIN_OK;
  bool pushed = false;
  for (std::size_t off = 0; off < len; off += VITALGATE_PLUGIN_MAX_CHUNK) {
    Event e;
    e.kind = Event::Kind::kBytes;
    const std::size_t n = std::min<std::size_t>(VITALGATE_PLUGIN_MAX_CHUNK, len - off);
    e.size = static_cast<std::uint16_t>(n);
    std::memcpy(e.data.data(), data + off, n);
    if (!self->ring_.TryPush(std::move(e))) {
      // The rest of this call goes too: a stream codec resynchronises at the next frame.
      const std::size_t chunks =
          (len - off + VITALGATE_PLUGIN_MAX_CHUNK - 1) / VITALGATE_PLUGIN_MAX_CHUNK;
      self->dropped_.fetch_add(chunks, std::memory_order_relaxed);
      result = VITALGATE_PLUGIN_DROPPED;
      break;
    }
    pushed = true;
  }
  if (pushed) self->doorbell_.Ring();
  return result;
}

int PluginTransport::HostEmitCharacteristic(void* ctx, std::uint16_t uuid, const std::uint8_t* data,
                                            std::size_t len) {
  auto* self = static_cast<PluginTransport*>(ctx);
  if ((data == nullptr && len > 0) || len > VITALGATE_PLUGIN_MAX_CHUNK) {
    return VITALGATE_PLUGIN_INVALID;
  }
  if (self->LinkOverflowPending()) {
    self->dropped_.fetch_add(1, std::memory_order_relaxed);
    return VITALGATE_PLUGIN_DROPPED;
  }
  Event e;
  e.kind = Event::Kind::kCharacteristic;
  e.uuid = uuid;
  e.size = static_cast<std::uint16_t>(len);
  if (len > 0) std::memcpy(e.data.data(), data, len);
  if (!self->ring_.TryPush(std::move(e))) {
    self->dropped_.fetch_add(1, std::memory_order_relaxed);
    return VITALGATE_PLUGIN_DROPPED;
  }
  self->doorbell_.Ring();
  return VITALGATE_PLUGIN_OK;
}

void PluginTransport::HostLink(void* ctx, int up, const char* reason) {
  auto* self = static_cast<PluginTransport*>(ctx);
  Event e;
  e.kind = up != 0 ? Event::Kind::kLinkUp : Event::Kind::kLinkDown;
  const std::string text = OneLine(reason, std::min(kMaxLogLine, e.data.size()));
  std::memcpy(e.data.data(), text.data(), text.size());
  e.size = static_cast<std::uint16_t>(text.size());
  // Link state must not get lost. When the ring is full, the latest state waits beside it
  // (without its reason) and, to keep the order, data is refused until the I/O thread has
  // emptied the ring and delivered that state.
  if (self->LinkOverflowPending() || !self->ring_.TryPush(std::move(e))) {
    self->overflow_link_.store(up != 0 ? kOverflowUp : kOverflowDown, std::memory_order_release);
  }
  self->doorbell_.Ring();
}

void PluginTransport::HostLog(void* ctx, int level, const char* message) {
  auto* self = static_cast<PluginTransport*>(ctx);
  const std::string line = OneLine(message, kMaxLogLine);
  // spdlog's logger is thread-safe: a log line needs no trip through the ring.
  const auto lvl = level <= VITALGATE_LOG_DEBUG     ? spdlog::level::debug
                   : level == VITALGATE_LOG_INFO    ? spdlog::level::info
                   : level == VITALGATE_LOG_WARNING ? spdlog::level::warn
                                                    : spdlog::level::err;
  spdlog::log(lvl, "device {}: plugin {}: {}", self->ctx_.device_id, self->name_, line);
}

// ---- Consumer side: the I/O thread ----

void PluginTransport::WatchDoorbell() {
  if (stopped_ || !bell_.is_open()) return;
  doorbell_.PrepareWait();
  // Re-checked after announcing the sleep: a push in between either is seen here or rings.
  if (!ring_.Empty() || overflow_link_.load(std::memory_order_acquire) != kNoLink) {
    doorbell_.CancelWait();
    if (!drain_posted_) {
      drain_posted_ = true;
      std::weak_ptr<bool> alive = alive_;
      boost::asio::post(bell_.get_executor(), [this, alive] {
        if (alive.expired()) return;
        drain_posted_ = false;
        DrainSome();
      });
    }
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  bell_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                   [this, alive](const boost::system::error_code& ec) {
                     if (alive.expired() || ec || stopped_) return;
                     doorbell_.Acknowledge();
                     DrainSome();
                   });
}

void PluginTransport::DrainSome() {
  if (stopped_) return;
  // Backpressure: while the pipeline is full the data stays in ring_, and once that is full the
  // plugin is told VITALGATE_PLUGIN_DROPPED (it may retry), as the ABI says.
  if (pause_.Needed(*ctx_.sink, alive_, [this] { DrainSome(); })) return;
  ring_.Drain([this](Event& e) { Deliver(e); }, kMaxPerTurn);
  DeliverLinkOverflow();
  ReportDrops();
  WatchDoorbell();
}

void PluginTransport::DeliverLinkOverflow() {
  // A link change that found the ring full is newer than everything in the ring, and the
  // producer adds no data while it waits: it goes once the ring is empty.
  if (!ring_.Empty()) return;
  const int link = overflow_link_.exchange(kNoLink, std::memory_order_acq_rel);
  if (link != kNoLink) {
    ctx_.sink->OnLink(link == kOverflowUp,
                      link == kOverflowUp ? "" : "plugin reported the link down");
  }
}

void PluginTransport::Deliver(const Event& e) {
  const std::span<const std::uint8_t> data(e.data.data(), e.size);
  switch (e.kind) {
    case Event::Kind::kBytes:
      ctx_.sink->OnBytes(data);
      break;
    case Event::Kind::kCharacteristic:
      ctx_.sink->OnCharacteristic(e.uuid, data);
      break;
    case Event::Kind::kLinkUp:
      ctx_.sink->OnLink(true, "");
      break;
    case Event::Kind::kLinkDown: {
      const std::string reason(reinterpret_cast<const char*>(e.data.data()), e.size);
      ctx_.sink->OnLink(false, reason.empty() ? "plugin reported the link down" : reason);
      break;
    }
  }
}

void PluginTransport::ReportDrops(bool final) {
  const std::uint64_t dropped = dropped_.load(std::memory_order_relaxed);
  if (dropped == dropped_reported_) return;
  std::uint64_t suppressed = 0;
  if (drop_log_.Allow(ctx_.clock->MonotonicNs(), suppressed) || final) {
    spdlog::error("device {}: plugin {}: queue full, {} chunks dropped ({} in total)",
                  ctx_.device_id, name_, dropped - dropped_reported_, dropped);
    dropped_reported_ = dropped;
  }
}

}  // namespace vg
