// DeviceInput: the glue for one device between its transport, its codec and the engine's
// ingress ring. It turns decoded values into Readings (time stamps, patient, plausibility),
// reports link state and device conditions, and counts everything per device.
//
// - Values that are implausible, of the wrong type, or for a patient the device may not feed
//   are counted as invalid and never reach the engine.
// - Device time is checked against the gateway's: a time before 2000, more than `max_ahead`
//   ahead, further behind than the device's window (`max_behind` for a live stream,
//   `max_record_age` for spot checks and stored records), or a live stream's time going
//   backwards is implausible. Such a reading is never dropped silently: it is counted, flagged
//   (`clock`, with the device time kept as device_ts), the technical alarm `clock` is raised
//   with the offset, and a live reading is evaluated at its receive time, while a stored record
//   keeps its device time and is not alarmed on as if it were current.
// - A device clock learned from the device (BLE Current Time) corrects its time stamps.
// - The device's patient can change at run time (SetPatient): every reading received after the
//   change carries the new patient, and the engine learns of it in order with the readings.
// - A full ring costs the reading (counted, and a technical alert follows), never the I/O
//   thread's time.
//
// Thread-safety: the I/O thread only (it is the single producer of the ring).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "vitalgate/codec/codec.h"
#include "vitalgate/core/clock.h"
#include "vitalgate/core/doorbell.h"
#include "vitalgate/core/log.h"
#include "vitalgate/core/patient_directory.h"
#include "vitalgate/core/spsc_ring.h"
#include "vitalgate/core/stats.h"
#include "vitalgate/transport/transport.h"

namespace vg {

// The I/O thread's ingress ring and the engine's doorbell.
struct IngressPort {
  SpscRing<IngressItem>* ring = nullptr;
  Doorbell* wake = nullptr;
};

// How a device's time stamps are judged (devices[].clock in docs/config.md).
struct DeviceTimePolicy {
  std::int64_t max_ahead_ms = 60'000;
  std::int64_t max_behind_ms = 600'000;           // live readings
  std::int64_t max_record_age_ms = 30ll * 86'400'000;  // spot checks and stored records
  bool spot = false;  // every reading of the device is a spot check
};

struct DeviceRouting {
  PatientIndex patient = 0;   // its patient, or its placeholder when `unassigned`
  bool unassigned = false;
  // Patients a reading may name itself (jsonl "patient"); `any` allows every configured one.
  std::vector<PatientIndex> allowed;
  bool any = false;
};

class DeviceInput final : public TransportSink, public CodecSink {
 public:
  DeviceInput(DeviceIndex index, std::string id, DeviceRouting routing,
              std::unique_ptr<Codec> codec, IngressPort port, const PatientDirectory& patients,
              DeviceStats& stats, const Clock& clock, DeviceTimePolicy time = {});

  // Control (I/O) thread: the device now feeds another patient, or none.
  void SetRouting(DeviceRouting routing);
  const DeviceRouting& routing() const { return routing_; }
  const std::string& id() const { return id_; }

  void OnBytes(std::span<const std::uint8_t> bytes) override;
  void OnCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> value) override;
  void OnLink(bool up, std::string_view reason) override;
  bool Saturated() const override;

  void OnValue(const DecodedValue& value) override;
  void OnCondition(DeviceCondition condition, bool active) override;
  void OnDecodeError(const DecodeError& error) override;
  void OnDeviceClock(std::int64_t device_now_ms) override;

 private:
  IngressItem ConditionItem(DeviceCondition condition, bool active) const;
  bool Push(const IngressItem& item);
  void PushReliably(const IngressItem& item);
  void Flush();
  void Invalid(std::string_view why);
  // Judges the reading's device time; true when it is implausible (the reading is adjusted).
  bool CheckClock(Reading& r, std::int64_t now);

  DeviceIndex index_;
  std::string id_;
  DeviceRouting routing_;
  std::unique_ptr<Codec> codec_;
  IngressPort port_;
  const PatientDirectory& patients_;
  DeviceStats& stats_;
  const Clock& clock_;
  DeviceTimePolicy time_;
  std::optional<std::int64_t> clock_offset_ms_;  // learned: device clock minus gateway clock
  std::array<std::int64_t, kMetricCount> last_device_ts_{};  // live streams, per metric
  std::int64_t last_clock_report_mono_ = 0;
  bool pushed_ = false;
  bool drop_pending_ = false;  // a drop still has to be reported to the engine
  RateLimiter invalid_log_;
  RateLimiter decode_log_;
  RateLimiter drop_log_;
  RateLimiter clock_log_;
};

// The key that recognises a record sent again: a hash of its metric, its device time (before
// any learned clock offset) and its sequence number, else its value. Never 0.
std::uint64_t RecordKeyOf(Metric metric, std::int64_t device_ts_ms, double value,
                        std::optional<std::uint32_t> record_seq);

}  // namespace vg
