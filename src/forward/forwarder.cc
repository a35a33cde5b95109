#include "vitalgate/forward/forwarder.h"

#include <poll.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/forward/backoff.h"
#include "vitalgate/forward/formats.h"

namespace vg {
namespace {

constexpr std::int64_t kMsNs = 1'000'000;
constexpr std::int64_t kConnectTimeoutNs = 15'000 * kMsNs;
// The longest a reading waits for its message to fill while the link is busy.
constexpr std::int64_t kReadingsLingerMs = 10;

SchedulerOptions PrimaryScheduling(const ForwarderOptions& o) {
  SchedulerOptions s;
  s.max_items_per_message = static_cast<std::size_t>(std::max(1, o.max_readings_per_message));
  s.linger_ms = kReadingsLingerMs;
  return s;
}

}  // namespace

Forwarder::Forwarder(ForwarderOptions options, ClientFactory make_client, DeliveryQueue& delivered,
                     VolatileQueue& volatile_in, DownlinkSink* downlink, Doorbell& wake_self,
                     const Clock& clock, GatewayStats& stats, DestinationStats& destination,
                     PayloadSealer* sealer)
    : options_(std::move(options)),
      make_client_(std::move(make_client)),
      delivered_(delivered),
      volatile_(volatile_in),
      downlink_(downlink),
      wake_self_(wake_self),
      clock_(clock),
      stats_(stats),
      destination_(destination),
      sealer_(sealer),
      scheduler_(PrimaryScheduling(options_)),
      feed_(OutboxFeedOptions{options_.store_path, options_.store_vfs, options_.bit,
                              options_.at_rest_key, "mqtt"},
            clock, stats) {}

Forwarder::~Forwarder() {
  RequestStop();
  Join();
}

std::string Forwarder::StatusTopic() const {
  return options_.topic_prefix + "/" + options_.gateway_id + "/status";
}
std::string Forwarder::ReadingsTopic(std::string_view patient) const {
  return options_.topic_prefix + "/" + options_.gateway_id + "/readings/" + std::string(patient);
}
std::string Forwarder::AlertsTopic(std::string_view patient) const {
  return options_.topic_prefix + "/" + options_.gateway_id + "/alerts/" + std::string(patient);
}
std::string Forwarder::AuditTopic() const {
  return options_.topic_prefix + "/" + options_.gateway_id + "/audit";
}
std::string Forwarder::CommandTopic(std::string_view command) const {
  return options_.topic_prefix + "/" + options_.gateway_id + "/cmd/" + std::string(command);
}

std::string Forwarder::StatusPayload(std::string_view state) const {
  std::string s = "{\"state\":\"";
  s += state;
  s += "\",\"version\":";
  AppendJsonString(s, options_.version);
  s += ",\"ts\":\"";
  AppendRfc3339(s, clock_.WallMs());
  s += "\"}";
  return s;
}

void Forwarder::Start() { thread_ = std::thread([this] { Run(); }); }

void Forwarder::RequestStop() {
  stop_.store(true, std::memory_order_release);
  wake_self_.Ring();
}

void Forwarder::RequestReconnect() {
  reconnect_requested_.store(true, std::memory_order_release);
  wake_self_.Ring();
}

void Forwarder::Join() {
  if (thread_.joinable()) thread_.join();
}

void Forwarder::Connect() {
  if (!client_) {
    MqttCallbacks cb;
    cb.on_connect = [this](int rc, std::string_view reason) { OnConnect(rc, reason); };
    cb.on_disconnect = [this](int rc, std::string_view reason) { OnDisconnect(rc, reason); };
    cb.on_publish = [this](int mid) { OnPublish(mid); };
    cb.on_message = [this](std::string_view t, std::string_view p, bool retained) {
      OnMessage(t, p, retained);
    };
    auto client = make_client_(std::move(cb));
    if (!client.ok()) {
      spdlog::error("mqtt: {}", client.status().message());
      stats_.broker_error.Set(client.status().message());
      destination_.last_error.Set(client.status().message());
      next_attempt_ns_ = clock_.MonotonicNs() + options_.reconnect_max_ms * kMsNs;
      return;
    }
    client_ = std::move(*client);
  }
  const Status s = client_->Connect();
  connecting_ = true;
  connect_started_ns_ = clock_.MonotonicNs();
  if (!s.ok()) LinkLost(s.message());
}

void Forwarder::OnConnect(int rc, std::string_view reason) {
  if (rc != 0) {
    lost_reason_ = "broker refused the connection: " + std::string(reason);
    return;
  }
  connected_ = true;
  connecting_ = false;
  attempts_ = 0;
  stats_.broker_connected.store(true);
  destination_.connected.store(true);
  stats_.broker_connects.fetch_add(1, std::memory_order_relaxed);
  stats_.broker_error.Set("");
  stats_.client_certificate_rejected.Set("");
  destination_.last_error.Set("");
  spdlog::info("mqtt: connected to broker");
  Publish(StatusTopic(), StatusPayload("online"), Inflight{}, true);
  for (const char* command : {"ack", "assign"}) {
    const Status s = client_->Subscribe(CommandTopic(command), 1);
    if (!s.ok()) spdlog::warn("mqtt: {}", s.message());
  }
}

void Forwarder::OnDisconnect(int rc, std::string_view reason) {
  if (stopping_ && rc == 0) return;
  // A refusal reported in the CONNACK (e.g. not authorised) says more than the disconnect.
  if (lost_reason_.empty()) lost_reason_ = rc == 0 ? "disconnected" : std::string(reason);
}

void Forwarder::LinkLost(std::string_view why) {
  const bool was_connected = connected_;
  connected_ = false;
  connecting_ = false;
  stats_.broker_connected.store(false);
  destination_.connected.store(false);
  std::string reason(why);
  const std::string detail = client_ ? client_->LastError() : std::string();
  if (!detail.empty() && reason.find(detail) == std::string::npos) {
    // libmosquitto's detail usually repeats the reason and adds the TLS library's words.
    reason = detail.rfind(reason, 0) == 0 ? detail : reason + ": " + detail;
  }
  if (!was_connected && !options_.tls_failure_hint.empty()) {
    // A broker that refuses the client certificate often just ends the session (TLS 1.3
    // sends its alert after the client's side of the handshake is done), which libraries
    // report as a bare protocol error. Say what the configuration suggests.
    const bool tls_failure = reason.find("Protocol error") != std::string::npos ||
                             reason.find("TLS") != std::string::npos ||
                             reason.find("SSL") != std::string::npos ||
                             reason.find("certificate") != std::string::npos;
    if (tls_failure) reason += "; " + options_.tls_failure_hint;
  }
  stats_.broker_error.Set(reason);
  destination_.last_error.Set(reason);
  destination_.failures.fetch_add(1, std::memory_order_relaxed);
  const TlsFailure tls = client_ ? client_->LastTlsFailure() : TlsFailure::kNone;
  if (tls != TlsFailure::kNone) {
    stats_.tls_failures[static_cast<std::size_t>(tls)].fetch_add(1, std::memory_order_relaxed);
    if (tls == TlsFailure::kClientRejected) stats_.client_certificate_rejected.Set(reason);
  }
  if (was_connected) {
    spdlog::warn("mqtt: broker link lost: {}", reason);
  } else if (log_limiter_.Allow(clock_.MonotonicNs(), suppressed_)) {
    spdlog::warn("mqtt: cannot connect to {}: {}{}", broker_name_, reason,
                 suppressed_ > 0 ? " (" + std::to_string(suppressed_) + " similar failures)" : "");
  }
  // What was in flight may not have arrived: it goes back to the front of its queue.
  scheduler_.OnLinkLost();
  inflight_.clear();
  if (client_) client_->Reset();
  next_attempt_ns_ =
      clock_.MonotonicNs() + JitteredBackoffMs(attempts_, options_.reconnect_min_ms,
                                               options_.reconnect_max_ms) * kMsNs;
  ++attempts_;
}

void Forwarder::Report(DoneRows& done) {
  if (done.empty()) return;
  destination_.dead_letters.fetch_add(done.dead_letters.size(), std::memory_order_relaxed);
  delivered_.Push(options_.bit, std::move(done.batches), std::move(done.events),
                  std::move(done.dead_letters));
  done = DoneRows{};
}

void Forwarder::OnPublish(int mid) {
  auto it = inflight_.find(mid);
  if (it == inflight_.end()) return;
  const Inflight entry = it->second;
  inflight_.erase(it);
  stats_.messages_published.fetch_add(1, std::memory_order_relaxed);
  if (entry.token == 0) {
    if (mid == status_mid_) offline_acked_ = true;
    return;
  }
  DoneRows done;
  scheduler_.OnOutcome(entry.token, {}, "mqtt", clock_.WallMs(), done);
  Report(done);
  if (entry.kind == DeliveryBatch::Kind::kReadings) {
    stats_.readings_delivered.fetch_add(entry.items, std::memory_order_relaxed);
    destination_.readings_delivered.fetch_add(entry.items, std::memory_order_relaxed);
  } else {
    if (entry.kind == DeliveryBatch::Kind::kAlert) {
      stats_.alerts_delivered.fetch_add(entry.items, std::memory_order_relaxed);
    }
    destination_.events_delivered.fetch_add(entry.items, std::memory_order_relaxed);
  }
  stats_.publish_latency.Observe(static_cast<double>(clock_.WallMs() - entry.rx_ms));
}

void Forwarder::OnMessage(std::string_view topic, std::string_view payload, bool retained) {
  if (downlink_ != nullptr) downlink_->OnDownlink(topic, payload, retained);
}

bool Forwarder::Publish(const std::string& topic, const std::string& payload, Inflight entry,
                        bool retain) {
  const std::string* body = &payload;
  std::string sealed;
  if (sealer_ != nullptr) {
    auto s = sealer_->Seal(topic, payload);
    if (!s.ok()) {
      spdlog::error("mqtt: payload encryption failed: {}", s.status().message());
      stats_.publish_errors.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    sealed = std::move(*s);
    body = &sealed;
  }
  auto mid = client_->Publish(topic, *body, 1, retain);
  if (!mid.ok()) {
    stats_.publish_errors.fetch_add(1, std::memory_order_relaxed);
    lost_reason_ = mid.status().message();
    return false;
  }
  if (entry.token == 0) status_mid_ = *mid;
  inflight_[*mid] = entry;
  return true;
}

std::string Forwarder::Render(const ScheduledMessage& msg, std::string& topic,
                              std::vector<std::string>& row_errors) {
  row_errors.clear();
  switch (msg.kind) {
    case DeliveryBatch::Kind::kAlert:
      topic = AlertsTopic(msg.patient);
      return msg.items.front().body;
    case DeliveryBatch::Kind::kAudit:
      topic = AuditTopic();
      return msg.items.front().body;
    case DeliveryBatch::Kind::kReadings:
      break;
  }
  topic = ReadingsTopic(msg.patient);
  std::vector<const OutboxRow*> rows;
  rows.reserve(msg.items.size());
  for (const OutboxRow& r : msg.items) rows.push_back(&r);
  if (options_.format != "fhir") return BuildReadingsJson(options_.gateway_id, msg.patient, rows);
  return BuildReadingsFhir(options_.gateway_id, msg.patient, rows, row_errors);
}

void Forwarder::Fill() {
  DoneRows done;
  if (volatile_.HasWork() && scheduler_.WantsBatches()) {
    std::vector<StoredRow> events, batches;
    volatile_.TakeAll(events, batches);
    feed_.AddInMemory(std::move(events), std::move(batches), scheduler_, done);
  }
  feed_.Refill(scheduler_, done);
  Report(done);
  const std::size_t window = static_cast<std::size_t>(options_.max_inflight);
  const std::int64_t now_ms = clock_.MonotonicNs() / kMsNs;  // the readings' wait is a duration
  while (connected_ && lost_reason_.empty() && inflight_.size() < window) {
    // With messages in flight, a partial message of readings may wait a little to fill up
    // (alerts never wait).
    const bool busy = !inflight_.empty();
    std::optional<ScheduledMessage> msg = scheduler_.Next(busy, now_ms);
    if (!msg) {
      feed_.Refill(scheduler_, done);
      Report(done);
      msg = scheduler_.Next(busy, now_ms);
      if (!msg) break;
    }
    std::string topic;
    std::vector<std::string> row_errors;
    const std::string payload = Render(*msg, topic, row_errors);
    const std::size_t items = msg->items.size();
    scheduler_.Recycle(std::move(msg->items));
    if (std::any_of(row_errors.begin(), row_errors.end(), [](const std::string& e) { return !e.empty(); })) {
      // A row that cannot be rendered never will be: a dead letter (alarmed), not a retry that
      // would hold its patient's later readings back for good. The others go again at once.
      std::vector<RowOutcome> outcomes;
      for (const std::string& e : row_errors) {
        outcomes.push_back(e.empty() ? RowOutcome{RowOutcome::Kind::kRetry, ""}
                                     : RowOutcome{RowOutcome::Kind::kRejected, "cannot be rendered: " + e});
        if (!e.empty()) spdlog::error("mqtt: a stored reading cannot be rendered: {}", e);
      }
      scheduler_.OnOutcome(msg->token, outcomes, "mqtt", clock_.WallMs(), done);
      Report(done);
      continue;
    }
    Inflight entry{msg->token, msg->kind, items, msg->oldest_rx_ms};
    if (!Publish(topic, payload, entry, false)) {
      // Not sent: back to the front of its queue, tried again after the next connection.
      scheduler_.OnOutcome(msg->token, std::vector<RowOutcome>(items, {RowOutcome::Kind::kRetry, ""}),
                           "mqtt", clock_.WallMs(), done);
      Report(done);
      if (lost_reason_.empty()) lost_reason_ = "publishing failed";
      break;
    }
  }
}

void Forwarder::Step(std::chrono::milliseconds max_wait) {
  if (reconnect_requested_.exchange(false, std::memory_order_acq_rel)) {
    // Publish nothing new and let the broker acknowledge what is in flight first, so the
    // reconnection redelivers nothing.
    reconnect_pending_ = true;
    reconnect_deadline_ns_ = clock_.MonotonicNs() + 5000 * kMsNs;
  }
  if (reconnect_pending_ && (inflight_.empty() || !connected_ ||
                             clock_.MonotonicNs() >= reconnect_deadline_ns_)) {
    reconnect_pending_ = false;
    spdlog::info("mqtt: reconnecting to use the reloaded certificates");
    if (connected_ || connecting_) {
      if (connected_ && client_) client_->Disconnect();
      connected_ = connecting_ = false;
      stats_.broker_connected.store(false);
      destination_.connected.store(false);
      scheduler_.OnLinkLost();
      inflight_.clear();
      if (client_) client_->Reset();  // frees the TLS context: the files are read again
    }
    attempts_ = 0;
    next_attempt_ns_ = 0;
  }
  std::int64_t now = clock_.MonotonicNs();
  if (!connected_ && !connecting_ && !stopping_ && now >= next_attempt_ns_) Connect();
  if (connecting_ && now - connect_started_ns_ > kConnectTimeoutNs) {
    LinkLost("no answer from the broker within 15 s");
  }
  wake_self_.PrepareWait();
  if (connected_ && !stopping_ && !reconnect_pending_) Fill();
  std::int64_t timeout_ms = max_wait.count();
  if (!connected_ && !connecting_) {
    timeout_ms = std::min<std::int64_t>(timeout_ms, std::max<std::int64_t>(0, (next_attempt_ns_ - now) / kMsNs));
  }
  pollfd fds[2] = {{wake_self_.fd(), POLLIN, 0}, {-1, 0, 0}};
  const int sock = client_ ? client_->Socket() : -1;
  if (sock >= 0) {
    fds[1].fd = sock;
    fds[1].events = static_cast<short>(POLLIN | (client_->WantWrite() ? POLLOUT : 0));
  }
  if (const std::int64_t held = scheduler_.HeldUntilMs(); held > 0 && connected_) {
    const std::int64_t left = held - clock_.MonotonicNs() / kMsNs;
    timeout_ms = std::min<std::int64_t>(timeout_ms, std::max<std::int64_t>(1, left));
  }
  if (!lost_reason_.empty()) timeout_ms = 0;
  ::poll(fds, sock >= 0 ? 2 : 1, static_cast<int>(std::min<std::int64_t>(timeout_ms, 1000)));
  wake_self_.Acknowledge();
  if (sock >= 0 && lost_reason_.empty()) {
    int rc = 0;
    if ((fds[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0) rc = client_->LoopRead();
    if (rc == 0 && client_->Socket() >= 0 && client_->WantWrite()) rc = client_->LoopWrite();
    now = clock_.MonotonicNs();
    if (rc == 0 && now - last_misc_ns_ > 500 * kMsNs) {
      last_misc_ns_ = now;
      rc = client_->LoopMisc();
    }
    if (rc != 0 && lost_reason_.empty()) {
      lost_reason_ = client_->LastError().empty() ? "connection error" : client_->LastError();
    }
    // A refused or reset TCP connection shows as POLLHUP/POLLERR; during the TLS handshake
    // libmosquitto does not always report it, so look at the socket itself.
    if (lost_reason_.empty() && (fds[1].revents & (POLLHUP | POLLERR)) != 0) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &len);
      lost_reason_ = err != 0 ? std::strerror(err) : "connection refused or closed by the broker";
    }
  }
  if (!lost_reason_.empty()) {
    std::string why = std::move(lost_reason_);
    lost_reason_.clear();
    LinkLost(why);
  }
  if (now - last_oldest_ns_ > 1000 * kMsNs) {
    last_oldest_ns_ = now;
    if (auto oldest = feed_.OldestUnackedRxMs()) {
      // What only memory holds (the store failing) counts too.
      const std::int64_t in_memory = scheduler_.OldestRxMs();
      std::int64_t o = *oldest;
      if (in_memory > 0 && (o == 0 || in_memory < o)) o = in_memory;
      stats_.oldest_unacked_rx_ms.store(o, std::memory_order_relaxed);
      destination_.oldest_unacked_rx_ms.store(o, std::memory_order_relaxed);
    }
  }
  stats_.forwarder_loops.fetch_add(1, std::memory_order_relaxed);
}

void Forwarder::Run() {
  broker_name_ = options_.broker;
  while (!stop_.load(std::memory_order_acquire)) Step(std::chrono::milliseconds(1000));
  // Shutdown: tell subscribers we are going away on purpose (the will is for crashes), but do
  // not wait for a broker that is not there; undelivered rows go out after the next start.
  stopping_ = true;
  if (connected_) {
    Publish(StatusTopic(), StatusPayload("offline"), Inflight{}, true);
    const std::int64_t deadline = clock_.MonotonicNs() + options_.shutdown_grace_ms * kMsNs;
    while (connected_ && !offline_acked_ && clock_.MonotonicNs() < deadline) {
      Step(std::chrono::milliseconds(50));
    }
    if (connected_ && client_) {
      client_->Disconnect();
      for (int i = 0; i < 5 && client_->Socket() >= 0 && client_->WantWrite(); ++i) client_->LoopWrite();
    }
  }
  stats_.broker_connected.store(false);
  destination_.connected.store(false);
}

}  // namespace vg
