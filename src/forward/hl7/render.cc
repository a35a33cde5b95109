// Rendering of outbox rows into IHE PCD-01 (ORU^R01) and PCD-04 (ORU^R40) messages.
// docs/hl7.md shows the layout segment by segment.
#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <cmath>
#include <ctime>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "codes.h"
#include "vitalgate/core/hex.h"
#include "vitalgate/core/patient_directory.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/forward/hl7.h"

namespace vg::hl7 {
namespace {

using nlohmann::json;

constexpr std::string_view kVersion = "2.6";
constexpr std::string_view kCharset = "UNICODE UTF-8";
constexpr int kNews2Vmd = 9;  // NEWS2 is computed by the gateway: no device, no VMD row

// ---- small formatting helpers --------------------------------------------------------------

// NM values: plain decimal, never an exponent (HL7 NM has none), shortest that round-trips.
std::string FormatNumber(double v) {
  if (v == 0) v = 0;  // no "-0"
  std::array<char, 64> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed);
  if (ec != std::errc()) return "0";
  return std::string(buf.data(), end);
}

std::string Index(std::size_t n) { return std::to_string(n); }

// OBX-4 "mds.vmd.channel.metric".
std::string SubId(int mds, int vmd, int channel, int metric) {
  return std::to_string(mds) + "." + std::to_string(vmd) + "." + std::to_string(channel) + "." +
         std::to_string(metric);
}

// MSH-10: a letter for the message kind and 19 hex digits of SHA-256 over the row ids, so the
// same content always gets the same control id (20 characters, the HL7 v2.6 length of ST 20).
std::string ControlId(char kind, const std::vector<std::string_view>& ids) {
  std::string data;
  for (std::string_view id : ids) {
    data += id;
    data += '\n';
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out(1, kind);
  for (std::size_t i = 0; out.size() < 20 && i < len; ++i) {
    out += kHex[md[i] >> 4];
    if (out.size() < 20) out += kHex[md[i] & 0x0F];
  }
  return out;
}

// Splits configured text on `sep` into components or subcomponents, each escaped.
std::string EncodeSplit(std::string_view text, char sep) {
  std::string out;
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = text.find(sep, start);
    AppendEscaped(out, text.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) break;
    out += sep;
    start = pos + 1;
  }
  return out;
}

SegmentWriter& Code(SegmentWriter& w, std::size_t field, const Coded& c) {
  return w.Components(field, {c.code, c.text, c.system, c.alt_code, c.alt_text, c.alt_system});
}

// OBX-18 / EI: who observed it.
struct Equipment {
  std::string entity;
  std::string namespace_id;
  std::string universal;
  std::string universal_type;
};

Equipment DeviceEquipment(std::string_view device, const RenderContext* ctx) {
  if (ctx != nullptr) {
    const auto it = ctx->devices.find(device);
    if (it != ctx->devices.end() && !it->second.ble_address.empty()) {
      if (auto eui = Eui64FromBluetoothAddress(it->second.ble_address)) {
        return {*eui, std::string(device), *eui, "EUI-64"};
      }
    }
  }
  return {std::string(device), ctx != nullptr ? ctx->gateway_id : std::string(), {}, {}};
}

Equipment GatewayEquipment(const RenderContext* ctx, const MessageOptions& o) {
  return {ctx != nullptr ? ctx->gateway_id : std::string(), o.sending_application, {}, {}};
}

SegmentWriter& WriteEquipment(SegmentWriter& w, std::size_t field, const Equipment& e) {
  return w.Components(field, {e.entity, e.namespace_id, e.universal, e.universal_type});
}

// ---- segments shared by both messages -------------------------------------------------------

void WriteMsh(std::string& out, const MessageOptions& o, std::int64_t now_ms,
              std::string_view event, std::string_view control_id, std::string_view profile) {
  const std::string structure = "ORU_" + std::string(event);
  SegmentWriter(out, "MSH")
      .Text(3, o.sending_application)
      .Text(4, o.sending_facility)
      .Text(5, o.receiving_application)
      .Text(6, o.receiving_facility)
      .Text(7, FormatDtm(now_ms))
      .Components(9, {"ORU", event, structure})
      .Text(10, control_id)
      .Text(11, o.processing_id)
      .Text(12, kVersion)
      .Text(15, "AL")  // accept (commit) acknowledgement always
      .Text(16, "NE")  // no application acknowledgement (IHE PCD)
      .Text(18, kCharset)
      .Components(21, {Part::Encoded(profile)})
      .End();
}

bool HasPatient(std::string_view patient) {
  return !patient.empty() && !IsPlaceholderPatient(patient);
}

// PID (and PV1 with the configured bed/location). A device without a patient is sent with an
// empty PID-3: the interface engine decides (docs/hl7.md).
void WritePatient(std::string& out, std::string_view patient, const MessageOptions& o,
                  const RenderContext* ctx) {
  SegmentWriter pid(out, "PID");
  if (HasPatient(patient)) {
    const std::string authority = EncodeSplit(o.assigning_authority, '&');
    pid.Components(3, {patient, "", "", Part::Encoded(authority), "MR"});
  }
  pid.End();
  if (ctx == nullptr || !HasPatient(patient)) return;
  const auto it = ctx->patients.find(patient);
  if (it == ctx->patients.end() || it->second.location.empty()) return;
  const std::string location = EncodeSplit(it->second.location, '^');
  SegmentWriter(out, "PV1").Text(2, "U").Components(3, {Part::Encoded(location)}).End();
}

void WriteObr(std::string& out, std::size_t set_id, std::string_view placer,
              std::string_view filler, const Coded& service, std::int64_t start_ms,
              std::optional<std::int64_t> end_ms, std::string_view parent,
              const MessageOptions& o) {
  SegmentWriter obr(out, "OBR");
  obr.Text(1, Index(set_id))
      .Components(2, {placer, o.sending_application})
      .Components(3, {filler, o.sending_application});
  Code(obr, 4, service).Text(7, FormatDtm(start_ms));
  if (end_ms) obr.Text(8, FormatDtm(*end_ms));
  if (!parent.empty()) {
    const std::string filler_id = JoinSubcomponents({parent, o.sending_application});
    obr.Components(29, {"", Part::Encoded(filler_id)});
  }
  obr.End();
}

void WriteNote(std::string& out, std::string_view text) {
  SegmentWriter(out, "NTE").Text(1, "1").Text(3, text).End();
}

// ---- readings (PCD-01) ----------------------------------------------------------------------

struct ReadingRow {
  std::size_t index = 0;
  std::string id;
  std::string device;
  Metric metric = Metric::kHeartRate;
  double value = 0;  // number, ACVPU code or 0/1
  std::int64_t ts_ms = 0;
  std::vector<std::string> flags;
  std::string device_ts;
};

std::optional<std::string> StringField(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

Result<std::int64_t> TimeField(const json& j, const char* key) {
  const auto text = StringField(j, key);
  if (!text) return InvalidArgument(std::string(key) + ": missing");
  auto t = ParseRfc3339(*text);
  if (!t.ok()) return t.status().WithContext(key);
  return *t;
}

Result<double> ReadingValue(const json& r, Metric metric) {
  const auto it = r.find("value");
  if (it == r.end()) return InvalidArgument("value: missing");
  switch (Info(metric).type) {
    case ValueType::kNumber:
      if (it->is_number() && std::isfinite(it->get<double>())) return it->get<double>();
      return InvalidArgument("value: expected a number");
    case ValueType::kAcvpu:
      if (it->is_string()) {
        if (auto v = AcvpuFromLetter(it->get<std::string>())) return *v;
      } else if (it->is_number() && IsPlausible(metric, it->get<double>())) {
        return it->get<double>();
      }
      return InvalidArgument("value: expected one of A, C, V, P, U");
    case ValueType::kBool:
      if (it->is_boolean()) return it->get<bool>() ? 1.0 : 0.0;
      if (it->is_number() && IsPlausible(metric, it->get<double>())) return it->get<double>();
      return InvalidArgument("value: expected true or false");
  }
  return InvalidArgument("value: unexpected type");
}

Result<ReadingRow> ParseReading(const OutboxRow& row, std::size_t index) {
  const json r = json::parse(row.body, nullptr, /*allow_exceptions=*/false);
  if (r.is_discarded() || !r.is_object()) return InvalidArgument("not a JSON object");
  ReadingRow out;
  out.index = index;
  auto id = StringField(r, "id");
  if (!id || id->empty()) return InvalidArgument("id: missing");
  out.id = std::move(*id);
  const auto name = StringField(r, "metric");
  if (!name) return InvalidArgument("metric: missing");
  const auto metric = MetricFromName(*name);
  if (!metric) return InvalidArgument("metric: unknown");
  out.metric = *metric;
  auto value = ReadingValue(r, *metric);
  if (!value.ok()) return value.status();
  out.value = *value;
  auto ts = TimeField(r, "ts");
  if (!ts.ok()) return ts.status();
  out.ts_ms = *ts;
  out.device = StringField(r, "device").value_or("");
  out.device_ts = StringField(r, "device_ts").value_or("");
  if (const auto f = r.find("flags"); f != r.end() && f->is_array()) {
    for (const json& flag : *f) {
      if (flag.is_string()) out.flags.push_back(flag.get<std::string>());
    }
  }
  return out;
}

bool HasFlag(const ReadingRow& r, std::string_view flag) {
  for (const std::string& f : r.flags) {
    if (f == flag) return true;
  }
  return false;
}

// OBX-7 and OBX-8 from the limits in force: "lo-hi", ">lo" or "<hi"; L, H or N.
void LimitFields(const ActiveLimits& l, double value, std::string& range, std::string& flag) {
  if (l.low && l.high) {
    range = FormatNumber(*l.low) + "-" + FormatNumber(*l.high);
  } else if (l.low) {
    range = ">" + FormatNumber(*l.low);
  } else if (l.high) {
    range = "<" + FormatNumber(*l.high);
  } else {
    return;
  }
  flag = (l.low && value < *l.low) ? "L" : (l.high && value > *l.high) ? "H" : "N";
}

ActiveLimits LimitsFor(const RenderContext* ctx, std::string_view patient, Metric metric) {
  if (ctx == nullptr || !ctx->limits || Info(metric).type != ValueType::kNumber) return {};
  return ctx->limits(patient, metric);
}

class ReadingsMessage {
 public:
  ReadingsMessage(const DeliveryBatch& batch, const MessageOptions& o, std::int64_t now_ms)
      : batch_(batch), o_(o), ctx_(batch.context.get()), now_ms_(now_ms) {}

  Message Render(const std::vector<ReadingRow>& rows) {
    Message m;
    m.type = "ORU^R01";
    std::vector<std::string_view> ids;
    for (const ReadingRow& r : rows) {
      ids.push_back(r.id);
      m.rows.push_back(r.index);
    }
    m.control_id = ControlId('D', ids);
    std::string& out = m.text;
    out.reserve(256 + rows.size() * 220);
    WriteMsh(out, o_, now_ms_, "R01", m.control_id, kPcd01Profile);
    WritePatient(out, batch_.patient, o_, ctx_);

    // One OBR per observation set: the readings of one device with the same time stamp.
    std::vector<std::vector<const ReadingRow*>> sets;
    std::map<std::pair<std::string_view, std::int64_t>, std::size_t> set_of;
    for (const ReadingRow& r : rows) {
      const auto [it, added] = set_of.try_emplace({r.device, r.ts_ms}, sets.size());
      if (added) sets.emplace_back();
      sets[it->second].push_back(&r);
    }
    std::size_t obr = 0;
    for (const auto& set : sets) WriteSet(out, ++obr, set);
    return m;
  }

 private:
  int MdsIndex(std::string_view device) {
    const auto [it, added] = mds_.try_emplace(std::string(device), static_cast<int>(mds_.size()) + 1);
    return it->second;
  }

  void WriteSet(std::string& out, std::size_t obr, const std::vector<const ReadingRow*>& set) {
    const ReadingRow& first = *set.front();
    const std::string ts = FormatDtm(first.ts_ms);
    WriteObr(out, obr, first.id, first.id, kMonitoringService, first.ts_ms, std::nullopt, "", o_);
    const int mds = MdsIndex(first.device);
    const Equipment equipment = DeviceEquipment(first.device, ctx_);

    SegmentWriter mds_row(out, "OBX");
    Code(mds_row.Text(1, Index(++obx_)), 3, kMdsCode).Text(4, SubId(mds, 0, 0, 0)).Text(11, "X");
    WriteEquipment(mds_row.Text(14, ts), 18, equipment).End();
    if (ctx_ != nullptr) {
      const auto dev = ctx_->devices.find(first.device);
      if (dev != ctx_->devices.end()) {
        WriteAttribute(out, kManufacturerCode, SubId(mds, 0, 0, kManufacturerAttribute),
                       dev->second.manufacturer);
        WriteAttribute(out, kModelCode, SubId(mds, 0, 0, kModelAttribute), dev->second.model);
      }
    }
    std::set<int> vmds;
    for (const ReadingRow* r : set) {
      const Placement p = PlacementOf(r->metric);
      if (p.vmd_code == 0 || !vmds.insert(p.vmd).second) continue;
      SegmentWriter vmd(out, "OBX");
      vmd.Text(1, Index(++obx_))
          .Components(3, {std::to_string(p.vmd_code), p.vmd_name, "MDC"})
          .Text(4, SubId(mds, p.vmd, 0, 0))
          .Text(11, "X")
          .End();
    }
    for (const ReadingRow* r : set) WriteReading(out, mds, *r, ts, equipment);
  }

  void WriteAttribute(std::string& out, const Coded& code, const std::string& sub,
                      std::string_view value) {
    if (value.empty()) return;
    SegmentWriter row(out, "OBX");
    Code(row.Text(1, Index(++obx_)).Text(2, "ST"), 3, code)
        .Text(4, sub)
        .Text(5, value)
        .Text(11, "R")
        .End();
  }

  void WriteReading(std::string& out, int mds, const ReadingRow& r, const std::string& ts,
                    const Equipment& equipment) {
    const Placement p = PlacementOf(r.metric);
    const MetricInfo& info = Info(r.metric);
    SegmentWriter obx(out, "OBX");
    obx.Text(1, Index(++obx_));
    switch (info.type) {
      case ValueType::kNumber: obx.Text(2, "NM"); break;
      case ValueType::kAcvpu: obx.Text(2, "ST"); break;
      case ValueType::kBool: obx.Text(2, "CWE"); break;
    }
    Code(obx, 3, ObservationCode(r.metric)).Text(4, SubId(mds, p.vmd, p.vmd == 0 ? 0 : 1, p.metric));
    std::string range;
    std::string flag;
    switch (info.type) {
      case ValueType::kNumber:
        obx.Text(5, FormatNumber(r.value));
        LimitFields(LimitsFor(ctx_, batch_.patient, r.metric), r.value, range, flag);
        break;
      case ValueType::kAcvpu: obx.Text(5, std::string(1, AcvpuLetter(r.value))); break;
      case ValueType::kBool:
        if (r.value != 0) {
          obx.Components(5, {"Y", "Yes", "HL70136"});
        } else {
          obx.Components(5, {"N", "No", "HL70136"});
        }
        break;
    }
    if (const auto unit = UnitCode(r.metric)) Code(obx, 6, *unit);
    obx.Text(7, range).Text(8, flag).Text(11, "R").Text(14, ts);
    if (HasFlag(r, "spot")) {
      obx.Components(17, {"MMEAS", "manual-measurement", "MDC"});
    } else {
      obx.Components(17, {"AMEAS", "auto-measurement", "MDC"});
    }
    WriteEquipment(obx, 18, equipment).End();

    // Flags and the device's own time, which have no OBX field of their own.
    std::string note;
    for (const std::string& f : r.flags) note += (note.empty() ? "flags: " : ", ") + f;
    if (!r.device_ts.empty()) note += (note.empty() ? "" : "; ") + ("device time " + r.device_ts);
    if (!note.empty()) WriteNote(out, note);
  }

  const DeliveryBatch& batch_;
  const MessageOptions& o_;
  const RenderContext* ctx_;
  std::int64_t now_ms_;
  std::size_t obx_ = 0;
  std::map<std::string, int, std::less<>> mds_;
};

// ---- alert events (PCD-04, and NEWS2 scores as PCD-01) -------------------------------------

struct AlertRow {
  std::size_t index = 0;
  std::string id;
  std::string alarm_id;
  std::string kind;
  std::string state;
  std::string priority;
  std::optional<Metric> metric;
  std::optional<double> value;
  std::optional<double> limit;
  std::optional<double> score;
  std::string risk;
  std::map<std::string, double, std::less<>> subscores;
  std::string message;
  std::string device;
  std::string condition;
  std::string acknowledged_by;
  std::int64_t ts_ms = 0;
  std::int64_t raised_ms = 0;
};

bool OneOf(std::string_view v, std::initializer_list<std::string_view> allowed) {
  for (std::string_view a : allowed) {
    if (v == a) return true;
  }
  return false;
}

std::optional<double> NumberField(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number() || !std::isfinite(it->get<double>())) return std::nullopt;
  return it->get<double>();
}

Result<AlertRow> ParseAlert(const OutboxRow& row, std::size_t index) {
  const json a = json::parse(row.body, nullptr, /*allow_exceptions=*/false);
  if (a.is_discarded() || !a.is_object()) return InvalidArgument("not a JSON object");
  AlertRow out;
  out.index = index;
  out.id = StringField(a, "id").value_or("");
  if (out.id.empty()) return InvalidArgument("id: missing");
  out.alarm_id = StringField(a, "alarm_id").value_or(out.id);
  out.kind = StringField(a, "kind").value_or("");
  if (!OneOf(out.kind, {"threshold", "trend", "news2", "technical"})) {
    return InvalidArgument("kind: expected threshold, trend, news2 or technical");
  }
  out.state = StringField(a, "state").value_or("");
  if (!OneOf(out.state, {"active", "acknowledged", "cleared", "ended"})) {
    return InvalidArgument("state: expected active, acknowledged, cleared or ended");
  }
  out.priority = StringField(a, "priority").value_or("");
  if (!OneOf(out.priority, {"high", "medium", "low"})) {
    return InvalidArgument("priority: expected high, medium or low");
  }
  if (const auto name = StringField(a, "metric")) {
    out.metric = MetricFromName(*name);
    if (!out.metric) return InvalidArgument("metric: unknown");
  }
  if ((out.kind == "threshold" || out.kind == "trend") && !out.metric) {
    return InvalidArgument("metric: missing");
  }
  auto ts = TimeField(a, "ts");
  if (!ts.ok()) return ts.status();
  out.ts_ms = *ts;
  out.raised_ms = out.ts_ms;
  if (a.contains("raised_ts")) {
    auto raised = TimeField(a, "raised_ts");
    if (!raised.ok()) return raised.status();
    out.raised_ms = *raised;
  }
  out.value = NumberField(a, "value");
  out.limit = NumberField(a, "limit");
  out.score = NumberField(a, "score");
  out.risk = StringField(a, "risk").value_or("");
  if (const auto s = a.find("subscores"); s != a.end() && s->is_object()) {
    for (const auto& [key, v] : s->items()) {
      if (v.is_number()) out.subscores[key] = v.get<double>();
    }
  }
  out.message = StringField(a, "message").value_or("");
  out.device = StringField(a, "device").value_or("");
  out.condition = StringField(a, "condition").value_or("");
  out.acknowledged_by = StringField(a, "acknowledged_by").value_or("");
  return out;
}

// A NEWS2 event belongs to an alarm unless it is a score change published without one.
bool IsAlarmEvent(const AlertRow& a) {
  return a.kind != "news2" || a.state != "cleared" || a.alarm_id != a.id;
}

std::string_view EventPhase(const AlertRow& a) {
  if (a.state == "cleared" || a.state == "ended") return "end";
  if (a.state == "acknowledged") return "update";
  if (a.id == a.alarm_id) return "start";
  return a.kind == "news2" ? "update" : "escalate";  // re-raised in priority / new score
}

std::string_view PriorityCode(std::string_view priority) {
  return priority == "high" ? "PH" : priority == "medium" ? "PM" : "PL";
}

class AlertMessages {
 public:
  AlertMessages(const DeliveryBatch& batch, const OutboxRow& row, const MessageOptions& o,
                std::int64_t now_ms)
      : o_(o), ctx_(batch.context.get()), now_ms_(now_ms), patient_(row.patient) {
    if (patient_.empty()) patient_ = batch.patient;
  }

