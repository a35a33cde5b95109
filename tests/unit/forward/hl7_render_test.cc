// Rendering of readings (PCD-01) and alert events (PCD-04, NEWS2 scores as PCD-01).
#include <gtest/gtest.h>

#include <memory>

#include "hl7_test_util.h"
#include "vitalgate/core/timefmt.h"

namespace vg::hl7 {
namespace {

using testing::ParseMessage;
using testing::Segment;
using testing::SegmentsOf;

constexpr std::int64_t kNow = 1795323600000;  // 2026-11-22T05:00:00Z

std::shared_ptr<const RenderContext> Context() {
  auto ctx = std::make_shared<RenderContext>();
  ctx->gateway_id = "ward7-gw1";
  ctx->devices["ox-1"] = DeviceInfo{"ox-1", "ble", "gatt", "C0:FF:EE:00:00:01", "", "", "SN1",
                                    "Acme", "OX 9"};
  ctx->devices["bp-1"] = DeviceInfo{"bp-1", "serial", "keyvalue", "", "/dev/ttyUSB0", "", "", "", ""};
  ctx->patients["p-001"] = PatientInfo{"p-001", "W7^12^3"};
  ctx->limits = [](std::string_view patient, Metric m) {
    if (patient != "p-001") return ActiveLimits{};
    if (m == Metric::kSpo2) return ActiveLimits{90, std::nullopt};
    if (m == Metric::kHeartRate) return ActiveLimits{50, 120};
    return ActiveLimits{};
  };
  return ctx;
}

struct Rows {
  std::vector<OutboxRow> rows;
  std::uint64_t seq = 1;
  void Add(std::string body) { rows.push_back({seq++, "p-001", std::move(body), kNow}); }
  DeliveryBatch Batch(DeliveryBatch::Kind kind) const {
    DeliveryBatch b;
    b.kind = kind;
    b.patient = "p-001";
    for (const OutboxRow& r : rows) b.rows.push_back(&r);
    b.context = Context();
    return b;
  }
};

std::string Reading(std::string_view id, std::string_view device, std::string_view metric,
                    std::string_view value, std::string_view ts, std::string_view extra = "") {
  return "{\"id\":\"" + std::string(id) + "\",\"device\":\"" + std::string(device) +
         "\",\"metric\":\"" + std::string(metric) + "\",\"value\":" + std::string(value) +
         ",\"ts\":\"" + std::string(ts) + "\"" + std::string(extra) + "}";
}

MessageOptions Options() {
  MessageOptions o;
  o.sending_application = "VG";
  o.sending_facility = "WARD7";
  o.receiving_application = "ENGINE";
  o.assigning_authority = "HOSP&1.2.3.4&ISO";
  return o;
}

Segment Find(const std::vector<Segment>& segs, std::string_view id, std::size_t nth = 0) {
  const auto all = SegmentsOf(segs, id);
  EXPECT_LT(nth, all.size()) << id;
  return nth < all.size() ? all[nth] : Segment{{std::string(id)}};
}

// The OBX whose OBX-3 code is `code`.
Segment Obx(const std::vector<Segment>& segs, std::string_view code, std::size_t nth = 0) {
  std::size_t seen = 0;
  for (const Segment& s : SegmentsOf(segs, "OBX")) {
    if (s.component(3, 1) == code && seen++ == nth) return s;
  }
  ADD_FAILURE() << "no OBX with code " << code;
  return Segment{{"OBX"}};
}

TEST(Hl7RenderReadings, OneObservationSetPerDeviceAndTime) {
  Rows r;
  r.Add(Reading("a-1", "ox-1", "spo2", "88", "2026-11-22T05:00:00.000Z"));
  r.Add(Reading("a-2", "ox-1", "pulse_rate", "72", "2026-11-22T05:00:00.000Z"));
  r.Add(Reading("a-3", "bp-1", "bp_systolic", "121", "2026-11-22T05:00:10.000Z"));
  r.Add(Reading("a-4", "ox-1", "spo2", "97", "2026-11-22T05:00:01.500Z"));
  const RenderedBatch out = RenderBatch(r.Batch(DeliveryBatch::Kind::kReadings), Options(), kNow);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.rejected.empty());
  const Message& m = out.messages[0];
  EXPECT_EQ(m.rows, (std::vector<std::size_t>{0, 1, 2, 3}));
  const auto segs = ParseMessage(m.text);
  const Segment msh = Find(segs, "MSH");
  EXPECT_EQ(msh.field(3), "VG");
  EXPECT_EQ(msh.field(4), "WARD7");
  EXPECT_EQ(msh.field(5), "ENGINE");
  EXPECT_EQ(msh.field(7), "20261122050000.000+0000");
  EXPECT_EQ(msh.field(9), "ORU^R01^ORU_R01");
  EXPECT_EQ(msh.field(10), m.control_id);
  EXPECT_EQ(m.control_id.size(), 20u);
  EXPECT_EQ(msh.field(11), "P");
  EXPECT_EQ(msh.field(12), "2.6");
  EXPECT_EQ(msh.field(15), "AL");
  EXPECT_EQ(msh.field(16), "NE");
  EXPECT_EQ(msh.field(18), "UNICODE UTF-8");
  EXPECT_EQ(msh.field(21), kPcd01Profile);
  EXPECT_EQ(Find(segs, "PID").field(3), "p-001^^^HOSP&1.2.3.4&ISO^MR");
  EXPECT_EQ(Find(segs, "PV1").field(3), "W7^12^3");

