#include "vitalgate/forward/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <memory>

#include "vitalgate/core/timefmt.h"

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
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "not in PEM format";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string Key(const TlsFiles& files, const char* name) { return files.key_prefix + "." + name; }

// Every certificate in a PEM file (at least one), or why the file cannot be used.
Result<std::vector<X509Ptr>> ReadPemCertificates(const std::string& path, const std::string& key) {
  ERR_clear_error();
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "r"));
  if (!f) return NotFound(key + ": " + path + ": cannot open");
  std::vector<X509Ptr> out;
  while (X509* x = PEM_read_X509(f.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  if (out.empty()) return InvalidArgument(key + ": " + path + ": " + OpenSslError());
  ERR_clear_error();  // the end of the file ends the loop with "no start line"
  return out;
}

std::int64_t UnixSeconds(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(::timegm(&tm));
}

std::string Subject(const X509* cert) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
    return "?";
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

CertificateInfo Describe(const X509* cert, const std::string& key, const std::string& path) {
  return CertificateInfo{key, path, Subject(cert), UnixSeconds(X509_get0_notBefore(cert)),
                         UnixSeconds(X509_get0_notAfter(cert))};
}

// Whether `cert` chains to the certificates of `cas` for client authentication, ignoring time
// (validity is reported on its own). Empty when it does, else OpenSSL's reason.
std::string VerifyClientChain(X509* cert, const std::vector<X509Ptr>& cas) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !ctx) return "out of memory";
  for (const X509Ptr& ca : cas) X509_STORE_add_cert(store.get(), ca.get());
  X509_STORE_set_flags(store.get(), X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr) != 1) return OpenSslError();
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  const int ok = X509_verify_cert(ctx.get());
  ERR_clear_error();
  if (ok == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

std::string DateOf(std::int64_t unix_s) { return FormatRfc3339(unix_s * 1000); }

}  // namespace

Status CheckTlsFiles(const TlsFiles& files) {
  auto cas = ReadPemCertificates(files.ca_file, Key(files, "ca_file"));
  if (!cas.ok()) return cas.status();
  if (files.cert_file.empty()) return Status::Ok();
  auto certs = ReadPemCertificates(files.cert_file, Key(files, "cert_file"));
  if (!certs.ok()) return certs.status();
  X509* cert = certs->front().get();
  const std::string key_key = Key(files, "key_file");
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(files.key_file.c_str(), "r"));
  if (!f) return NotFound(key_key + ": " + files.key_file + ": cannot open");
  std::unique_ptr<EVP_PKEY, KeyFree> key(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return InvalidArgument(key_key + ": " + files.key_file + ": " + OpenSslError() +
                           " (encrypted keys are not supported)");
  }
  if (X509_check_private_key(cert, key.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument(key_key + ": " + files.key_file + ": does not belong to " +
                           files.cert_file);
  }
  return Status::Ok();
}

Result<std::vector<CertificateInfo>> ReadCertificates(const TlsFiles& files) {
  std::vector<CertificateInfo> out;
  const std::string ca_key = Key(files, "ca_file");
  auto cas = ReadPemCertificates(files.ca_file, ca_key);
  if (!cas.ok()) return cas.status();
  for (const X509Ptr& ca : *cas) out.push_back(Describe(ca.get(), ca_key, files.ca_file));
  if (!files.cert_file.empty()) {
    const std::string cert_key = Key(files, "cert_file");
    auto certs = ReadPemCertificates(files.cert_file, cert_key);
    if (!certs.ok()) return certs.status();
    out.push_back(Describe(certs->front().get(), cert_key, files.cert_file));
  }
  return out;
}

CertificateState StateAt(const CertificateInfo& cert, std::int64_t now_s, std::int64_t warn_before_s) {
  if (now_s < cert.not_before) return CertificateState::kNotYetValid;
  if (now_s >= cert.not_after) return CertificateState::kExpired;
  if (cert.not_after - now_s < warn_before_s) return CertificateState::kExpiresSoon;
  return CertificateState::kValid;
}

std::vector<std::string> TlsWarnings(const TlsFiles& files, std::int64_t now_s) {
  std::vector<std::string> out;
  auto infos = ReadCertificates(files);
  if (!infos.ok()) return out;
  for (const CertificateInfo& c : *infos) {
    const std::string who = c.key + ": " + c.path + ": certificate " + c.subject;
    switch (StateAt(c, now_s)) {
      case CertificateState::kValid: break;
      case CertificateState::kExpiresSoon:
        out.push_back(who + " expires in " + std::to_string((c.not_after - now_s + 86399) / 86400) +
                      " days (notAfter " + DateOf(c.not_after) + "); renew it before then");
        break;
      case CertificateState::kExpired:
        out.push_back(who + " expired on " + DateOf(c.not_after) +
                      "; the broker will refuse it: install a new one and reload");
        break;
      case CertificateState::kNotYetValid:
        out.push_back(who + " is not valid before " + DateOf(c.not_before) +
                      " (check the system clock)");
        break;
    }
  }
  if (files.cert_file.empty()) return out;
  auto cas = ReadPemCertificates(files.ca_file, Key(files, "ca_file"));
  auto certs = ReadPemCertificates(files.cert_file, Key(files, "cert_file"));
  if (!cas.ok() || !certs.ok()) return out;
  const std::string reason = VerifyClientChain(certs->front().get(), *cas);
  if (!reason.empty()) {
    out.push_back(Key(files, "cert_file") + ": " + files.cert_file + ": certificate " +
                  Subject(certs->front().get()) + " is not verified by " + Key(files, "ca_file") +
                  " as a client certificate (" + reason +
                  "); the broker refuses it unless it trusts another CA for clients");
  }
  return out;
}

}  // namespace vg
