// NameDirectory: an append-only table of ids (patients, indexed by PatientIndex; devices, by
// DeviceIndex).
//
// Readings carry a small index instead of the id string. The control thread (the one that loads
// and reloads the configuration) is the only writer: it interns names. Any thread may turn an
// index it received through a queue back into the name; names are never moved or removed, and an
// index is published only after its name is written, so readers take no lock. Names live in
// blocks of kBlock, allocated as the table fills: a gateway with 40 patients holds one block,
// not room for the whole capacity.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "vitalgate/core/reading.h"
#include "vitalgate/core/status.h"

namespace vg {

class NameDirectory {
 public:
  explicit NameDirectory(std::size_t capacity = 65536);

  // Writer thread only. Returns the existing index for a known name.
  Result<PatientIndex> Intern(std::string_view name);
  // Writer thread only.
  std::optional<PatientIndex> Find(std::string_view name) const;

  // Any thread. REQUIRES: index was obtained from Intern()/Find() (directly or via a queue).
  const std::string& Name(PatientIndex index) const {
    return blocks_[index / kBlock][index % kBlock];
  }
  std::size_t size() const { return size_.load(std::memory_order_acquire); }

 private:
  static constexpr std::size_t kBlock = 256;

  const std::size_t capacity_;
  // capacity_ / kBlock (rounded up) slots; a block is allocated when its first name is interned,
  // before any index in it is published.
  std::unique_ptr<std::unique_ptr<std::string[]>[]> blocks_;
  std::atomic<std::size_t> size_{0};
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>{}(name);
    }
  };
  // Writer thread only; looked up by string_view without a copy.
  std::unordered_map<std::string, PatientIndex, NameHash, std::equal_to<>> index_;
};

using PatientDirectory = NameDirectory;

// The patient of a device that has none is the placeholder "unassigned/<device>" (a real
// patient id never contains '/'): its readings and alerts go to the `unassigned/` topics.
inline std::string PlaceholderPatient(std::string_view device) {
  return "unassigned/" + std::string(device);
}
inline bool IsPlaceholderPatient(std::string_view patient) {
  return patient.find('/') != std::string_view::npos;
}
using DeviceDirectory = NameDirectory;

}  // namespace vg