  const auto obrs = SegmentsOf(segs, "OBR");
  ASSERT_EQ(obrs.size(), 3u);  // (ox-1, 05:00:00), (bp-1, 05:00:10), (ox-1, 05:00:01.5)
  EXPECT_EQ(obrs[0].field(7), "20261122050000.000+0000");
  EXPECT_EQ(obrs[0].component(3, 1), "a-1");
  EXPECT_EQ(obrs[1].field(7), "20261122050010.000+0000");
  EXPECT_EQ(obrs[2].field(7), "20261122050001.500+0000");
  EXPECT_EQ(obrs[0].field(4), "182777000^monitoring of patient^SCT");

  const Segment spo2 = Obx(segs, "150456");
  EXPECT_EQ(spo2.field(2), "NM");
  EXPECT_EQ(spo2.field(3), "150456^MDC_PULS_OXIM_SAT_O2^MDC^59408-5^"
                           "Oxygen saturation in Arterial blood by Pulse oximetry^LN");
  EXPECT_EQ(spo2.field(4), "1.1.1.1");
  EXPECT_EQ(spo2.field(5), "88");
  EXPECT_EQ(spo2.field(6), "262688^MDC_DIM_PERCENT^MDC^%^%^UCUM");
  EXPECT_EQ(spo2.field(7), ">90");
  EXPECT_EQ(spo2.field(8), "L");
  EXPECT_EQ(spo2.field(11), "R");
  EXPECT_EQ(spo2.field(14), "20261122050000.000+0000");
  EXPECT_EQ(spo2.field(17), "AMEAS^auto-measurement^MDC");
  EXPECT_EQ(spo2.field(18), "C0FFEEFFFE000001^ox-1^C0FFEEFFFE000001^EUI-64");
  EXPECT_EQ(Obx(segs, "150456", 1).field(8), "N");

  const Segment pulse = Obx(segs, "149530");
  EXPECT_EQ(pulse.field(4), "1.1.1.2");
  EXPECT_EQ(pulse.field(6), "264864^MDC_DIM_BEAT_PER_MIN^MDC^/min^/min^UCUM");
  EXPECT_EQ(pulse.field(7), "");  // no limits for pulse_rate in this context

  const Segment sys = Obx(segs, "150021");
  EXPECT_EQ(sys.field(4), "2.3.1.1");  // second device, NIBP VMD
  EXPECT_EQ(sys.field(18), "bp-1^ward7-gw1");

