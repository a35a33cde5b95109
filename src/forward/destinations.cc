#include "vitalgate/forward/destination.h"

#include "vitalgate/forward/fhir.h"
#include "vitalgate/forward/hl7.h"

#include <vector>

namespace vg {

std::span<const DestinationDescriptor* const> AllDestinations() {
  // Each destination type adds its descriptor here.
  static const std::vector<const DestinationDescriptor*> all = [] {
    return std::vector<const DestinationDescriptor*>{&FhirDestination(), &Hl7Destination()};
  }();
  return all;
}

const DestinationDescriptor* FindDestination(std::string_view type) {
  for (const DestinationDescriptor* d : AllDestinations()) {
    if (d->type == type) return d;
  }
  return nullptr;
}

}  // namespace vg
