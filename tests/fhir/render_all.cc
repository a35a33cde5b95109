// Renders every metric of the catalogue, blood pressure panels, every reading flag, every alert
// kind and state, with both Bundle types and both patient reference modes, into DIR/*.json for
// validate.mjs. DIR/invalid/ gets broken copies that the validator must reject.
//
// usage: fhir_render_all DIR
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/fhir/samples.h"
#include "vitalgate/forward/fhir.h"

namespace {

using nlohmann::json;

bool Write(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text << '\n';
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fhir_render_all DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  ::mkdir(dir.c_str(), 0755);
  ::mkdir((dir + "/invalid").c_str(), 0755);
  int written = 0;
  for (const vg::fhir::testing::Sample& s : vg::fhir::testing::AllSamples()) {
    const vg::fhir::RenderedBundle out = s.Render();
    for (std::size_t i = 0; i < out.row_error.size(); ++i) {
      if (!out.row_error[i].empty()) {
        std::cerr << s.name << ": row " << i << " not rendered: " << out.row_error[i] << "\n";
        return 1;
      }
    }
    if (!Write(dir + "/" + s.name + ".json", out.json)) return 1;
    ++written;
  }

  // Negative controls: the validator must reject these.
  const json bp = json::parse(vg::fhir::testing::FindSample("bp-full-collection").Render().json);
  json no_diastolic = bp;
  for (json& entry : no_diastolic["entry"]) {
    json& r = entry["resource"];
    if (r["resourceType"] != "Observation" || !r.contains("component")) continue;
    json kept = json::array();
    for (const json& c : r["component"]) {
      if (c["code"]["coding"][0]["code"] != "8462-4") kept.push_back(c);
    }
    r["component"] = kept;
  }
  json hr = json::parse(vg::fhir::testing::FindSample("heart_rate-collection").Render().json);
  for (json& entry : hr["entry"]) {
    // Without the LOINC code 8867-4 the heartrate profile's code slice is empty.
    if (entry["resource"]["resourceType"] == "Observation") {
      json kept = json::array();
      for (const json& c : entry["resource"]["code"]["coding"]) {
        if (c["system"] != "http://loinc.org") kept.push_back(c);
      }
      entry["resource"]["code"]["coding"] = kept;
    }
  }
  json no_subject = hr;
  for (json& entry : no_subject["entry"]) {
    if (entry["resource"]["resourceType"] == "Observation") entry["resource"].erase("subject");
  }
  if (!Write(dir + "/invalid/bp-without-diastolic.json", no_diastolic.dump()) ||
      !Write(dir + "/invalid/heart-rate-without-loinc.json", hr.dump()) ||
      !Write(dir + "/invalid/vital-sign-without-subject.json", no_subject.dump())) {
    return 1;
  }
  std::cout << "wrote " << written << " bundles and 3 negative controls to " << dir << "\n";
  return 0;
}
