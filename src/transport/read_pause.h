// ReadPause: backpressure for the transports that pull from a device. While the sink is
// saturated they do not read; the device's bytes wait where they are (the kernel's serial
// buffer, the TCP window, a child's pipe, a plugin's queue), and reading resumes after a short
// pause. Cancel() (on a reconnect, a stop) makes a pause that is already due do nothing, so a
// stale resume can never start a second read.
// Thread-safety: I/O thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>

#include "vitalgate/transport/transport.h"

namespace vg {

class ReadPause {
 public:
  explicit ReadPause(boost::asio::io_context& io) : timer_(io) {}

  // True when the caller must not read now: `resume` runs after the pause, unless the owner
  // behind `alive` is gone or Cancel() came first.
  template <class Resume>
  bool Needed(const TransportSink& sink, std::weak_ptr<bool> alive, Resume resume) {
    if (!sink.Saturated()) return false;
    const std::uint64_t generation = ++generation_;
    timer_.expires_after(kPause);
    timer_.async_wait([this, alive = std::move(alive), generation,
                       resume = std::move(resume)](const boost::system::error_code& ec) {
      if (ec || alive.expired() || generation != generation_) return;
      resume();
    });
    return true;
  }

  void Cancel() {
    ++generation_;
    timer_.cancel();
  }

 private:
  static constexpr std::chrono::milliseconds kPause{1};
  boost::asio::steady_timer timer_;
  std::uint64_t generation_ = 0;
};

}  // namespace vg
