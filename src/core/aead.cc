#include "vitalgate/core/aead.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

namespace vg {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const unsigned char* U(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

constexpr std::string_view kPackMagic = "vg1";

}  // namespace

Result<Sealed> AeadSeal(const AeadKey& key, std::string_view aad, std::string_view plaintext) {
  Sealed out;
  if (RAND_bytes(out.iv.data(), static_cast<int>(out.iv.size())) != 1) {
    return Internal("encryption: no random bytes for the IV");
  }
  Ctx ctx(EVP_CIPHER_CTX_new());
  out.ciphertext.resize(plaintext.size() + 16);
  auto* ct = reinterpret_cast<unsigned char*>(out.ciphertext.data());
  int len = 0, total = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kAeadIvBytes, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), out.iv.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), ct, &len, U(plaintext), static_cast<int>(plaintext.size())) != 1) {
    return Internal("encryption: AES-256-GCM failed");
  }
  total = len;
  if (EVP_EncryptFinal_ex(ctx.get(), ct + total, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kAeadTagBytes, out.tag.data()) != 1) {
    return Internal("encryption: AES-256-GCM failed");
  }
  out.ciphertext.resize(static_cast<std::size_t>(total + len));
  return out;
}

Result<std::string> AeadOpen(const AeadKey& key, std::string_view aad, const Sealed& sealed) {
  Ctx ctx(EVP_CIPHER_CTX_new());
  std::string pt(sealed.ciphertext.size() + 16, '\0');
  auto* p = reinterpret_cast<unsigned char*>(pt.data());
  int len = 0;
  std::array<std::uint8_t, kAeadTagBytes> tag = sealed.tag;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kAeadIvBytes, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), sealed.iv.data()) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), p, &len, U(sealed.ciphertext),
                        static_cast<int>(sealed.ciphertext.size())) != 1) {
    return InvalidArgument("decryption failed");
  }
  int total = len;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kAeadTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), p + total, &len) != 1) {
    return InvalidArgument("authentication failed");
  }
  total += len;
  pt.resize(static_cast<std::size_t>(total));
  return pt;
}

std::string AeadPack(const Sealed& sealed) {
  std::string out(kPackMagic);
  out.append(reinterpret_cast<const char*>(sealed.iv.data()), sealed.iv.size());
  out.append(reinterpret_cast<const char*>(sealed.tag.data()), sealed.tag.size());
  out += sealed.ciphertext;
  return out;
}

Result<Sealed> AeadUnpack(std::string_view packed) {
  const std::size_t header = kPackMagic.size() + kAeadIvBytes + kAeadTagBytes;
  if (packed.size() < header || packed.substr(0, kPackMagic.size()) != kPackMagic) {
    return DataLoss("not an encrypted body");
  }
  Sealed s;
  std::memcpy(s.iv.data(), packed.data() + kPackMagic.size(), kAeadIvBytes);
  std::memcpy(s.tag.data(), packed.data() + kPackMagic.size() + kAeadIvBytes, kAeadTagBytes);
  s.ciphertext = std::string(packed.substr(header));
  return s;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

}  // namespace vg