  // NEWS2 scores as an observation report (PCD-01).
  Message Scores(const AlertRow& a) {
    Message m = Begin(a, 'N', "R01", kPcd01Profile);
    std::string& out = m.text;
    WriteObr(out, 1, a.id, a.id, kMonitoringService, a.ts_ms, std::nullopt, "", o_);
    const std::string ts = FormatDtm(a.ts_ms);
    const Equipment gateway = GatewayEquipment(ctx_, o_);
    std::size_t obx = 0;
    SegmentWriter total(out, "OBX");
    Code(total.Text(1, Index(++obx)).Text(2, "NM"), 3, kNews2Total).Text(4, Sub(1));
    if (!a.score) {
      // Not computable (a parameter went stale): the message says which.
      WriteEquipment(total.Text(11, "X").Text(14, ts), 18, gateway).End();
      if (!a.message.empty()) WriteNote(out, a.message);
      return m;
    }
    total.Text(5, FormatNumber(*a.score)).Text(11, "R").Text(14, ts);
    WriteEquipment(total, 18, gateway).End();
    if (!a.risk.empty()) {
      SegmentWriter risk(out, "OBX");
      Code(risk.Text(1, Index(++obx)).Text(2, "ST"), 3, kNews2Risk)
          .Text(4, Sub(2))
          .Text(5, a.risk)
          .Text(11, "R")
          .Text(14, ts)
          .End();
    }
    int n = 3;
    for (const News2Part& part : kNews2Parts) {
      const auto it = a.subscores.find(part.key);
      const int sub = n++;
      if (it == a.subscores.end()) continue;
      SegmentWriter row(out, "OBX");
      Code(row.Text(1, Index(++obx)).Text(2, "NM"), 3, part.code)
          .Text(4, Sub(sub))
          .Text(5, FormatNumber(it->second))
          .Text(11, "R")
          .Text(14, ts)
          .End();
    }
    return m;
  }

