#include "simulator.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/timefmt.h"

namespace vg {
namespace {

constexpr std::string_view kScenarios[] = {"stable", "deteriorating", "desaturation",
                                           "bradycardia", "signal_loss"};

constexpr OptionSpec kSpecs[] = {
    {"scenario", OptionType::kString, "\"stable\"",
     "stable, deteriorating, desaturation, bradycardia or signal_loss.", false, -1e300, 1e300,
     kScenarios},
    {"interval_ms", OptionType::kInteger, "1000", "Time between two sets of readings.", false, 1,
     3600000},
    {"time_scale", OptionType::kNumber, "1",
     "Scenario seconds per real second (60 runs an hour's drift in a minute).", false, 0.001,
     100000},
    {"start_offset_s", OptionType::kNumber, "0", "Start this far into the scenario.", false, 0,
     1e9},
    {"bp_interval_s", OptionType::kInteger, "60", "Real seconds between blood pressure readings.",
     false, 1, 86400},
    {"seed", OptionType::kInteger, "1", "Seed of the noise generator.", false, 0, 1e15},
};

double Lerp(double a, double b, double f) { return a + (b - a) * std::clamp(f, 0.0, 1.0); }

// Ramps from 0 to 1 over [t0, t1] and back over [t2, t3].
double Pulse(double t, double t0, double t1, double t2, double t3) {
  if (t < t0 || t >= t3) return 0;
  if (t < t1) return (t - t0) / (t1 - t0);
  if (t < t2) return 1;
  return 1 - (t - t2) / (t3 - t2);
}

SimulatedVitals Baseline() {
  SimulatedVitals v;
  v.heart_rate = 74;
  v.resp_rate = 15;
  v.spo2 = 97;
  v.temperature = 36.8;
  v.bp_systolic = 124;
  v.bp_diastolic = 78;
  v.perfusion_index = 3.5;
  return v;
}

}  // namespace

SimulatedVitals ScenarioVitals(Scenario scenario, double t) {
  SimulatedVitals v = Baseline();
  switch (scenario) {
    case Scenario::kStable:
      break;
    case Scenario::kDeteriorating: {
      // Sepsis-like: tachycardia, tachypnoea, fever, falling pressure and saturation over an hour.
      const double p = std::clamp(t / 3600.0, 0.0, 1.0);
      const double s = p * p * (3 - 2 * p);  // smoothstep: slow start, slow finish
      v.heart_rate = Lerp(76, 128, s);
      v.resp_rate = Lerp(15, 28, s);
      v.temperature = Lerp(37.0, 39.4, s);
      v.bp_systolic = Lerp(124, 86, s);
      v.bp_diastolic = Lerp(78, 48, s);
      v.spo2 = Lerp(97, 91, s);
      v.perfusion_index = Lerp(3.5, 0.8, s);
      if (p > 0.85) v.consciousness = 'C';
      break;
    }
    case Scenario::kDesaturation: {
      const double c = std::fmod(t, 600.0);
      const double d = Pulse(c, 60, 150, 300, 390);
      v.spo2 = Lerp(97, 82, d);
      v.heart_rate = Lerp(76, 98, d);
      v.resp_rate = Lerp(16, 24, d);
      break;
    }
    case Scenario::kBradycardia: {
      const double c = std::fmod(t, 480.0);
      const double d = Pulse(c, 60, 90, 210, 240);
      v.heart_rate = Lerp(72, 37, d);
      break;
    }
    case Scenario::kSignalLoss:
      v.silent = std::fmod(t, 180.0) >= 60.0;
      break;
  }
  return v;
}

std::span<const OptionSpec> SimulatorTransport::Specs() { return kSpecs; }

Result<std::unique_ptr<Transport>> SimulatorTransport::Make(const TransportContext& ctx,
                                                            const nlohmann::json& o) {
  Options options;
  const std::string scenario = o.at("scenario").get<std::string>();
  for (std::size_t i = 0; i < std::size(kScenarios); ++i) {
    if (kScenarios[i] == scenario) options.scenario = static_cast<Scenario>(i);
  }
  options.interval_ms = o.at("interval_ms").get<std::int64_t>();
  options.time_scale = o.at("time_scale").get<double>();
  options.start_offset_s = o.at("start_offset_s").get<double>();
  options.bp_interval_s = o.at("bp_interval_s").get<std::int64_t>();
  options.seed = o.at("seed").get<std::uint64_t>();
  return std::unique_ptr<Transport>(std::make_unique<SimulatorTransport>(ctx, options));
}

SimulatorTransport::SimulatorTransport(const TransportContext& ctx, Options options)
    : ctx_(ctx), options_(options), timer_(*ctx.io), rng_(options.seed) {}

SimulatorTransport::~SimulatorTransport() {
  *alive_ = false;
  Stop();
}

void SimulatorTransport::Start() {
  stopped_ = false;
  start_ = std::chrono::steady_clock::now();
  ticks_ = 0;
  ctx_.sink->OnLink(true, "");
  Schedule();
}

void SimulatorTransport::Stop() {
  stopped_ = true;
  timer_.cancel();
}

void SimulatorTransport::Schedule() {
  // Absolute deadlines so the rate does not drift with processing time.
  timer_.expires_at(start_ + std::chrono::milliseconds(ticks_ * options_.interval_ms));
  std::weak_ptr<bool> alive = alive_;
  timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || alive.expired() || stopped_) return;
    const double real_s = static_cast<double>(ticks_ * options_.interval_ms) / 1000.0;
    const std::string lines =
        Tick(ctx_.clock->WallMs(), options_.start_offset_s + real_s * options_.time_scale);
    if (!lines.empty()) {
      ctx_.sink->OnBytes(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(lines.data()), lines.size()));
    }
    ++ticks_;
    Schedule();
  });
}

