// PatientDirectory: the append-only table of patient ids, indexed by PatientIndex.
//
// Readings carry a small index instead of the id string. The control thread (the one that loads
// and reloads the configuration) is the only writer: it interns names. Any thread may turn an
// index it received through a queue back into the name; names are never moved or removed, and an
// index is published only after its name is written, so readers take no lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "vitalgate/core/reading.h"
#include "vitalgate/core/status.h"

namespace vg {

class PatientDirectory {
 public:
  explicit PatientDirectory(std::size_t capacity = 65536);

  // Writer thread only. Returns the existing index for a known name.
  Result<PatientIndex> Intern(std::string_view name);
  // Writer thread only.
  std::optional<PatientIndex> Find(std::string_view name) const;

  // Any thread. REQUIRES: index was obtained from Intern()/Find() (directly or via a queue).
  const std::string& Name(PatientIndex index) const { return names_[index]; }
  std::size_t size() const { return size_.load(std::memory_order_acquire); }

 private:
  const std::size_t capacity_;
  std::unique_ptr<std::string[]> names_;
  std::atomic<std::size_t> size_{0};
  std::unordered_map<std::string, PatientIndex> index_;  // writer thread only
};

}  // namespace vg