  // One alarm event (PCD-04).
  Message Alarm(const AlertRow& a) {
    Message m = Begin(a, 'A', "R40", kPcd04Profile);
    std::string& out = m.text;
    const bool ended = a.state == "cleared" || a.state == "ended";
    WriteObr(out, 1, a.id, a.alarm_id, kEventAlarm, a.raised_ms,
             ended ? std::optional(a.ts_ms) : std::nullopt, a.id != a.alarm_id ? a.alarm_id : "",
             o_);
    const std::string source = SourceSubId(a);
    const std::string ts = FormatDtm(a.ts_ms);
    const bool technical = a.kind == "technical";
    const std::optional<Equipment> equipment =
        technical ? std::optional(a.device.empty() ? GatewayEquipment(ctx_, o_)
                                                   : DeviceEquipment(a.device, ctx_))
                  : std::nullopt;

    // 1: alarm type, with its priority and kind in OBX-8 and the text as original text.
    const Coded event = EventCode(a);
    const LocalCode local = LocalCodeOf(a);
    std::string abnormality = "A";
    if (event.code == kEventLow.code) abnormality = "L";
    if (event.code == kEventHigh.code) abnormality = "H";
    SegmentWriter type(out, "OBX");
    Code(type.Text(1, "1").Text(2, "CWE"), 3, kEventAlarm)
        .Text(4, source + ".1")
        .Components(5, {event.code, event.text, event.system, local.code, local.text,
                        kLocalCodingSystem, "", "", a.message})
        .Repeats(8, {abnormality, PriorityCode(a.priority), technical ? "ST" : "SP"})
        .Text(11, "F")
        .Text(14, ts);
    if (equipment) WriteEquipment(type, 18, *equipment);
    type.End();

    // 2: the source: the metric with its value and the limit crossed, the NEWS2 score, or the
    // device (technical alarms).
    WriteSource(out, a, source + ".2", ts, equipment);

    // 3-7: phase, state, inactivation state, priority, kind.
    const bool open = !ended;
    WriteState(out, 3, kEventPhase, source + ".3", EventPhase(a));
    WriteState(out, 4, kAlarmState, source + ".4", open ? "active" : "inactive");
    SegmentWriter inactivation(out, "OBX");
    Code(inactivation.Text(1, "5").Text(2, "ST"), 3, kInactivationState)
        .Text(4, source + ".5")
        .Text(5, a.state == "acknowledged" ? "alert-acknowledged" : "enabled")
        .Text(11, "F")
        .Text(16, a.acknowledged_by)
        .End();
    WriteState(out, 6, kAlarmPriority, source + ".6", PriorityCode(a.priority));
    WriteState(out, 7, kAlertType, source + ".7", technical ? "ST" : "SP");
    return m;
  }

