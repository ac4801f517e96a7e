// Certificates made in memory for tests: ECDSA P-256 keys, a CA, and
// certificates it (or nobody) signed, with any names and dates.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace salam::testing {

struct Issued {
  std::string certificate;  // PEM
  std::string key;          // PEM, unencrypted
};

struct CertificateRequest {
  std::string common_name = "localhost";
  std::vector<std::string> dns_names = {"localhost"};
  std::chrono::hours valid_from = std::chrono::hours(-24);  // relative to now
  std::chrono::hours valid_until = std::chrono::hours(24 * 30);
  bool is_ca = false;
};

// Signed by `issuer` (self-signed when it is null).
Issued issue(const CertificateRequest& request, const Issued* issuer = nullptr);

}  // namespace salam::testing
