#include "vitalgate/forward/forwarder.h"

#include <poll.h>
#include <sys/socket.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/forward/downlink.h"
#include "vitalgate/forward/formats.h"

namespace vg {
namespace {

constexpr std::int64_t kMsNs = 1'000'000;
constexpr std::int64_t kConnectTimeoutNs = 15'000 * kMsNs;

}  // namespace

Forwarder::Forwarder(ForwarderOptions options, ClientFactory make_client, DeliveryQueue& delivered,
                     VolatileQueue& volatile_in, SpscRing<AckRequest>& acks_out,
                     Doorbell& wake_engine, Doorbell& wake_self, const Clock& clock,
                     const IdFormat& ids, GatewayStats& stats, PayloadSealer* sealer)
    : options_(std::move(options)),
      make_client_(std::move(make_client)),
      delivered_(delivered),
      volatile_(volatile_in),
      acks_out_(acks_out),
      wake_engine_(wake_engine),
      wake_self_(wake_self),
      clock_(clock),
      ids_(ids),
      stats_(stats),
      sealer_(sealer) {}

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
std::string Forwarder::AckTopic() const {
  return options_.topic_prefix + "/" + options_.gateway_id + "/cmd/ack";
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
    cb.on_message = [this](std::string_view t, std::string_view p) { OnMessage(t, p); };
    auto client = make_client_(std::move(cb));
    if (!client.ok()) {
      spdlog::error("mqtt: {}", client.status().message());
      stats_.broker_error.Set(client.status().message());
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

void Forwarder::RequeueVolatile() {
  // Rows that exist only in memory must not be lost with the connection: put back what the
  // broker did not acknowledge.
  std::vector<OutboxRow> alerts, readings;
  for (auto& [mid, entry] : inflight_) {
    auto& dst = entry.kind == Inflight::Kind::kVolatileAlert ? alerts : readings;
    for (OutboxRow& r : entry.rows) dst.push_back(std::move(r));
  }
  inflight_.clear();
  if (!alerts.empty() || !readings.empty()) volatile_.Requeue(std::move(alerts), std::move(readings));
}

bool Forwarder::Unseal(OutboxRow& row, bool alert) {
  if (!row.body.empty() && row.body.front() == '{') return true;  // stored in clear
  if (options_.at_rest_key) {
    auto sealed = AeadUnpack(row.body);
    if (sealed.ok()) {
      auto plain = AeadOpen(*options_.at_rest_key, BodyAad(alert, row.seq), *sealed);
      if (plain.ok()) {
        row.body = std::move(*plain);
        return true;
      }
    }
  }
  stats_.publish_errors.fetch_add(1, std::memory_order_relaxed);
  if (read_error_limiter_.Allow(clock_.MonotonicNs(), read_errors_suppressed_)) {
    spdlog::error("mqtt: an outbox row cannot be decrypted (key changed or row damaged); skipped");
  }
  return false;
}

bool Forwarder::EnsureReader() {
  if (reader_) return true;
  if (options_.store_path.empty()) return false;
  const std::int64_t now = clock_.MonotonicNs();
  if (now < next_reader_attempt_ns_) return false;
  next_reader_attempt_ns_ = now + 1000 * kMsNs;
  auto reader = OutboxReader::Open(options_.store_path, options_.store_vfs);
  if (!reader.ok()) {
    spdlog::warn("mqtt: cannot read the outbox: {}", reader.status().message());
    return false;
  }
  reader_ = std::move(*reader);
  alerts_dirty_ = readings_dirty_ = true;
  return true;
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
  stats_.broker_connects.fetch_add(1, std::memory_order_relaxed);
  stats_.broker_error.Set("");
  spdlog::info("mqtt: connected to broker");
  // Start over from the oldest unacknowledged row: what was in flight may not have arrived.
  RequeueVolatile();
  alerts_pending_.clear();
  readings_pending_.clear();
  patient_turns_.clear();
  readings_pending_count_ = 0;
  alert_cursor_ = 0;
  reading_cursor_ = 0;
  alerts_dirty_ = readings_dirty_ = true;
  RefreshSkipSet();
  Publish(StatusTopic(), StatusPayload("online"), Inflight{Inflight::Kind::kStatus, {}, 0, {}}, true);
  const Status s = client_->Subscribe(AckTopic(), 1);
  if (!s.ok()) spdlog::warn("mqtt: {}", s.message());
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
  if (was_connected) {
    spdlog::warn("mqtt: broker link lost: {}", reason);
  } else if (log_limiter_.Allow(clock_.MonotonicNs(), suppressed_)) {
    spdlog::warn("mqtt: cannot connect to {}: {}{}", broker_name_, reason,
                 suppressed_ > 0 ? " (" + std::to_string(suppressed_) + " similar failures)" : "");
  }
  RequeueVolatile();
  if (client_) client_->Reset();
  // Capped exponential backoff with +-20% jitter so a ward of gateways does not reconnect in step.
  const int shift = std::min(attempts_, 16);
  std::int64_t delay = std::min<std::int64_t>(options_.reconnect_max_ms,
                                              static_cast<std::int64_t>(options_.reconnect_min_ms) << shift);
  static thread_local std::minstd_rand rng(std::random_device{}());
  const double jitter = 0.8 + 0.4 * std::uniform_real_distribution<double>(0, 1)(rng);
  delay = static_cast<std::int64_t>(static_cast<double>(delay) * jitter);
  ++attempts_;
  next_attempt_ns_ = clock_.MonotonicNs() + delay * kMsNs;
}

void Forwarder::OnPublish(int mid) {
  auto it = inflight_.find(mid);
  if (it == inflight_.end()) return;
  Inflight entry = std::move(it->second);
  inflight_.erase(it);
  stats_.messages_published.fetch_add(1, std::memory_order_relaxed);
  switch (entry.kind) {
    case Inflight::Kind::kStatus:
      if (mid == status_mid_) offline_acked_ = true;
      return;
    case Inflight::Kind::kAlert: {
      const std::uint64_t ticket = delivered_.Push({}, entry.seqs);
      undeleted_.emplace_back(ticket, entry.seqs);
      stats_.alerts_delivered.fetch_add(entry.seqs.size(), std::memory_order_relaxed);
      break;
    }
    case Inflight::Kind::kReadings: {
      const std::uint64_t ticket = delivered_.Push(entry.seqs, {});
      undeleted_.emplace_back(ticket, entry.seqs);
      stats_.readings_delivered.fetch_add(entry.seqs.size(), std::memory_order_relaxed);
      break;
    }
    case Inflight::Kind::kVolatileAlert:
      stats_.alerts_delivered.fetch_add(entry.rows.size(), std::memory_order_relaxed);
      break;
    case Inflight::Kind::kVolatileReadings:
      stats_.readings_delivered.fetch_add(entry.rows.size(), std::memory_order_relaxed);
      break;
  }
  stats_.publish_latency.Observe(static_cast<double>(clock_.WallMs() - entry.rx_ms));
  const std::uint64_t committed = delivered_.committed();
  while (!undeleted_.empty() && undeleted_.front().first <= committed) undeleted_.pop_front();
}

void Forwarder::RefreshSkipSet() {
  const std::uint64_t committed = delivered_.committed();
  while (!undeleted_.empty() && undeleted_.front().first <= committed) undeleted_.pop_front();
  skip_.clear();
  for (const auto& [ticket, seqs] : undeleted_) skip_.insert(seqs.begin(), seqs.end());
}

void Forwarder::OnMessage(std::string_view topic, std::string_view payload) {
  auto reject = [&](const std::string& why) {
    stats_.downlink_rejected.fetch_add(1, std::memory_order_relaxed);
    if (downlink_limiter_.Allow(clock_.MonotonicNs(), downlink_suppressed_)) {
      spdlog::warn("mqtt: downlink message ignored: {}", why);
    }
  };
  if (topic != AckTopic()) {
    reject("unexpected topic");
    return;
  }
  if (payload.size() > kMaxDownlinkBytes) {
    reject("cmd/ack payload of " + std::to_string(payload.size()) + " bytes exceeds " +
           std::to_string(kMaxDownlinkBytes));
    return;
  }
  auto cmd = ParseAckCommand(payload);
  if (!cmd.ok()) {
    reject("cmd/ack: " + cmd.status().message());
    return;
  }
  const auto id = ids_.Parse(cmd->alert_id);
  if (!id) {
    reject("cmd/ack: alert_id is not an id issued by this gateway");
    return;
  }
  AckRequest req{*id, std::move(cmd->by), clock_.WallMs()};
  if (!acks_out_.TryPush(std::move(req))) {
    reject("cmd/ack: too many acknowledgements queued");
    return;
  }
  wake_engine_.Ring();
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
  if (entry.kind == Inflight::Kind::kStatus) status_mid_ = *mid;
  inflight_[*mid] = std::move(entry);
  return true;
}

bool Forwarder::PublishOneAlert() {
  if (alerts_pending_.empty() && alerts_dirty_ && EnsureReader()) {
    alerts_dirty_ = false;
    std::vector<OutboxRow> rows;
    const Status s = reader_->ReadAlerts(alert_cursor_, 64, rows);
    if (!s.ok()) {
      alerts_dirty_ = true;
      if (read_error_limiter_.Allow(clock_.MonotonicNs(), read_errors_suppressed_)) {
        spdlog::error("mqtt: reading alerts from the outbox: {}", s.message());
      }
      return false;
    }
    if (rows.size() == 64) alerts_dirty_ = true;
    for (OutboxRow& row : rows) {
      alert_cursor_ = std::max(alert_cursor_, row.seq);
      if (skip_.count(row.seq) == 0 && Unseal(row, true)) alerts_pending_.push_back(std::move(row));
    }
  }
  if (alerts_pending_.empty()) return false;
  OutboxRow row = std::move(alerts_pending_.front());
  alerts_pending_.pop_front();
  return Publish(AlertsTopic(row.patient), row.body,
                 Inflight{Inflight::Kind::kAlert, {row.seq}, row.rx_ms, {}}, false);
}

void Forwarder::RefillReadings() {
  if (readings_pending_count_ == 0 && readings_dirty_ && EnsureReader()) {
    readings_dirty_ = false;
    const std::size_t limit =
        std::max<std::size_t>(1000, static_cast<std::size_t>(options_.max_readings_per_message) * 16);
    std::vector<OutboxRow> rows;
    const Status s = reader_->ReadReadings(reading_cursor_, limit, rows);
    if (!s.ok()) {
      readings_dirty_ = true;  // try again on the next round
      if (read_error_limiter_.Allow(clock_.MonotonicNs(), read_errors_suppressed_)) {
        spdlog::error("mqtt: reading the outbox: {}", s.message());
      }
      return;
    }
    if (rows.size() == limit) readings_dirty_ = true;
    for (OutboxRow& row : rows) {
      reading_cursor_ = std::max(reading_cursor_, row.seq);
      if (!skip_.empty() && skip_.count(row.seq) != 0) continue;
      if (!Unseal(row, false)) continue;
      auto& q = readings_pending_[row.patient];
      if (q.empty()) patient_turns_.push_back(row.patient);
      q.push_back(std::move(row));
      ++readings_pending_count_;
    }
  }
}

std::uint64_t Forwarder::OldestPendingSeq() const {
  std::uint64_t oldest = 0;
  for (const auto& [patient, q] : readings_pending_) {
    if (!q.empty() && (oldest == 0 || q.front().seq < oldest)) oldest = q.front().seq;
  }
  return oldest;
}

bool Forwarder::PublishReadings() {
  if (patient_turns_.empty()) return false;
  const std::string patient = std::move(patient_turns_.front());
  patient_turns_.pop_front();
  auto& q = readings_pending_[patient];
  const std::size_t n = std::min(q.size(), static_cast<std::size_t>(options_.max_readings_per_message));
  std::vector<const OutboxRow*> rows;
  rows.reserve(n);
  Inflight entry{Inflight::Kind::kReadings, {}, 0, {}};
  entry.seqs.reserve(n);
  entry.rx_ms = q.front().rx_ms;
  for (std::size_t i = 0; i < n; ++i) {
    rows.push_back(&q[i]);
    entry.seqs.push_back(q[i].seq);
    entry.rx_ms = std::min(entry.rx_ms, q[i].rx_ms);
  }
  const std::string payload = RenderReadings(patient, rows);
  if (payload.empty()) return false;
  if (!Publish(ReadingsTopic(patient), payload, std::move(entry), false)) {
    patient_turns_.push_front(patient);
    return false;
  }
  q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(n));
  readings_pending_count_ -= n;
  if (q.empty()) {
    readings_pending_.erase(patient);
  } else {
    patient_turns_.push_back(patient);
  }
  return true;
}

std::string Forwarder::RenderReadings(const std::string& patient,
                                      std::span<const OutboxRow* const> rows) {
  if (options_.format != "fhir") return BuildReadingsJson(options_.gateway_id, patient, rows);
  auto fhir = BuildReadingsFhir(options_.gateway_id, patient, rows);
  if (!fhir.ok()) {
    spdlog::error("mqtt: FHIR rendering failed: {}", fhir.status().message());
    return "";
  }
  return std::move(*fhir);
}

bool Forwarder::PublishVolatile(bool alerts) {
  if (!volatile_.HasWork()) return false;
  if (alerts) {
    OutboxRow row;
    if (!volatile_.PopAlert(row)) return false;
    if (!Unseal(row, true)) return true;
    const std::string topic = AlertsTopic(row.patient);
    const std::string body = row.body;
    Inflight entry{Inflight::Kind::kVolatileAlert, {}, row.rx_ms, {}};
    entry.rows.push_back(std::move(row));
    return Publish(topic, body, std::move(entry), false);
  }
  std::vector<OutboxRow> rows =
      volatile_.PopReadingsOfOnePatient(static_cast<std::size_t>(options_.max_readings_per_message));
  if (rows.empty()) return false;
  std::erase_if(rows, [this](OutboxRow& r) { return !Unseal(r, false); });
  if (rows.empty()) return true;
  std::vector<const OutboxRow*> ptrs;
  std::int64_t rx = rows.front().rx_ms;
  for (const OutboxRow& r : rows) {
    ptrs.push_back(&r);
    rx = std::min(rx, r.rx_ms);
  }
  const std::string patient = rows.front().patient;
  const std::string payload = RenderReadings(patient, ptrs);
  Inflight entry{Inflight::Kind::kVolatileReadings, {}, rx, std::move(rows)};
  if (payload.empty()) return false;
  return Publish(ReadingsTopic(patient), payload, std::move(entry), false);
}

void Forwarder::Fill() {
  if (stats_.alerts_committed.load(std::memory_order_acquire) != seen_alert_commits_) {
    seen_alert_commits_ = stats_.alerts_committed.load(std::memory_order_acquire);
    alerts_dirty_ = true;
  }
  if (stats_.readings_committed.load(std::memory_order_acquire) != seen_reading_commits_) {
    seen_reading_commits_ = stats_.readings_committed.load(std::memory_order_acquire);
    readings_dirty_ = true;
  }
  while (connected_ && lost_reason_.empty() &&
         inflight_.size() < static_cast<std::size_t>(options_.max_inflight)) {
    if (PublishVolatile(/*alerts=*/true)) continue;
    if (PublishOneAlert()) continue;
    RefillReadings();
    // Readings held only in memory (the outbox failed) and stored ones go out oldest first,
    // so each patient's readings stay in order across the failure and the recovery.
    const std::uint64_t in_memory = volatile_.OldestReadingSeq();
    const std::uint64_t stored = OldestPendingSeq();
    if (in_memory != 0 && (stored == 0 || in_memory < stored) && PublishVolatile(false)) continue;
    if (PublishReadings()) continue;
    if (PublishVolatile(/*alerts=*/false)) continue;
    break;
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
      RequeueVolatile();
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
  if (reader_ && now - last_oldest_ns_ > 1000 * kMsNs) {
    last_oldest_ns_ = now;
    auto oldest = reader_->OldestReadingRxMs();
    if (oldest.ok()) stats_.oldest_unacked_rx_ms.store(*oldest, std::memory_order_relaxed);
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
    Publish(StatusTopic(), StatusPayload("offline"), Inflight{Inflight::Kind::kStatus, {}, 0, {}}, true);
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
}

}  // namespace vg