 private:
  struct LocalCode {
    std::string code;
    std::string text;
  };

  static std::string Sub(int metric) { return SubId(1, kNews2Vmd, 1, metric); }

  // MSH and PID/PV1 of a message about one event; `kind` distinguishes its control id.
  Message Begin(const AlertRow& a, char kind, std::string_view event, std::string_view profile) {
    Message m;
    m.type = event == "R01" ? "ORU^R01" : "ORU^R40";
    m.rows.push_back(a.index);
    m.control_id = ControlId(kind, {a.id});
    WriteMsh(m.text, o_, now_ms_, event, m.control_id, profile);
    WritePatient(m.text, patient_, o_, ctx_);
    return m;
  }

  std::string SourceSubId(const AlertRow& a) const {
    if (a.kind == "news2") return Sub(1);
    if (a.metric) {
      const Placement p = PlacementOf(*a.metric);
      return SubId(1, p.vmd, p.vmd == 0 ? 0 : 1, p.metric);
    }
    return SubId(1, 0, 0, 0);
  }

  enum class Side : std::uint8_t { kLow, kHigh, kUnknown };

  // Which limit a threshold alarm is about. The limits in force decide (more severe low levels
  // lie below the least severe one, high levels above); without them the value does, except
  // on clearing, where the value is the one that ended the condition.
  Side SideOf(const AlertRow& a) const {
    if (a.kind != "threshold" || !a.limit) return Side::kUnknown;
    const ActiveLimits l = LimitsFor(ctx_, patient_, *a.metric);
    const double limit = *a.limit;
    if (l.low.has_value() && limit <= *l.low) return Side::kLow;
    if (l.high.has_value() && limit >= *l.high) return Side::kHigh;
    if (l.low.has_value() != l.high.has_value()) return l.low ? Side::kLow : Side::kHigh;
    if (!a.value || a.state == "cleared") return Side::kUnknown;
    return *a.value < limit ? Side::kLow : Side::kHigh;
  }

