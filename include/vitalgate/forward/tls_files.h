// Checks and describes the TLS files a configuration names.
//
// CheckTlsFiles finds what makes the files unusable: a missing or unreadable file, a CA bundle or
// certificate that is not PEM, a key that does not parse or does not belong to the certificate.
// Those are configuration errors (exit 2). Whether a certificate is currently valid is not an
// error here: an expired, not yet valid or untrusted client certificate must not stop the
// gateway from monitoring and buffering (the broker may refuse it; the outbox keeps everything
// until a new certificate is installed and SIGHUP sent). TlsWarnings reports those conditions,
// and ReadCertificates returns, for each configured certificate, its file, subject and validity
// period, for `vitalgate check`, expiry metrics and the `certificate` technical alarm.
//
// Used by `vitalgate check`, at start, and before certificates are re-read on SIGHUP (a broken
// rotation is refused and the running connection kept). Pure apart from reading the files;
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vitalgate/core/status.h"

namespace vg {

// Warn this long before a certificate's notAfter.
inline constexpr std::int64_t kCertificateWarnSeconds = 30 * 86400;

struct TlsFiles {
  std::string ca_file;
  std::string cert_file;  // empty: no client certificate
  std::string key_file;
  std::string key_prefix = "mqtt.tls";  // names the files in messages: "<key_prefix>.ca_file"
};

// One certificate of a configured file. A CA bundle yields one entry per certificate in it.
struct CertificateInfo {
  std::string key;      // the config key naming the file, e.g. "mqtt.tls.cert_file"
  std::string path;     // the file
  std::string subject;  // one line, RFC 2253, e.g. "CN=ward7-gw1,O=North Hospital"
  std::int64_t not_before = 0;  // Unix seconds
  std::int64_t not_after = 0;   // Unix seconds
};

enum class CertificateState : std::uint8_t {
  kValid,
  kExpiresSoon,  // valid, but notAfter is less than kCertificateWarnSeconds away
  kExpired,
  kNotYetValid,
};

// Errors only for files that cannot be used at all (see above).
Status CheckTlsFiles(const TlsFiles& files);

// Every certificate of files.ca_file, then the client certificate (if configured), in file
// order. Errors as CheckTlsFiles for a missing or malformed certificate file.
Result<std::vector<CertificateInfo>> ReadCertificates(const TlsFiles& files);

CertificateState StateAt(const CertificateInfo& cert, std::int64_t now_s,
                         std::int64_t warn_before_s = kCertificateWarnSeconds);

// One line per problem that does not stop the gateway, each naming the key, file and subject:
// a certificate that expired, is not yet valid or expires within kCertificateWarnSeconds, and a
// client certificate that the CA bundle does not verify (the broker may trust another CA for
// clients, so this is a warning). Empty when all is well or the files cannot be read (then
// CheckTlsFiles has the error).
std::vector<std::string> TlsWarnings(const TlsFiles& files, std::int64_t now_s);

}  // namespace vg
