// Sample batches covering everything the FHIR rendering emits: every metric of the catalogue,
// blood pressure panels (full, lone values), every reading flag, unassigned devices, every alert
// kind and state, both Bundle types and both patient reference modes. Shared by the validator
// run (fhir_render_all) and the PHD IG checklist test.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "vitalgate/core/metric.h"
#include "vitalgate/forward/fhir.h"

namespace vg::fhir::testing {

struct Sample {
  std::string name;
  std::string patient;
  bool alert = false;
  std::vector<OutboxRow> rows;
  std::shared_ptr<RenderContext> context;
  RenderOptions options;

  RenderedBundle Render() const {
    std::vector<const OutboxRow*> ptrs;
    for (const OutboxRow& r : rows) ptrs.push_back(&r);
    if (alert) return RenderAlert(rows.at(0), *context, options);
    return RenderReadings(patient, ptrs, *context, options);
  }
};

inline std::shared_ptr<RenderContext> SampleContext() {
  auto c = std::make_shared<RenderContext>();
  c->gateway_id = "ward7-gw1";
  c->site = "north";
  c->version = "1.4.0";
  DeviceInfo cuff{"bp-1", "ble", "gatt", "C0:FF:EE:00:00:01", "", "", "SN-4711", "Omron", "HEM-7600T"};
  DeviceInfo ox{"ox-1", "serial", "masimo", "", "/dev/ttyUSB0", "", "", "", ""};
  DeviceInfo meter{"glu-1", "ble", "gatt", "C0:FF:EE:00:00:02", "", "", "GM-1", "Roche", "Guide"};
  DeviceInfo bridge{"ext-1", "exec", "jsonl", "", "", "", "", "", ""};
  for (const DeviceInfo& d : {cuff, ox, meter, bridge}) c->devices[d.id] = d;
  c->patients["p-001"] = PatientInfo{"p-001", "bed 7"};
  return c;
}

inline OutboxRow Row(std::uint64_t seq, const std::string& patient, const std::string& body,
                     std::int64_t rx_ms = 1795323600000) {
  OutboxRow r;
  r.seq = seq;
  r.patient = patient;
  r.body = body;
  r.rx_ms = rx_ms;
  return r;
}

inline std::string ReadingBody(const std::string& id, const std::string& device, const std::string& metric,
                               const std::string& value, const std::string& extra = "") {
  const MetricInfo& info = Info(*MetricFromName(metric));
  std::string body = "{\"id\":\"" + id + "\",\"device\":\"" + device + "\",\"metric\":\"" + metric +
                     "\",\"value\":" + value;
  if (!info.unit.empty()) body += ",\"unit\":\"" + std::string(info.unit) + "\"";
  body += ",\"ts\":\"2026-11-22T05:00:00.000Z\"" + extra + "}";
  return body;
}

inline std::vector<Sample> AllSamples() {
  const auto ctx = SampleContext();
  std::vector<Sample> out;
  auto add_both = [&](const std::string& name, const std::string& patient, std::vector<OutboxRow> rows,
                      bool alert = false, PatientReference mode = PatientReference::kIdentifier) {
    for (BundleType type : {BundleType::kCollection, BundleType::kTransaction}) {
      Sample s;
      s.name = name + (type == BundleType::kCollection ? "-collection" : "-transaction");
      s.patient = patient;
      s.alert = alert;
      s.rows = rows;
      s.context = ctx;
      s.options.bundle_type = type;
      s.options.patient_identifier_system = "urn:oid:1.2.826.0.1.3680043.2.1125.1";
      s.options.patient_reference = mode;
      out.push_back(std::move(s));
    }
  };
  // One reading of every metric, from a device that would measure it.
  std::uint64_t seq = 1;
  for (const MetricInfo& m : AllMetrics()) {
    std::string value = "42";
    std::string device = "ox-1";
    switch (m.metric) {
      case Metric::kSpo2: value = "97"; break;
      case Metric::kTemperature: value = "37.2"; device = "ext-1"; break;
      case Metric::kBpSystolic: case Metric::kBpDiastolic: case Metric::kBpMean:
        value = "120"; device = "bp-1"; break;
      case Metric::kGlucose: value = "104"; device = "glu-1"; break;
      case Metric::kWeight: value = "71.4"; device = "ext-1"; break;
      case Metric::kPerfusionIndex: value = "3.1"; break;
      case Metric::kConsciousness: value = "\"V\""; device = "ext-1"; break;
      case Metric::kOnOxygen: value = "true"; device = "ext-1"; break;
      case Metric::kBattery: value = "81"; device = "bp-1"; break;
      default: break;
    }
    add_both(std::string(m.name), "p-001",
             {Row(seq, "p-001", ReadingBody("1a2b3c4d-" + std::to_string(seq), device, std::string(m.name), value))});
    ++seq;
  }
  // Every ACVPU letter and both oxygen states, glucose from a non-meter bridge.
  std::vector<OutboxRow> assessments;
  for (const char* letter : {"A", "C", "V", "P", "U"}) {
    assessments.push_back(Row(seq, "p-001", ReadingBody("1a2b3c4d-" + std::to_string(seq), "ext-1",
                                                        "consciousness", std::string("\"") + letter + "\"")));
    ++seq;
  }
  assessments.push_back(Row(seq, "p-001", ReadingBody("1a2b3c4d-" + std::to_string(seq), "ext-1", "on_oxygen", "false")));
  ++seq;
  assessments.push_back(Row(seq, "p-001", ReadingBody("1a2b3c4d-" + std::to_string(seq), "ext-1", "glucose", "99")));
  ++seq;
  add_both("assessments", "p-001", assessments);

  const std::string sys = ReadingBody("1a2b3c4d-100", "bp-1", "bp_systolic", "128");
  const std::string dia = ReadingBody("1a2b3c4d-101", "bp-1", "bp_diastolic", "82");
  const std::string mean = ReadingBody("1a2b3c4d-102", "bp-1", "bp_mean", "97");
  const std::string batt = ReadingBody("1a2b3c4d-103", "bp-1", "battery", "64");
  add_both("bp-full", "p-001",
           {Row(100, "p-001", sys), Row(101, "p-001", dia), Row(102, "p-001", mean), Row(103, "p-001", batt)});
  add_both("bp-lone-systolic", "p-001", {Row(100, "p-001", sys)});
  add_both("bp-lone-mean", "p-001", {Row(102, "p-001", mean)});
  add_both("bp-literal-patient", "p-001", {Row(100, "p-001", sys), Row(101, "p-001", dia)}, false,
           PatientReference::kLiteral);
  // Flags: questionable, spot, stored, clock with the device's own time.
  add_both("flags", "p-001",
           {Row(110, "p-001", ReadingBody("1a2b3c4d-110", "ox-1", "spo2", "88", ",\"flags\":[\"questionable\"]")),
            Row(111, "p-001", ReadingBody("1a2b3c4d-111", "bp-1", "bp_systolic", "131", ",\"flags\":[\"spot\"]")),
            Row(112, "p-001", ReadingBody("1a2b3c4d-112", "bp-1", "bp_diastolic", "85", ",\"flags\":[\"spot\"]")),
            Row(113, "p-001", ReadingBody("1a2b3c4d-113", "glu-1", "glucose", "140",
                                          ",\"flags\":[\"stored\"],\"device_ts\":\"2026-11-21T19:30:00.000Z\"")),
            Row(114, "p-001", ReadingBody("1a2b3c4d-114", "ox-1", "pulse_rate", "71",
                                          ",\"flags\":[\"clock\"],\"device_ts\":\"2001-01-01T00:00:07.000Z\""))});
  add_both("unassigned", "unassigned/ox-1",
           {Row(120, "unassigned/ox-1", ReadingBody("1a2b3c4d-120", "ox-1", "spo2", "95")),
            Row(121, "unassigned/ox-1", ReadingBody("1a2b3c4d-121", "ox-1", "heart_rate", "66"))});

  // Alerts: every kind and state.
  const std::string base = ",\"ts\":\"2026-11-22T05:02:00.000Z\",\"raised_ts\":\"2026-11-22T05:01:00.000Z\"";
  add_both("alert-threshold", "p-001",
           {Row(200, "p-001",
                "{\"id\":\"1a2b3c4d-200\",\"alarm_id\":\"a1\",\"patient\":\"p-001\",\"kind\":\"threshold\","
                "\"metric\":\"spo2\",\"priority\":\"high\",\"state\":\"active\",\"value\":84,\"limit\":85,"
                "\"message\":\"SpO2 84 % below 85 %\",\"device\":\"ox-1\"" + base + "}")},
           true);
  add_both("alert-trend-acknowledged", "p-001",
           {Row(201, "p-001",
                "{\"id\":\"1a2b3c4d-201\",\"alarm_id\":\"a2\",\"patient\":\"p-001\",\"kind\":\"trend\","
                "\"metric\":\"spo2\",\"priority\":\"medium\",\"state\":\"acknowledged\",\"value\":91,"
                "\"limit\":3,\"message\":\"SpO2 falling 4 %/10 min\",\"acknowledged_by\":\"nurse-3\"" + base + "}")},
           true);
  add_both("alert-technical-cleared", "p-001",
           {Row(202, "p-001",
                "{\"id\":\"1a2b3c4d-202\",\"alarm_id\":\"a3\",\"patient\":\"p-001\",\"kind\":\"technical\","
                "\"priority\":\"low\",\"state\":\"cleared\",\"condition\":\"sensor_off\",\"device\":\"ox-1\","
                "\"message\":\"ox-1 sensor off\"" + base + "}")},
           true);
  add_both("alert-technical-unassigned", "unassigned/bp-1",
           {Row(203, "unassigned/bp-1",
                "{\"id\":\"1a2b3c4d-203\",\"alarm_id\":\"a4\",\"patient\":\"unassigned/bp-1\",\"kind\":\"technical\","
                "\"priority\":\"medium\",\"state\":\"ended\",\"condition\":\"unassigned\",\"device\":\"bp-1\","
                "\"message\":\"bp-1 has no patient\"" + base + "}")},
           true);
  const std::string subs =
      ",\"subscores\":{\"resp_rate\":2,\"spo2\":1,\"air_or_oxygen\":2,\"bp_systolic\":0,\"pulse\":1,"
      "\"consciousness\":0,\"temperature\":1}";
  add_both("alert-news2", "p-001",
           {Row(204, "p-001",
                "{\"id\":\"1a2b3c4d-204\",\"alarm_id\":\"a5\",\"patient\":\"p-001\",\"kind\":\"news2\","
                "\"priority\":\"medium\",\"state\":\"active\",\"score\":7,\"risk\":\"high\","
                "\"message\":\"NEWS2 7 (high)\"" + subs + base + "}")},
           true);
  add_both("alert-news2-scale2", "p-001",
           {Row(205, "p-001",
                "{\"id\":\"1a2b3c4d-205\",\"alarm_id\":\"a6\",\"patient\":\"p-001\",\"kind\":\"news2\","
                "\"priority\":\"low\",\"state\":\"active\",\"score\":3,\"risk\":\"low-medium\",\"spo2_scale\":2,"
                "\"message\":\"NEWS2 3\"" + subs + base + "}")},
           true);
  return out;
}

inline Sample FindSample(const std::string& name) {
  for (Sample& s : AllSamples()) {
    if (s.name == name) return s;
  }
  throw std::runtime_error("no sample " + name);
}

}  // namespace vg::fhir::testing
