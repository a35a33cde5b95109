#include "vitalgate/forward/envelope.h"

#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "vitalgate/core/json_text.h"
#include "vitalgate/core/options.h"

namespace vg {
namespace {

const std::uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

}  // namespace

std::string Base64Encode(std::span<const std::uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Result<std::vector<std::uint8_t>> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return InvalidArgument("base64: length is not a multiple of 4");
  for (char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/' || c == '=';
    if (!ok) return InvalidArgument("base64: invalid character");
  }
  // Padding only at the end, at most two characters of it.
  const std::size_t pad = text.find('=');
  if (pad != std::string_view::npos &&
      (pad + 2 < text.size() || text.find_first_not_of('=', pad) != std::string_view::npos)) {
    return InvalidArgument("base64: padding in the middle");
  }
  std::vector<std::uint8_t> out(3 * text.size() / 4);
  const int n = EVP_DecodeBlock(out.data(), Bytes(text), static_cast<int>(text.size()));
  if (n < 0) return InvalidArgument("base64: invalid encoding");
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  if (!text.empty() && text.back() == '=') --len;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

Result<PayloadKey> LoadPayloadKey(const std::string& path, std::string kid) {
  VG_RETURN_IF_ERROR(CheckFile(path, FileCheck::kSecret, "key file"));
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\n')) {
    line.pop_back();
  }
  auto raw = Base64Decode(line);
  if (!raw.ok()) return InvalidArgument(path + ": " + raw.status().message() +
                                        "; expected 32 random bytes in base64 on one line");
  if (raw->size() != 32) {
    return InvalidArgument(path + ": key is " + std::to_string(raw->size()) +
                           " bytes, expected 32 (create one with: openssl rand -base64 32)");
  }
  PayloadKey key;
  key.kid = std::move(kid);
  std::copy(raw->begin(), raw->end(), key.key.begin());
  return key;
}

Result<std::string> SealEnvelope(const PayloadKey& key, std::string_view topic,
                                 std::string_view plaintext) {
  auto sealed = AeadSeal(key.key, topic, plaintext);
  if (!sealed.ok()) return sealed.status();
  const std::span<const std::uint8_t> ct(reinterpret_cast<const std::uint8_t*>(sealed->ciphertext.data()),
                                         sealed->ciphertext.size());
  std::string out = "{\"v\":1,\"alg\":\"A256GCM\",\"kid\":";
  AppendJsonString(out, key.kid);
  out += ",\"iv\":\"" + Base64Encode(sealed->iv) + "\",\"ct\":\"" + Base64Encode(ct) +
         "\",\"tag\":\"" + Base64Encode(sealed->tag) + "\"}";
  return out;
}

Result<std::string> OpenEnvelope(std::span<const PayloadKey> keys, std::string_view topic,
                                 std::string_view envelope) {
  const auto doc = nlohmann::json::parse(envelope, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return InvalidArgument("envelope: not a JSON object");
  for (const char* k : {"alg", "kid", "iv", "ct", "tag"}) {
    if (!doc.contains(k) || !doc[k].is_string()) {
      return InvalidArgument(std::string("envelope: \"") + k + "\" must be a string");
    }
  }
  if (!doc.contains("v") || doc["v"] != 1) return InvalidArgument("envelope: unsupported version \"v\"");
  if (doc["alg"] != "A256GCM") return InvalidArgument("envelope: unsupported \"alg\"");
  auto iv = Base64Decode(doc["iv"].get<std::string>());
  auto ct = Base64Decode(doc["ct"].get<std::string>());
  auto tag = Base64Decode(doc["tag"].get<std::string>());
  if (!iv.ok() || iv->size() != kAeadIvBytes) return InvalidArgument("envelope: \"iv\" must be 12 bytes");
  if (!ct.ok()) return InvalidArgument("envelope: \"ct\": " + ct.status().message());
  if (!tag.ok() || tag->size() != kAeadTagBytes) return InvalidArgument("envelope: \"tag\" must be 16 bytes");
  Sealed sealed;
  std::copy(iv->begin(), iv->end(), sealed.iv.begin());
  std::copy(tag->begin(), tag->end(), sealed.tag.begin());
  sealed.ciphertext.assign(ct->begin(), ct->end());
  const std::string kid = doc["kid"].get<std::string>();
  bool tried = false;
  for (const PayloadKey& key : keys) {
    if (!key.kid.empty() && key.kid != kid) continue;
    tried = true;
    auto plain = AeadOpen(key.key, topic, sealed);
    if (plain.ok()) return plain;
  }
  if (!tried) return NotFound("envelope: no key for kid \"" + kid + "\"");
  return InvalidArgument(
      "envelope: authentication failed (wrong key, wrong topic, or the message was altered)");
}

}  // namespace vg
