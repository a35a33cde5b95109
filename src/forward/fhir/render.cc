// FHIR R4 rendering of canonical rows. Every code and profile used here is cited in docs/fhir.md.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "vitalgate/core/metric.h"
#include "vitalgate/core/patient_directory.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/forward/fhir.h"
#include "terms.h"

namespace vg::fhir {
namespace {

using nlohmann::json;

json Coding(std::string_view system, std::string_view code, std::string_view display = {}) {
  json c = {{"system", system}, {"code", code}};
  if (!display.empty()) c["display"] = display;
  return c;
}

json Concept(json codings, std::string_view text = {}) {
  json c = {{"coding", std::move(codings)}};
  if (!text.empty()) c["text"] = text;
  return c;
}

json Quantity(const json& value, std::string_view ucum) {
  return {{"value", value}, {"unit", ucum}, {"system", kUcum}, {"code", ucum}};
}

json Category(std::string_view code) {
  return json::array({Concept(json::array({Coding(kObservationCategory, code)}))});
}

std::string Urn(std::string_view uuid) { return "urn:uuid:" + std::string(uuid); }

// Percent-encodes everything but RFC 3986 unreserved characters (search parameter values).
std::string QueryEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// "C0:FF:EE:00:00:01" -> "C0-FF-EE-00-00-01", the PHD IG's EUI-48 form.
std::string DashedAddress(std::string_view address) {
  std::string out(address);
  std::replace(out.begin(), out.end(), ':', '-');
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return static_cast<char>(std::toupper(static_cast<unsigned char>(c))); });
  return out;
}

// RFC 3339 -> the HL7 DTM form the PHD IG uses in its Observation identifier
// (YYYYMMDDTHHMMSS.ss, UTC). Unparseable text is used as it is.
std::string PhdTimestamp(std::string_view rfc3339) {
  auto ms = ParseRfc3339(rfc3339);
  if (!ms.ok()) return std::string(rfc3339);
  const std::string t = FormatRfc3339(*ms);  // YYYY-MM-DDTHH:MM:SS.mmmZ
  std::string out;
  out += t.substr(0, 4);
  out += t.substr(5, 2);
  out += t.substr(8, 2);
  out += 'T';
  out += t.substr(11, 2);
  out += t.substr(14, 2);
  out += t.substr(17, 2);
  out += '.';
  out += t.substr(20, 2);
  return out;
}

std::string NumberText(const json& v) { return v.dump(); }

struct Reading {
  std::size_t row = 0;
  std::string id;
  std::string device;
  Metric metric = Metric::kHeartRate;
  json value;
  std::string ts;
  std::string device_ts;
  std::int64_t rx_ms = 0;
  bool questionable = false;
  bool spot = false;
  bool clock = false;
};

std::string RowError(const OutboxRow& row, std::string_view what) {
  return "outbox row " + std::to_string(row.seq) + ": " + std::string(what);
}

