// DeviceInput: the glue for one device between its transport, its codec and the engine's
// ingress ring. It turns decoded values into Readings (time stamps, patient, plausibility),
// reports link state and device conditions, and counts everything per device. Values that are
// implausible, of the wrong type or for an unknown patient are counted as invalid and never
// reach the engine. A full ring costs the reading (counted, and a technical alert follows), never
// the I/O thread's time.
//
// Thread-safety: the I/O thread only (it is the single producer of the ring).
#pragma once

#include <memory>
#include <string>

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

class DeviceInput final : public TransportSink, public CodecSink {
 public:
  DeviceInput(DeviceIndex index, std::string id, PatientIndex patient, std::unique_ptr<Codec> codec,
              IngressPort port, const PatientDirectory& patients, DeviceStats& stats,
              const Clock& clock);

  void OnBytes(std::span<const std::uint8_t> bytes) override;
  void OnCharacteristic(std::uint16_t uuid, std::span<const std::uint8_t> value) override;
  void OnLink(bool up, std::string_view reason) override;
  bool Saturated() const override;

  void OnValue(const DecodedValue& value) override;
  void OnCondition(DeviceCondition condition, bool active) override;
  void OnDecodeError(const DecodeError& error) override;

 private:
  bool Push(const IngressItem& item);
  void Flush();
  void Invalid(std::string_view why);

  DeviceIndex index_;
  std::string id_;
  PatientIndex patient_;
  std::unique_ptr<Codec> codec_;
  IngressPort port_;
  const PatientDirectory& patients_;
  DeviceStats& stats_;
  const Clock& clock_;
  bool pushed_ = false;
  bool drop_pending_ = false;  // a drop still has to be reported to the engine
  RateLimiter invalid_log_;
  RateLimiter decode_log_;
  RateLimiter drop_log_;
};

}  // namespace vg
