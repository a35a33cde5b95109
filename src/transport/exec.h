// exec transport: a child process whose standard output is the device stream (vendor bridges,
// scripts). The child is restarted with capped exponential backoff when it exits and dies with
// the gateway (PR_SET_PDEATHSIG). Its stdin is /dev/null; it inherits the gateway's environment.
#pragma once

#include <sys/types.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "read_pause.h"
#include "vitalgate/transport/transport.h"

namespace vg {

class ExecTransport final : public Transport {
 public:
  struct Options {
    std::vector<std::string> command;  // command[0] resolved to an absolute path
    std::int64_t restart_min_ms = 1000;
    std::int64_t restart_max_ms = 60000;
    bool discard_stderr = false;
  };
  ExecTransport(const TransportContext& ctx, Options options);
  ~ExecTransport() override;

  void Start() override;
  void Stop() override;

  static std::span<const OptionSpec> Specs();
  static Result<std::unique_ptr<Transport>> Make(const TransportContext& ctx, const nlohmann::json& o);
  static Status Check(const nlohmann::json& options, std::string_view path);
  // Resolves a command name through PATH like execvp would; empty when not found.
  static std::string ResolveCommand(const std::string& name);

 private:
  void Spawn();
  void ReadMore();
  void ChildOutputClosed(const std::string& why);
  void Reap(int attempts);
  void ScheduleRestart(const std::string& why);

  TransportContext ctx_;
  Options options_;
  boost::asio::posix::stream_descriptor pipe_;
  boost::asio::steady_timer timer_;
  ReadPause pause_;
  Backoff backoff_;
  pid_t child_ = -1;
  std::int64_t started_mono_ = 0;
  bool stopped_ = true;
  std::array<std::uint8_t, 16384> buffer_{};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