// Parses one reading row; an error names the row and the field, never a value.
std::optional<Reading> ParseReading(const OutboxRow& row, std::size_t index, std::string& error) {
  const json r = json::parse(row.body, nullptr, /*allow_exceptions=*/false);
  if (r.is_discarded() || !r.is_object()) {
    error = RowError(row, "not a JSON object");
    return std::nullopt;
  }
  auto str = [&](const char* key) -> std::string {
    auto it = r.find(key);
    return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Reading out;
  out.row = index;
  out.id = str("id");
  out.device = str("device");
  out.ts = str("ts");
  out.device_ts = str("device_ts");
  out.rx_ms = row.rx_ms;
  const auto metric = MetricFromName(str("metric"));
  if (!metric) {
    error = RowError(row, "missing or unknown \"metric\"");
    return std::nullopt;
  }
  out.metric = *metric;
  if (out.id.empty() || out.ts.empty() || !ParseRfc3339(out.ts).ok()) {
    error = RowError(row, "missing \"id\" or a valid \"ts\"");
    return std::nullopt;
  }
  auto value = r.find("value");
  const ValueType type = Info(*metric).type;
  const bool ok = value != r.end() &&
                  ((type == ValueType::kNumber && value->is_number()) ||
                   (type == ValueType::kBool && value->is_boolean()) ||
                   (type == ValueType::kAcvpu && value->is_string() &&
                    AcvpuFromLetter(value->get<std::string>()).has_value()));
  if (!ok) {
    error = RowError(row, "\"value\" missing or of the wrong type for its metric");
    return std::nullopt;
  }
  out.value = *value;
  if (auto flags = r.find("flags"); flags != r.end() && flags->is_array()) {
    for (const json& f : *flags) {
      if (!f.is_string()) continue;
      const auto& s = f.get_ref<const std::string&>();
      out.questionable = out.questionable || s == "questionable";
      out.spot = out.spot || s == "spot";
      out.clock = out.clock || s == "clock";
    }
  }
  return out;
}

bool IsBp(Metric m) {
  return m == Metric::kBpSystolic || m == Metric::kBpDiastolic || m == Metric::kBpMean;
}

// Builds one Bundle: entries in order, with their fullUrl and (for transactions) request.
class BundleBuilder {
 public:
  BundleBuilder(const RenderContext& context, const RenderOptions& options)
      : context_(context), options_(options) {}

  bool transaction() const { return options_.bundle_type == BundleType::kTransaction; }

  // Adds `resource` under urn:uuid:`uuid`. `if_none_exist` (a search query) makes it a
  // conditional create; `conditional_update` (a search URL) a conditional update.
  std::size_t Add(json resource, const std::string& uuid, const std::string& if_none_exist,
                  const std::string& conditional_update = {}) {
    json entry = {{"fullUrl", Urn(uuid)}};
    const std::string type = resource["resourceType"].get<std::string>();
    if (transaction()) {
      if (!conditional_update.empty()) {
        entry["request"] = {{"method", "PUT"}, {"url", conditional_update}};
      } else {
        entry["request"] = {{"method", "POST"}, {"url", type}};
        if (!if_none_exist.empty()) entry["request"]["ifNoneExist"] = if_none_exist;
      }
    } else {
      resource["id"] = uuid;
    }
    entry["resource"] = std::move(resource);
    entries_.push_back(std::move(entry));
    return entries_.size() - 1;
  }

  std::string Finish() {
    json bundle = {{"resourceType", "Bundle"},
                   {"type", transaction() ? "transaction" : "collection"}};
    if (!transaction()) {
      // A collection carries its own time stamp; bdl-? rules need none, readers like one.
      bundle["timestamp"] = FormatRfc3339(latest_ms_);
    }
    bundle["entry"] = std::move(entries_);
    entries_ = json::array();
    return bundle.dump(-1, ' ', false, json::error_handler_t::replace);
  }

  void SeeTime(std::int64_t ms) { latest_ms_ = std::max(latest_ms_, ms); }

  // The gateway Device (PHD IG PhgDevice); added once, referenced by every Observation.
  const std::string& GatewayUrl() {
    if (!gateway_url_.empty()) return gateway_url_;
    const std::string uuid = NameUuid("gateway/" + context_.gateway_id);
    json d = {{"resourceType", "Device"},
              {"meta", {{"profile", json::array({kPhgDeviceProfile})}}}};
    json ids = json::array();
    ids.push_back(SystemIdIdentifier());
    ids.push_back({{"system", kUriSystem}, {"value", Urn(uuid)}});
    d["identifier"] = std::move(ids);
    d["manufacturer"] = "vitalgate";
    d["deviceName"] = json::array({{{"name", context_.gateway_id}, {"type", "user-friendly-name"}}});
    d["type"] = Concept(json::array({Coding(kMdc, kMdcGatewayType, "MDC_MOC_VMS_MDS_AHD")}),
                        "MDC_MOC_VMS_MDS_AHD: Application hosting device (gateway)");
    if (!context_.version.empty()) {
      d["version"] = json::array(
          {{{"type", Concept(json::array({Coding(kMdc, kMdcSoftwareRevision, "MDC_ID_PROD_SPEC_SW")}))},
            {"value", context_.version}}});
    }
    const std::string search = "Device?identifier=" + QueryEscape(std::string(kUriSystem) + "|" + Urn(uuid));
    Add(std::move(d), uuid, {}, search);
    gateway_url_ = Urn(uuid);
    return gateway_url_;
  }

  // The Device of a measuring device (PHD IG PhdDevice), added once per Bundle.
  const std::string& DeviceUrl(const std::string& device, const std::vector<Metric>& metrics,
                               const std::optional<json>& battery) {
    auto it = device_urls_.find(device);
    if (it != device_urls_.end()) return it->second;
    const std::string uuid = DeviceUuid(device);
    const auto info_it = context_.devices.find(device);
    const DeviceInfo* info = info_it == context_.devices.end() ? nullptr : &info_it->second;
    json d = {{"resourceType", "Device"}};
    const std::vector<Specialization> specializations = SpecializationsOf(metrics);
    // PhdDevice requires manufacturer, model and a specialization; it is claimed only then.
    if (info != nullptr && !info->manufacturer.empty() && !info->model.empty() && !specializations.empty()) {
      d["meta"] = {{"profile", json::array({kPhdDeviceProfile})}};
    }
    json ids = json::array();
    ids.push_back(SystemIdIdentifier());
    if (info != nullptr && !info->ble_address.empty()) {
      ids.push_back({{"type", Concept(json::array({Coding(kContinuaDeviceIdentifiers, "BTMAC")}))},
                     {"system", kBluetoothSystem},
                     {"value", DashedAddress(info->ble_address)}});
    }
    ids.push_back({{"system", kUriSystem}, {"value", Urn(uuid)}});
    d["identifier"] = std::move(ids);
    if (info != nullptr) {
      if (!info->manufacturer.empty()) d["manufacturer"] = info->manufacturer;
      if (!info->serial_number.empty()) d["serialNumber"] = info->serial_number;
      if (!info->model.empty()) d["modelNumber"] = info->model;
    }
    d["deviceName"] = json::array({{{"name", device}, {"type", "user-friendly-name"}}});
    d["type"] = Concept(json::array({Coding(kMdc, kMdcPhdType, "MDC_MOC_VMS_MDS_SIMP")}),
                        "MDC_MOC_VMS_MDS_SIMP: Personal health device");
    json specs = json::array();
    for (const Specialization& s : specializations) {
      specs.push_back({{"systemType", Concept(json::array({Coding(kMdc, s.code, s.reference_id)}),
                                              s.reference_id)},
                       {"version", "1"}});
    }
    if (!specs.empty()) d["specialization"] = std::move(specs);
    if (battery) {
      d["property"] = json::array(
          {{{"type", Concept(json::array({Coding(kMdc, kMdcBattery, "MDC_ATTR_VAL_BATT_CHARGE")}))},
            {"valueQuantity", json::array({Quantity(*battery, "%")})}}});
    }
    // With what it measured the Device is brought up to date (conditional update); without
    // (an alert, a battery level alone) it is only created when missing, so that a fuller
    // Device on the server is not replaced by a thinner one.
    const std::string query = "identifier=" + QueryEscape(std::string(kUriSystem) + "|" + Urn(uuid));
    if (specializations.empty()) {
      Add(std::move(d), uuid, query);
    } else {
      Add(std::move(d), uuid, {}, "Device?" + query);
    }
    return device_urls_.emplace(device, Urn(uuid)).first->second;
  }

  static std::string DeviceUuid(const std::string& device) { return NameUuid("device/" + device); }

 private:
  // The IG: a device without an IEEE EUI-64 system id reports 00-00-00-00-00-00-00-00.
  static json SystemIdIdentifier() {
    return {{"type", Concept(json::array({Coding(kContinuaDeviceIdentifiers, "SYSID")}))},
            {"system", kSystemIdSystem},
            {"value", "00-00-00-00-00-00-00-00"}};
  }

  const RenderContext& context_;
  const RenderOptions& options_;
  json entries_ = json::array();
  std::string gateway_url_;
  std::map<std::string, std::string, std::less<>> device_urls_;
  std::int64_t latest_ms_ = 0;
};

// The patient part of every resource: subject and the patient's part of the PHD identifier.
struct Subject {
  json reference;                 // Observation.subject / Flag.subject
  std::string identifier_part;    // "value-system" or the logical id (PHD IG)
  bool is_patient = false;
};

Subject MakeSubject(std::string_view patient, const RenderOptions& options, BundleBuilder& builder,
                    const std::string& device_url) {
  Subject s;
  if (patient.empty() || IsPlaceholderPatient(patient)) {
    // No patient: the Observation is about the device itself.
    s.reference = device_url.empty() ? json{{"display", "unassigned device"}}
                                     : json{{"reference", device_url}};
    s.identifier_part = "unassigned";
    return s;
  }
  (void)builder;
  s.is_patient = true;
  if (options.patient_reference == PatientReference::kLiteral) {
    s.reference = {{"reference", "Patient/" + std::string(patient)}};
    s.identifier_part = std::string(patient);
    return s;
  }
  s.reference = {{"identifier", {{"system", options.patient_identifier_system}, {"value", patient}}}};
  if (options.bundle_type == BundleType::kTransaction) {
    // A conditional reference: the server resolves it to the one Patient with this identifier
    // (R4 http.html#trules).
    s.reference["reference"] =
        "Patient?identifier=" + QueryEscape(options.patient_identifier_system + "|" + std::string(patient));
  }
  s.reference["type"] = "Patient";
  s.identifier_part = std::string(patient) + "-" + options.patient_identifier_system;
  return s;
}

// The Observation parts every reading shares.
json BaseObservation(const Subject& subject, const std::string& device_url,
                     const std::string& gateway_url, const std::string& ts) {
  json o = {{"resourceType", "Observation"}};
  o["extension"] = json::array({{{"url", kGatewayDeviceExtension},
                                 {"valueReference", {{"reference", gateway_url}}}}});
  o["status"] = "final";
  o["subject"] = subject.reference;
  o["effectiveDateTime"] = ts;
  if (!device_url.empty()) o["device"] = {{"reference", device_url}};
  return o;
}

void AddReadingQualifiers(json& o, const Reading& r, const std::string& coincident_url) {
  if (r.questionable) {
    // PHD IG, Measurement Status bit 1: interpretation from the measurement-status code system.
    o["interpretation"] = json::array(
        {Concept(json::array({Coding(kMeasurementStatus, "questionable", "questionable")}),
                 "The device marked the value as questionable")});
  }
  if (r.spot) {
    // PHD IG Supplemental-Types component: MDC_MODALITY_SPOT.
    o["component"].push_back(
        {{"code", Concept(json::array({Coding(kMdc, kMdcSupplementalTypes, "MDC_ATTR_SUPPLEMENTAL_TYPES")}),
                          "MDC_ATTR_SUPPLEMENTAL_TYPES")},
         {"valueCodeableConcept",
          Concept(json::array({Coding(kMdc, kMdcModalitySpot, "MDC_MODALITY_SPOT")}), "MDC_MODALITY_SPOT")}});
  }
  if (!coincident_url.empty()) {
    o["derivedFrom"] = json::array({{{"reference", coincident_url}}});
  }
}

struct MdcTerm {
  std::string_view code;
  std::string_view reference_id;
};

// The reading's IEEE 11073-10101 term; for glucose only when the specimen is known.
MdcTerm MdcOf(const Reading& r, const RenderContext& context) {
  if (r.metric == Metric::kGlucose) {
    const auto dev = context.devices.find(r.device);
    const GlucoseCode g =
        GlucoseCodeFor(dev == context.devices.end() ? std::string_view() : dev->second.codec);
    return {g.mdc_code, g.mdc_reference_id};
  }
  return {TermsOf(r.metric).mdc_code, TermsOf(r.metric).mdc_reference_id};
}

// The code of a single reading: the profile's LOINC code first, then the more specific LOINC,
// then the IEEE 11073-10101 term.
json ReadingCode(const Reading& r, const RenderContext& context) {
  const MetricInfo& info = Info(r.metric);
  const MetricTerms& t = TermsOf(r.metric);
  json codings = json::array();
  std::string_view loinc = info.loinc;
  std::string_view loinc_display = info.loinc_display;
  if (r.metric == Metric::kGlucose) {
    const auto dev = context.devices.find(r.device);
    const GlucoseCode g = GlucoseCodeFor(dev == context.devices.end() ? std::string_view() : dev->second.codec);
    loinc = g.loinc;
    loinc_display = g.display;
  }
  // One LOINC coding (the PHD IG allows one): the code the vital-signs profile requires where
  // it differs from the catalogue's more specific one; the MDC term keeps the method.
  if (!t.profile_loinc.empty()) {
    loinc = t.profile_loinc;
    loinc_display = t.profile_loinc_display;
  }
  if (!loinc.empty()) codings.push_back(Coding(kLoinc, loinc, loinc_display));
  const MdcTerm mdc = MdcOf(r, context);
  if (!mdc.code.empty()) codings.push_back(Coding(kMdc, mdc.code, mdc.reference_id));
  return Concept(std::move(codings), t.text);
}

json ReadingValue(const Reading& r, json& o) {
  const MetricInfo& info = Info(r.metric);
  switch (info.type) {
    case ValueType::kNumber:
      o["valueQuantity"] = Quantity(r.value, info.unit);
      return r.value;
    case ValueType::kAcvpu: {
      const AnswerCode& a = AcvpuAnswer(r.value.get<std::string>()[0]);
      o["valueCodeableConcept"] = Concept(json::array({Coding(kSnomed, a.code, a.display)}), a.text);
      return a.code;
    }
    case ValueType::kBool: {
      const AnswerCode& a = OxygenAnswer(r.value.get<bool>());
      o["valueCodeableConcept"] = Concept(json::array({Coding(kSnomed, a.code, a.display)}), a.text);
      return a.code;
    }
  }
  return r.value;
}

// The PHD IG's conditional-create identifier: device-patient-type-value-units-timestamp
// [-supplemental types], from the device's own time stamp where it reported one.
std::string PhdIdentifier(const std::string& device_part, const Subject& subject,
                          std::string_view type, const std::string& value, std::string_view unit,
                          const Reading& r) {
  std::string id = device_part + "-" + subject.identifier_part + "-" + std::string(type) + "-" + value +
                   "-" + std::string(unit) + "-" +
                   PhdTimestamp(r.device_ts.empty() ? r.ts : r.device_ts);
  if (r.spot) id += "-" + std::string(kMdcModalitySpot);
  return id;
}

std::string DevicePart(const RenderContext& context, const std::string& device) {
  const auto it = context.devices.find(device);
  if (it != context.devices.end() && !it->second.ble_address.empty()) {
    return DashedAddress(it->second.ble_address);
  }
  return BundleBuilder::DeviceUuid(device);
}

std::vector<std::string> ProfilesFor(Metric m, bool is_patient, bool bp_panel, bool has_mdc) {
  std::vector<std::string> out;
  const MetricTerms& t = TermsOf(m);
  if (is_patient) {
    if (bp_panel) {
      out.emplace_back(kBpProfile);
    } else if (!t.vital_profile.empty()) {
      out.emplace_back(t.vital_profile);
    }
  }
  if (bp_panel) {
    out.emplace_back(kPhdCompoundProfile);
  } else if (has_mdc && Info(m).type == ValueType::kNumber) {
    out.emplace_back(kPhdNumericProfile);
  }
  return out;
}

void SetMeta(json& o, const std::vector<std::string>& profiles) {
  if (!profiles.empty()) o["meta"] = {{"profile", profiles}};
}

void SetCategory(json& o, Metric m) {
  const MetricTerms& t = TermsOf(m);
  if (!t.category.empty()) o["category"] = Category(t.category);
}

}  // namespace