  Coded EventCode(const AlertRow& a) const {
    switch (SideOf(a)) {
      case Side::kLow: return kEventLow;
      case Side::kHigh: return kEventHigh;
      case Side::kUnknown: break;
    }
    if (a.kind == "technical" && a.condition == "low_battery") return kEventBatteryLow;
    return kEventAlarm;
  }

  static LocalCode LocalCodeOf(const AlertRow& a) {
    if (a.kind == "technical") {
      const std::string condition = a.condition.empty() ? "technical" : a.condition;
      return {condition, std::string(ConditionText(condition))};
    }
    if (a.kind == "news2") return {"news2", "NEWS2 risk " + (a.risk.empty() ? "?" : a.risk)};
    const std::string metric(Info(*a.metric).name);
    if (a.kind == "trend") return {"trend-" + metric, "Trend alarm " + metric};
    return {"threshold-" + metric, "Threshold alarm " + metric};
  }

  void WriteSource(std::string& out, const AlertRow& a, const std::string& sub,
                   const std::string& ts, const std::optional<Equipment>& equipment) {
    SegmentWriter src(out, "OBX");
    src.Text(1, "2");
    if (a.kind == "threshold" && Info(*a.metric).type == ValueType::kNumber) {
      Code(src.Text(2, "NM"), 3, ObservationCode(*a.metric)).Text(4, sub);
      if (a.value) src.Text(5, FormatNumber(*a.value));
      if (const auto unit = UnitCode(*a.metric)) Code(src, 6, *unit);
      src.Text(7, CrossedRange(a)).Text(11, a.value ? "F" : "X").Text(14, ts).End();
      return;
    }
    if (a.kind == "news2") {
      Code(src.Text(2, "NM"), 3, kNews2Total).Text(4, sub);
      if (a.score) src.Text(5, FormatNumber(*a.score));
      src.Text(11, a.score ? "F" : "X").Text(14, ts).End();
      return;
    }
    Code(src.Text(2, "CWE"), 3, kAlertSource).Text(4, sub);
    if (a.metric) {
      Code(src, 5, ObservationCode(*a.metric));
    } else {
      Code(src, 5, a.device.empty() ? kGatewaySource : kMdsCode);
    }
    src.Text(11, "F").Text(14, ts);
    if (equipment) WriteEquipment(src, 18, *equipment);
    src.End();
  }

