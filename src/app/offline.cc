// `vitalgate replay` and `vitalgate decrypt`: the engine and the envelope, offline.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "vitalgate/app/cli.h"
#include "vitalgate/app/loader.h"
#include "vitalgate/core/payload.h"
#include "vitalgate/core/timefmt.h"
#include "vitalgate/engine/engine.h"
#include "vitalgate/forward/envelope.h"
#include "vitalgate/store/outbox.h"
#include "vitalgate/store/writer.h"

namespace vg {
namespace {

class ReplaySink final : public AlertSink {
 public:
  ReplaySink(const PayloadContext& ctx, bool print) : ctx_(ctx), print_(print) {}
  void OnAlert(AlertEvent&& e) override {
    if (print_) {
      std::string line;
      AppendAlertJson(line, e, ctx_);
      line += '\n';
      std::fputs(line.c_str(), stdout);
    }
    if (e.state == AlertState::kActive) {
      ++counts_[{ctx_.patients->Name(e.patient), std::string(Name(e.kind)),
                 std::string(Name(e.priority))}];
    }
  }
  const std::map<std::tuple<std::string, std::string, std::string>, int>& counts() const {
    return counts_;
  }

 private:
  const PayloadContext& ctx_;
  bool print_;
  std::map<std::tuple<std::string, std::string, std::string>, int> counts_;
};

// One recorded reading: either a flat object {"patient","device"?,"metric","value","unit"?,"ts"}
// or a readings message as published {"gateway","patient","readings":[...]}.
struct Recorded {
  std::string patient, device, metric;
  nlohmann::json value;
  std::string unit, ts;
  std::uint8_t flags = 0;
};

Status ParseRecorded(const nlohmann::json& j, const std::string& patient_default,
                     std::vector<Recorded>& out) {
  if (!j.is_object()) return InvalidArgument("expected a JSON object");
  if (j.contains("readings")) {
    if (!j["readings"].is_array()) return InvalidArgument("\"readings\" must be an array");
    const std::string patient = j.value("patient", "");
    for (const auto& r : j["readings"]) VG_RETURN_IF_ERROR(ParseRecorded(r, patient, out));
    return Status::Ok();
  }
  Recorded r;
  auto str = [&](const char* key, std::string& dst, bool required) -> Status {
    if (!j.contains(key)) {
      return required ? InvalidArgument(std::string("\"") + key + "\" is missing") : Status::Ok();
    }
    if (!j[key].is_string()) return InvalidArgument(std::string("\"") + key + "\" must be a string");
    dst = j[key].get<std::string>();
    return Status::Ok();
  };
  r.patient = patient_default;
  VG_RETURN_IF_ERROR(str("patient", r.patient, patient_default.empty()));
  VG_RETURN_IF_ERROR(str("device", r.device, false));
  VG_RETURN_IF_ERROR(str("metric", r.metric, true));
  VG_RETURN_IF_ERROR(str("unit", r.unit, false));
  VG_RETURN_IF_ERROR(str("ts", r.ts, true));
  if (!j.contains("value")) return InvalidArgument("\"value\" is missing");
  r.value = j["value"];
  // Flags as published (docs/mqtt.md) and the jsonl codec's own keys.
  if (j.contains("flags")) {
    if (!j["flags"].is_array()) return InvalidArgument("\"flags\" must be an array");
    for (const auto& f : j["flags"]) {
      if (f == "questionable") r.flags |= kFlagQuestionable;
      if (f == "spot") r.flags |= kFlagSpot;
      if (f == "stored") r.flags |= kFlagStored;
      if (f == "clock") r.flags |= kFlagClock;
    }
  }
  if (j.value("spot", false) == true) r.flags |= kFlagSpot;
  if (j.value("stored", false) == true) r.flags |= kFlagStored;
  out.push_back(std::move(r));
  return Status::Ok();
}

}  // namespace

int CommandReplay(const std::vector<std::string>& argv) {
  std::string config_path, input_path;
  bool summary = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--config" && i + 1 < argv.size()) {
      config_path = argv[++i];
    } else if (argv[i] == "--summary") {
      summary = true;
    } else if (input_path.empty() && argv[i].rfind("--", 0) != 0) {
      input_path = argv[i];
    } else {
      return PrintError(InvalidArgument("replay: unexpected argument \"" + argv[i] + "\""));
    }
  }
  if (config_path.empty() || input_path.empty()) {
    return PrintError(InvalidArgument("usage: vitalgate replay --config FILE INPUT.jsonl [--summary]"));
  }
  PatientDirectory patients;
  auto loaded = LoadEverything(config_path, patients, LoadOptions{/*check_files=*/false, /*check_tls_contents=*/false});
  if (!loaded.ok()) return PrintError(loaded.status());
  std::ifstream in(input_path);
  if (!in) return PrintError(NotFound(input_path + ": cannot open"));

  DeviceDirectory device_ids;
  std::vector<EngineDevice> devices;
  for (const DeviceSetup& d : loaded->devices) {
    (void)device_ids.Intern(d.config.id);
    EngineDevice ed;
    ed.id = d.config.id;
    ed.patient = d.config.patient ? d.patient : 0;
    ed.watch_no_data = false;  // a recording has no link to lose
    devices.push_back(std::move(ed));
  }
  EngineEnvironment env;
  env.patients = &patients;
  Engine engine(loaded->rules, devices, /*id_generation=*/0, 0, env);
  IdFormat ids("replay");
  PayloadContext ctx{&patients, &device_ids, &ids};
  // The recording's time is the gateway's time in a replay: timers (a stream that stopped,
  // escalation) run on it, so the replay gives what the live run gave.
  std::int64_t recording_ms = std::numeric_limits<std::int64_t>::min();
  ReplaySink sink(ctx, !summary);

  std::string line;
  std::size_t line_no = 0, bad_lines = 0, readings = 0, implausible = 0;
  std::vector<Recorded> batch;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    batch.clear();
    Status s = j.is_discarded() ? InvalidArgument("not valid JSON") : ParseRecorded(j, "", batch);
    std::vector<Reading> parsed;
    for (const Recorded& rec : batch) {
      if (!s.ok()) break;
      const auto patient = patients.Find(rec.patient);
      const auto metric = MetricFromName(rec.metric);
      auto ts = ParseRfc3339(rec.ts);
      if (!patient) {
        s = InvalidArgument("patient \"" + rec.patient + "\" is not in the configuration");
      } else if (!metric) {
        s = InvalidArgument("unknown metric \"" + rec.metric + "\"");
      } else if (!ts.ok()) {
        s = ts.status();
      } else {
        Reading r;
        r.patient = *patient;
        r.metric = *metric;
        r.ts_ms = r.rx_ms = *ts;
        r.flags = static_cast<std::uint8_t>(rec.flags | kFlagDeviceTime);
        r.device = 0xFFFF;
        if (auto d = device_ids.Find(rec.device)) r.device = static_cast<DeviceIndex>(*d);
        const MetricInfo& info = Info(*metric);
        bool ok = true;
        if (info.type == ValueType::kNumber && rec.value.is_number()) {
          const auto v = rec.unit.empty() ? std::optional<double>(rec.value.get<double>())
                                          : ToCanonical(*metric, rec.unit, rec.value.get<double>());
          ok = v.has_value();
          if (ok) r.value = *v;
        } else if (info.type == ValueType::kAcvpu && rec.value.is_string()) {
          const auto v = AcvpuFromLetter(rec.value.get<std::string>());
          ok = v.has_value();
          if (ok) r.value = *v;
        } else if (info.type == ValueType::kBool && rec.value.is_boolean()) {
          r.value = rec.value.get<bool>() ? 1 : 0;
        } else {
          ok = false;
        }
        if (!ok) {
          s = InvalidArgument("value or unit of the wrong type for " + rec.metric);
        } else {
          parsed.push_back(r);
        }
      }
    }
    if (!s.ok()) {
      ++bad_lines;
      std::fprintf(stderr, "vitalgate: %s:%zu: %s\n", input_path.c_str(), line_no,
                   s.message().c_str());
      continue;
    }
    for (Reading& r : parsed) {
      // As in the live gateway: implausible values are not readings.
      if (!IsPlausible(r.metric, r.value)) {
        ++implausible;
        continue;
      }
      // The recording's time is the gateway's: the engine's tick (stopped streams, escalation
      // of silent patients) runs as time advances, after the reading that advanced it, as a live
      // gateway sees a reading before its next tick.
      const bool advanced = r.ts_ms > recording_ms;
      if (advanced) recording_ms = r.ts_ms;
      engine.OnReading(r, recording_ms * 1'000'000, sink);
      if (advanced) engine.OnTick(recording_ms, recording_ms * 1'000'000, sink);
      ++readings;
    }
  }
  std::fflush(stdout);
  if (summary) {
    std::printf("%-20s %-10s %-8s %s\n", "patient", "kind", "priority", "alarms");
    int total = 0;
    for (const auto& [key, n] : sink.counts()) {
      std::printf("%-20s %-10s %-8s %d\n", std::get<0>(key).c_str(), std::get<1>(key).c_str(),
                  std::get<2>(key).c_str(), n);
      total += n;
    }
    std::printf("total: %d alarm signals (raised or escalated) from %zu readings", total, readings);
    if (implausible > 0) std::printf(", %zu implausible values skipped", implausible);
    std::printf("\n");
  }
  if (bad_lines > 0) {
    std::fprintf(stderr, "vitalgate: replay: %zu of %zu lines were invalid\n", bad_lines, line_no);
    return 2;
  }
  return 0;
}

