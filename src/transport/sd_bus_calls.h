// SdBusCalls: the asynchronous method calls one owner has in flight on an sd-bus connection,
// each with its own completion callable.
//
// Promises:
// - Send() queues a call; its `on_reply` runs once, on the I/O thread from inside sd-bus's
//   dispatch, with the reply or the error message (a timeout arrives as an error reply).
// - CancelAll() ends a generation of calls: no reply of a call sent before it runs its
//   callable, even one sd-bus has already queued. This is how an ended connection attempt makes
//   sure its late replies are ignored.
// - The userdata sd-bus holds for each call stays valid as long as sd-bus may use it: a call
//   that completed or was cancelled is released in a posted clean-up, never inside the sd-bus
//   callback that may still be using its slot. Clear() releases everything at once for when
//   the connection itself goes away (REQUIRES: not inside one of its callbacks).
// - Destroying the SdBusCalls releases every slot; no callable runs afterwards. The owner may
//   therefore capture `this` in the callables of calls it holds here.
//
// Thread-safety: the I/O thread only.
#pragma once

#include <systemd/sd-bus.h>

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>

#include "asio_sd_bus.h"

namespace vg {

class SdBusCalls {
 public:
  using OnReply = std::function<void(sd_bus_message* reply)>;

  explicit SdBusCalls(boost::asio::io_context& io) : io_(io) {}
  ~SdBusCalls();
  SdBusCalls(const SdBusCalls&) = delete;
  SdBusCalls& operator=(const SdBusCalls&) = delete;

  // Sends `call` (a method call message built on `bus`). Returns sd-bus's result: < 0 when it
  // could not be queued (the connection is gone), and then `on_reply` never runs.
  int Send(sd_bus* bus, sd_bus_message* call, std::uint64_t timeout_us, OnReply on_reply);

  // Every call sent so far is forgotten: its reply, when it comes, runs nothing.
  void CancelAll();
  // CancelAll() and release every slot now. REQUIRES: not inside an sd-bus callback of the
  // connection the calls were sent on.
  void Clear();

  std::size_t pending() const { return pending_.size(); }

 private:
  struct Call {
    SdBusCalls* owner = nullptr;
    OnReply on_reply;
    SdBusSlot slot;
  };
  static int OnReplyThunk(sd_bus_message* m, void* userdata, sd_bus_error* error);
  void Retire(std::list<Call>::iterator it);
  void ScheduleCleanup();

  boost::asio::io_context& io_;
  std::list<Call> pending_;  // a list: each Call's address is sd-bus's userdata
  std::list<Call> retired_;  // completed or cancelled, released in the posted clean-up
  bool cleanup_posted_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
