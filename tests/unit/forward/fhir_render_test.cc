// What the FHIR rendering promises (docs/fhir.md), checked on the rendered JSON.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/fhir/samples.h"
#include "vitalgate/forward/fhir.h"

namespace vg::fhir {
namespace {

using nlohmann::json;
using testing::FindSample;
using testing::ReadingBody;
using testing::Row;
using testing::SampleContext;

json Render(const std::vector<OutboxRow>& rows, BundleType type = BundleType::kTransaction,
            PatientReference mode = PatientReference::kIdentifier, RenderedBundle* out = nullptr) {
  std::vector<const OutboxRow*> ptrs;
  for (const OutboxRow& r : rows) ptrs.push_back(&r);
  RenderOptions options;
  options.bundle_type = type;
  options.patient_identifier_system = "urn:oid:1.2.3";
  options.patient_reference = mode;
  RenderedBundle b = RenderReadings("p-001", ptrs, *SampleContext(), options);
  json j = b.json.empty() ? json() : json::parse(b.json);
  if (out != nullptr) *out = std::move(b);
  return j;
}

std::vector<json> Resources(const json& bundle, const std::string& type) {
  std::vector<json> out;
  for (const json& e : bundle["entry"]) {
    if (e["resource"]["resourceType"] == type) out.push_back(e["resource"]);
  }
  return out;
}

bool HasCoding(const json& cc, const std::string& system, const std::string& code) {
  for (const json& c : cc["coding"]) {
    if (c["system"] == system && c["code"] == code) return true;
  }
  return false;
}

TEST(FhirRender, BloodPressureOfOneDeviceAndTimeIsOnePanel) {
  RenderedBundle out;
  const json b = Render({Row(1, "p-001", ReadingBody("i-1", "bp-1", "bp_systolic", "128")),
                         Row(2, "p-001", ReadingBody("i-2", "bp-1", "bp_diastolic", "82")),
                         Row(3, "p-001", ReadingBody("i-3", "bp-1", "bp_mean", "97"))},
                        BundleType::kTransaction, PatientReference::kIdentifier, &out);
  const auto obs = Resources(b, "Observation");
  ASSERT_EQ(obs.size(), 1u);
  EXPECT_TRUE(HasCoding(obs[0]["code"], "http://loinc.org", "85354-9"));
  EXPECT_FALSE(obs[0].contains("valueQuantity"));
  ASSERT_EQ(obs[0]["component"].size(), 3u);
  EXPECT_TRUE(HasCoding(obs[0]["component"][0]["code"], "http://loinc.org", "8480-6"));
  EXPECT_EQ(obs[0]["component"][0]["valueQuantity"]["value"], 128);
  EXPECT_TRUE(HasCoding(obs[0]["component"][1]["code"], "http://loinc.org", "8462-4"));
  EXPECT_TRUE(HasCoding(obs[0]["component"][2]["code"], "http://loinc.org", "8478-0"));
  EXPECT_EQ(obs[0]["component"][2]["valueQuantity"]["code"], "mm[Hg]");
  ASSERT_TRUE(out.row_entry[0].has_value());
  EXPECT_EQ(out.row_entry[0], out.row_entry[1]);
  EXPECT_EQ(out.row_entry[0], out.row_entry[2]);
}

TEST(FhirRender, LoneBloodPressureValueSaysWhichPartIsAbsent) {
  const json b = Render({Row(1, "p-001", ReadingBody("i-1", "bp-1", "bp_systolic", "128"))});
  const auto obs = Resources(b, "Observation");
  ASSERT_EQ(obs.size(), 1u);
  ASSERT_EQ(obs[0]["component"].size(), 2u);
  EXPECT_EQ(obs[0]["component"][1]["dataAbsentReason"]["coding"][0]["code"], "not-performed");
  EXPECT_FALSE(obs[0]["component"][1].contains("valueQuantity"));
}

TEST(FhirRender, DifferentTimesOrDevicesAreDifferentPanels) {
  std::string later = ReadingBody("i-2", "bp-1", "bp_systolic", "131");
  later.replace(later.find("05:00:00"), 8, "05:10:00");
  const json b = Render({Row(1, "p-001", ReadingBody("i-1", "bp-1", "bp_systolic", "128")),
                         Row(2, "p-001", later),
                         Row(3, "p-001", ReadingBody("i-3", "ox-1", "bp_diastolic", "80"))});
  EXPECT_EQ(Resources(b, "Observation").size(), 3u);
}

TEST(FhirRender, TransactionUsesConditionalCreatesCollectionCarriesIds) {
  const std::vector<OutboxRow> rows{Row(1, "p-001", ReadingBody("i-1", "ox-1", "spo2", "97"))};
  const json t = Render(rows, BundleType::kTransaction);
  EXPECT_EQ(t["type"], "transaction");
  bool saw_obs = false;
  for (const json& e : t["entry"]) {
    EXPECT_EQ(e["fullUrl"].get<std::string>().rfind("urn:uuid:", 0), 0u);
    EXPECT_FALSE(e["resource"].contains("id"));
    if (e["resource"]["resourceType"] == "Observation") {
      saw_obs = true;
      EXPECT_EQ(e["request"]["method"], "POST");
      const std::string id = e["resource"]["identifier"][0]["value"];
      EXPECT_EQ(e["request"]["ifNoneExist"].get<std::string>().rfind("identifier=", 0), 0u);
      EXPECT_NE(e["request"]["ifNoneExist"].get<std::string>().find("150456"), std::string::npos) << id;
    } else {
      EXPECT_EQ(e["request"]["method"], "PUT");  // the gateway and ox-1, which measured spo2
      EXPECT_EQ(e["request"]["url"].get<std::string>().rfind("Device?identifier=", 0), 0u);
    }
  }
  EXPECT_TRUE(saw_obs);
  const json c = Render(rows, BundleType::kCollection);
  EXPECT_EQ(c["type"], "collection");
  for (const json& e : c["entry"]) {
    EXPECT_FALSE(e.contains("request"));
    EXPECT_EQ(e["fullUrl"], "urn:uuid:" + e["resource"]["id"].get<std::string>());
  }
}

TEST(FhirRender, TheSameReadingGivesTheSameIdentifiersEveryTime) {
  const std::vector<OutboxRow> rows{Row(1, "p-001", ReadingBody("i-1", "bp-1", "bp_systolic", "128")),
                                    Row(2, "p-001", ReadingBody("i-2", "bp-1", "bp_diastolic", "82"))};
  EXPECT_EQ(Render(rows).dump(), Render(rows).dump());
  const auto obs = Resources(Render(rows), "Observation");
  // PHD IG: device-patient-type-value-units-timestamp, the BLE address as the device part.
  EXPECT_EQ(obs[0]["identifier"][0]["value"],
            "C0-FF-EE-00-00-01-p-001-urn:oid:1.2.3-150020-128-82-mm[Hg]-20261122T050000.00");
  EXPECT_FALSE(obs[0]["identifier"][0].contains("system"));
}

TEST(FhirRender, PatientByIdentifierOrLiteralReference) {
  const std::vector<OutboxRow> rows{Row(1, "p-001", ReadingBody("i-1", "ox-1", "spo2", "97"))};
  const json t = Resources(Render(rows, BundleType::kTransaction), "Observation")[0];
  EXPECT_EQ(t["subject"]["identifier"]["system"], "urn:oid:1.2.3");
  EXPECT_EQ(t["subject"]["identifier"]["value"], "p-001");
  EXPECT_EQ(t["subject"]["reference"], "Patient?identifier=urn%3Aoid%3A1.2.3%7Cp-001");
  const json c = Resources(Render(rows, BundleType::kCollection), "Observation")[0];
  EXPECT_FALSE(c["subject"].contains("reference"));
  const json l = Resources(Render(rows, BundleType::kTransaction, PatientReference::kLiteral), "Observation")[0];
  EXPECT_EQ(l["subject"]["reference"], "Patient/p-001");
  EXPECT_FALSE(l["subject"].contains("identifier"));
}

TEST(FhirRender, ABrokenRowIsNamedAndTheOthersStillGo) {
  RenderedBundle out;
  Render({Row(7, "p-001", "{\"id\":\"x\",\"metric\":\"nope\",\"value\":1,\"ts\":\"2026-11-22T05:00:00.000Z\"}"),
          Row(8, "p-001", ReadingBody("i-8", "ox-1", "spo2", "97")),
          Row(9, "p-001", "not json")},
         BundleType::kTransaction, PatientReference::kIdentifier, &out);
  EXPECT_FALSE(out.row_entry[0].has_value());
  EXPECT_NE(out.row_error[0].find("outbox row 7"), std::string::npos);
  EXPECT_NE(out.row_error[0].find("metric"), std::string::npos);
  EXPECT_TRUE(out.row_entry[1].has_value());
  EXPECT_TRUE(out.row_error[1].empty());
  EXPECT_NE(out.row_error[2].find("outbox row 9"), std::string::npos);
}

TEST(FhirRender, QuestionableValuesCarryThePhdMeasurementStatus) {
  const json o = Resources(Render({Row(1, "p-001", ReadingBody("i-1", "ox-1", "spo2", "88",
                                                               ",\"flags\":[\"questionable\"]"))}),
                           "Observation")[0];
  EXPECT_TRUE(HasCoding(o["interpretation"][0], "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status",
                        "questionable"));
  EXPECT_EQ(o["status"], "final");
}

TEST(FhirRender, GlucoseCodeFollowsTheDevice) {
  const json meter = Resources(Render({Row(1, "p-001", ReadingBody("i-1", "glu-1", "glucose", "104"))}),
                               "Observation")[0];
  EXPECT_TRUE(HasCoding(meter["code"], "http://loinc.org", "41653-7"));
  EXPECT_TRUE(HasCoding(meter["code"], "urn:iso:std:iso:11073:10101", "160184"));
  const json bridge = Resources(Render({Row(1, "p-001", ReadingBody("i-1", "ext-1", "glucose", "104"))}),
                                "Observation")[0];
  EXPECT_TRUE(HasCoding(bridge["code"], "http://loinc.org", "2339-0"));
  EXPECT_FALSE(HasCoding(bridge["code"], "urn:iso:std:iso:11073:10101", "160184"));
  EXPECT_EQ(meter["category"][0]["coding"][0]["code"], "laboratory");
}

TEST(FhirRender, ConsciousnessAndOxygenAreSnomedAnswers) {
  const std::vector<std::pair<std::string, std::string>> acvpu{
      {"A", "248234008"}, {"C", "130987000"}, {"V", "300202002"}, {"P", "450847001"}, {"U", "422768004"}};
  for (const auto& [letter, code] : acvpu) {
    const json o = Resources(Render({Row(1, "p-001", ReadingBody("i-1", "ext-1", "consciousness",
                                                                 "\"" + letter + "\""))}),
                             "Observation")[0];
    EXPECT_TRUE(HasCoding(o["code"], "http://loinc.org", "67775-7"));
    EXPECT_TRUE(HasCoding(o["valueCodeableConcept"], "http://snomed.info/sct", code)) << letter;
  }
  const json on = Resources(Render({Row(1, "p-001", ReadingBody("i-1", "ext-1", "on_oxygen", "true"))}),
                            "Observation")[0];
  EXPECT_TRUE(HasCoding(on["valueCodeableConcept"], "http://snomed.info/sct", "371825009"));
  const json off = Resources(Render({Row(1, "p-001", ReadingBody("i-1", "ext-1", "on_oxygen", "false"))}),
                             "Observation")[0];
  EXPECT_TRUE(HasCoding(off["valueCodeableConcept"], "http://snomed.info/sct", "722742002"));
}

TEST(FhirRender, DevicesCarryIdentifiersAndTheLatestBattery) {
  std::string later = ReadingBody("i-2", "bp-1", "battery", "63");
  later.replace(later.find("05:00:00"), 8, "05:30:00");
  const json b = Render({Row(1, "p-001", later), Row(2, "p-001", ReadingBody("i-1", "bp-1", "battery", "70")),
                         Row(3, "p-001", ReadingBody("i-3", "bp-1", "bp_systolic", "120"))});
  const auto devices = Resources(b, "Device");
  ASSERT_EQ(devices.size(), 2u);  // the gateway and the cuff
  const json& gateway = devices[0];
  EXPECT_TRUE(HasCoding(gateway["type"], "urn:iso:std:iso:11073:10101", "531981"));
  const json& cuff = devices[1];
  EXPECT_EQ(cuff["serialNumber"], "SN-4711");
  EXPECT_EQ(cuff["manufacturer"], "Omron");
  EXPECT_EQ(cuff["modelNumber"], "HEM-7600T");
  bool btmac = false;
  for (const json& id : cuff["identifier"]) {
    btmac = btmac || (id["system"] == "http://hl7.org/fhir/sid/eui-48/bluetooth" && id["value"] == "C0-FF-EE-00-00-01");
  }
  EXPECT_TRUE(btmac);
  EXPECT_EQ(cuff["property"][0]["valueQuantity"][0]["value"], 63);
  for (const json& o : Resources(b, "Observation")) {
    EXPECT_EQ(o["extension"][0]["url"], "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice");
    EXPECT_EQ(o["device"]["reference"].get<std::string>().rfind("urn:uuid:", 0), 0u);
  }
}

TEST(FhirRender, DeviceTimeIsComparedWithGatewayTime) {
  const json b = Render({Row(1, "p-001",
                             ReadingBody("i-1", "ox-1", "pulse_rate", "71",
                                         ",\"flags\":[\"clock\"],\"device_ts\":\"2001-01-01T00:00:07.000Z\""),
                             1795323600500)});
  std::string coincident_url;
  for (const json& e : b["entry"]) {
    if (HasCoding(e["resource"].value("code", json{{"coding", json::array()}}), "urn:iso:std:iso:11073:10101",
                  "67975")) {
      coincident_url = e["fullUrl"];
      EXPECT_EQ(e["resource"]["valueDateTime"], "2001-01-01T00:00:07.000Z");
      EXPECT_EQ(e["resource"]["effectiveDateTime"], "2026-11-22T05:00:00.500Z");
    }
  }
  ASSERT_FALSE(coincident_url.empty());
  for (const json& o : Resources(b, "Observation")) {
    if (HasCoding(o["code"], "http://loinc.org", "8867-4")) {
      EXPECT_EQ(o["derivedFrom"][0]["reference"], coincident_url);
      EXPECT_EQ(o["effectiveDateTime"], "2026-11-22T05:00:00.000Z");
      EXPECT_NE(o["identifier"][0]["value"].get<std::string>().find("20010101T000007.00"), std::string::npos);
    }
  }
}

TEST(FhirRender, News2IsAnObservationWithSubScores) {
  const json b = json::parse(FindSample("alert-news2-transaction").Render().json);
  const auto obs = Resources(b, "Observation");
  ASSERT_EQ(obs.size(), 1u);
  EXPECT_TRUE(HasCoding(obs[0]["code"], "http://snomed.info/sct", "1104051000000101"));
  EXPECT_EQ(obs[0]["valueQuantity"]["value"], 7);
  EXPECT_EQ(obs[0]["component"].size(), 7u);
  EXPECT_TRUE(HasCoding(obs[0]["component"][1]["code"], "http://snomed.info/sct", "1104311000000102"));
  const json scale2 = Resources(json::parse(FindSample("alert-news2-scale2-collection").Render().json),
                                "Observation")[0];
  EXPECT_TRUE(HasCoding(scale2["component"][1]["code"], "http://snomed.info/sct", "1104321000000108"));
}

TEST(FhirRender, OtherAlertsAreFlags) {
  const json active = Resources(json::parse(FindSample("alert-threshold-transaction").Render().json), "Flag")[0];
  EXPECT_EQ(active["status"], "active");
  EXPECT_EQ(active["code"]["text"], "SpO2 84 % below 85 %");
  EXPECT_EQ(active["extension"][0]["valueCodeableConcept"]["coding"][0]["code"], "PH");
  EXPECT_FALSE(active["period"].contains("end"));
  const json cleared =
      Resources(json::parse(FindSample("alert-technical-cleared-transaction").Render().json), "Flag")[0];
  EXPECT_EQ(cleared["status"], "inactive");
  EXPECT_EQ(cleared["period"]["end"], "2026-11-22T05:02:00.000Z");
  EXPECT_EQ(cleared["category"][0]["coding"][0]["code"], "safety");
}

TEST(FhirRender, NameUuidIsAStableVersion5Uuid) {
  const std::string a = NameUuid("device/ox-1");
  EXPECT_EQ(a, NameUuid("device/ox-1"));
  EXPECT_NE(a, NameUuid("device/ox-2"));
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '5');
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos);
}

}  // namespace
}  // namespace vg::fhir
