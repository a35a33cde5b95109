// Gateway-unique ids for readings and alert events.
//
// An id is a 64-bit number: the store generation (incremented and made durable each time the
// outbox is opened) in the high 24 bits and a counter in the low 40 bits, so ids never repeat
// across restarts and sort in creation order. On the wire it is "<instance>-<hex>", where the
// instance is a random tag chosen when the outbox file was created, so that a fresh outbox
// (after a damaged one was moved aside) cannot reissue an id a consumer has already seen.
// IdAllocator is single-threaded (the engine thread owns it); IdFormat is immutable.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vg {

inline constexpr int kIdCounterBits = 40;

class IdAllocator {
 public:
  explicit IdAllocator(std::uint32_t generation)
      : next_((static_cast<std::uint64_t>(generation) << kIdCounterBits) + 1) {}
  std::uint64_t Next() { return next_++; }

 private:
  std::uint64_t next_;
};

// Appends an id as "<instance>-<hex>".
void AppendId(std::string& out, std::string_view instance, std::uint64_t id);

class IdFormat {
 public:
  explicit IdFormat(std::string instance) : instance_(std::move(instance)) {}
  void Append(std::string& out, std::uint64_t id) const;
  std::string Format(std::uint64_t id) const;
  // Parses an id this gateway issued; nullopt for anything else.
  std::optional<std::uint64_t> Parse(std::string_view text) const;
  const std::string& instance() const { return instance_; }

 private:
  std::string instance_;
};

}  // namespace vg
