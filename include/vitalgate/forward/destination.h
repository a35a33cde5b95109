// Destinations: where the outbox delivers to, besides (or instead of) the primary MQTT broker.
//
// The outbox feeds every configured destination (docs/config.md, `destinations`). Each has its
// own delivery cursor, retry and backoff, and its own thread, so a dead destination never holds
// another back. The delivery core (what to send next: alerts first, each patient's readings in
// order, what was not acknowledged is sent again) is shared; a destination type only supplies a
// RequestLink: how to connect, and how to deliver one batch and read the answer.
//
// A RequestLink is owned and driven by one destination thread; it may block, but every call
// is bounded by the timeout it is given. Rendering (FHIR, HL7 v2) happens inside Deliver() from
// the canonical JSON of each row (docs/mqtt.md) and the RenderContext.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "vitalgate/core/metric.h"
#include "vitalgate/core/options.h"
#include "vitalgate/core/status.h"
#include "vitalgate/store/outbox.h"

namespace vg {

// What a destination may need to know about a configured device when it renders a reading.
struct DeviceInfo {
  std::string id;
  std::string transport;      // "serial", "ble", "tcp", "exec", "simulator", "plugin"
  std::string codec;          // "masimo", "gatt", ...
  std::string ble_address;    // "C0:FF:EE:00:00:01" for BLE devices, else empty
  std::string serial_path;    // serial port path for serial devices, else empty
  std::string endpoint;       // "host:port" for tcp devices, else empty
  // As configured (devices[].serial_number, .manufacturer, .model); may be empty.
  std::string serial_number;
  std::string manufacturer;
  std::string model;
};

// What a destination may need to know about a patient.
struct PatientInfo {
  std::string id;
  std::string location;  // bed/room as configured (patients[].location), may be empty
};

// Active alarm limits of one metric for one patient (the rules in force), for HL7 OBX-7.
struct ActiveLimits {
  std::optional<double> low;   // least severe low level
  std::optional<double> high;  // least severe high level
};

// Everything rendering may look up besides the row itself. Immutable; replaced as a whole on
// SIGHUP (a batch keeps the context it was built with).
struct RenderContext {
  std::string gateway_id;
  std::string site;
  std::string version;
  std::map<std::string, DeviceInfo, std::less<>> devices;    // by device id
  std::map<std::string, PatientInfo, std::less<>> patients;  // by patient id
  // Limits in force for (patient id, metric); empty when that metric has no threshold rule.
  std::function<ActiveLimits(std::string_view patient, Metric metric)> limits;
};

// One delivery: either one alert event, one audit event, or readings of one patient in the
// order they were accepted. Rows are the canonical JSON objects of docs/mqtt.md (a reading,
// or an alert event); `OutboxRow::patient` is the patient id, or "unassigned/<device>".
struct DeliveryBatch {
  enum class Kind : std::uint8_t { kReadings, kAlert, kAudit };
  Kind kind = Kind::kReadings;
  std::string patient;
  std::vector<const OutboxRow*> rows;
  std::shared_ptr<const RenderContext> context;
};

// The destination's verdict on one row of a batch.
struct RowOutcome {
  enum class Kind : std::uint8_t {
    kDelivered,  // acknowledged (PUBACK, HTTP 2xx for its entry, HL7 AA/CA)
    kRetry,      // not taken this time; send again later (e.g. HL7 AE, a 5xx for its entry)
    kRejected,   // refused for good (e.g. HTTP 4xx for its entry, HL7 AR after retries):
                 // moved to the dead-letter table, alarmed, never blocks the rest
  };
  Kind kind = Kind::kDelivered;
  std::string reason;  // for kRetry/kRejected: what the destination said (no patient values)
};

// What Deliver() returns when the link itself failed (nothing is known about any row): the
// whole batch is retried after `retry_after` (e.g. HTTP 429/503 Retry-After), else the
// destination's backoff.
struct LinkFailure {
  std::string reason;
  std::optional<std::chrono::milliseconds> retry_after;
};

struct DeliveryOutcome {
  std::vector<RowOutcome> rows;        // one per row of the batch, when `failure` is empty
  std::optional<LinkFailure> failure;
};

class RequestLink {
 public:
  virtual ~RequestLink() = default;
  // Opens the connection (TCP, TLS handshake with server verification, optional client
  // certificate). Unavailable: try again after the destination's backoff.
  virtual Status Connect(std::chrono::milliseconds timeout) = 0;
  virtual void Close() = 0;
  // Renders `batch` and delivers it; one RowOutcome per row of the batch, in order, or a
  // LinkFailure when the link broke or the answer could not be read (the caller then closes
  // and reconnects).
  virtual DeliveryOutcome Deliver(const DeliveryBatch& batch, std::chrono::milliseconds timeout) = 0;
  // Human-readable target for logs and the status page, e.g. "https://ehr.example/fhir".
  virtual std::string Describe() const = 0;
};

// How a destination type is configured and built (like transports and codecs).
struct DestinationDescriptor {
  std::string_view type;     // "fhir", "hl7v2"
  std::string_view summary;
  std::span<const OptionSpec> options;  // type-specific keys (the common keys are added)
  // REQUIRES: options validated against `options` (defaults filled in). Errors name the key.
  Result<std::unique_ptr<RequestLink>> (*make)(const nlohmann::json& options);
  // Extra checks beyond the option table (e.g. a URL's scheme, plain transport only to
  // loopback); may be null. `path` names the object in messages, e.g. "destinations[1]".
  Status (*check)(const nlohmann::json& options, std::string_view path);
  // Largest batch this type takes in one Deliver() (readings of one patient).
  std::size_t max_batch = 100;
};

// The destination types this build knows (src/forward/destinations.cc).
std::span<const DestinationDescriptor* const> AllDestinations();
const DestinationDescriptor* FindDestination(std::string_view type);

}  // namespace vg
