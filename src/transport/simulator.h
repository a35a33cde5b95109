// simulator transport: a virtual patient monitor that writes jsonl lines, for demos, load tests
// and training. Scenarios (docs/simulator.md): stable, deteriorating (sepsis-like drift of HR,
// RR, temperature and BP over an hour), desaturation, bradycardia, signal_loss. Deterministic
// for a given seed; `time_scale` runs the physiology faster than real time (time stamps stay
// real).
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "vitalgate/transport/transport.h"

namespace vg {

enum class Scenario : std::uint8_t { kStable, kDeteriorating, kDesaturation, kBradycardia, kSignalLoss };

struct SimulatedVitals {
  double heart_rate = 0, resp_rate = 0, spo2 = 0, temperature = 0, bp_systolic = 0,
         bp_diastolic = 0, perfusion_index = 0;
  char consciousness = 'A';
  bool silent = false;  // signal loss: the monitor sends nothing
};

// Pure: the scenario's vitals (before noise) `t_s` scenario-seconds after the start.
SimulatedVitals ScenarioVitals(Scenario scenario, double t_s);

class SimulatorTransport final : public Transport {
 public:
  struct Options {
    Scenario scenario = Scenario::kStable;
    std::int64_t interval_ms = 1000;
    double time_scale = 1;
    double start_offset_s = 0;
    std::int64_t bp_interval_s = 60;
    std::uint64_t seed = 1;
  };
  SimulatorTransport(const TransportContext& ctx, Options options);
  ~SimulatorTransport() override;
  void Start() override;
  void Stop() override;

  static std::span<const OptionSpec> Specs();
  static Result<std::unique_ptr<Transport>> Make(const TransportContext& ctx, const nlohmann::json& o);

  // Renders one tick's lines (pure apart from the generator state); exposed for tests.
  std::string Tick(std::int64_t wall_ms, double scenario_s);

 private:
  void Schedule();

  TransportContext ctx_;
  Options options_;
  boost::asio::steady_timer timer_;
  std::mt19937_64 rng_;
  std::chrono::steady_clock::time_point start_;
  std::int64_t ticks_ = 0;
  std::int64_t last_bp_s_ = -1'000'000;
  std::int64_t last_slow_s_ = -1'000'000;
  bool was_silent_ = false;
  bool stopped_ = true;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace vg
