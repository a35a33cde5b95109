#include "exec.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/read.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "vitalgate/core/unique_fd.h"

namespace vg {
namespace {

constexpr std::string_view kStderrChoices[] = {"inherit", "discard"};

constexpr OptionSpec kSpecs[] = {
    {"command", OptionType::kStringArray, "",
     "Program and arguments; the program is found through PATH unless it contains a '/'.", true},
    {"restart_min_ms", OptionType::kInteger, "1000", "First restart delay after the child exits.",
     false, 10, 3600000},
    {"restart_max_ms", OptionType::kInteger, "60000", "Cap of the exponential restart delay.",
     false, 10, 3600000},
    {"stderr", OptionType::kString, "\"inherit\"",
     "The child's standard error: inherit (to the journal) or discard.", false, -1e300, 1e300,
     kStderrChoices},
};

// A child that keeps running for this long resets the restart backoff.
constexpr std::int64_t kStableNs = 30'000'000'000;

}  // namespace

std::span<const OptionSpec> ExecTransport::Specs() { return kSpecs; }

std::string ExecTransport::ResolveCommand(const std::string& name) {
  if (name.empty()) return "";
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path_env = std::getenv("PATH");
  std::string path = path_env != nullptr ? path_env : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find(':', start), path.size());
    const std::string dir = path.substr(start, end - start);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return "";
}

Status ExecTransport::Check(const nlohmann::json& options, std::string_view path) {
  const auto& cmd = options.at("command");
  if (cmd.empty()) return InvalidArgument(std::string(path) + ".command: must not be empty");
  const std::string program = cmd[0].get<std::string>();
  if (ResolveCommand(program).empty()) {
    return NotFound(std::string(path) + ".command[0]: \"" + program +
                    "\" not found or not executable");
  }
  if (options.at("restart_max_ms").get<std::int64_t>() < options.at("restart_min_ms").get<std::int64_t>()) {
    return InvalidArgument(std::string(path) + ".restart_max_ms: must be >= restart_min_ms");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Transport>> ExecTransport::Make(const TransportContext& ctx,
                                                       const nlohmann::json& o) {
  Options options;
  for (const auto& a : o.at("command")) options.command.push_back(a.get<std::string>());
  if (options.command.empty()) return InvalidArgument("command: must not be empty");
  const std::string resolved = ResolveCommand(options.command[0]);
  if (resolved.empty()) return NotFound("command[0]: \"" + options.command[0] + "\" not found");
  options.command[0] = resolved;
  options.restart_min_ms = o.at("restart_min_ms").get<std::int64_t>();
  options.restart_max_ms = o.at("restart_max_ms").get<std::int64_t>();
  options.discard_stderr = o.at("stderr") == "discard";
  return std::unique_ptr<Transport>(std::make_unique<ExecTransport>(ctx, std::move(options)));
}

ExecTransport::ExecTransport(const TransportContext& ctx, Options options)
    : ctx_(ctx),
      options_(std::move(options)),
      pipe_(*ctx.io),
      timer_(*ctx.io),
      pause_(*ctx.io),
      backoff_(options_.restart_min_ms, options_.restart_max_ms) {}

ExecTransport::~ExecTransport() {
  *alive_ = false;
  Stop();
}

void ExecTransport::Start() {
  stopped_ = false;
  Spawn();
}

namespace {

// dup2() for the child between fork() and exec (async-signal-safe calls only). dup2() leaves
// the copy without FD_CLOEXEC; when `fd` already is `target` there is no copy, so the flag is
// cleared by hand, or the program would start without that descriptor.
void MoveTo(int fd, int target) {
  if (fd == target) {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  } else {
    ::dup2(fd, target);
  }
}

// Closes every descriptor from `first` up, for the child between fork() and exec: whatever
// another thread or a library opened without close-on-exec stays with the gateway.
void CloseFrom(int first) {
  if (::close_range(static_cast<unsigned>(first), ~0U, 0) == 0) return;
  // A kernel older than 5.9: close them one by one, up to the descriptor limit.
  rlimit limit{};
  rlim_t end = 65536;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    end = std::min<rlim_t>(limit.rlim_cur, 1 << 20);
  }
  for (rlim_t fd = static_cast<rlim_t>(first); fd < end; ++fd) ::close(static_cast<int>(fd));
}

}  // namespace

void ExecTransport::Spawn() {
  if (stopped_) return;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ScheduleRestart(std::string("pipe: ") + std::strerror(errno));
    return;
  }
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  // The child's stdin (and stderr when discarded). Close-on-exec: the child keeps only the
  // copies dup2() makes, never a stray descriptor of its own.
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) {
    ScheduleRestart(std::string("/dev/null: ") + std::strerror(errno));
    return;
  }
  // Everything the child needs is prepared before fork(): after it only async-signal-safe calls.
  std::vector<char*> argv;
  for (std::string& a : options_.command) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const bool discard = options_.discard_stderr;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ScheduleRestart(std::string("fork: ") + std::strerror(errno));
    return;
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    // stdout first: the pipe's descriptor may be 0 or 2 itself when the gateway runs with
    // those closed, and must not be overwritten before it is moved.
    MoveTo(write_end.get(), 1);
    MoveTo(devnull.get(), 0);
    if (discard) MoveTo(devnull.get(), 2);
    CloseFrom(3);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  write_end.reset();  // the child's copy is the only writer: its exit ends our reads
  child_ = pid;
  started_mono_ = ctx_.clock->MonotonicNs();
  boost::system::error_code ec;
  pipe_.assign(read_end.get(), ec);
  if (ec) {
    ChildOutputClosed("cannot watch the child's output: " + ec.message());
    return;
  }
  (void)read_end.release();  // pipe_ owns it now
  spdlog::info("device {}: started {} (pid {})", ctx_.device_id, options_.command[0], pid);
  ctx_.sink->OnLink(true, "");
  ReadMore();
}

