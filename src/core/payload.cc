#include "vitalgate/core/payload.h"

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

std::string_view DeviceName(const PayloadContext& ctx, DeviceIndex d) {
  if (ctx.devices == nullptr || d >= ctx.devices->size()) return {};
  return ctx.devices->Name(d);
}

}  // namespace

void AppendReadingValue(std::string& out, ValueType type, double value) {
  switch (type) {
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

ReadingText TextOf(const Reading& r, const PayloadContext& ctx) {
  const MetricInfo& info = Info(r.metric);
  ReadingText t;
  t.instance = ctx.ids->instance();
  t.id = r.id;
  t.device = DeviceName(ctx, r.device);
  t.metric = info.name;
  t.unit = info.unit;
  t.type = info.type;
  t.value = r.value;
  t.ts_ms = r.ts_ms;
  t.device_ts_ms = r.device_ts_ms;
  t.flags = r.flags & kShownFlags;
  return t;
}

void AppendReadingJson(std::string& out, const ReadingText& t) {
  out += "{\"id\":\"";
  AppendId(out, t.instance, t.id);
  out += "\",\"device\":";
  AppendJsonString(out, t.device);
  out += ",\"metric\":\"";
  out += t.metric;
  out += "\",\"value\":";
  AppendReadingValue(out, t.type, t.value);
  if (!t.unit.empty()) {
    out += ",\"unit\":\"";
    out += t.unit;
    out += '"';
  }
  out += ",\"ts\":\"";
  AppendRfc3339(out, t.ts_ms);
  out += '"';
  if ((t.flags & kFlagClock) != 0 && t.device_ts_ms != 0) {
    out += ",\"device_ts\":\"";
    AppendRfc3339(out, t.device_ts_ms);
    out += '"';
  }
  if ((t.flags & kShownFlags) != 0) {
    out += ",\"flags\":[";
    bool first = true;
    for (const auto& [bit, word] : {std::pair<std::uint8_t, const char*>{kFlagQuestionable, "questionable"},
                                    {kFlagSpot, "spot"},
                                    {kFlagStored, "stored"},
                                    {kFlagClock, "clock"}}) {
      if ((t.flags & bit) == 0) continue;
      if (!first) out += ',';
      first = false;
      out += '"';
      out += word;
      out += '"';
    }
    out += ']';
  }
  out += '}';
}

void AppendAlertJson(std::string& out, const AlertEvent& e, const PayloadContext& ctx) {
  out += "{\"id\":\"";
  ctx.ids->Append(out, e.id);
  out += "\",\"alarm_id\":\"";
  ctx.ids->Append(out, e.alarm_id);
  out += "\",\"patient\":";
  const std::string& patient = ctx.patients->Name(e.patient);
  if (IsPlaceholderPatient(patient)) {
    out += "null";  // a device without a patient
  } else {
    AppendJsonString(out, patient);
  }
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
    AppendJsonString(out, DeviceName(ctx, *e.device));
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
