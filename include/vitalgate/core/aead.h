// AES-256-GCM (OpenSSL EVP) with a fresh random 96-bit IV per message and a 128-bit tag: the
// primitive behind the MQTT payload envelope and the encryption of stored outbox bodies.
// Reentrant; keys are plain values.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "vitalgate/core/status.h"

namespace vg {

inline constexpr std::size_t kAeadKeyBytes = 32;
inline constexpr std::size_t kAeadIvBytes = 12;
inline constexpr std::size_t kAeadTagBytes = 16;

using AeadKey = std::array<std::uint8_t, kAeadKeyBytes>;

struct Sealed {
  std::array<std::uint8_t, kAeadIvBytes> iv{};
  std::string ciphertext;
  std::array<std::uint8_t, kAeadTagBytes> tag{};
};

Result<Sealed> AeadSeal(const AeadKey& key, std::string_view aad, std::string_view plaintext);

// Fails (without detail, as authentication failures must) on a wrong key, wrong AAD or tampering.
Result<std::string> AeadOpen(const AeadKey& key, std::string_view aad, const Sealed& sealed);

// Compact binary form for storage: "vg1" | iv | tag | ciphertext.
std::string AeadPack(const Sealed& sealed);
Result<Sealed> AeadUnpack(std::string_view packed);

// SHA-256 of `data` as 64 lower-case hex digits (the audit chain, configuration hashes).
std::string Sha256Hex(std::string_view data);

}  // namespace vg
