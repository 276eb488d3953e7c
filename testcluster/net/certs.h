// Test PKI: a throwaway CA and certificates issued by it (EC P-256, SHA-256),
// as PEM strings. The test cluster serves with one; tests use them to prove
// that the client verifies what it should (CA, hostname, client certificates).
#pragma once

#include "common/error.h"

#include <chrono>
#include <string>
#include <vector>

namespace kvb::testcluster {

struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

struct CertSpec {
  std::string common_name;
  std::string organization;             // client certs: the Kubernetes group
  std::vector<std::string> dns_names;   // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;
  bool client = false;                  // extendedKeyUsage clientAuth instead of serverAuth
  std::chrono::hours validity{24 * 365};
  bool expired = false;                 // valid period entirely in the past (tests)
};

Result<KeyPair> make_ca(const std::string& common_name);
Result<KeyPair> issue_certificate(const KeyPair& ca, const CertSpec& spec);

// The subject CN of a PEM certificate ("" if unreadable).
std::string certificate_common_name(const std::string& cert_pem);

}  // namespace kvb::testcluster
