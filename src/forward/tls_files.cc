#include "vitalgate/forward/tls_files.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>

namespace vg {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "not in PEM format";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace

Status CheckTlsFiles(const TlsFiles& files) {
  ERR_clear_error();
  {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(files.ca_file.c_str(), "r"));
    if (!f) return NotFound("mqtt.tls.ca_file: " + files.ca_file + ": cannot open");
    std::unique_ptr<X509, X509Free> ca(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
    if (!ca) return InvalidArgument("mqtt.tls.ca_file: " + files.ca_file + ": " + OpenSslError());
  }
  if (files.cert_file.empty()) return Status::Ok();
  std::unique_ptr<X509, X509Free> cert;
  {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(files.cert_file.c_str(), "r"));
    if (!f) return NotFound("mqtt.tls.cert_file: " + files.cert_file + ": cannot open");
    cert.reset(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      return InvalidArgument("mqtt.tls.cert_file: " + files.cert_file + ": " + OpenSslError());
    }
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
    return InvalidArgument("mqtt.tls.cert_file: " + files.cert_file + ": certificate has expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0) {
    return InvalidArgument("mqtt.tls.cert_file: " + files.cert_file + ": certificate is not valid yet");
  }
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(files.key_file.c_str(), "r"));
  if (!f) return NotFound("mqtt.tls.key_file: " + files.key_file + ": cannot open");
  std::unique_ptr<EVP_PKEY, KeyFree> key(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return InvalidArgument("mqtt.tls.key_file: " + files.key_file + ": " + OpenSslError() +
                           " (encrypted keys are not supported)");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument("mqtt.tls.key_file: " + files.key_file + ": does not belong to " +
                           files.cert_file);
  }
  return Status::Ok();
}

}  // namespace vg