std::string NameUuid(std::string_view name) {
  // vitalgate's namespace UUID (random, fixed forever): 7c1b0d52-4f3e-5a8e-9d41-2f6a8b3c9e10.
  static constexpr std::array<unsigned char, 16> kNamespace{0x7c, 0x1b, 0x0d, 0x52, 0x4f, 0x3e,
                                                            0x5a, 0x8e, 0x9d, 0x41, 0x2f, 0x6a,
                                                            0x8b, 0x3c, 0x9e, 0x10};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr);
  EVP_DigestUpdate(ctx, kNamespace.data(), kNamespace.size());
  EVP_DigestUpdate(ctx, name.data(), name.size());
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  digest[6] = static_cast<unsigned char>((digest[6] & 0x0f) | 0x50);
  digest[8] = static_cast<unsigned char>((digest[8] & 0x3f) | 0x80);
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", digest[0],
                digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
                digest[8], digest[9], digest[10], digest[11], digest[12], digest[13], digest[14],
                digest[15]);
  return out;
}

RenderedBundle RenderReadings(std::string_view patient, std::span<const OutboxRow* const> rows,
                              const RenderContext& context, const RenderOptions& options) {
  RenderedBundle out;
  out.row_entry.assign(rows.size(), std::nullopt);
  out.row_error.assign(rows.size(), std::string());
  std::vector<Reading> readings;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (auto r = ParseReading(*rows[i], i, out.row_error[i])) readings.push_back(std::move(*r));
  }
  if (readings.empty()) return out;

  // Per device: the metrics it measured (its specializations) and its latest battery level.
  std::map<std::string, std::vector<Metric>, std::less<>> device_metrics;
  std::map<std::string, std::pair<std::int64_t, json>, std::less<>> battery;
  for (const Reading& r : readings) {
    device_metrics[r.device].push_back(r.metric);
    if (r.metric == Metric::kBattery) {
      auto ms = ParseRfc3339(r.ts);
      auto& b = battery[r.device];
      if (b.second.is_null() || (ms.ok() && *ms >= b.first)) b = {ms.ok() ? *ms : 0, r.value};
    }
  }

  BundleBuilder builder(context, options);
  const std::string gateway_url = builder.GatewayUrl();
  std::map<std::string, std::string, std::less<>> device_url;
  for (const auto& [device, metrics] : device_metrics) {
    if (device.empty()) continue;
    const auto b = battery.find(device);
    device_url[device] = builder.DeviceUrl(
        device, metrics, b == battery.end() ? std::nullopt : std::optional<json>(b->second.second));
  }

  // PHD IG Coincident Time Stamp: per device whose readings carry their own device time, the
  // device's clock (valueDateTime) against the gateway's (effectiveDateTime) at one moment: the
  // reception of its latest live reading. Stored records give no such pair (dataAbsentReason).
  std::map<std::string, std::string, std::less<>> coincident_url;
  for (const auto& [device, metrics] : device_metrics) {
    const Reading* pair = nullptr;
    bool any = false;
    for (const Reading& r : readings) {
      if (r.device != device || r.device_ts.empty()) continue;
      any = true;
      if (pair == nullptr || r.rx_ms >= pair->rx_ms) pair = &r;
    }
    if (!any) continue;
    const std::string& durl = device_url[device];
    Subject subject = MakeSubject(patient, options, builder, durl);
    json o = {{"resourceType", "Observation"},
              {"meta", {{"profile", json::array({kPhdCoincidentProfile})}}}};
    o["extension"] = json::array({{{"url", kGatewayDeviceExtension},
                                   {"valueReference", {{"reference", gateway_url}}}}});
    o["status"] = "final";
    o["code"] = Concept(json::array({Coding(kMdc, kMdcTimeAbs, "MDC_ATTR_TIME_ABS")}),
                        "MDC_ATTR_TIME_ABS: the device's absolute time");
    o["subject"] = subject.reference;
    o["effectiveDateTime"] = FormatRfc3339(pair->rx_ms);
    o["valueDateTime"] = pair->device_ts;
    o["device"] = {{"reference", durl}};
    const std::string uuid =
        NameUuid("coincident/" + device + "/" + std::to_string(pair->rx_ms) + "/" + pair->device_ts);
    o["identifier"] = json::array({{{"system", kUriSystem}, {"value", Urn(uuid)}}});
    builder.SeeTime(pair->rx_ms);
    builder.Add(std::move(o), uuid,
                "identifier=" + QueryEscape(std::string(kUriSystem) + "|" + Urn(uuid)));
    coincident_url[device] = Urn(uuid);
  }

  // Blood pressure: the readings of one device with the same ts form one panel.
  std::vector<bool> done(readings.size(), false);
  for (std::size_t i = 0; i < readings.size(); ++i) {
    if (done[i]) continue;
    const Reading& first = readings[i];
    const std::string& durl = device_url[first.device];
    const std::string cts = first.device_ts.empty() ? std::string() : coincident_url[first.device];
    Subject subject = MakeSubject(patient, options, builder, durl);
    const std::string device_part = DevicePart(context, first.device);
    builder.SeeTime(first.rx_ms);
    if (!IsBp(first.metric)) {
      done[i] = true;
      json o = BaseObservation(subject, durl, gateway_url, first.ts);
      const MdcTerm mdc = MdcOf(first, context);
      SetMeta(o, ProfilesFor(first.metric, subject.is_patient, false, !mdc.code.empty()));
      SetCategory(o, first.metric);
      o["code"] = ReadingCode(first, context);
      o["component"] = json::array();
      const json id_value = ReadingValue(first, o);
      AddReadingQualifiers(o, first, cts);
      if (o["component"].empty()) o.erase("component");
      const std::string type =
          mdc.code.empty() ? std::string(Info(first.metric).loinc) : std::string(mdc.code);
      const std::string phd_id =
          PhdIdentifier(device_part, subject, type,
                        id_value.is_string() ? id_value.get<std::string>() : NumberText(id_value),
                        Info(first.metric).unit, first);
      o["identifier"] = json::array({{{"value", phd_id}}});
      const std::string uuid = NameUuid("reading/" + first.id);
      out.row_entry[first.row] = builder.Add(std::move(o), uuid, "identifier=" + QueryEscape(phd_id));
      continue;
    }
    // Gather the panel.
    std::array<const Reading*, 3> part{nullptr, nullptr, nullptr};  // sys, dia, mean
    std::vector<std::size_t> members;
    for (std::size_t j = i; j < readings.size(); ++j) {
      const Reading& r = readings[j];
      if (done[j] || !IsBp(r.metric) || r.device != first.device || r.ts != first.ts) continue;
      const std::size_t slot = r.metric == Metric::kBpSystolic ? 0 : r.metric == Metric::kBpDiastolic ? 1 : 2;
      if (part[slot] != nullptr) continue;  // a repeated value starts the next panel
      part[slot] = &r;
      members.push_back(j);
      done[j] = true;
    }
    json o = BaseObservation(subject, durl, gateway_url, first.ts);
    SetMeta(o, ProfilesFor(first.metric, subject.is_patient, true, true));
    SetCategory(o, first.metric);
    o["code"] = Concept(json::array({Coding(kLoinc, kBpPanelLoinc, kBpPanelDisplay),
                                     Coding(kMdc, kMdcBpNoninv, "MDC_PRESS_BLD_NONINV")}),
                        "Blood pressure");
    json components = json::array();
    std::string values;
    bool questionable = false;
    bool spot = false;
    for (std::size_t slot = 0; slot < 3; ++slot) {
      const Metric m = slot == 0 ? Metric::kBpSystolic : slot == 1 ? Metric::kBpDiastolic : Metric::kBpMean;
      const MetricInfo& info = Info(m);
      const MetricTerms& t = TermsOf(m);
      json c = {{"code", Concept(json::array({Coding(kLoinc, info.loinc, info.loinc_display),
                                              Coding(kMdc, t.mdc_code, t.mdc_reference_id)}),
                                 t.text)}};
      if (part[slot] != nullptr) {
        c["valueQuantity"] = Quantity(part[slot]->value, info.unit);
        values += (values.empty() ? "" : "-") + NumberText(part[slot]->value);
        questionable = questionable || part[slot]->questionable;
        spot = spot || part[slot]->spot;
      } else if (slot == 2) {
        continue;  // the mean is optional in the bp profile
      } else {
        // The bp profile requires both systolic and diastolic; an absent one says why.
        c["dataAbsentReason"] =
            Concept(json::array({Coding(kDataAbsentReason, "not-performed", "Not Performed")}));
        values += (values.empty() ? "" : "-") + std::string("not-performed");
      }
      components.push_back(std::move(c));
    }
    o["component"] = std::move(components);
    Reading qualifiers = first;
    qualifiers.questionable = questionable;
    qualifiers.spot = spot;
    AddReadingQualifiers(o, qualifiers, cts);
    const std::string phd_id =
        PhdIdentifier(device_part, subject, kMdcBpNoninv, values, "mm[Hg]", qualifiers);
    o["identifier"] = json::array({{{"value", phd_id}}});
    const std::string uuid = NameUuid("reading/" + first.id);
    const std::size_t entry = builder.Add(std::move(o), uuid, "identifier=" + QueryEscape(phd_id));
    for (std::size_t j : members) out.row_entry[readings[j].row] = entry;
  }
  out.json = builder.Finish();
  return out;
}