  // Device rows: the MDS with its identity and attributes, the VMDs with a known code.
  const Segment mds = Obx(segs, "69965");
  EXPECT_EQ(mds.field(4), "1.0.0.0");
  EXPECT_EQ(mds.field(11), "X");
  EXPECT_EQ(mds.field(18), "C0FFEEFFFE000001^ox-1^C0FFEEFFFE000001^EUI-64");
  EXPECT_EQ(Obx(segs, "531970").field(5), "Acme");
  EXPECT_EQ(Obx(segs, "531969").field(5), "OX 9");
  EXPECT_EQ(Obx(segs, "69642").field(4), "1.1.0.0");
  EXPECT_EQ(Obx(segs, "69854").field(4), "2.3.0.0");
}

TEST(Hl7RenderReadings, ControlIdDependsOnReadingIdsOnly) {
  Rows r;
  r.Add(Reading("a-1", "ox-1", "spo2", "88", "2026-11-22T05:00:00.000Z"));
  r.Add(Reading("a-2", "ox-1", "pulse_rate", "72", "2026-11-22T05:00:00.000Z"));
  const auto batch = r.Batch(DeliveryBatch::Kind::kReadings);
  const std::string first = RenderBatch(batch, Options(), kNow).messages[0].control_id;
  EXPECT_EQ(RenderBatch(batch, Options(), kNow + 60000).messages[0].control_id, first);
  Rows other;
  other.Add(Reading("a-1", "ox-1", "spo2", "88", "2026-11-22T05:00:00.000Z"));
  other.Add(Reading("a-3", "ox-1", "pulse_rate", "72", "2026-11-22T05:00:00.000Z"));
  EXPECT_NE(RenderBatch(other.Batch(DeliveryBatch::Kind::kReadings), Options(), kNow)
                .messages[0]
                .control_id,
            first);
}

TEST(Hl7RenderReadings, MetricsWithoutMdcCode) {
  Rows r;
  r.Add(Reading("c-1", "ox-1", "consciousness", "\"V\"", "2026-11-22T05:00:00.000Z"));
  r.Add(Reading("c-2", "ox-1", "on_oxygen", "true", "2026-11-22T05:00:00.000Z"));
  r.Add(Reading("c-3", "ox-1", "battery", "15", "2026-11-22T05:00:00.000Z"));
  const auto segs = ParseMessage(
      RenderBatch(r.Batch(DeliveryBatch::Kind::kReadings), Options(), kNow).messages[0].text);
  const Segment acvpu = Obx(segs, "67775-7");
  EXPECT_EQ(acvpu.field(2), "ST");
  EXPECT_EQ(acvpu.field(3), "67775-7^Level of responsiveness^LN^1104441000000107^ACVPU^SCT");
  EXPECT_EQ(acvpu.field(5), "V");
  const Segment oxygen = Obx(segs, "on_oxygen");
  EXPECT_EQ(oxygen.field(2), "CWE");
  EXPECT_EQ(oxygen.component(3, 3), "99VG");
  EXPECT_EQ(oxygen.field(5), "Y^Yes^HL70136");
  const Segment battery = Obx(segs, "67996");
  EXPECT_EQ(battery.field(4), "1.0.0.1");  // an attribute of the MDS
  EXPECT_EQ(battery.field(5), "15");
  EXPECT_EQ(battery.field(6), "262688^MDC_DIM_PERCENT^MDC^%^%^UCUM");
}

TEST(Hl7RenderReadings, FlagsSpotChecksAndEscapedText) {
  Rows r;
  r.Add(Reading("f-1", "ox|1", "temperature", "37.25", "2026-11-22T05:00:00.000Z",
                ",\"flags\":[\"spot\",\"clock\"],\"device_ts\":\"2019-01-01T00:00:00.000Z\""));
  const auto segs = ParseMessage(
      RenderBatch(r.Batch(DeliveryBatch::Kind::kReadings), Options(), kNow).messages[0].text);
  const Segment temp = Obx(segs, "150364");
  EXPECT_EQ(temp.field(5), "37.25");
  EXPECT_EQ(temp.field(17), "MMEAS^manual-measurement^MDC");
  EXPECT_EQ(temp.field(18), "ox\\F\\1^ward7-gw1");
  EXPECT_EQ(temp.component(18, 1), "ox|1");
  EXPECT_EQ(Find(segs, "NTE").text(3),
            "flags: spot, clock; device time 2019-01-01T00:00:00.000Z");
}

TEST(Hl7RenderReadings, BrokenRowsAreRefusedAndTheRestSent) {
  Rows r;
  r.Add("not json");
  r.Add(Reading("b-2", "ox-1", "lactate", "2", "2026-11-22T05:00:00.000Z"));
  r.Add(Reading("b-3", "ox-1", "spo2", "\"high\"", "2026-11-22T05:00:00.000Z"));
  r.Add(Reading("b-4", "ox-1", "spo2", "95", "yesterday"));
  r.Add(Reading("b-5", "ox-1", "spo2", "95", "2026-11-22T05:00:00.000Z"));
  const RenderedBatch out = RenderBatch(r.Batch(DeliveryBatch::Kind::kReadings), Options(), kNow);
  ASSERT_EQ(out.rejected.size(), 4u);
  EXPECT_EQ(out.rejected[0].second, "row 1: not a JSON object");
  EXPECT_EQ(out.rejected[1].second, "row 2: metric: unknown");
  EXPECT_EQ(out.rejected[2].second, "row 3: value: expected a number");
  EXPECT_EQ(out.rejected[3].first, 3u);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].rows, std::vector<std::size_t>{4});
}

