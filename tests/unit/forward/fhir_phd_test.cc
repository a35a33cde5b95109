// The HL7 PHD IG (STU 1, http://hl7.org/fhir/uv/phd) constraints, element by element, on every
// resource that claims a PHD profile in every sample (tests/fhir/samples.h). The IG's
// StructureDefinitions are published only as differentials (github.com/HL7/PHD,
// input/resources/*.xml) that need the IG Publisher to become validatable snapshots; this
// checklist follows those differentials. Known deviations are listed in docs/fhir.md.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/fhir/samples.h"

namespace vg::fhir {
namespace {

using nlohmann::json;

constexpr const char* kPhd = "http://hl7.org/fhir/uv/phd/StructureDefinition/";
constexpr const char* kMdc = "urn:iso:std:iso:11073:10101";
constexpr const char* kUcum = "http://unitsofmeasure.org";
constexpr const char* kDar = "http://terminology.hl7.org/CodeSystem/data-absent-reason";

bool Claims(const json& r, const std::string& profile) {
  if (!r.contains("meta") || !r["meta"].contains("profile")) return false;
  for (const json& p : r["meta"]["profile"]) {
    if (p == std::string(kPhd) + profile) return true;
  }
  return false;
}

int CountSystem(const json& cc, const std::string& system) {
  int n = 0;
  if (!cc.is_object() || !cc.contains("coding")) return 0;
  for (const json& c : cc["coding"]) n += c.value("system", "") == system ? 1 : 0;
  return n;
}

// PhdBaseObservation, for every PHD Observation profile.
void CheckBase(const json& o, const std::string& where, bool transaction_or_literal) {
  SCOPED_TRACE(where);
  ASSERT_TRUE(o.contains("meta"));  // meta 1..1
  // extension: observation-gatewayDevice, 0..1, value[x] 1..1 (a Reference).
  int gateway = 0;
  for (const json& e : o.value("extension", json::array())) {
    if (e["url"] == "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice") {
      ++gateway;
      EXPECT_TRUE(e.contains("valueReference"));
      EXPECT_TRUE(e["valueReference"].contains("reference"));
    }
  }
  EXPECT_EQ(gateway, 1);
  // code.coding: MDCType 1..1 (system MDC), LoincCoding 0..1.
  EXPECT_EQ(CountSystem(o["code"], kMdc), 1);
  EXPECT_LE(CountSystem(o["code"], "http://loinc.org"), 1);
  // subject.reference 1..1: with identifier references in a collection Bundle there is no
  // resolvable reference to give (docs/fhir.md, deviations).
  ASSERT_TRUE(o.contains("subject"));
  if (transaction_or_literal) {
    EXPECT_TRUE(o["subject"].contains("reference"));
  }
  EXPECT_TRUE(o.contains("effectiveDateTime") || o.contains("effectivePeriod"));  // effective[x] 1..1
  // device.reference 1..1.
  ASSERT_TRUE(o.contains("device"));
  EXPECT_TRUE(o["device"].contains("reference"));
  // interpretation: MsmtStatusInterpretation coding 1..1 when present.
  for (const json& i : o.value("interpretation", json::array())) {
    EXPECT_EQ(CountSystem(i, "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status"), 1);
  }
  // meta.security: PhdHtest only with v3-ActReason HTEST (vitalgate sends no test data).
  EXPECT_FALSE(o["meta"].contains("security"));
}

void CheckIdentifier(const json& o) {
  // identifier:conditionalCreate 0..1 (discriminated by the existence of value): value 1..1,
  // system 0..0, type 0..0.
  ASSERT_TRUE(o.contains("identifier"));
  ASSERT_EQ(o["identifier"].size(), 1u);
  EXPECT_TRUE(o["identifier"][0].contains("value"));
  EXPECT_FALSE(o["identifier"][0].contains("system"));
  EXPECT_FALSE(o["identifier"][0].contains("type"));
}

void CheckQuantity(const json& q) {
  EXPECT_TRUE(q.contains("value"));
  EXPECT_EQ(q.value("system", ""), kUcum);
  EXPECT_TRUE(q.contains("code"));
}

void CheckDataAbsent(const json& d) { EXPECT_EQ(CountSystem(d, kDar), 1); }

void CheckVitalSignsCategory(const json& o) {
  for (const json& c : o.value("category", json::array())) {
    for (const json& coding : c["coding"]) {
      if (coding["code"] == "vital-signs") {
        EXPECT_EQ(coding["system"], "http://terminology.hl7.org/CodeSystem/observation-category");
      }
    }
  }
}

void CheckDeviceIdentifiers(const json& d) {
  int sysid = 0;
  int btmac = 0;
  for (const json& id : d["identifier"]) {
    const json type = id.value("type", json::object());
    if (CountSystem(type, "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers") == 0) continue;
    const std::string code = type["coding"][0]["code"];
    if (code == "SYSID") {
      ++sysid;
      EXPECT_EQ(id["system"], "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680");
      EXPECT_TRUE(id.contains("value"));
    } else if (code == "BTMAC") {
      ++btmac;
      EXPECT_EQ(id["system"], "http://hl7.org/fhir/sid/eui-48/bluetooth");
      EXPECT_EQ(id["value"].get<std::string>().size(), 17u);  // XX-XX-XX-XX-XX-XX
    }
  }
  EXPECT_EQ(sysid, 1);  // systemIdIdentifier 1..1
  EXPECT_LE(btmac, 1);  // btmacAddressIdentifier 0..1
}

TEST(FhirPhdChecklist, EveryResourceClaimingAPhdProfileMeetsItsConstraints) {
  int checked = 0;
  for (const testing::Sample& s : testing::AllSamples()) {
    const json b = json::parse(s.Render().json);
    const bool resolvable = s.options.bundle_type == BundleType::kTransaction ||
                            s.options.patient_reference == PatientReference::kLiteral;
    for (const json& e : b["entry"]) {
      const json& r = e["resource"];
      const std::string where = s.name + " " + e["fullUrl"].get<std::string>();
      if (Claims(r, "PhdNumericObservation")) {
        ++checked;
        CheckBase(r, where, resolvable);
        CheckIdentifier(r);
        CheckVitalSignsCategory(r);
        // value[x]: valueQuantity with value, UCUM system and code; else dataAbsentReason.
        if (r.contains("valueQuantity")) {
          CheckQuantity(r["valueQuantity"]);
        } else {
          ASSERT_TRUE(r.contains("dataAbsentReason")) << where;
          CheckDataAbsent(r["dataAbsentReason"]);
        }
      }
      if (Claims(r, "PhdCompoundNumericObservation")) {
        ++checked;
        CheckBase(r, where, resolvable);
        CheckIdentifier(r);
        CheckVitalSignsCategory(r);
        EXPECT_FALSE(r.contains("valueQuantity")) << where;  // value[x] 0..0
        for (const json& c : r["component"]) {
          if (CountSystem(c["code"], kMdc) == 0) continue;
          EXPECT_EQ(CountSystem(c["code"], kMdc), 1);  // MdcType 1..1
          EXPECT_LE(CountSystem(c["code"], "http://loinc.org"), 1);  // LoincCoding 0..1
          if (c.contains("valueQuantity")) {
            CheckQuantity(c["valueQuantity"]);
          } else if (c.contains("dataAbsentReason")) {
            CheckDataAbsent(c["dataAbsentReason"]);
          }
        }
      }
      if (Claims(r, "PhdCoincidentTimeStampObservation")) {
        ++checked;
        SCOPED_TRACE(where);
        EXPECT_EQ(r["status"], "final");  // status fixed "final"
        int gateway = 0;
        for (const json& x : r["extension"]) gateway += x["url"] == "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice";
        EXPECT_EQ(gateway, 1);  // extension 1..1
        EXPECT_EQ(CountSystem(r["code"], kMdc), 1);
        EXPECT_TRUE(r.contains("valueDateTime") || r.contains("dataAbsentReason"));
        if (resolvable) {
          EXPECT_TRUE(r["subject"].contains("reference"));
        }
        EXPECT_TRUE(r["device"].contains("reference"));
      }
      if (Claims(r, "PhdDevice")) {
        ++checked;
        SCOPED_TRACE(where);
        CheckDeviceIdentifiers(r);
        EXPECT_TRUE(r.contains("manufacturer"));  // 1..1
        EXPECT_TRUE(r.contains("modelNumber"));   // 1..1
        EXPECT_EQ(r["type"]["coding"][0]["system"], kMdc);
        EXPECT_EQ(r["type"]["coding"][0]["code"], "65573");  // MDC_MOC_VMS_MDS_SIMP
        ASSERT_TRUE(r.contains("specialization"));           // 1..*
        for (const json& sp : r["specialization"]) {
          EXPECT_EQ(CountSystem(sp["systemType"], kMdc), 1);
          EXPECT_TRUE(sp.contains("version"));
        }
      }
      if (Claims(r, "PhgDevice")) {
        ++checked;
        SCOPED_TRACE(where);
        CheckDeviceIdentifiers(r);
        EXPECT_EQ(r["type"]["coding"][0]["system"], kMdc);
        EXPECT_EQ(r["type"]["coding"][0]["code"], "531981");  // MDC_MOC_VMS_MDS_AHD
        ASSERT_TRUE(r.contains("version"));                   // 1..*
        EXPECT_EQ(CountSystem(r["version"][0]["type"], kMdc), 1);
      }
    }
  }
  // Every sample bundle has PHD content (at least the gateway); the loop above must have run.
  EXPECT_GT(checked, 100);
}

}  // namespace
}  // namespace vg::fhir
