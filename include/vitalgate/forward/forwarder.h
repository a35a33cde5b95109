// Forwarder: the primary destination, the MQTT broker. It drives a DeliveryScheduler (what to
// send next: alerts and audit events ahead of readings, each patient's readings in order) over
// an MqttClient (the link: connect with capped, jittered backoff, TLS, the client's I/O on the
// forwarder's own poll loop), publishes with QoS 1 and a bounded window of unacknowledged
// messages, and reports each PUBACK to the store thread, which deletes the rows once every
// destination has them. On a connection loss what was in flight goes back to the front of its
// queue, so per-patient order holds across outages and restarts and every row is delivered at
// least once with the same id.
//
// It alone publishes the retained status message and its last will, and subscribes to the
// downlink (`cmd/#`); inbound messages go to a DownlinkSink (validation and authority are the
// sink's).
// Thread-safety: everything runs on the forwarder thread; RequestStop/RequestReconnect from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/doorbell.h"
#include "vitalgate/core/log.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/forward/mqtt_client.h"
#include "vitalgate/forward/outbox_feed.h"
#include "vitalgate/forward/scheduler.h"
#include "vitalgate/store/delivery_queue.h"
#include "vitalgate/store/volatile_queue.h"

namespace vg {

// Seals a payload for a topic (payload encryption), or returns it unchanged.
class PayloadSealer {
 public:
  virtual ~PayloadSealer() = default;
  virtual Result<std::string> Seal(std::string_view topic, std::string_view payload) = 0;
};

// Receives every inbound MQTT message, on the forwarder thread.
class DownlinkSink {
 public:
  virtual ~DownlinkSink() = default;
  virtual void OnDownlink(std::string_view topic, std::string_view payload, bool retained) = 0;
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
  int bit = 0;                   // this destination's acknowledgement bit in the outbox
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
            VolatileQueue& volatile_in, DownlinkSink* downlink, Doorbell& wake_self,
            const Clock& clock, GatewayStats& stats, DestinationStats& destination,
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
  std::string AuditTopic() const;
  std::string CommandTopic(std::string_view command) const;

  // One iteration of the loop, for tests with a fake client: connect if due, publish what the
  // window allows, run the client's I/O. Waits at most `max_wait`.
  void Step(std::chrono::milliseconds max_wait);
  bool connected() const { return connected_; }
  std::size_t inflight() const { return inflight_.size(); }

 private:
  struct Inflight {
    std::uint64_t token = 0;  // the scheduler's message; 0 for status messages
    DeliveryBatch::Kind kind = DeliveryBatch::Kind::kReadings;
    std::size_t items = 0;
    std::int64_t rx_ms = 0;
  };

  void Run();
  void Connect();
  void OnConnect(int rc, std::string_view reason);
  void OnDisconnect(int rc, std::string_view reason);
  void OnPublish(int mid);
  void OnMessage(std::string_view topic, std::string_view payload, bool retained);
  void LinkLost(std::string_view why);
  void Fill();
  void Report(DoneRows& done);
  // The payload and its topic. `row_errors` (per item, empty when fine) names the stored rows
  // that cannot be rendered (they never will be); then the payload is not to be sent.
  std::string Render(const ScheduledMessage& msg, std::string& topic, std::vector<std::string>& row_errors);
  bool Publish(const std::string& topic, const std::string& payload, Inflight entry, bool retain);
  std::string StatusPayload(std::string_view state) const;

  ForwarderOptions options_;
  ClientFactory make_client_;
  std::unique_ptr<MqttClient> client_;
  DeliveryQueue& delivered_;
  VolatileQueue& volatile_;
  DownlinkSink* downlink_;
  Doorbell& wake_self_;
  const Clock& clock_;
  GatewayStats& stats_;
  DestinationStats& destination_;
  PayloadSealer* sealer_;
  DeliveryScheduler scheduler_;
  OutboxFeed feed_;

  bool connected_ = false;
  bool connecting_ = false;
  int attempts_ = 0;
  std::int64_t next_attempt_ns_ = 0;
  std::int64_t last_misc_ns_ = 0;
  std::map<int, Inflight> inflight_;
  int status_mid_ = -1;
  bool offline_acked_ = false;
  bool stopping_ = false;
  std::string lost_reason_;  // set inside client callbacks, handled after the loop call returns
  std::int64_t connect_started_ns_ = 0;
  std::int64_t last_oldest_ns_ = 0;
  std::string broker_name_;
  RateLimiter log_limiter_{30'000'000'000};
  std::uint64_t suppressed_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> reconnect_requested_{false};
  bool reconnect_pending_ = false;  // waiting for the window to drain before reconnecting
  std::int64_t reconnect_deadline_ns_ = 0;
  std::thread thread_;
};

}  // namespace vg
