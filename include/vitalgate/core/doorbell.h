// Doorbell: wakes one sleeping consumer thread when producers have queued work.
//
// The consumer calls Wait() when it found nothing to do; producers call Ring() after queuing.
// Ring() costs one atomic exchange while the consumer is awake (producers ring once per batch,
// not per item), and one eventfd write when it sleeps, so the hot path takes no lock and no
// system call. The eventfd is exposed so a
// consumer that also polls other descriptors (the forwarder's socket) can wait on all at once.
// Thread-safety: Ring() from any thread; Wait()/PrepareWait()/Acknowledge() from the one consumer.
#pragma once

#include <atomic>
#include <chrono>

namespace vg {

class Doorbell {
 public:
  Doorbell();
  ~Doorbell();
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;

  void Ring();

  // Sleeps until Ring() or the timeout, unless `has_work()` turns true after the consumer has
  // announced that it is about to sleep (which closes the lost-wakeup window).
  template <typename Pred>
  void Wait(std::chrono::nanoseconds timeout, Pred&& has_work) {
    PrepareWait();
    if (has_work()) {
      CancelWait();
      return;
    }
    Sleep(timeout);
  }

  // For consumers with their own poll(): PrepareWait(), re-check queues, then poll fd() and
  // call Acknowledge() when it is readable or the poll returned; CancelWait() if not sleeping.
  void PrepareWait();
  void CancelWait();
  void Acknowledge();
  int fd() const { return fd_; }

 private:
  void Sleep(std::chrono::nanoseconds timeout);

  int fd_ = -1;
  std::atomic<bool> sleeping_{false};
};

}  // namespace vg
