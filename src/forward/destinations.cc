#include "vitalgate/forward/destination.h"

#include <vector>

namespace vg {

std::span<const DestinationDescriptor* const> AllDestinations() {
  // Each destination type adds its descriptor here.
  static const std::vector<const DestinationDescriptor*> all = [] {
    std::vector<const DestinationDescriptor*> v;
    return v;
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