int CommandDecrypt(const std::vector<std::string>& argv) {
  std::vector<PayloadKey> keys;
  std::string topic;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--key" && i + 1 < argv.size()) {
      std::string spec = argv[++i];
      std::string kid;
      // --key KID=FILE restricts a key to envelopes with that kid.
      const auto eq = spec.find('=');
      if (eq != std::string::npos && spec.find('/') > eq) {
        kid = spec.substr(0, eq);
        spec = spec.substr(eq + 1);
      }
      auto key = LoadPayloadKey(spec, kid);
      if (!key.ok()) return PrintError(key.status());
      keys.push_back(std::move(*key));
    } else if (argv[i] == "--topic" && i + 1 < argv.size()) {
      topic = argv[++i];
    } else {
      return PrintError(InvalidArgument("decrypt: unexpected argument \"" + argv[i] + "\""));
    }
  }
  if (keys.empty() || topic.empty()) {
    return PrintError(InvalidArgument("usage: vitalgate decrypt --key [KID=]FILE... --topic TOPIC < envelope"));
  }
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  while (!input.empty() && (input.back() == '\n' || input.back() == '\r')) input.pop_back();
  auto plain = OpenEnvelope(keys, topic, input);
  if (!plain.ok()) return PrintError(plain.status());
  std::fwrite(plain->data(), 1, plain->size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

int CommandSeal(const std::vector<std::string>& argv) {
  std::string key_file, topic, kid;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--key" && i + 1 < argv.size()) {
      key_file = argv[++i];
    } else if (argv[i] == "--kid" && i + 1 < argv.size()) {
      kid = argv[++i];
    } else if (argv[i] == "--topic" && i + 1 < argv.size()) {
      topic = argv[++i];
    } else {
      return PrintError(InvalidArgument("seal: unexpected argument \"" + argv[i] + "\""));
    }
  }
  if (key_file.empty() || topic.empty()) {
    return PrintError(InvalidArgument("usage: vitalgate seal --key FILE [--kid KID] --topic TOPIC < payload"));
  }
  auto key = LoadPayloadKey(key_file, kid.empty() ? "k1" : kid);
  if (!key.ok()) return PrintError(key.status());
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  while (!input.empty() && (input.back() == '\n' || input.back() == '\r')) input.pop_back();
  auto sealed = SealEnvelope(*key, topic, input);
  if (!sealed.ok()) return PrintError(sealed.status());
  std::fwrite(sealed->data(), 1, sealed->size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

int CommandAudit(const std::vector<std::string>& argv) {
  std::string config_path;
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--config" && i + 1 < argv.size()) {
      config_path = argv[++i];
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (rest != std::vector<std::string>{"verify"} || config_path.empty()) {
    return PrintError(InvalidArgument("usage: vitalgate audit verify --config FILE"));
  }
  PatientDirectory patients;
  auto loaded = LoadEverything(config_path, patients, LoadOptions{false, false});
  if (!loaded.ok()) return PrintError(loaded.status());
  auto reader = OutboxReader::Open(loaded->config.storage.path);
  if (!reader.ok()) return PrintError(reader.status());
  std::string start;
  std::uint64_t head = 0;
  auto entries = (*reader)->AllAudit(&start, &head);
  if (!entries.ok()) return PrintError(entries.status());
  AuditCheck check = VerifyAuditChain(*entries, start);
  const std::uint64_t last = entries->empty() ? 0 : entries->back().seq;
  if (check.ok && head > last) {
    check = {false, "entries " + std::to_string(last + 1) + " to " + std::to_string(head) +
                        " are missing (deleted)"};
  }
  if (!check.ok) {
    std::fprintf(stderr, "vitalgate: audit trail of %s is broken: %s\n",
                 loaded->config.storage.path.c_str(), check.problem.c_str());
    return 1;
  }
  std::printf("audit trail of %s intact: %zu entries", loaded->config.storage.path.c_str(),
              entries->size());
  if (!entries->empty()) {
    std::printf(", seq %llu to %llu", static_cast<unsigned long long>(entries->front().seq),
                static_cast<unsigned long long>(entries->back().seq));
  }
  std::printf("%s\n", start.empty() ? "" : " (older entries pruned; the chain starts from their last hash)");
  return 0;
}

}  // namespace vg
