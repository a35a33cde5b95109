#include "vitalgate/forward/tls_files.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>

namespace vg {
namespace {

constexpr std::int64_t kDay = 86400;

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;

Key NewKey() { return Key(EVP_EC_gen("P-256")); }

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `cn`, valid from now+from_days to now+to_days, signed by issuer (or itself).
Cert Issue(const std::string& cn, EVP_PKEY* key, std::int64_t from_days, std::int64_t to_days,
           X509* issuer = nullptr, EVP_PKEY* issuer_key = nullptr, bool ca = false) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(from_days * kDay));
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(to_days * kDay));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("North Hospital"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), key);
  if (ca) {
    AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), issuer, NID_ext_key_usage, "clientAuth");
  }
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/vg_tls_files_test";
    ::mkdir(dir_.c_str(), 0700);
    ca_key_ = NewKey();
    ca_ = Issue("test CA", ca_key_.get(), -1, 3650, nullptr, nullptr, /*ca=*/true);
    WriteCerts("ca.crt", {ca_.get()});
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  void WriteCerts(const std::string& name, std::initializer_list<X509*> certs) {
    std::FILE* f = std::fopen(Path(name).c_str(), "w");
    ASSERT_NE(f, nullptr);
    for (X509* c : certs) PEM_write_X509(f, c);
    std::fclose(f);
  }
  void WriteKey(const std::string& name, EVP_PKEY* key) {
    std::FILE* f = std::fopen(Path(name).c_str(), "w");
    ASSERT_NE(f, nullptr);
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    ::chmod(Path(name).c_str(), 0600);
  }
  // A client certificate and key valid from now+from to now+to days, signed by the CA.
  TlsFiles Client(std::int64_t from, std::int64_t to) {
    Key key = NewKey();
    Cert cert = Issue("ward7-gw1", key.get(), from, to, ca_.get(), ca_key_.get());
    WriteCerts("client.crt", {cert.get()});
    WriteKey("client.key", key.get());
    return TlsFiles{Path("ca.crt"), Path("client.crt"), Path("client.key")};
  }

  static std::int64_t Now() { return static_cast<std::int64_t>(std::time(nullptr)); }

  std::string dir_;
  Key ca_key_;
  Cert ca_;
};

TEST_F(TlsFilesTest, ReadCertificatesGivesSubjectAndValidityOfEachCertificate) {
  Key old_key = NewKey();
  Cert old_ca = Issue("old CA", old_key.get(), -400, 10, nullptr, nullptr, true);
  WriteCerts("ca.crt", {ca_.get(), old_ca.get()});
  const TlsFiles files = Client(-1, 365);
  auto certs = ReadCertificates(files);
  ASSERT_TRUE(certs.ok()) << certs.status().message();
  ASSERT_EQ(certs->size(), 3u);
  EXPECT_EQ((*certs)[0].key, "mqtt.tls.ca_file");
  EXPECT_EQ((*certs)[0].path, files.ca_file);
  EXPECT_EQ((*certs)[0].subject, "CN=test CA,O=North Hospital");
  EXPECT_EQ((*certs)[1].subject, "CN=old CA,O=North Hospital");
  EXPECT_EQ((*certs)[2].key, "mqtt.tls.cert_file");
  EXPECT_EQ((*certs)[2].path, files.cert_file);
  EXPECT_EQ((*certs)[2].subject, "CN=ward7-gw1,O=North Hospital");
  EXPECT_NEAR(static_cast<double>((*certs)[2].not_after), static_cast<double>(Now() + 365 * kDay), 60);
  EXPECT_NEAR(static_cast<double>((*certs)[2].not_before), static_cast<double>(Now() - kDay), 60);
}