TEST(Hl7RenderReadings, UnassignedDeviceHasNoPatientIdentifier) {
  Rows r;
  r.Add(Reading("u-1", "ox-1", "spo2", "95", "2026-11-22T05:00:00.000Z"));
  auto batch = r.Batch(DeliveryBatch::Kind::kReadings);
  batch.patient = "unassigned/ox-1";
  const auto segs = ParseMessage(RenderBatch(batch, Options(), kNow).messages[0].text);
  EXPECT_EQ(Find(segs, "PID").fields.size(), 2u);  // "PID|"
  EXPECT_EQ(Find(segs, "PID").field(3), "");
  EXPECT_TRUE(SegmentsOf(segs, "PV1").empty());
}

TEST(Hl7RenderAudit, AuditEventsAreNotSent) {
  Rows r;
  r.Add("{\"id\":\"x\",\"kind\":\"reload\"}");
  const RenderedBatch out = RenderBatch(r.Batch(DeliveryBatch::Kind::kAudit), Options(), kNow);
  EXPECT_TRUE(out.messages.empty());
  EXPECT_EQ(out.skipped, std::vector<std::size_t>{0});
}

std::string Alert(std::string_view fields) {
  return "{\"patient\":\"p-001\",\"ts\":\"2026-11-22T05:03:10.000Z\","
         "\"raised_ts\":\"2026-11-22T05:02:55.000Z\"," +
         std::string(fields) + "}";
}

std::vector<Segment> OnlyMessage(const RenderedBatch& out, std::string_view type) {
  EXPECT_EQ(out.messages.size(), 1u);
  if (out.messages.empty()) return {};
  EXPECT_EQ(out.messages[0].type, type);
  return ParseMessage(out.messages[0].text);
}

