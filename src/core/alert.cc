#include "vitalgate/core/alert.h"

namespace vg {

std::string_view Name(AlertKind kind) {
  switch (kind) {
    case AlertKind::kThreshold: return "threshold";
    case AlertKind::kTrend: return "trend";
    case AlertKind::kNews2: return "news2";
    case AlertKind::kTechnical: return "technical";
  }
  return "?";
}

std::string_view Name(Priority priority) {
  switch (priority) {
    case Priority::kLow: return "low";
    case Priority::kMedium: return "medium";
    case Priority::kHigh: return "high";
  }
  return "?";
}

std::string_view Name(AlertState state) {
  switch (state) {
    case AlertState::kActive: return "active";
    case AlertState::kAcknowledged: return "acknowledged";
    case AlertState::kCleared: return "cleared";
    case AlertState::kEnded: return "ended";
  }
  return "?";
}

std::string_view Name(DeviceCondition condition) {
  switch (condition) {
    case DeviceCondition::kDisconnected: return "disconnected";
    case DeviceCondition::kSensorOff: return "sensor_off";
    case DeviceCondition::kOutOfTrack: return "out_of_track";
    case DeviceCondition::kLowPerfusion: return "low_perfusion";
    case DeviceCondition::kLowBattery: return "low_battery";
    case DeviceCondition::kBadFrames: return "bad_frames";
    case DeviceCondition::kNoData: return "no_data";
    case DeviceCondition::kReadingsDropped: return "readings_dropped";
    case DeviceCondition::kStorage: return "storage";
    case DeviceCondition::kClock: return "clock";
    case DeviceCondition::kUnassigned: return "unassigned";
    case DeviceCondition::kCertificate: return "certificate";
    case DeviceCondition::kDestination: return "destination";
  }
  return "?";
}

std::optional<Priority> PriorityFromName(std::string_view name) {
  if (name == "low") return Priority::kLow;
  if (name == "medium") return Priority::kMedium;
  if (name == "high") return Priority::kHigh;
  return std::nullopt;
}

}  // namespace vg
