#include "asio_sd_bus.h"

#include <poll.h>

#include <boost/asio/post.hpp>
#include <chrono>
#include <cstring>

namespace vg {
namespace {

// Messages dispatched per turn of the I/O thread before yielding to other handlers.
constexpr int kMaxMessagesPerTurn = 64;

}  // namespace

std::string SdBusErrorText(const sd_bus_error* error, int r) {
  if (error != nullptr && sd_bus_error_is_set(error) != 0) {
    std::string s = error->name != nullptr ? error->name : "error";
    if (error->message != nullptr && error->message[0] != '\0') {
      s += ": ";
      s += error->message;
    }
    return s;
  }
  return std::strerror(r < 0 ? -r : r);
}

Result<std::unique_ptr<AsioSdBus>> AsioSdBus::Open(boost::asio::io_context& io,
                                                   const std::string& bus,
                                                   BrokenHandler on_broken) {
  sd_bus* raw = nullptr;
  int r = 0;
  if (bus == "system") {
    r = sd_bus_open_system(&raw);
  } else {
    r = sd_bus_new(&raw);
    if (r >= 0) r = sd_bus_set_address(raw, bus.c_str());
    if (r >= 0) r = sd_bus_set_bus_client(raw, 1);
    if (r >= 0) r = sd_bus_start(raw);
  }
  if (r < 0) {
    if (raw != nullptr) sd_bus_unref(raw);
    return Unavailable("cannot connect to the " +
                       (bus == "system" ? std::string("system D-Bus") : "D-Bus at " + bus) + ": " +
                       std::strerror(-r));
  }
  const int fd = sd_bus_get_fd(raw);
  if (fd < 0) {
    sd_bus_close(raw);
    sd_bus_unref(raw);
    return Unavailable(std::string("D-Bus connection has no socket: ") + std::strerror(-fd));
  }
  std::unique_ptr<AsioSdBus> out(new AsioSdBus(io, raw, fd, std::move(on_broken)));
  if (out->broken_) return Unavailable("cannot watch the D-Bus socket");
  out->Kick();
  return out;
}

AsioSdBus::AsioSdBus(boost::asio::io_context& io, sd_bus* bus, int fd, BrokenHandler on_broken)
    : io_(io), bus_(bus), socket_(io), timer_(io), on_broken_(std::move(on_broken)) {
  boost::system::error_code ec;
  socket_.assign(fd, ec);
  if (ec) broken_ = true;
}

AsioSdBus::~AsioSdBus() {
  alive_.reset();
  timer_.cancel();
  // The descriptor belongs to sd-bus: stop watching it without closing it.
  if (socket_.is_open()) (void)socket_.release();
  // No flush: that would block; whatever is unsent is moot once we hang up.
  sd_bus_close(bus_);
  sd_bus_unref(bus_);
}

void AsioSdBus::Kick() {
  if (kick_posted_ || broken_) return;
  kick_posted_ = true;
  std::weak_ptr<bool> alive = alive_;
  boost::asio::post(io_, [this, alive] {
    if (alive.expired()) return;
    kick_posted_ = false;
    Process();
  });
}

void AsioSdBus::Process() {
  if (broken_) return;
  for (int i = 0; i < kMaxMessagesPerTurn; ++i) {
    const int r = sd_bus_process(bus_, nullptr);
    if (r < 0) {
      Broken(std::string("D-Bus connection lost: ") + std::strerror(-r));
      return;
    }
    if (r == 0) {
      Watch();
      return;
    }
  }
  // More is queued: let other handlers run first, then continue.
  Kick();
}

void AsioSdBus::WaitForSocket(boost::asio::posix::stream_descriptor::wait_type what, bool& waiting) {
  if (waiting) return;
  waiting = true;
  std::weak_ptr<bool> alive = alive_;
  socket_.async_wait(what, [this, alive, &waiting](const boost::system::error_code& ec) {
    if (alive.expired()) return;
    waiting = false;
    if (ec == boost::asio::error::operation_aborted) return;
    if (ec) {
      Broken("D-Bus socket: " + ec.message());
      return;
    }
    Process();
  });
}

void AsioSdBus::Watch() {
  const int events = sd_bus_get_events(bus_);
  if (events < 0) {
    Broken(std::string("D-Bus connection lost: ") + std::strerror(-events));
    return;
  }
  using Wait = boost::asio::posix::stream_descriptor;
  if ((events & POLLIN) != 0) WaitForSocket(Wait::wait_read, read_waiting_);
  if ((events & POLLOUT) != 0) WaitForSocket(Wait::wait_write, write_waiting_);
  std::uint64_t until_us = UINT64_MAX;
  if (sd_bus_get_timeout(bus_, &until_us) < 0) until_us = UINT64_MAX;
  if (until_us == UINT64_MAX) {
    if (timer_waiting_) {
      timer_waiting_ = false;
      timer_.cancel();
    }
    return;
  }
  if (timer_waiting_ && until_us == timer_until_us_) return;
  // sd-bus deadlines are CLOCK_MONOTONIC microseconds, which is steady_clock on Linux.
  timer_until_us_ = until_us;
  timer_waiting_ = true;
  timer_.expires_at(std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::microseconds(until_us))));
  std::weak_ptr<bool> alive = alive_;
  timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (alive.expired() || ec) return;
    timer_waiting_ = false;
    Process();
  });
}

void AsioSdBus::Broken(std::string why) {
  if (broken_) return;
  broken_ = true;
  timer_.cancel();
  boost::system::error_code ignored;
  socket_.cancel(ignored);
  std::weak_ptr<bool> alive = alive_;
  boost::asio::post(io_, [this, alive, why = std::move(why)]() mutable {
    if (alive.expired() || !on_broken_) return;
    // A copy: the handler usually destroys this object, and with it on_broken_.
    BrokenHandler handler = on_broken_;
    handler(std::move(why));
  });
}

}  // namespace vg
