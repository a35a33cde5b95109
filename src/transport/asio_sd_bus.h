// AsioSdBus: one sd-bus (libsystemd) client connection driven by the gateway's Boost.Asio
// reactor, with no thread of its own.
//
// Promises: the bus socket is watched with a posix::stream_descriptor for what sd-bus wants
// (sd_bus_get_events), sd-bus's own deadlines (method call timeouts) with a steady_timer
// (sd_bus_get_timeout), and on every wake-up sd_bus_process() runs until it has nothing left
// (at most a bounded batch per turn, so other devices on the I/O thread get their share).
// Replies and signals are therefore dispatched on the I/O thread, from inside Process() only.
// Opening never blocks: the socket connects without waiting and Hello goes out asynchronously;
// callers must use asynchronous calls (sd_bus_call_async, sd_bus_add_match_async) only.
//
// Why sd-bus and not sdbus-c++ 1.2: sdbus-c++ installs match rules synchronously (a blocking
// round trip to the bus daemon, documented in IConnection::addMatch) and reports errors by
// throwing; sd-bus has asynchronous match installation and returns errors as values.
//
// Thread-safety: the I/O thread only.
// Lifetime: the owner must not destroy an AsioSdBus from inside one of its sd-bus callbacks
// (post the destruction instead); destroying it closes the connection without running any
// callback. Slots (sd_bus_slot) held elsewhere keep the sd_bus object alive but never fire
// after the destruction, because nothing processes the bus any more.
#pragma once

#include <systemd/sd-bus.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "vitalgate/core/status.h"

namespace vg {

// Owning handles for sd-bus objects.
struct SdBusSlotUnref {
  void operator()(sd_bus_slot* s) const { sd_bus_slot_unref(s); }
};
using SdBusSlot = std::unique_ptr<sd_bus_slot, SdBusSlotUnref>;
struct SdBusMessageUnref {
  void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using SdBusMessage = std::unique_ptr<sd_bus_message, SdBusMessageUnref>;

class AsioSdBus {
 public:
  // Called (posted, never from inside Process) once when the connection fails for good;
  // `why` names the error. The owner then destroys this object and opens a new one.
  using BrokenHandler = std::function<void(std::string why)>;

  // `bus`: "system" (sd_bus_open_system, which honours DBUS_SYSTEM_BUS_ADDRESS) or a D-Bus
  // address such as "unix:path=/run/x". Unavailable when the socket cannot be reached.
  static Result<std::unique_ptr<AsioSdBus>> Open(boost::asio::io_context& io,
                                                 const std::string& bus, BrokenHandler on_broken);
  ~AsioSdBus();
  AsioSdBus(const AsioSdBus&) = delete;
  AsioSdBus& operator=(const AsioSdBus&) = delete;

  sd_bus* get() const { return bus_; }

  // Call after queuing a message or adding a slot from outside an sd-bus callback, so the new
  // write interest and deadline are watched. Coalesced: costs one posted handler at most.
  void Kick();

 private:
  AsioSdBus(boost::asio::io_context& io, sd_bus* bus, int fd, BrokenHandler on_broken);
  void Process();
  void Watch();
  // One wait on the bus socket for `what`, unless one is pending (`waiting`, a member).
  void WaitForSocket(boost::asio::posix::stream_descriptor::wait_type what, bool& waiting);
  void Broken(std::string why);

  boost::asio::io_context& io_;
  sd_bus* bus_;
  boost::asio::posix::stream_descriptor socket_;
  boost::asio::steady_timer timer_;
  BrokenHandler on_broken_;
  bool read_waiting_ = false;
  bool write_waiting_ = false;
  bool timer_waiting_ = false;
  std::uint64_t timer_until_us_ = 0;
  bool kick_posted_ = false;
  bool broken_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The text of an sd-bus error ("org.bluez.Error.Failed: le-connection-abort-by-local"), or of
// a negative errno when `error` is not set.
std::string SdBusErrorText(const sd_bus_error* error, int r = 0);

}  // namespace vg