std::string SimulatorTransport::Tick(std::int64_t wall_ms, double scenario_s) {
  const SimulatedVitals v = ScenarioVitals(options_.scenario, scenario_s);
  if (v.silent) {
    was_silent_ = true;
    return "";
  }
  std::normal_distribution<double> noise(0.0, 1.0);
  std::string ts;
  AppendRfc3339(ts, wall_ms);
  std::string out;
  auto line = [&](std::string_view metric, double value, int decimals) {
    const double scale = std::pow(10.0, decimals);
    const double rounded = std::round(value * scale) / scale;
    out += "{\"metric\":\"";
    out += metric;
    out += "\",\"value\":";
    AppendJsonNumber(out, rounded);
    out += ",\"ts\":\"";
    out += ts;
    out += "\"}\n";
  };
  line("heart_rate", v.heart_rate + 1.5 * noise(rng_), 0);
  line("spo2", std::min(100.0, v.spo2 + 0.6 * noise(rng_)), 0);
  line("resp_rate", std::max(0.0, v.resp_rate + 0.8 * noise(rng_)), 0);
  line("perfusion_index", std::max(0.05, v.perfusion_index + 0.1 * noise(rng_)), 2);
  const auto real_s = static_cast<std::int64_t>(wall_ms / 1000);
  if (real_s - last_bp_s_ >= options_.bp_interval_s || was_silent_) {
    last_bp_s_ = real_s;
    const double sys = v.bp_systolic + 3 * noise(rng_);
    const double dia = v.bp_diastolic + 2 * noise(rng_);
    line("bp_systolic", sys, 0);
    line("bp_diastolic", dia, 0);
    line("bp_mean", (sys + 2 * dia) / 3, 0);
  }
  if (real_s - last_slow_s_ >= 30 || was_silent_) {
    last_slow_s_ = real_s;
    line("temperature", v.temperature + 0.05 * noise(rng_), 1);
    out += "{\"metric\":\"consciousness\",\"value\":\"";
    out += v.consciousness;
    out += "\",\"ts\":\"" + ts + "\"}\n";
  }
  was_silent_ = false;
  return out;
}

}  // namespace vg