RenderedBundle RenderAlert(const OutboxRow& row, const RenderContext& context,
                           const RenderOptions& options) {
  RenderedBundle out;
  out.row_entry.assign(1, std::nullopt);
  out.row_error.assign(1, std::string());
  const json a = json::parse(row.body, nullptr, /*allow_exceptions=*/false);
  auto str = [&](const char* key) -> std::string {
    if (a.is_discarded() || !a.is_object()) return {};
    auto it = a.find(key);
    return it != a.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string id = str("id");
  const std::string kind = str("kind");
  const std::string ts = str("ts");
  if (id.empty() || kind.empty() || !ParseRfc3339(ts).ok()) {
    out.row_error[0] = RowError(row, "not an alert event (needs \"id\", \"kind\" and a valid \"ts\")");
    return out;
  }
  BundleBuilder builder(context, options);
  builder.SeeTime(*ParseRfc3339(ts));
  const std::string gateway_url = builder.GatewayUrl();
  const std::string device = str("device");
  const std::string durl = device.empty() ? std::string() : builder.DeviceUrl(device, {}, std::nullopt);
  std::string patient = str("patient");
  if (patient.empty()) patient = row.patient;
  const Subject subject = MakeSubject(patient, options, builder, durl);
  const std::string uuid = NameUuid("alert/" + id);
  const json identifier = {{"system", kUriSystem}, {"value", Urn(uuid)}};
  const std::string if_none_exist =
      "identifier=" + QueryEscape(std::string(kUriSystem) + "|" + Urn(uuid));

  if (kind == "news2") {
    const json* score = a.contains("score") && a["score"].is_number() ? &a["score"] : nullptr;
    if (score == nullptr) {
      out.row_error[0] = RowError(row, "news2 event without a numeric \"score\"");
      return out;
    }
    json o = {{"resourceType", "Observation"}};
    o["extension"] = json::array({{{"url", kGatewayDeviceExtension},
                                   {"valueReference", {{"reference", gateway_url}}}}});
    o["identifier"] = json::array({identifier});
    o["status"] = "final";
    o["category"] = Category("survey");
    o["code"] = Concept(json::array({Coding(kSnomed, kNews2Total, kNews2TotalDisplay)}), "NEWS2");
    o["subject"] = subject.reference;
    o["effectiveDateTime"] = ts;
    o["valueQuantity"] = Quantity(*score, "{score}");
    if (const std::string risk = str("risk"); !risk.empty()) {
      o["interpretation"] = json::array({{{"text", "NEWS2 clinical risk: " + risk}}});
    }
    json components = json::array();
    const json empty = json::object();
    const json& subs = a.contains("subscores") && a["subscores"].is_object() ? a["subscores"] : empty;
    const int scale = a.contains("spo2_scale") && a["spo2_scale"].is_number_integer() &&
                              a["spo2_scale"].get<int>() == 2
                          ? 2
                          : 1;
    for (const News2Part& p : News2Parts()) {
      auto it = subs.find(std::string(p.key));
      if (it == subs.end() || !it->is_number()) continue;
      const bool spo2 = p.key == "spo2";
      const std::string_view code = spo2 && scale == 2 ? kNews2Spo2Scale2 : p.code;
      const std::string_view display = spo2 && scale == 2 ? kNews2Spo2Scale2Display : p.display;
      components.push_back({{"code", Concept(json::array({Coding(kSnomed, code, display)}))},
                            {"valueQuantity", Quantity(*it, "{score}")}});
    }
    if (!components.empty()) o["component"] = std::move(components);
    if (!durl.empty()) o["device"] = {{"reference", durl}};
    out.row_entry[0] = builder.Add(std::move(o), uuid, if_none_exist);
    out.json = builder.Finish();
    return out;
  }

  // Every other alert: a Flag (docs/fhir.md explains the choice).
  const std::string state = str("state");
  json f = {{"resourceType", "Flag"}};
  f["identifier"] = json::array({identifier});
  f["extension"] = json::array(
      {{{"url", kFlagPriorityExtension},
        {"valueCodeableConcept",
         Concept(json::array({Coding(kFlagPriorityCodes, FlagPriorityCode(str("priority")))}),
                 str("priority"))}}});
  f["status"] = state == "cleared" || state == "ended" ? "inactive" : "active";
  f["category"] = json::array(
      {Concept(json::array({Coding(kFlagCategory, kind == "technical" ? "safety" : "clinical")}))});
  json codings = json::array();
  if (auto m = MetricFromName(str("metric"))) {
    const MetricInfo& info = Info(*m);
    const MetricTerms& t = TermsOf(*m);
    if (!info.loinc.empty()) codings.push_back(Coding(kLoinc, info.loinc, info.loinc_display));
    if (!t.mdc_code.empty()) codings.push_back(Coding(kMdc, t.mdc_code, t.mdc_reference_id));
  }
  std::string text = str("message");
  if (text.empty()) text = kind + (str("condition").empty() ? "" : ": " + str("condition"));
  f["code"] = Concept(std::move(codings), text);
  f["subject"] = subject.reference;
  if (!subject.is_patient) f["subject"] = {{"display", "unassigned device " + device}};
  json period = {{"start", str("raised_ts").empty() ? ts : str("raised_ts")}};
  if (f["status"] == "inactive") period["end"] = ts;
  f["period"] = std::move(period);
  f["author"] = {{"reference", durl.empty() ? gateway_url : durl}};
  out.row_entry[0] = builder.Add(std::move(f), uuid, if_none_exist);
  out.json = builder.Finish();
  return out;
}

}  // namespace vg::fhir
