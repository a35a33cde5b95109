// FHIR R4: the content vitalgate sends (pure rendering) and the destination that posts it to a
// FHIR server over HTTPS (docs/fhir.md).
//
// Rendering turns canonical outbox rows (docs/mqtt.md) into a Bundle: one Observation per
// reading (blood pressure readings of one device with the same `ts` form one 85354-9 panel),
// a Device for each measuring device and one for the gateway (HL7 PHD IG), and, for an alert
// event, an Observation (NEWS2) or a Flag (other kinds). The same content serves MQTT
// `format: fhir` (Bundle type "collection") and the FHIR destination (type "transaction",
// conditional creates keyed by the PHD IG's Observation identifier).
//
// Rendering is pure and thread-safe. The link (FhirDestination().make) is owned by one
// destination thread, like every RequestLink.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/forward/destination.h"

namespace vg::fhir {

enum class BundleType : std::uint8_t { kCollection, kTransaction };
enum class PatientReference : std::uint8_t {
  kIdentifier,  // subject.identifier {system, value} (+ a conditional reference in transactions)
  kLiteral,     // subject.reference "Patient/{id}": the patient id is the server's logical id
};

// The identifier system used when none is configured; sites should configure their own (the
// assigning authority of the patient id, as HL7 v2 PID-3 names it).
inline constexpr std::string_view kDefaultPatientSystem = "urn:vitalgate:patient-id";

struct RenderOptions {
  BundleType bundle_type = BundleType::kCollection;
  std::string patient_identifier_system = std::string(kDefaultPatientSystem);
  PatientReference patient_reference = PatientReference::kIdentifier;
};

// A rendered Bundle and where each row of the input went.
struct RenderedBundle {
  std::string json;  // the Bundle; empty when no row could be rendered
  // Per input row: the index of the Bundle entry that carries it (a transaction-response has
  // its entries in the same order), or nullopt when the row could not be rendered.
  std::vector<std::optional<std::size_t>> row_entry;
  // Per input row: why it could not be rendered (names the row, never a patient value).
  std::vector<std::string> row_error;
};

// Readings of one patient (`patient` as in OutboxRow::patient, "unassigned/<device>" allowed).
RenderedBundle RenderReadings(std::string_view patient, std::span<const OutboxRow* const> rows,
                              const RenderContext& context, const RenderOptions& options);

// One alert event (docs/mqtt.md): NEWS2 as an Observation with sub-score components, every
// other kind as a Flag.
RenderedBundle RenderAlert(const OutboxRow& row, const RenderContext& context,
                           const RenderOptions& options);

// Name-based UUID (RFC 4122 version 5, SHA-1) in vitalgate's namespace, as lower-case text.
// Stable: the same name always gives the same UUID (Device and Bundle entry ids).
std::string NameUuid(std::string_view name);

}  // namespace vg::fhir

namespace vg {
// The "fhir" destination type: transaction Bundles POSTed over HTTPS (docs/fhir.md).
const DestinationDescriptor& FhirDestination();
}  // namespace vg
