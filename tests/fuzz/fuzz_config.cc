// libFuzzer target: the configuration loader on arbitrary text: JSON syntax, every section's
// option table, device transport and codec specs, and rule compilation (patients' merge
// patches included). Files named by the config are not opened.
#include <nlohmann/json.hpp>
#include <string_view>

#include "vitalgate/codec/codec.h"
#include "vitalgate/config/config.h"
#include "vitalgate/core/patient_directory.h"
#include "vitalgate/engine/rules.h"
#include "vitalgate/transport/transport.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = vg::config::ParseConfig(text, "fuzz.json", "/nonexistent", {/*check_files=*/false});
  if (!cfg.ok()) {
    if (cfg.status().message().empty()) __builtin_trap();  // every error must say what
    return 0;
  }
  vg::PatientDirectory patients;
  std::vector<vg::PatientRuleInput> inputs;
  for (const auto& p : cfg->patients) {
    auto index = patients.Intern(p.id);
    if (!index.ok()) return 0;
    inputs.push_back(vg::PatientRuleInput{*index, p.id, p.news2_scale, p.rules});
  }
  (void)vg::CompileRules(cfg->rules, inputs);
  const vg::OptionContext ctx{"/nonexistent", /*check_files=*/false};
  for (std::size_t i = 0; i < cfg->devices.size(); ++i) {
    (void)vg::ValidateTransportSpec(cfg->devices[i].transport, "devices[i].transport", ctx);
    if (!cfg->devices[i].codec.is_null()) {
      (void)vg::ValidateCodecSpec(cfg->devices[i].codec, "devices[i].codec");
    }
  }
  return 0;
}