void ExecTransport::ReadMore() {
  std::weak_ptr<bool> alive = alive_;
  // Backpressure: the child blocks on its full pipe until the pipeline drains.
  if (pause_.Needed(*ctx_.sink, alive, [this] { ReadMore(); })) return;
  pipe_.async_read_some(boost::asio::buffer(buffer_),
                        [this, alive](const boost::system::error_code& ec, std::size_t n) {
                          if (alive.expired() || stopped_) return;
                          if (n > 0) {
                            ctx_.sink->OnBytes(std::span<const std::uint8_t>(buffer_.data(), n));
                          }
                          if (ec) {
                            ChildOutputClosed(ec == boost::asio::error::eof ? "output closed"
                                                                            : ec.message());
                            return;
                          }
                          ReadMore();
                        });
}

void ExecTransport::ChildOutputClosed(const std::string& why) {
  boost::system::error_code ignored;
  pipe_.close(ignored);
  (void)why;
  Reap(0);
}

void ExecTransport::Reap(int attempts) {
  if (child_ < 0) {
    ScheduleRestart("no child");
    return;
  }
  int status = 0;
  const pid_t r = ::waitpid(child_, &status, WNOHANG);
  if (r == 0) {
    // Output closed but still running: give it 5 s, then kill it; a bridge without output is
    // of no use and must not linger.
    if (attempts == 50) ::kill(child_, SIGKILL);
    timer_.expires_after(std::chrono::milliseconds(100));
    std::weak_ptr<bool> alive = alive_;
    timer_.async_wait([this, alive, attempts](const boost::system::error_code& ec) {
      if (!ec && !alive.expired() && !stopped_) Reap(attempts + 1);
    });
    return;
  }
  std::string why;
  if (r < 0) {
    why = std::string("waitpid: ") + std::strerror(errno);
  } else if (WIFEXITED(status)) {
    why = "exited with status " + std::to_string(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    why = std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  } else {
    why = "ended";
  }
  child_ = -1;
  if (ctx_.clock->MonotonicNs() - started_mono_ >= kStableNs) backoff_.Reset();
  ScheduleRestart(why);
}

void ExecTransport::ScheduleRestart(const std::string& why) {
  if (stopped_) return;
  ctx_.sink->OnLink(false, why);
  const std::int64_t delay = backoff_.NextMs();
  spdlog::warn("device {}: {} {}; restarting in {} ms", ctx_.device_id, options_.command[0], why,
               delay);
  timer_.expires_after(std::chrono::milliseconds(delay));
  std::weak_ptr<bool> alive = alive_;
  timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (!ec && !alive.expired()) Spawn();
  });
}

void ExecTransport::Stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  timer_.cancel();
  pause_.Cancel();
  pipe_.close(ignored);
  if (child_ > 0) {
    ::kill(child_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {  // up to 1 s, only at shutdown
      if (::waitpid(child_, &status, WNOHANG) != 0) {
        child_ = -1;
        break;
      }
      ::usleep(10000);
    }
    if (child_ > 0) {
      ::kill(child_, SIGKILL);
      ::waitpid(child_, &status, 0);
      child_ = -1;
    }
  }
}

}  // namespace vg
