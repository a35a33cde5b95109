// RequestDestination: a destination that is not the primary MQTT broker (a FHIR server, an HL7
// v2 interface engine). One thread per destination drives the shared DeliveryScheduler over the
// destination type's RequestLink: connect (capped, jittered backoff), deliver one batch at a
// time and read the answer (every call bounded), report rows that are done to the store, move
// rows refused for good to the dead-letter table. A dead or slow destination holds nobody else
// back: it has its own cursor, thread and backlog.
//
// Thread-safety: Start/RequestStop/Join/SetContext from the control thread; the rest on its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/doorbell.h"
#include "vitalgate/core/log.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/forward/destination.h"
#include "vitalgate/forward/outbox_feed.h"
#include "vitalgate/forward/scheduler.h"
#include "vitalgate/store/delivery_queue.h"

namespace vg {

// The rendering context every destination uses; swapped as a whole on SIGHUP.
class RenderContextHolder {
 public:
  void Set(std::shared_ptr<const RenderContext> context) {
    std::lock_guard lock(mu_);
    context_ = std::move(context);
  }
  std::shared_ptr<const RenderContext> Get() const {
    std::lock_guard lock(mu_);
    return context_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const RenderContext> context_ = std::make_shared<RenderContext>();
};

struct RequestDestinationOptions {
  std::string name;
  std::string store_path;
  std::string store_vfs;
  int bit = 1;
  std::optional<AeadKey> at_rest_key;
  SchedulerOptions scheduling;
  std::int64_t reconnect_min_ms = 1000;
  std::int64_t reconnect_max_ms = 60000;
  std::chrono::milliseconds timeout{30000};
};

class RequestDestination {
 public:
  RequestDestination(RequestDestinationOptions options, std::unique_ptr<RequestLink> link,
                     const RenderContextHolder& context, DeliveryQueue& delivered,
                     Doorbell& wake_self, const Clock& clock, const GatewayStats& stats,
                     DestinationStats& destination);
  ~RequestDestination();

  void Start();
  void RequestStop();
  void Join();

  // One round, for tests: connect if due, deliver one batch, or wait at most `max_wait`.
  void Step(std::chrono::milliseconds max_wait);
  bool connected() const { return connected_; }

 private:
  void Run();
  void Report(DoneRows& done);
  void Fail(const std::string& why, std::optional<std::chrono::milliseconds> retry_after);

  RequestDestinationOptions options_;
  std::unique_ptr<RequestLink> link_;
  const RenderContextHolder& context_;
  DeliveryQueue& delivered_;
  Doorbell& wake_self_;
  const Clock& clock_;
  DestinationStats& destination_;
  DeliveryScheduler scheduler_;
  OutboxFeed feed_;
  bool connected_ = false;
  int attempts_ = 0;
  std::int64_t next_attempt_ns_ = 0;
  std::int64_t last_oldest_ns_ = 0;
  RateLimiter log_limiter_{30'000'000'000};
  std::uint64_t suppressed_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace vg
