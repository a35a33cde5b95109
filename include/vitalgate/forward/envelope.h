// The payload encryption envelope of docs/mqtt.md:
//   {"v":1,"alg":"A256GCM","kid":"…","iv":"b64","ct":"b64","tag":"b64"}
// AES-256-GCM (OpenSSL EVP), a fresh random 96-bit IV per message, the UTF-8 topic as associated
// data (a payload moved to another topic does not open), 128-bit tag, standard base64 with
// padding. Key files hold 32 random bytes in base64 on one line (`openssl rand -base64 32`).
// Thread-safety: functions are reentrant; PayloadKey is an immutable value.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vitalgate/core/aead.h"
#include "vitalgate/core/status.h"

namespace vg {

struct PayloadKey {
  std::string kid;
  AeadKey key{};
};

// Reads a key file; errors name the file and what is wrong (length, encoding, permissions).
Result<PayloadKey> LoadPayloadKey(const std::string& path, std::string kid);

Result<std::string> SealEnvelope(const PayloadKey& key, std::string_view topic,
                                 std::string_view plaintext);

// Opens an envelope with the key whose kid matches (keys with an empty kid are tried for any
// envelope). Fails on a wrong topic, a wrong key, or any tampering.
Result<std::string> OpenEnvelope(std::span<const PayloadKey> keys, std::string_view topic,
                                 std::string_view envelope);

std::string Base64Encode(std::span<const std::uint8_t> bytes);
Result<std::vector<std::uint8_t>> Base64Decode(std::string_view text);

}  // namespace vg
