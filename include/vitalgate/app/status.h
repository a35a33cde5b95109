// The gateway's state as the people at the box see it: the status page (`GET /`), its JSON
// (`GET /api/status`), `vitalgate status`, /healthz and /metrics all render one snapshot.
//
// The daemon implements StatusSource; the HTTP server asks it for a snapshot per request, on
// the I/O thread. Values are plain data, already safe to copy; rendering must escape every
// string (device names, `by`, reasons are outside input).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vg {

struct DestinationStatus {
  std::string name;    // "mqtt" is the primary broker
  std::string type;    // "mqtt", "fhir", "hl7v2"
  std::string target;  // e.g. "mqtts://broker:8883", "https://ehr/fhir"
  bool connected = false;
  std::string last_error;           // why the link is down; empty when up
  std::uint64_t backlog_readings = 0;
  std::uint64_t backlog_events = 0;
  std::optional<double> oldest_unsent_age_s;  // none: nothing waiting
  double backlog_alarm_s = 0;       // its limit (the `destination` alarm)
  std::uint64_t readings_delivered = 0;
  std::uint64_t dead_letters = 0;
};

struct DeviceStatus {
  std::string id;
  std::string patient;   // empty: no patient (unassigned)
  std::string location;  // the patient's bed/room, may be empty
  std::string transport;
  bool link_up = false;
  bool intermittent = false;  // connects only to send (spot devices): judged by no-data time
  std::optional<double> last_reading_age_s;
  double no_data_s = 0;       // its no-data time
  std::optional<double> battery_pct;
  std::optional<int> rssi_dbm;  // signal strength where the transport knows it
  std::uint64_t readings = 0;
  std::uint64_t decode_errors = 0;
  std::uint64_t invalid = 0;
  std::uint64_t clock_implausible = 0;
  std::optional<double> clock_offset_s;  // learned from the device (BLE Current Time)
};

struct AlarmStatus {
  std::string alarm_id;
  std::string patient;  // empty for a device without a patient
  std::string device;   // technical alarms
  std::string kind;     // threshold, trend, news2, technical
  std::string what;     // metric or condition
  std::string priority;  // high, medium, low
  std::string state;     // active, acknowledged
  std::string message;
  std::int64_t raised_ms = 0;
  std::string acknowledged_by;
};

struct AuditStatus {
  std::uint64_t seq = 0;
  std::int64_t ts_ms = 0;
  std::string kind;   // ack, assign, reload, certificate, login, ...
  std::string actor;
  std::string detail;  // a JSON object, as text
};

struct CertificateStatus {
  std::string role;  // "mqtt.tls.ca_file", "mqtt.tls.cert_file", "destinations[0].tls.cert_file", "http.tls.cert_file"
  std::string path;
  std::string subject;
  std::int64_t not_after_s = 0;  // Unix seconds
  bool rejected = false;         // the peer refused it (e.g. unknown CA)
};

struct StatusSnapshot {
  std::string gateway_id;
  std::string site;
  std::string version;
  std::int64_t now_ms = 0;
  std::int64_t started_ms = 0;
  bool storage_healthy = true;
  std::string storage_error;
  std::uint64_t backlog_readings = 0;  // in the outbox, any destination
  std::uint64_t backlog_events = 0;
  std::uint64_t backlog_bytes = 0;     // bytes of undelivered bodies
  std::vector<DestinationStatus> destinations;
  std::vector<DeviceStatus> devices;
  std::vector<AlarmStatus> alarms;   // open alarms, most severe first
  std::vector<AuditStatus> audit;    // recent entries, newest first
  std::vector<CertificateStatus> certificates;
  bool last_reload_ok = true;
  std::int64_t last_reload_ms = 0;   // 0: never reloaded
  std::string last_reload_error;
};

class StatusSource {
 public:
  virtual ~StatusSource() = default;
  // I/O thread.
  virtual StatusSnapshot Snapshot() const = 0;
};

}  // namespace vg
