// Drives the hl7v2 destination's link the way the daemon does, from a JSON plan on stdin, and
// prints one JSON line per step on stdout. Used by test_hl7.py against mllp_server.py.
//
// Plan:
//   {"options": {destination object},
//    "context": {"gateway_id": "...", "devices": {"id": {DeviceInfo fields}},
//                "patients": {"id": {"location": "..."}},
//                "limits": {"patient": {"metric": {"low": 90, "high": 100}}}},
//    "connect_timeout_ms": 5000,
//    "steps": [{"batch": {"kind": "readings"|"alert"|"audit", "patient": "...",
//                         "rows": [{"seq": 1, "patient": "...", "body": {...} or "text"}]},
//               "timeout_ms": 5000},
//              {"close": true}]}
// Output per step: {"rows": [{"kind": "delivered"|"retry"|"rejected", "reason": "..."}]},
// {"failure": "..."}, {"connect_error": "..."} or {"closed": true}.
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "vitalgate/core/metric.h"
#include "vitalgate/forward/hl7.h"

namespace {

using nlohmann::json;

std::shared_ptr<const vg::RenderContext> MakeContext(const json& c) {
  auto ctx = std::make_shared<vg::RenderContext>();
  ctx->gateway_id = c.value("gateway_id", "");
  ctx->site = c.value("site", "");
  const json devices = c.value("devices", json::object());
  for (const auto& [id, d] : devices.items()) {
    vg::DeviceInfo info;
    info.id = id;
    info.transport = d.value("transport", "");
    info.codec = d.value("codec", "");
    info.ble_address = d.value("ble_address", "");
    info.serial_path = d.value("serial_path", "");
    info.endpoint = d.value("endpoint", "");
    info.serial_number = d.value("serial_number", "");
    info.manufacturer = d.value("manufacturer", "");
    info.model = d.value("model", "");
    ctx->devices[id] = info;
  }
  const json patients = c.value("patients", json::object());
  for (const auto& [id, p] : patients.items()) {
    ctx->patients[id] = vg::PatientInfo{id, p.value("location", "")};
  }
  const json limits = c.value("limits", json::object());
  ctx->limits = [limits](std::string_view patient, vg::Metric metric) {
    vg::ActiveLimits l;
    const auto p = limits.find(std::string(patient));
    if (p == limits.end()) return l;
    const auto m = p->find(std::string(vg::Info(metric).name));
    if (m == p->end()) return l;
    if (m->contains("low")) l.low = m->at("low").get<double>();
    if (m->contains("high")) l.high = m->at("high").get<double>();
    return l;
  };
  return ctx;
}

std::string_view KindName(vg::RowOutcome::Kind k) {
  switch (k) {
    case vg::RowOutcome::Kind::kDelivered: return "delivered";
    case vg::RowOutcome::Kind::kRetry: return "retry";
    case vg::RowOutcome::Kind::kRejected: return "rejected";
  }
  return "?";
}

int Run(const json& plan) {
  const vg::DestinationDescriptor& desc = vg::Hl7Destination();
  const json options = plan.at("options");
  if (const vg::Status s = desc.check(options, "destinations[0]"); !s.ok()) {
    std::cout << json{{"check_error", s.message()}}.dump() << std::endl;
    return 0;
  }
  auto made = desc.make(options);
  if (!made.ok()) {
    std::cout << json{{"make_error", made.status().message()}}.dump() << std::endl;
    return 0;
  }
  std::unique_ptr<vg::RequestLink> link = std::move(*made);
  const auto context = MakeContext(plan.value("context", json::object()));
  const std::chrono::milliseconds connect_timeout(plan.value("connect_timeout_ms", 5000));
  bool connected = false;
  for (const json& step : plan.at("steps")) {
    if (step.value("close", false)) {
      link->Close();
      connected = false;
      std::cout << json{{"closed", true}}.dump() << std::endl;
      continue;
    }
    if (!connected) {
      const vg::Status s = link->Connect(connect_timeout);
      if (!s.ok()) {
        std::cout << json{{"connect_error", s.message()}}.dump() << std::endl;
        continue;
      }
      connected = true;
    }
    const json& b = step.at("batch");
    std::vector<vg::OutboxRow> rows;
    for (const json& r : b.at("rows")) {
      const json& body = r.at("body");
      rows.push_back({r.value("seq", std::uint64_t{0}), r.value("patient", b.value("patient", "")),
                      body.is_string() ? body.get<std::string>() : body.dump(), 0});
    }
    vg::DeliveryBatch batch;
    const std::string kind = b.value("kind", "readings");
    batch.kind = kind == "alert"   ? vg::DeliveryBatch::Kind::kAlert
                 : kind == "audit" ? vg::DeliveryBatch::Kind::kAudit
                                   : vg::DeliveryBatch::Kind::kReadings;
    batch.patient = b.value("patient", "");
    for (const vg::OutboxRow& r : rows) batch.rows.push_back(&r);
    batch.context = context;
    const vg::DeliveryOutcome out =
        link->Deliver(batch, std::chrono::milliseconds(step.value("timeout_ms", 10000)));
    if (out.failure) {
      connected = false;
      std::cout << json{{"failure", out.failure->reason}}.dump() << std::endl;
      continue;
    }
    json result = json::array();
    for (const vg::RowOutcome& o : out.rows) {
      result.push_back({{"kind", KindName(o.kind)}, {"reason", o.reason}});
    }
    std::cout << json{{"rows", result}}.dump() << std::endl;
  }
  link->Close();
  return 0;
}

}  // namespace

int main() {
  const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const json plan = json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (plan.is_discarded() || !plan.is_object() || !plan.contains("options") ||
      !plan.contains("steps")) {
    std::cerr << "hl7_driver: stdin: expected a JSON plan with options and steps\n";
    return 2;
  }
  try {
    return Run(plan);
  } catch (const json::exception& e) {
    std::cerr << "hl7_driver: plan: " << e.what() << "\n";
    return 2;
  }
}