  // OBX-7 of a threshold alarm's source: the limit crossed, with the other side of the limits
  // in force when known ("85-100": values below 85 alarm; the limit itself does not).
  std::string CrossedRange(const AlertRow& a) const {
    ActiveLimits l = LimitsFor(ctx_, patient_, *a.metric);
    switch (SideOf(a)) {
      case Side::kLow: l.low = a.limit; break;
      case Side::kHigh: l.high = a.limit; break;
      case Side::kUnknown: return {};
    }
    std::string range;
    std::string flag;
    LimitFields(l, a.value.value_or(0), range, flag);
    return range;
  }

  static void WriteState(std::string& out, int set_id, const Coded& code, const std::string& sub,
                         std::string_view value) {
    SegmentWriter row(out, "OBX");
    Code(row.Text(1, Index(static_cast<std::size_t>(set_id))).Text(2, "ST"), 3, code)
        .Text(4, sub)
        .Text(5, value)
        .Text(11, "F")
        .End();
  }

  const MessageOptions& o_;
  const RenderContext* ctx_;
  std::int64_t now_ms_;
  std::string patient_;
};

}  // namespace

std::string FormatDtm(std::int64_t unix_ms) {
  std::int64_t secs = unix_ms / 1000;
  std::int64_t ms = unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  const auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 40> buf{};
  const int n = std::snprintf(buf.data(), buf.size(), "%04d%02d%02d%02d%02d%02d.%03d+0000",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                              tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return std::string(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::optional<std::string> Eui64FromBluetoothAddress(std::string_view address) {
  // "AA:BB:CC:DD:EE:FF" (or with '-'): six hex bytes.
  if (address.size() != 17) return std::nullopt;
  std::string hex;
  for (std::size_t i = 0; i < address.size(); ++i) {
    const char c = address[i];
    if (i % 3 == 2) {
      if (c != ':' && c != '-') return std::nullopt;
      continue;
    }
    if (HexDigit(c) < 0) return std::nullopt;
    hex += static_cast<char>(c >= 'a' && c <= 'f' ? c - 'a' + 'A' : c);
  }
  return hex.substr(0, 6) + "FFFE" + hex.substr(6);
}

RenderedBatch RenderBatch(const DeliveryBatch& batch, const MessageOptions& options,
                          std::int64_t now_ms) {
  RenderedBatch out;
  auto reject = [&out](std::size_t index, const OutboxRow& row, const Status& s) {
    out.rejected.emplace_back(index, "row " + std::to_string(row.seq) + ": " + s.message());
  };
  switch (batch.kind) {
    case DeliveryBatch::Kind::kAudit:
      for (std::size_t i = 0; i < batch.rows.size(); ++i) out.skipped.push_back(i);
      return out;
    case DeliveryBatch::Kind::kReadings: {
      std::vector<ReadingRow> rows;
      for (std::size_t i = 0; i < batch.rows.size(); ++i) {
        auto r = ParseReading(*batch.rows[i], i);
        if (r.ok()) {
          rows.push_back(std::move(*r));
        } else {
          reject(i, *batch.rows[i], r.status());
        }
      }
      if (!rows.empty()) out.messages.push_back(ReadingsMessage(batch, options, now_ms).Render(rows));
      return out;
    }
    case DeliveryBatch::Kind::kAlert:
      for (std::size_t i = 0; i < batch.rows.size(); ++i) {
        auto a = ParseAlert(*batch.rows[i], i);
        if (!a.ok()) {
          reject(i, *batch.rows[i], a.status());
          continue;
        }
        AlertMessages messages(batch, *batch.rows[i], options, now_ms);
        if (a->kind == "news2") out.messages.push_back(messages.Scores(*a));
        if (IsAlarmEvent(*a)) out.messages.push_back(messages.Alarm(*a));
      }
      return out;
  }
  return out;
}

}  // namespace vg::hl7
