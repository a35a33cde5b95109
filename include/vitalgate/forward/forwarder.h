// Forwarder: the MQTT side of the outbox. It reads committed rows from the outbox, publishes
// them with QoS 1 (alerts always ahead of any readings backlog; readings grouped per patient,
// oldest first), and reports each PUBACK to the store thread, which deletes the rows. It keeps a
// bounded window of unacknowledged messages; on connection loss it forgets the window and
// publishes again from the oldest unacknowledged row, so per-patient order holds across
// outages and restarts and every row is delivered at least once with the same id.
//
// It also publishes the retained status message, subscribes to cmd/ack and turns valid
// acknowledgements into AckRequests for the engine.
// Thread-safety: everything runs on the forwarder thread; RequestStop from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/doorbell.h"
#include "vitalgate/core/ids.h"
#include "vitalgate/core/log.h"
#include "vitalgate/core/spsc_ring.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/engine/runner.h"
#include "vitalgate/forward/mqtt_client.h"
#include "vitalgate/store/delivery_queue.h"
#include "vitalgate/store/outbox.h"
#include "vitalgate/store/volatile_queue.h"

namespace vg {

// Seals a payload for a topic (payload encryption), or returns it unchanged.
class PayloadSealer {
 public:
  virtual ~PayloadSealer() = default;
  virtual Result<std::string> Seal(std::string_view topic, std::string_view payload) = 0;
};

struct ForwarderOptions {
  std::string gateway_id;
  std::string broker;  // "host:port", for messages
  std::string topic_prefix = "vitalgate/v1";
  std::string format = "json";
  std::string version = "0.0.0";
  int max_inflight = 64;
  int max_readings_per_message = 100;
  int reconnect_min_ms = 500;
  int reconnect_max_ms = 30000;
  int shutdown_grace_ms = 1500;  // at stop: time to publish the offline status
  std::string store_path;        // the outbox; opened read-only (again) whenever needed
  std::string store_vfs;
  std::optional<AeadKey> at_rest_key;  // bodies in the outbox are sealed with this key
  // Added to the reason when a TLS handshake fails (e.g. no client certificate configured).
  std::string tls_failure_hint;
};

class Forwarder {
 public:
  // `make_client` builds the MQTT client with the forwarder's callbacks.
  using ClientFactory =
      std::function<Result<std::unique_ptr<MqttClient>>(MqttCallbacks callbacks)>;

  Forwarder(ForwarderOptions options, ClientFactory make_client, DeliveryQueue& delivered,
            VolatileQueue& volatile_in, SpscRing<AckRequest>& acks_out, Doorbell& wake_engine,
            Doorbell& wake_self, const Clock& clock, const IdFormat& ids, GatewayStats& stats,
            PayloadSealer* sealer = nullptr);
  ~Forwarder();

  void Start();
  void RequestStop();
  void Join();
  // Any thread: connect again, reading the certificate and key files anew (certificate
  // rotation on SIGHUP). New messages wait until the broker has acknowledged those in flight
  // (at most 5 s), so the reconnection redelivers nothing.
  void RequestReconnect();

  // Topic helpers (also used by tests and docs).
  std::string StatusTopic() const;
  std::string ReadingsTopic(std::string_view patient) const;
  std::string AlertsTopic(std::string_view patient) const;
  std::string AckTopic() const;

  // One iteration of the loop, for tests with a fake client: connect if due, publish what the
  // window allows, run the client's I/O. Waits at most `max_wait`.
  void Step(std::chrono::milliseconds max_wait);
  bool connected() const { return connected_; }
  std::size_t inflight() const { return inflight_.size(); }

 private:
  struct Inflight {
    enum class Kind { kStatus, kAlert, kReadings, kVolatileAlert, kVolatileReadings };
    Kind kind = Kind::kReadings;
    std::vector<std::uint64_t> seqs;
    std::int64_t rx_ms = 0;
    std::vector<OutboxRow> rows;  // volatile kinds: the rows, to requeue if not acknowledged
  };

  void Run();
  void Connect();
  void OnConnect(int rc, std::string_view reason);
  void OnDisconnect(int rc, std::string_view reason);
  void OnPublish(int mid);
  void OnMessage(std::string_view topic, std::string_view payload);
  void LinkLost(std::string_view why);
  void RequeueVolatile();
  void Fill();
  bool PublishOneAlert();
  void RefillReadings();
  std::uint64_t OldestPendingSeq() const;
  bool PublishReadings();
  bool PublishVolatile(bool alerts);
  std::string RenderReadings(const std::string& patient, std::span<const OutboxRow* const> rows);
  bool EnsureReader();
  // Opens a sealed body in place; false (logged, counted) when it cannot be opened.
  bool Unseal(OutboxRow& row, bool alert);
  bool Publish(const std::string& topic, const std::string& payload, Inflight entry, bool retain);
  std::string StatusPayload(std::string_view state) const;
  void RefreshSkipSet();

  ForwarderOptions options_;
  ClientFactory make_client_;
  std::unique_ptr<MqttClient> client_;
  std::unique_ptr<OutboxReader> reader_;
  std::int64_t next_reader_attempt_ns_ = 0;
  DeliveryQueue& delivered_;
  VolatileQueue& volatile_;
  SpscRing<AckRequest>& acks_out_;
  Doorbell& wake_engine_;
  Doorbell& wake_self_;
  const Clock& clock_;
  const IdFormat& ids_;
  GatewayStats& stats_;
  PayloadSealer* sealer_;

  bool connected_ = false;
  bool connecting_ = false;
  int attempts_ = 0;
  std::int64_t next_attempt_ns_ = 0;
  std::int64_t last_misc_ns_ = 0;
  std::map<int, Inflight> inflight_;
  std::uint64_t alert_cursor_ = 0;    // highest alert seq published on this connection
  std::uint64_t reading_cursor_ = 0;  // highest reading seq read from the outbox
  std::deque<OutboxRow> alerts_pending_;
  std::map<std::string, std::deque<OutboxRow>> readings_pending_;  // per patient, seq order
  std::deque<std::string> patient_turns_;  // round-robin over patients with pending rows
  std::size_t readings_pending_count_ = 0;
  // Delivered rows whose deletion the store has not committed yet, by ticket.
  std::deque<std::pair<std::uint64_t, std::vector<std::uint64_t>>> undeleted_;
  std::unordered_set<std::uint64_t> skip_;
  int status_mid_ = -1;
  bool offline_acked_ = false;
  bool stopping_ = false;
  std::string lost_reason_;  // set inside client callbacks, handled after the loop call returns
  std::int64_t connect_started_ns_ = 0;
  std::int64_t last_oldest_ns_ = 0;
  bool alerts_dirty_ = true;    // the outbox may hold alerts not read yet
  bool readings_dirty_ = true;  // the outbox may hold readings not read yet
  std::uint64_t seen_alert_commits_ = 0;
  std::uint64_t seen_reading_commits_ = 0;
  std::string broker_name_;
  RateLimiter log_limiter_{30'000'000'000};
  std::uint64_t suppressed_ = 0;
  RateLimiter downlink_limiter_;
  RateLimiter read_error_limiter_;
  std::uint64_t read_errors_suppressed_ = 0;
  std::uint64_t downlink_suppressed_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> reconnect_requested_{false};
  bool reconnect_pending_ = false;  // waiting for the window to drain before reconnecting
  std::int64_t reconnect_deadline_ns_ = 0;
  std::thread thread_;
};

}  // namespace vg
