#include "vitalgate/core/payload.h"

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"

namespace vg {

void AppendReadingValue(std::string& out, Metric metric, double value) {
  switch (Info(metric).type) {
    case ValueType::kNumber:
      AppendJsonNumber(out, value);
      break;
    case ValueType::kAcvpu:
      out += '"';
      out += AcvpuLetter(value);
      out += '"';
      break;
    case ValueType::kBool:
      out += value != 0 ? "true" : "false";
      break;
  }
}

void AppendReadingJson(std::string& out, const Reading& r, const PayloadContext& ctx) {
  const MetricInfo& info = Info(r.metric);
  out += "{\"id\":\"";
  ctx.ids->Append(out, r.id);
  out += "\",\"device\":";
  AppendJsonString(out, r.device < ctx.devices.size() ? ctx.devices[r.device] : std::string());
  out += ",\"metric\":\"";
  out += info.name;
  out += "\",\"value\":";
  AppendReadingValue(out, r.metric, r.value);
  if (!info.unit.empty()) {
    out += ",\"unit\":\"";
    out += info.unit;
    out += '"';
  }
  out += ",\"ts\":\"";
  AppendRfc3339(out, r.ts_ms);
  out += '"';
  if ((r.flags & kFlagQuestionable) != 0) out += ",\"flags\":[\"questionable\"]";
  out += '}';
}

void AppendAlertJson(std::string& out, const AlertEvent& e, const PayloadContext& ctx) {
  out += "{\"id\":\"";
  ctx.ids->Append(out, e.id);
  out += "\",\"alarm_id\":\"";
  ctx.ids->Append(out, e.alarm_id);
  out += "\",\"patient\":";
  AppendJsonString(out, ctx.patients->Name(e.patient));
  out += ",\"kind\":\"";
  out += Name(e.kind);
  out += '"';
  if (e.metric) {
    out += ",\"metric\":\"";
    out += Info(*e.metric).name;
    out += '"';
  }
  out += ",\"priority\":\"";
  out += Name(e.priority);
  out += "\",\"state\":\"";
  out += Name(e.state);
  out += '"';
  if (e.news2) {
    out += ",\"score\":";
    AppendUint(out, static_cast<std::uint64_t>(e.news2->score));
    out += ",\"risk\":\"";
    out += e.news2->risk;
    out += "\",\"subscores\":{";
    static constexpr const char* kNames[] = {"resp_rate", "spo2", "air_or_oxygen", "bp_systolic",
                                             "pulse", "consciousness", "temperature"};
    for (std::size_t i = 0; i < e.news2->sub.size(); ++i) {
      if (i > 0) out += ',';
      out += '"';
      out += kNames[i];
      out += "\":";
      AppendUint(out, static_cast<std::uint64_t>(e.news2->sub[i]));
    }
    out += '}';
  } else if (e.value) {
    out += ",\"value\":";
    if (e.metric && e.kind == AlertKind::kThreshold) {
      AppendReadingValue(out, *e.metric, *e.value);
    } else {
      AppendJsonNumber(out, *e.value);
    }
  }
  if (e.limit) {
    out += ",\"limit\":";
    AppendJsonNumber(out, *e.limit);
  }
  if (e.device) {
    out += ",\"device\":";
    AppendJsonString(out, *e.device < ctx.devices.size() ? ctx.devices[*e.device] : std::string());
  }
  if (e.condition) {
    out += ",\"condition\":\"";
    out += Name(*e.condition);
    out += '"';
  }
  out += ",\"message\":";
  AppendJsonString(out, e.message);
  if (!e.acked_by.empty()) {
    out += ",\"acknowledged_by\":";
    AppendJsonString(out, e.acked_by);
  }
  out += ",\"ts\":\"";
  AppendRfc3339(out, e.ts_ms);
  out += "\",\"raised_ts\":\"";
  AppendRfc3339(out, e.raised_ts_ms);
  out += "\"}";
}

}  // namespace vg