TEST(Hl7RenderAlarms, ThresholdRaised) {
  Rows r;
  r.Add(Alert(R"("id":"e-1","alarm_id":"e-1","kind":"threshold","metric":"spo2",)"
              R"("priority":"high","state":"active","value":84,"limit":85,)"
              R"("message":"SpO2 84 % below 85 %")"));
  const RenderedBatch out = RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow);
  const auto segs = OnlyMessage(out, "ORU^R40");
  const Segment msh = Find(segs, "MSH");
  EXPECT_EQ(msh.field(9), "ORU^R40^ORU_R40");
  EXPECT_EQ(msh.field(21), kPcd04Profile);
  const Segment obr = Find(segs, "OBR");
  EXPECT_EQ(obr.field(2), "e-1^VG");
  EXPECT_EQ(obr.field(3), "e-1^VG");
  EXPECT_EQ(obr.field(4), "196616^MDC_EVT_ALARM^MDC");
  EXPECT_EQ(obr.field(7), "20261122050255.000+0000");
  EXPECT_EQ(obr.field(8), "");
  EXPECT_EQ(obr.field(29), "");
  const auto obx = SegmentsOf(segs, "OBX");
  ASSERT_EQ(obx.size(), 7u);
  EXPECT_EQ(obx[0].field(3), "196616^MDC_EVT_ALARM^MDC");
  EXPECT_EQ(obx[0].field(4), "1.1.1.1.1");
  EXPECT_EQ(obx[0].component(5, 1), "196672");
  EXPECT_EQ(obx[0].component(5, 2), "MDC_EVT_LO_LT_LIM");
  EXPECT_EQ(obx[0].component(5, 4), "threshold-spo2");
  EXPECT_EQ(obx[0].component(5, 9), "SpO2 84 % below 85 %");
  EXPECT_EQ(obx[0].field(8), "L~PH~SP");
  EXPECT_EQ(obx[1].component(3, 1), "150456");
  EXPECT_EQ(obx[1].field(4), "1.1.1.1.2");
  EXPECT_EQ(obx[1].field(5), "84");
  EXPECT_EQ(obx[1].field(7), ">85");  // the limit crossed (no high limit in force)
  EXPECT_EQ(obx[2].field(3), "68481^MDC_ATTR_EVENT_PHASE^MDC");
  EXPECT_EQ(obx[2].field(5), "start");
  EXPECT_EQ(obx[3].field(3), "68482^MDC_ATTR_ALARM_STATE^MDC");
  EXPECT_EQ(obx[3].field(5), "active");
  EXPECT_EQ(obx[4].field(3), "68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC");
  EXPECT_EQ(obx[4].field(5), "enabled");
  EXPECT_EQ(obx[5].field(3), "68484^MDC_ATTR_ALARM_PRIORITY^MDC");
  EXPECT_EQ(obx[5].field(5), "PH");
  EXPECT_EQ(obx[6].field(3), "68485^MDC_ATTR_ALERT_TYPE^MDC");
  EXPECT_EQ(obx[6].field(5), "SP");
}

TEST(Hl7RenderAlarms, HighLimitUsesTheOtherSideInForce) {
  Rows r;
  r.Add(Alert(R"("id":"e-2","alarm_id":"e-1","kind":"threshold","metric":"heart_rate",)"
              R"("priority":"medium","state":"active","value":141,"limit":130,)"
              R"("message":"HR 141 above 130")"));
  const auto segs = OnlyMessage(RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow),
                                "ORU^R40");
  const auto obx = SegmentsOf(segs, "OBX");
  EXPECT_EQ(obx[0].component(5, 2), "MDC_EVT_HI_GT_LIM");
  EXPECT_EQ(obx[0].field(8), "H~PM~SP");
  EXPECT_EQ(obx[1].field(7), "50-130");
  EXPECT_EQ(obx[2].field(5), "escalate");
  EXPECT_EQ(Find(segs, "OBR").field(3), "e-1^VG");
  EXPECT_EQ(Find(segs, "OBR").field(29), "^e-1&VG");
}

TEST(Hl7RenderAlarms, ClearedLowAlarmStaysLow) {
  // The clearing value lies above a low limit; the limits in force still say which side.
  Rows r;
  r.Add(Alert(R"("id":"e-3","alarm_id":"e-1","kind":"threshold","metric":"spo2",)"
              R"("priority":"high","state":"cleared","value":92,"limit":85,"message":"ok")"));
  const auto segs = OnlyMessage(RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow),
                                "ORU^R40");
  const auto obx = SegmentsOf(segs, "OBX");
  EXPECT_EQ(obx[0].component(5, 2), "MDC_EVT_LO_LT_LIM");
  EXPECT_EQ(obx[0].field(8), "L~PH~SP");
  EXPECT_EQ(obx[1].field(7), ">85");
}

