// UniqueFd: sole owner of one POSIX file descriptor. Closes it on destruction and on reset(),
// so every path out of a function (early returns included) releases what it opened. Move-only;
// a moved-from UniqueFd holds nothing (-1).
//
// close() errors are not reported here: where they matter (a file whose write must be durable)
// call Close() and look at its result; fsync() before it is what makes data durable anyway.
//
// Thread-safety: like an int; one owner at a time.
#pragma once

#include <unistd.h>

#include <utility>

namespace vg {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing; the caller now owns the descriptor.
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }

  // Closes the held descriptor (if any) and takes `fd`.
  void reset(int fd = -1) {
    const int old = std::exchange(fd_, fd);
    // Linux releases the descriptor even when close() fails (EINTR included): never retry.
    if (old >= 0) (void)::close(old);
  }

  // Closes now and reports the result: 0, or -1 with errno set (EIO from a deferred write
  // error on some file systems). Holds nothing afterwards.
  int Close() {
    const int old = std::exchange(fd_, -1);
    if (old < 0) return 0;
    return ::close(old);
  }

 private:
  int fd_ = -1;
};

}  // namespace vg
