#include "sd_bus_calls.h"

#include <boost/asio/post.hpp>

namespace vg {

SdBusCalls::~SdBusCalls() {
  alive_.reset();
  Clear();
}

int SdBusCalls::Send(sd_bus* bus, sd_bus_message* call, std::uint64_t timeout_us,
                     OnReply on_reply) {
  pending_.push_back(Call{this, std::move(on_reply), nullptr});
  Call& c = pending_.back();
  sd_bus_slot* slot = nullptr;
  const int r = sd_bus_call_async(bus, &slot, call, &OnReplyThunk, &c, timeout_us);
  if (r < 0) {
    pending_.pop_back();
    return r;
  }
  c.slot.reset(slot);
  return r;
}

int SdBusCalls::OnReplyThunk(sd_bus_message* m, void* userdata, sd_bus_error*) {
  auto* call = static_cast<Call*>(userdata);
  SdBusCalls* self = call->owner;
  // Only pending calls have a callable; a retired one may still be asked by sd-bus until its
  // slot is released.
  for (auto it = self->pending_.begin(); it != self->pending_.end(); ++it) {
    if (&*it != call) continue;
    // Taken out before it runs: the callable may cancel or send calls.
    OnReply on_reply = std::move(it->on_reply);
    self->Retire(it);
    on_reply(m);
    return 0;
  }
  return 0;
}

void SdBusCalls::Retire(std::list<Call>::iterator it) {
  it->on_reply = nullptr;
  retired_.splice(retired_.end(), pending_, it);
  ScheduleCleanup();
}

void SdBusCalls::CancelAll() {
  for (Call& c : pending_) c.on_reply = nullptr;
  retired_.splice(retired_.end(), pending_);
  ScheduleCleanup();
}

void SdBusCalls::Clear() {
  // Slots first release their reference to the connection; nothing fires once they are gone.
  pending_.clear();
  retired_.clear();
}

void SdBusCalls::ScheduleCleanup() {
  if (cleanup_posted_ || retired_.empty()) return;
  cleanup_posted_ = true;
  std::weak_ptr<bool> alive = alive_;
  boost::asio::post(io_, [this, alive] {
    if (alive.expired()) return;
    cleanup_posted_ = false;
    retired_.clear();
  });
}

}  // namespace vg
