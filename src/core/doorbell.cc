#include "vitalgate/core/doorbell.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace vg {

Doorbell::Doorbell() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  // Without an eventfd the process cannot run its pipeline at all; this happens only when the
  // process is out of descriptors at start-up.
  if (fd_ < 0) std::abort();
}

Doorbell::~Doorbell() {
  if (fd_ >= 0) ::close(fd_);
}

void Doorbell::Ring() {
  // Both sides use a read-modify-write on sleeping_, so the two are totally ordered: either the
  // consumer's exchange in PrepareWait() comes first (we read true and write the eventfd), or
  // ours does, and the consumer's exchange reads our write and so sees everything we queued
  // before ringing.
  if (sleeping_.exchange(false, std::memory_order_acq_rel)) {
    const std::uint64_t one = 1;
    ssize_t n;
    do {
      n = ::write(fd_, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
  }
}

void Doorbell::PrepareWait() { sleeping_.exchange(true, std::memory_order_acq_rel); }

void Doorbell::CancelWait() { sleeping_.store(false, std::memory_order_relaxed); }

void Doorbell::Acknowledge() {
  std::uint64_t value = 0;
  while (::read(fd_, &value, sizeof value) > 0) {
  }
  sleeping_.store(false, std::memory_order_relaxed);
}

void Doorbell::Sleep(std::chrono::nanoseconds timeout) {
  pollfd pfd{fd_, POLLIN, 0};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  if (ms <= 0 && timeout.count() > 0) ms = 1;
  ::poll(&pfd, 1, static_cast<int>(ms));
  Acknowledge();
}

}  // namespace vg