TEST_F(TlsFilesTest, StateAtMarksTheLastThirtyDays) {
  CertificateInfo c{"k", "p", "CN=x", 1000, 1000 + 100 * kDay};
  EXPECT_EQ(StateAt(c, 999), CertificateState::kNotYetValid);
  EXPECT_EQ(StateAt(c, 1000), CertificateState::kValid);
  EXPECT_EQ(StateAt(c, 1000 + 70 * kDay), CertificateState::kValid);
  EXPECT_EQ(StateAt(c, 1000 + 71 * kDay), CertificateState::kExpiresSoon);
  EXPECT_EQ(StateAt(c, 1000 + 100 * kDay - 1), CertificateState::kExpiresSoon);
  EXPECT_EQ(StateAt(c, 1000 + 100 * kDay), CertificateState::kExpired);
}

TEST_F(TlsFilesTest, AValidSetHasNoWarnings) {
  const TlsFiles files = Client(-1, 365);
  EXPECT_TRUE(CheckTlsFiles(files).ok());
  EXPECT_TRUE(TlsWarnings(files, Now()).empty());
}

TEST_F(TlsFilesTest, ExpiredAndNotYetValidCertificatesAreWarningsNotErrors) {
  TlsFiles files = Client(-30, -1);
  EXPECT_TRUE(CheckTlsFiles(files).ok());
  auto warnings = TlsWarnings(files, Now());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].rfind("mqtt.tls.cert_file: " + files.cert_file +
                                  ": certificate CN=ward7-gw1,O=North Hospital expired on ",
                              0),
            0u)
      << warnings[0];

  files = Client(2, 365);
  EXPECT_TRUE(CheckTlsFiles(files).ok());
  warnings = TlsWarnings(files, Now());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("is not valid before "), std::string::npos) << warnings[0];
}

TEST_F(TlsFilesTest, ExpiryWithinThirtyDaysIsAWarning) {
  const TlsFiles files = Client(-1, 10);
  auto warnings = TlsWarnings(files, Now());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("certificate CN=ward7-gw1,O=North Hospital expires in 10 days"),
            std::string::npos)
      << warnings[0];
}

TEST_F(TlsFilesTest, ACertificateOfAnotherCaIsAWarningNamingBothFiles) {
  Key other_key = NewKey();
  Cert other_ca = Issue("other CA", other_key.get(), -1, 3650, nullptr, nullptr, true);
  Key key = NewKey();
  Cert cert = Issue("ward7-gw1", key.get(), -1, 365, other_ca.get(), other_key.get());
  WriteCerts("client.crt", {cert.get()});
  WriteKey("client.key", key.get());
  TlsFiles files{Path("ca.crt"), Path("client.crt"), Path("client.key"), "destinations[1].tls"};
  EXPECT_TRUE(CheckTlsFiles(files).ok());
  auto warnings = TlsWarnings(files, Now());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].rfind("destinations[1].tls.cert_file: ", 0), 0u) << warnings[0];
  EXPECT_NE(warnings[0].find("is not verified by destinations[1].tls.ca_file"), std::string::npos)
      << warnings[0];
}

TEST_F(TlsFilesTest, MalformedFilesAndForeignKeysAreErrors) {
  TlsFiles files = Client(-1, 365);
  Key stranger = NewKey();
  WriteKey("client.key", stranger.get());
  Status mismatch = CheckTlsFiles(files);
  EXPECT_EQ(mismatch.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(mismatch.message(), "mqtt.tls.key_file: " + files.key_file + ": does not belong to " +
                                    files.cert_file);

  std::ofstream(Path("client.crt")) << "not a certificate\n";
  Status malformed = CheckTlsFiles(files);
  EXPECT_EQ(malformed.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(malformed.message().rfind("mqtt.tls.cert_file: " + files.cert_file + ": ", 0), 0u)
      << malformed.message();
  EXPECT_FALSE(ReadCertificates(files).ok());
  EXPECT_TRUE(TlsWarnings(files, Now()).empty());

  files.ca_file = Path("missing.crt");
  EXPECT_EQ(CheckTlsFiles(files).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace vg
