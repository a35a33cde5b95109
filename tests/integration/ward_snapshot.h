// A ward as the status views see it, for the unit tests of the views and for status_fixture
// (the browser tests): devices up and down, alarms open, a destination falling behind.
// Time is fixed, so ages and screenshots are the same on every run.
#pragma once

#include <cstdint>
#include <string>

#include "vitalgate/app/status.h"

namespace vg::testing {

inline constexpr std::int64_t kWardNowMs = 1'796'018'400'000;  // 2026-11-30T06:00:00Z

// hostile: outside strings (acknowledging user, locations, errors, audit) carry markup,
// quotes and bidirectional controls.
inline StatusSnapshot MakeWardSnapshot(bool hostile = false) {
  const std::int64_t now = kWardNowMs;
  StatusSnapshot s;
  s.gateway_id = "ward7-gw1";
  s.site = "north wing";
  s.version = "0.1.0";
  s.now_ms = now;
  s.started_ms = now - (3 * 3600 + 12 * 60) * 1000;
  s.backlog_readings = 412;
  s.backlog_events = 3;
  s.backlog_bytes = 96'512;

  DestinationStatus mqtt;
  mqtt.name = "mqtt";
  mqtt.type = "mqtt";
  mqtt.target = "mqtts://broker.ward7.example:8883";
  mqtt.connected = true;
  mqtt.backlog_readings = 2;
  mqtt.oldest_unsent_age_s = 0.4;
  mqtt.backlog_alarm_s = 900;
  mqtt.readings_delivered = 182'340;
  s.destinations.push_back(mqtt);

  DestinationStatus fhir;
  fhir.name = "ehr";
  fhir.type = "fhir";
  fhir.target = "https://ehr.example/fhir";
  fhir.connected = false;
  fhir.last_error = hostile ? "502 from proxy: </td></tr><script>alert('dest')</script>"
                            : "503 Service Unavailable";
  fhir.backlog_readings = 410;
  fhir.backlog_events = 3;
  fhir.oldest_unsent_age_s = 1260;
  fhir.backlog_alarm_s = 900;
  fhir.readings_delivered = 181'220;
  fhir.dead_letters = 1;
  s.destinations.push_back(fhir);

  auto device = [&](std::string id, std::string patient, std::string location, std::string transport,
                    bool up) {
    DeviceStatus d;
    d.id = std::move(id);
    d.patient = std::move(patient);
    d.location = std::move(location);
    d.transport = std::move(transport);
    d.link_up = up;
    d.no_data_s = 300;
    return d;
  };
  DeviceStatus ox = device("ox-1", "p-001", hostile ? "Bed \"7\" <i>&amp;</i> 'x'" : "ICU^12^1", "serial", true);
  ox.last_reading_age_s = 1.6;
  ox.readings = 11'520;
  ox.decode_errors = 2;
  s.devices.push_back(ox);
  DeviceStatus hr = device("hr-1", "p-001", "ICU^12^1", "ble", true);
  hr.last_reading_age_s = 0.9;
  hr.battery_pct = 76;
  hr.rssi_dbm = -61;
  hr.readings = 11'498;
  s.devices.push_back(hr);
  DeviceStatus bp = device("bp-1", "p-002", "ICU^12^2", "ble", false);
  bp.intermittent = true;
  bp.no_data_s = 3600;
  bp.last_reading_age_s = 25 * 60;
  bp.battery_pct = 54;
  bp.readings = 36;
  s.devices.push_back(bp);
  DeviceStatus temp = device("temp-3", "p-003", "ICU^14^1", "tcp", false);
  temp.last_reading_age_s = 6 * 60 + 5;
  temp.readings = 2'210;
  s.devices.push_back(temp);
  DeviceStatus sim = device("sim-9", "", "", "simulator", true);
  sim.last_reading_age_s = 2.5;
  sim.readings = 4'002;
  s.devices.push_back(sim);

  auto alarm = [&](std::string id, std::string patient, std::string dev, std::string kind,
                   std::string what, std::string priority, std::string message, int age_s) {
    AlarmStatus a;
    a.alarm_id = std::move(id);
    a.patient = std::move(patient);
    a.device = std::move(dev);
    a.kind = std::move(kind);
    a.what = std::move(what);
    a.priority = std::move(priority);
    a.state = "active";
    a.message = std::move(message);
    a.raised_ms = now - age_s * 1000LL;
    return a;
  };
  s.alarms.push_back(alarm("a-7f1", "p-001", "ox-1", "threshold", "spo2", "high",
                           "SpO2 84 % below 85 %", 125));
  s.alarms.push_back(alarm("a-7f4", "p-003", "temp-3", "technical", "disconnected", "high",
                           "temp-3 disconnected", 365));
  AlarmStatus news = alarm("a-7e9", "p-002", "", "news2", "news2", "medium", "NEWS2 5 (medium risk)", 14 * 60);
  news.state = "acknowledged";
  news.acknowledged_by = hostile ? "<script>alert('by')</script>\"nurse\"" : "nurse.kim";
  s.alarms.push_back(news);
  s.alarms.push_back(alarm("a-6c2", "", "sim-9", "technical", "unassigned", "low",
                           "sim-9 has no patient", 3 * 3600));

  auto cert = [](std::string role, std::string path, std::string subject, std::int64_t not_after_s) {
    CertificateStatus c;
    c.role = std::move(role);
    c.path = std::move(path);
    c.subject = std::move(subject);
    c.not_after_s = not_after_s;
    return c;
  };
  const std::int64_t now_s = now / 1000;
  s.certificates.push_back(cert("mqtt.tls.ca_file", "/etc/vitalgate/ca.crt", "CN=Ward 7 CA", now_s + 9 * 365 * 86400LL));
  s.certificates.push_back(cert("mqtt.tls.cert_file", "/etc/vitalgate/gw.crt", "CN=ward7-gw1", now_s + 21 * 86400LL));
  s.certificates.push_back(cert("http.tls.cert_file", "/etc/vitalgate/http.crt", "CN=ward7-gw1.local", now_s + 200 * 86400LL));

  auto audit = [&](std::uint64_t seq, int age_s, std::string kind, std::string actor, std::string detail) {
    AuditStatus a;
    a.seq = seq;
    a.ts_ms = now - age_s * 1000LL;
    a.kind = std::move(kind);
    a.actor = std::move(actor);
    a.detail = std::move(detail);
    return a;
  };
  s.audit.push_back(audit(41, 60, "login", hostile ? "\u202Eevil\u202C admin" : "charge.nurse",
                          hostile ? R"({"result":"failed","address":"127.0.0.1","reason":"<img src=x onerror=alert(1)>"})"
                                  : R"({"result":"ok","address":"10.7.0.12","method":"password"})"));
  s.audit.push_back(audit(40, 14 * 60 - 30, "ack", "nurse.kim", R"({"alarm_id":"a-7e9","patient":"p-002"})"));
  s.audit.push_back(audit(39, 2 * 3600, "assign", "admin", R"({"device":"bp-1","patient":"p-002"})"));
  s.audit.push_back(audit(38, 3 * 3600, "reload", "SIGHUP", R"({"result":"ok","devices_added":1})"));
  s.last_reload_ok = true;
  s.last_reload_ms = now - 3 * 3600 * 1000LL;
  return s;
}

class FixedStatusSource final : public StatusSource {
 public:
  explicit FixedStatusSource(StatusSnapshot s) : snapshot_(std::move(s)) {}
  StatusSnapshot Snapshot() const override { return snapshot_; }
  StatusSnapshot& snapshot() { return snapshot_; }

 private:
  StatusSnapshot snapshot_;
};

}  // namespace vg::testing