TEST(Hl7RenderAlarms, AcknowledgedClearedAndEnded) {
  for (const auto& [state, phase, alarm_state, inactivation] :
       std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
           {"acknowledged", "update", "active", "alert-acknowledged"},
           {"cleared", "end", "inactive", "enabled"},
           {"ended", "end", "inactive", "enabled"}}) {
    Rows r;
    r.Add(Alert(R"("id":"e-9","alarm_id":"e-1","kind":"trend","metric":"spo2",)"
                R"("priority":"medium","state":")" +
                state + R"(","value":-4,"limit":3,"acknowledged_by":"nurse-7","message":"m")"));
    const auto segs = OnlyMessage(
        RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow), "ORU^R40");
    const auto obx = SegmentsOf(segs, "OBX");
    ASSERT_EQ(obx.size(), 7u) << state;
    EXPECT_EQ(obx[0].component(5, 4), "trend-spo2");
    EXPECT_EQ(obx[0].field(8), "A~PM~SP");
    EXPECT_EQ(obx[1].field(3), "68480^MDC_ATTR_ALERT_SOURCE^MDC");
    EXPECT_EQ(obx[1].component(5, 1), "150456");
    EXPECT_EQ(obx[2].field(5), phase) << state;
    EXPECT_EQ(obx[3].field(5), alarm_state) << state;
    EXPECT_EQ(obx[4].field(5), inactivation) << state;
    EXPECT_EQ(obx[4].field(16), "nurse-7");
    EXPECT_EQ(Find(segs, "OBR").field(8), state == "acknowledged" ? "" : "20261122050310.000+0000");
  }
}

TEST(Hl7RenderAlarms, TechnicalAlarmNamesTheDevice) {
  Rows r;
  r.Add(Alert(R"("id":"t-1","alarm_id":"t-1","kind":"technical","device":"ox-1",)"
              R"("condition":"low_battery","priority":"low","state":"active","message":"b")"));
  r.Add(Alert(R"("id":"t-2","alarm_id":"t-2","kind":"technical","device":"bp-1",)"
              R"("condition":"sensor_off","priority":"medium","state":"active","message":"s")"));
  r.Add(Alert(R"("id":"t-3","alarm_id":"t-3","kind":"technical","condition":"storage",)"
              R"("priority":"high","state":"active","message":"disk")"));
  const RenderedBatch out = RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow);
  ASSERT_EQ(out.messages.size(), 3u);
  auto obx = SegmentsOf(ParseMessage(out.messages[0].text), "OBX");
  EXPECT_EQ(obx[0].field(4), "1.0.0.0.1");
  EXPECT_EQ(obx[0].component(5, 2), "MDC_EVT_BATT_LO");
  EXPECT_EQ(obx[0].field(8), "A~PL~ST");
  EXPECT_EQ(obx[0].field(18), "C0FFEEFFFE000001^ox-1^C0FFEEFFFE000001^EUI-64");
  EXPECT_EQ(obx[1].field(5), "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC");
  EXPECT_EQ(obx[6].field(5), "ST");
  obx = SegmentsOf(ParseMessage(out.messages[1].text), "OBX");
  EXPECT_EQ(obx[0].component(5, 2), "MDC_EVT_ALARM");
  EXPECT_EQ(obx[0].component(5, 4), "sensor_off");
  EXPECT_EQ(obx[0].component(5, 5), "Sensor off");
  EXPECT_EQ(obx[0].field(18), "bp-1^ward7-gw1");
  obx = SegmentsOf(ParseMessage(out.messages[2].text), "OBX");
  EXPECT_EQ(obx[1].field(5), "gateway^vitalgate gateway^99VG");
  EXPECT_EQ(obx[1].field(18), "ward7-gw1^VG");
}

const std::string kSubscores =
    R"("subscores":{"resp_rate":3,"spo2":2,"air_or_oxygen":0,"bp_systolic":0,"pulse":1,)"
    R"("consciousness":0,"temperature":0})";

