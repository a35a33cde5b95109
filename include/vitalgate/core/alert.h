// AlertEvent: one published change of an alarm (raised, escalated, acknowledged, cleared, or a
// NEWS2 score change). Every event has its own gateway-unique id; all events of one alarm share
// alarm_id, which is also the id of the event that raised it, so `cmd/ack` may name either.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vitalgate/core/metric.h"
#include "vitalgate/core/reading.h"

namespace vg {

enum class AlertKind : std::uint8_t { kThreshold, kTrend, kNews2, kTechnical };
enum class Priority : std::uint8_t { kLow, kMedium, kHigh };
// kEnded: closed because the device left the patient (discharge, transfer, unassigned), not
// because the condition resolved.
enum class AlertState : std::uint8_t { kActive, kAcknowledged, kCleared, kEnded };

std::string_view Name(AlertKind kind);
std::string_view Name(Priority priority);
std::string_view Name(AlertState state);
std::string_view Name(DeviceCondition condition);
std::optional<Priority> PriorityFromName(std::string_view name);

// NEWS2 sub-scores in chart order.
struct News2Detail {
  int score = 0;
  std::string_view risk;  // "low", "low-medium", "medium", "high"
  std::array<std::int8_t, 7> sub{};  // resp_rate, spo2, air_or_oxygen, bp_systolic, pulse,
                                     // consciousness, temperature
};

struct AlertEvent {
  // Public ids are random, so that nobody can guess the id of an alarm they have not seen.
  std::uint64_t id = 0;        // this event
  std::uint64_t alarm_id = 0;  // the alarm this event belongs to (id of its first event)
  PatientIndex patient = 0;
  AlertKind kind = AlertKind::kThreshold;
  Priority priority = Priority::kMedium;
  AlertState state = AlertState::kActive;
  std::optional<Metric> metric;           // threshold, trend
  std::optional<double> value;            // the value that raised or last updated it
  std::optional<double> limit;            // the limit crossed
  std::optional<DeviceIndex> device;      // technical
  std::optional<DeviceCondition> condition;  // technical
  std::optional<News2Detail> news2;       // news2
  std::string message;                    // human readable; may contain the value (payload only)
  std::int64_t ts_ms = 0;                 // when this event happened (event time)
  std::int64_t raised_ts_ms = 0;          // when the alarm was first raised
  std::string acked_by;                   // acknowledged: who
  bool by_ack = false;                    // this event is the acknowledgement itself
  // The alarm's engine state after this event, to survive a restart (see Engine::Restore);
  // empty when the alarm is over (cleared or ended) or the event is not an alarm's.
  std::string persist;
};

}  // namespace vg
