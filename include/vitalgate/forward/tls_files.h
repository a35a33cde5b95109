// Checks the TLS files a configuration names before they are used: the CA bundle parses, the
// client certificate parses and is currently valid, and the private key parses and belongs to
// the certificate. Used by `vitalgate check`, at start, and before certificates are re-read on
// SIGHUP (a broken rotation is refused and the running connection kept). Pure apart from
// reading the files; thread-safe.
#pragma once

#include <string>

#include "vitalgate/core/status.h"

namespace vg {

struct TlsFiles {
  std::string ca_file;
  std::string cert_file;  // empty: no client certificate
  std::string key_file;
};

Status CheckTlsFiles(const TlsFiles& files);

}  // namespace vg