TEST(Hl7RenderNews2, RaisedAlarmSendsScoresAndTheAlarm) {
  Rows r;
  r.Add(Alert(R"("id":"n-1","alarm_id":"n-1","kind":"news2","priority":"medium",)"
              R"("state":"active","score":6,"risk":"medium","value":6,"message":"NEWS2 6",)" +
              kSubscores));
  const RenderedBatch out = RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow);
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[0].type, "ORU^R01");
  EXPECT_EQ(out.messages[1].type, "ORU^R40");
  EXPECT_NE(out.messages[0].control_id, out.messages[1].control_id);
  const auto scores = ParseMessage(out.messages[0].text);
  const Segment total = Obx(scores, "1104051000000101");
  EXPECT_EQ(total.field(5), "6");
  EXPECT_EQ(total.field(4), "1.9.1.1");
  EXPECT_EQ(total.field(18), "ward7-gw1^VG");
  EXPECT_EQ(Obx(scores, "news2-risk").field(5), "medium");
  EXPECT_EQ(Obx(scores, "1104301000000104").field(5), "3");  // respiration rate score
  EXPECT_EQ(Obx(scores, "news2-spo2").field(5), "2");
  EXPECT_EQ(Obx(scores, "1104351000000103").field(5), "1");  // pulse score
  EXPECT_EQ(SegmentsOf(scores, "OBX").size(), 9u);
  const auto alarm = SegmentsOf(ParseMessage(out.messages[1].text), "OBX");
  EXPECT_EQ(alarm[0].component(5, 4), "news2");
  EXPECT_EQ(alarm[0].component(5, 5), "NEWS2 risk medium");
  EXPECT_EQ(alarm[1].component(3, 1), "1104051000000101");
  EXPECT_EQ(alarm[1].field(5), "6");
  EXPECT_EQ(alarm[2].field(5), "start");
}

TEST(Hl7RenderNews2, ScoreChangeWithoutAlarmSendsScoresOnly) {
  Rows r;
  r.Add(Alert(R"("id":"n-2","alarm_id":"n-2","kind":"news2","priority":"low",)"
              R"("state":"cleared","score":2,"risk":"low","message":"NEWS2 2",)" +
              kSubscores));
  const auto segs = OnlyMessage(RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow),
                                "ORU^R01");
  EXPECT_EQ(Obx(segs, "1104051000000101").field(5), "2");
}

TEST(Hl7RenderNews2, NotComputable) {
  Rows r;
  r.Add(Alert(R"("id":"n-3","alarm_id":"n-3","kind":"news2","priority":"low",)"
              R"("state":"cleared","message":"NEWS2 not computable: no recent spo2")"));
  const auto segs = OnlyMessage(RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow),
                                "ORU^R01");
  const Segment total = Obx(segs, "1104051000000101");
  EXPECT_EQ(total.field(5), "");
  EXPECT_EQ(total.field(11), "X");
  EXPECT_EQ(Find(segs, "NTE").text(3), "NEWS2 not computable: no recent spo2");
}

TEST(Hl7RenderAlarms, BrokenEventsAreRefused) {
  Rows r;
  r.Add(Alert(R"("id":"x-1","kind":"threshold","priority":"high","state":"active")"));
  r.Add(Alert(R"("id":"x-2","kind":"bogus","priority":"high","state":"active")"));
  r.Add(Alert(R"("id":"x-3","kind":"trend","metric":"spo2","priority":"urgent","state":"active")"));
  const RenderedBatch out = RenderBatch(r.Batch(DeliveryBatch::Kind::kAlert), Options(), kNow);
  EXPECT_TRUE(out.messages.empty());
  ASSERT_EQ(out.rejected.size(), 3u);
  EXPECT_EQ(out.rejected[0].second, "row 1: metric: missing");
  EXPECT_EQ(out.rejected[1].second, "row 2: kind: expected threshold, trend, news2 or technical");
  EXPECT_EQ(out.rejected[2].second, "row 3: priority: expected high, medium or low");
}

TEST(Hl7Render, Eui64AndTimeFormats) {
  EXPECT_EQ(Eui64FromBluetoothAddress("c0:ff:ee:00:00:01"), "C0FFEEFFFE000001");
  EXPECT_EQ(Eui64FromBluetoothAddress("C0-FF-EE-00-00-01"), "C0FFEEFFFE000001");
  EXPECT_EQ(Eui64FromBluetoothAddress("C0:FF:EE:00:00"), std::nullopt);
  EXPECT_EQ(Eui64FromBluetoothAddress("C0:FF:EE:00:00:0G"), std::nullopt);
  EXPECT_EQ(FormatDtm(0), "19700101000000.000+0000");
  EXPECT_EQ(FormatDtm(*ParseRfc3339("2026-02-28T23:59:59.999Z")), "20260228235959.999+0000");
}

}  // namespace
}  // namespace vg::hl7
