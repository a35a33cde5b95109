// GatewayStats: the process-wide counters behind /metrics, /healthz, sd_notify STATUS= and the
// watchdog. Every field is an atomic written by the one thread that owns the event it counts
// and read by anyone; relaxed ordering is enough for monitoring figures.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace vg {

using Counter = std::atomic<std::uint64_t>;

// A short status text written by one thread and read by others (rarely; not a hot path).
class SharedText {
 public:
  void Set(std::string text) {
    std::lock_guard lock(mu_);
    text_ = std::move(text);
  }
  std::string Get() const {
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  mutable std::mutex mu_;
  std::string text_;
};

// Cumulative histogram with fixed bucket bounds (milliseconds), Prometheus style.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 13> kBoundsMs{1,   2,   5,    10,   20,   50,   100,
                                                    200, 500, 1000, 2000, 5000, 10000};
  void Observe(double ms) {
    std::size_t i = 0;
    while (i < kBoundsMs.size() && ms > kBoundsMs[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(ms * 1000.0), std::memory_order_relaxed);
  }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_ms() const { return static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1000.0; }

 private:
  std::array<Counter, kBoundsMs.size() + 1> buckets_{};
  Counter count_{0};
  Counter sum_us_{0};
};

struct DeviceStats {
  std::string id;
  std::string transport;
  Counter readings{0};       // decoded and accepted into the pipeline
  Counter invalid{0};        // implausible or wrongly typed values, unknown patients
  Counter dropped{0};        // lost because the engine queue was full
  Counter decode_errors{0};  // undecodable frames or lines
  Counter clock_implausible{0};  // device time outside the accepted window or moving back
  Counter questionable{0};   // flagged questionable by the device (forwarded, not evaluated)
  Counter unassigned{0};     // received while the device had no patient (not evaluated)
  Counter duplicates{0};     // records the device sent again (recognised, not forwarded)
  std::atomic<bool> link_up{false};
  std::atomic<bool> removed{false};  // no longer configured (kept for its counters)
  std::atomic<std::int64_t> last_reading_ms{0};
  std::atomic<std::int64_t> clock_offset_ms{0};  // learned device clock offset (BLE CTS)
  std::atomic<double> battery_pct{-1};           // latest battery reading; -1: unknown
};

// One destination of the outbox (the primary MQTT broker, a FHIR server, an HL7 engine).
struct DestinationStats {
  std::string name;
  std::string type;
  std::string target;
  std::atomic<bool> connected{false};
  Counter readings_delivered{0};
  Counter events_delivered{0};
  Counter dead_letters{0};
  Counter failures{0};
  std::atomic<std::int64_t> oldest_unacked_rx_ms{0};  // 0: nothing waiting
  std::atomic<std::uint64_t> backlog_readings{0};
  std::atomic<std::uint64_t> backlog_events{0};
  SharedText last_error;
};

struct GatewayStats {
  explicit GatewayStats(std::size_t device_count = 0) : devices(device_count) {
    for (auto& d : devices) d = std::make_unique<DeviceStats>();
  }
  // By DeviceIndex. Grows (never shrinks) on the control thread when a reload adds devices;
  // only the control thread (the I/O thread: HTTP, reload) iterates it, other threads keep
  // references to their own entries.
  std::vector<std::unique_ptr<DeviceStats>> devices;
  // Fixed at start; [0] is the primary MQTT destination.
  std::vector<std::unique_ptr<DestinationStats>> destinations;

  // Engine thread.
  Counter readings_accepted{0};
  Counter alerts_raised{0};  // alert events produced
  Counter acks_applied{0};
  Counter acks_rejected{0};
  Counter readings_store_dropped{0};  // the store could not take them (disk stuck)
  Counter engine_loops{0};
  // Store thread.
  Counter readings_committed{0};
  Counter alerts_committed{0};
  Counter store_commits{0};
  Counter store_errors{0};
  Counter readings_evicted{0};  // undelivered readings dropped to respect storage.max_bytes
  Counter store_loops{0};
  std::atomic<std::uint64_t> backlog_readings{0};
  std::atomic<std::uint64_t> backlog_alerts{0};
  std::atomic<std::uint64_t> backlog_bytes{0};
  std::atomic<bool> store_healthy{true};
  // Forwarder thread.
  Counter readings_delivered{0};  // acknowledged by the broker
  Counter alerts_delivered{0};
  Counter messages_published{0};
  Counter publish_errors{0};
  Counter downlink_rejected{0};
  std::array<Counter, 8> downlink_refused{};  // by DownlinkRefusal (forward/downlink.h)
  Counter broker_connects{0};
  Counter forwarder_loops{0};
  std::atomic<bool> broker_connected{false};
  std::atomic<std::int64_t> oldest_unacked_rx_ms{0};
  SharedText broker_error;  // why the broker link is down, for /healthz
  std::array<Counter, 7> tls_failures{};  // by TlsFailure (forward/mqtt_client.h)
  // Set while the broker refuses the gateway's client certificate (the `certificate` alarm).
  SharedText client_certificate_rejected;
  LatencyHistogram publish_latency;  // receive -> PUBACK, per message
};

}  // namespace vg
