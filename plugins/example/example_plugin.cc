// The example vitalgate transport plugin: a stand-in for a vendor SDK bridge, and the plugin the
// tests load. It shows the whole ABI of include/vitalgate/plugin.h: create() parses its JSON
// config, start() starts a thread that emits jsonl lines at a steady rate, the link can be
// taken down and up on command, stop() joins the thread so no host call happens after it.
//
// Config (the device's transport "config" object):
//   rate_hz  number > 0, default 1     lines per second
//   metric   string, default "heart_rate"
//   value    number, default 72
//   control  string, optional          a FIFO the plugin creates if missing and reads commands
//                                      from, one per line: "down [reason]", "up", "value N"
// Each line is {"metric":"<metric>","value":<value>}; while the link is down nothing is sent.
//
// Thread rules it follows: the host is called from the worker thread only (and never after
// stop() returned); no exception leaves an exported function.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "vitalgate/plugin.h"

namespace {

struct Instance {
  const vitalgate_host* host = nullptr;
  double rate_hz = 1;
  std::string metric = "heart_rate";
  nlohmann::json value = 72;  // printed as configured: 97 stays 97, 36.6 stays 36.6
  std::string control_path;
  int control_fd = -1;
  int wake_fd = -1;
  std::atomic<bool> stopping{false};
  std::thread worker;
  bool link_up = false;
  std::string pending;  // partial command line

  void Log(int level, const std::string& msg) const { host->log(host->ctx, level, msg.c_str()); }

  void Emit() const {
    nlohmann::json line = {{"metric", metric}, {"value", value}};
    const std::string text = line.dump() + "\n";
    // A full queue drops the line; a real bridge might count these or slow down.
    (void)host->emit_bytes(host->ctx, reinterpret_cast<const std::uint8_t*>(text.data()),
                           text.size());
  }

  void SetLink(bool up, const std::string& reason) {
    if (up == link_up) return;
    link_up = up;
    host->link(host->ctx, up ? 1 : 0, reason.empty() ? nullptr : reason.c_str());
  }

  void Command(const std::string& cmd) {
    if (cmd == "up") {
      SetLink(true, "");
    } else if (cmd == "down" || cmd.rfind("down ", 0) == 0) {
      SetLink(false, cmd.size() > 5 ? cmd.substr(5) : "commanded down");
    } else if (cmd.rfind("value ", 0) == 0) {
      char* end = nullptr;
      const double v = std::strtod(cmd.c_str() + 6, &end);
      if (end != cmd.c_str() + 6 && std::isfinite(v)) {
        if (v == std::floor(v) && std::fabs(v) < 1e15) {
          value = static_cast<std::int64_t>(v);
        } else {
          value = v;
        }
      }
    } else if (!cmd.empty()) {
      Log(VITALGATE_LOG_WARNING, "unknown control command ignored");
    }
  }

  void ReadControl() {
    char buf[256];
    for (;;) {
      const ssize_t n = ::read(control_fd, buf, sizeof buf);
      if (n <= 0) return;  // EAGAIN: all read (the FIFO is open read-write, so never EOF)
      pending.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::string cmd = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        while (!cmd.empty() && (cmd.back() == '\r' || cmd.back() == ' ')) cmd.pop_back();
        Command(cmd);
      }
      if (pending.size() > 4096) pending.clear();
    }
  }

  void Run() {
    using Clock = std::chrono::steady_clock;
    SetLink(true, "");
    const auto period =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate_hz));
    auto next = Clock::now();
    while (!stopping.load(std::memory_order_acquire)) {
      const auto now = Clock::now();
      if (now >= next) {
        if (link_up) Emit();
        next += period;
        if (next < now) next = now + period;  // fell behind (suspend): no burst
        continue;
      }
      pollfd fds[2] = {{wake_fd, POLLIN, 0}, {control_fd, POLLIN, 0}};
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1;
      const int r = ::poll(fds, control_fd >= 0 ? 2 : 1, static_cast<int>(wait));
      if (r > 0 && control_fd >= 0 && (fds[1].revents & POLLIN) != 0) ReadControl();
    }
  }
};

void* Create(const char* config_json, const vitalgate_host* host) {
  try {
    auto inst = std::make_unique<Instance>();
    inst->host = host;
    const auto cfg =
        nlohmann::json::parse(config_json != nullptr ? config_json : "{}", nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) {
      inst->Log(VITALGATE_LOG_ERROR, "config: expected a JSON object");
      return nullptr;
    }
    for (const auto& [key, v] : cfg.items()) {
      if (key == "rate_hz" && v.is_number() && v.get<double>() > 0 && v.get<double>() <= 10000) {
        inst->rate_hz = v.get<double>();
      } else if (key == "metric" && v.is_string()) {
        inst->metric = v.get<std::string>();
      } else if (key == "value" && v.is_number()) {
        inst->value = v;
      } else if (key == "control" && v.is_string() && !v.get<std::string>().empty()) {
        inst->control_path = v.get<std::string>();
      } else {
        inst->Log(VITALGATE_LOG_ERROR,
                  "config." + key +
                      ": unknown key or bad value (rate_hz 0-10000, metric, value, control)");
        return nullptr;
      }
    }
    if (!inst->control_path.empty()) {
      if (::mkfifo(inst->control_path.c_str(), 0600) != 0 && errno != EEXIST) {
        inst->Log(VITALGATE_LOG_ERROR,
                  "config.control: cannot create the FIFO: " + std::string(std::strerror(errno)));
        return nullptr;
      }
      // Read-write: the FIFO then always has a writer, so poll() never reports a hang-up.
      inst->control_fd = ::open(inst->control_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (inst->control_fd < 0) {
        inst->Log(VITALGATE_LOG_ERROR,
                  "config.control: cannot open the FIFO: " + std::string(std::strerror(errno)));
        return nullptr;
      }
    }
    inst->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (inst->wake_fd < 0) {
      if (inst->control_fd >= 0) ::close(inst->control_fd);
      return nullptr;
    }
    return inst.release();
  } catch (...) {
    return nullptr;  // bad_alloc: nothing may leave an exported function
  }
}

int Start(void* p) {
  auto* inst = static_cast<Instance*>(p);
  try {
    inst->worker = std::thread([inst] { inst->Run(); });
  } catch (...) {
    return 1;
  }
  return 0;
}

void Stop(void* p) {
  auto* inst = static_cast<Instance*>(p);
  inst->stopping.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  (void)!::write(inst->wake_fd, &one, sizeof one);
  if (inst->worker.joinable()) inst->worker.join();
  inst->Log(VITALGATE_LOG_INFO, "stopped, worker thread joined");
}

void Destroy(void* p) {
  auto* inst = static_cast<Instance*>(p);
  if (inst->control_fd >= 0) ::close(inst->control_fd);
  if (inst->wake_fd >= 0) ::close(inst->wake_fd);
  delete inst;
}

const vitalgate_plugin kPlugin = {
    VITALGATE_PLUGIN_ABI_VERSION, "example", &Create, &Start, &Stop, &Destroy};

}  // namespace

extern "C" const vitalgate_plugin* vitalgate_plugin_v1(void) { return &kPlugin; }
