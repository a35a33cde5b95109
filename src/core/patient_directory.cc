#include "vitalgate/core/patient_directory.h"

namespace vg {

NameDirectory::NameDirectory(std::size_t capacity)
    : capacity_(capacity),
      blocks_(std::make_unique<std::unique_ptr<std::string[]>[]>((capacity + kBlock - 1) / kBlock)) {}

Result<PatientIndex> NameDirectory::Intern(std::string_view name) {
  if (auto found = Find(name)) return *found;
  const std::size_t n = size_.load(std::memory_order_relaxed);
  if (n >= capacity_) {
    return ResourceExhausted("too many ids (limit " + std::to_string(capacity_) + ")");
  }
  auto& block = blocks_[n / kBlock];
  if (!block) block = std::make_unique<std::string[]>(kBlock);
  std::string& slot = block[n % kBlock];
  slot.assign(name);
  const auto index = static_cast<PatientIndex>(n);
  index_.emplace(slot, index);
  size_.store(n + 1, std::memory_order_release);
  return index;
}

std::optional<PatientIndex> NameDirectory::Find(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

}  // namespace vg
