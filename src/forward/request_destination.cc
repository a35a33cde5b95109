#include "vitalgate/forward/request_destination.h"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "vitalgate/forward/backoff.h"

namespace vg {
namespace {

constexpr std::int64_t kMsNs = 1'000'000;

}  // namespace

RequestDestination::RequestDestination(RequestDestinationOptions options,
                                       std::unique_ptr<RequestLink> link,
                                       const RenderContextHolder& context, DeliveryQueue& delivered,
                                       Doorbell& wake_self, const Clock& clock,
                                       const GatewayStats& stats, DestinationStats& destination)
    : options_(std::move(options)),
      link_(std::move(link)),
      context_(context),
      delivered_(delivered),
      wake_self_(wake_self),
      clock_(clock),
      destination_(destination),
      scheduler_(options_.scheduling),
      feed_(OutboxFeedOptions{options_.store_path, options_.store_vfs, options_.bit,
                              options_.at_rest_key, options_.name},
            clock, stats) {}

RequestDestination::~RequestDestination() {
  RequestStop();
  Join();
}

void RequestDestination::Start() { thread_ = std::thread([this] { Run(); }); }

void RequestDestination::RequestStop() {
  stop_.store(true, std::memory_order_release);
  wake_self_.Ring();
}

void RequestDestination::Join() {
  if (thread_.joinable()) thread_.join();
  if (link_) link_->Close();
}

void RequestDestination::Report(DoneRows& done) {
  if (done.empty()) return;
  destination_.dead_letters.fetch_add(done.dead_letters.size(), std::memory_order_relaxed);
  for (const DeadLetter& d : done.dead_letters) {
    spdlog::error("{}: a {} was refused for good and moved to the dead-letter table: {}",
                  options_.name, d.kind, d.reason);
  }
  delivered_.Push(options_.bit, std::move(done.batches), std::move(done.events),
                  std::move(done.dead_letters));
  done = DoneRows{};
}

void RequestDestination::Fail(const std::string& why,
                              std::optional<std::chrono::milliseconds> retry_after) {
  const bool was_connected = connected_;
  connected_ = false;
  destination_.connected.store(false);
  destination_.last_error.Set(why);
  destination_.failures.fetch_add(1, std::memory_order_relaxed);
  link_->Close();
  scheduler_.OnLinkLost();
  if (was_connected || log_limiter_.Allow(clock_.MonotonicNs(), suppressed_)) {
    spdlog::warn("{}: {} ({}){}", options_.name, why, link_->Describe(),
                 suppressed_ > 0 ? " (" + std::to_string(suppressed_) + " similar failures)" : "");
  }
  std::int64_t delay_ms = JitteredBackoffMs(attempts_, options_.reconnect_min_ms, options_.reconnect_max_ms);
  if (retry_after) delay_ms = std::max<std::int64_t>(delay_ms, retry_after->count());
  ++attempts_;
  next_attempt_ns_ = clock_.MonotonicNs() + delay_ms * kMsNs;
}

void RequestDestination::Step(std::chrono::milliseconds max_wait) {
  std::int64_t now = clock_.MonotonicNs();
  if (now - last_oldest_ns_ > 1000 * kMsNs) {
    last_oldest_ns_ = now;
    if (auto oldest = feed_.OldestUnackedRxMs()) {
      destination_.oldest_unacked_rx_ms.store(*oldest, std::memory_order_relaxed);
    }
    if (auto backlog = feed_.Backlog()) {
      destination_.backlog_readings.store(backlog->readings, std::memory_order_relaxed);
      destination_.backlog_events.store(backlog->events, std::memory_order_relaxed);
    }
  }
  wake_self_.PrepareWait();
  DoneRows done;
  feed_.Refill(scheduler_, done);
  Report(done);
  const bool work = scheduler_.HasEvents() || scheduler_.HasReadings();
  if (work && !connected_ && now >= next_attempt_ns_) {
    const Status s = link_->Connect(options_.timeout);
    if (s.ok()) {
      connected_ = true;
      attempts_ = 0;
      destination_.connected.store(true);
      destination_.last_error.Set("");
      spdlog::info("{}: connected to {}", options_.name, link_->Describe());
    } else {
      Fail("cannot connect: " + s.message(), std::nullopt);
    }
  }
  // next_attempt_ns_ also holds back a connected link after the destination asked for items
  // again (HL7 AE, a FHIR entry's 5xx): a retry comes after the backoff, not at once.
  if (work && connected_ && now >= next_attempt_ns_) {
    std::optional<ScheduledMessage> msg = scheduler_.Next();
    if (msg) {
      DeliveryBatch batch;
      batch.kind = msg->kind;
      batch.patient = msg->patient;
      batch.context = context_.Get();
      batch.rows.reserve(msg->items.size());
      for (const OutboxRow& r : msg->items) batch.rows.push_back(&r);
      DeliveryOutcome outcome = link_->Deliver(batch, options_.timeout);
      if (!outcome.failure && outcome.rows.size() != msg->items.size()) {
        outcome.failure = LinkFailure{"the destination answered for " + std::to_string(outcome.rows.size()) +
                                          " of " + std::to_string(msg->items.size()) + " items",
                                      std::nullopt};
      }
      if (outcome.failure) {
        Fail(outcome.failure->reason, outcome.failure->retry_after);
      } else {
        std::size_t delivered = 0;
        bool retry = false;
        for (const RowOutcome& r : outcome.rows) {
          delivered += r.kind == RowOutcome::Kind::kDelivered;
          retry = retry || r.kind == RowOutcome::Kind::kRetry;
        }
        scheduler_.OnOutcome(msg->token, outcome.rows, options_.name, clock_.WallMs(), done);
        Report(done);
        if (msg->kind == DeliveryBatch::Kind::kReadings) {
          destination_.readings_delivered.fetch_add(delivered, std::memory_order_relaxed);
        } else {
          destination_.events_delivered.fetch_add(delivered, std::memory_order_relaxed);
        }
        // Items the destination asked to get again: not at once, after the backoff.
        if (retry) {
          next_attempt_ns_ = clock_.MonotonicNs() +
                             JitteredBackoffMs(attempts_++, options_.reconnect_min_ms,
                                               options_.reconnect_max_ms) * kMsNs;
        } else {
          attempts_ = 0;
        }
      }
      wake_self_.Acknowledge();
      return;
    }
  }
  std::int64_t wait_ms = max_wait.count();
  if (work && now < next_attempt_ns_) {
    wait_ms = std::min<std::int64_t>(wait_ms, (next_attempt_ns_ - now + kMsNs - 1) / kMsNs);
  }
  // PrepareWait() came before the outbox was looked at, so a commit since then rings the bell.
  pollfd pfd{wake_self_.fd(), POLLIN, 0};
  ::poll(&pfd, 1, static_cast<int>(std::clamp<std::int64_t>(wait_ms, 0, 1000)));
  wake_self_.Acknowledge();
}

void RequestDestination::Run() {
  while (!stop_.load(std::memory_order_acquire)) Step(std::chrono::milliseconds(1000));
  destination_.connected.store(false);
}

}  // namespace vg
