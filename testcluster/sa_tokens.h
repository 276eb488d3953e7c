// ServiceAccountTokens: the tokens the test cluster's TokenRequest
// (POST serviceaccounts/{name}/token) issued, as the real API server's token
// authenticator would know them: who (namespace, service account), for which
// audiences, until when. The SnapshotMetadata server authenticates with it
// (upstream's sidecar asks a TokenReview for its audience).
//
// Invariants: thread-safe (the API on the loop thread issues, gRPC threads
// check); tokens are random and never logged.
#pragma once

#include "common/random.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kvb::testcluster {

class ServiceAccountTokens {
 public:
  struct Holder {
    std::string ns, service_account;
    std::vector<std::string> audiences;
    std::chrono::system_clock::time_point expires;
  };

  std::string issue(Holder h) {
    std::string token = "sa-" + random_hex(40);
    std::lock_guard lk(mu_);
    tokens_[token] = std::move(h);
    return token;
  }

  // The holder of a valid token that names `audience`; nullopt otherwise (unknown, expired, other audience).
  std::optional<Holder> authenticate(const std::string& token, const std::string& audience) const {
    std::lock_guard lk(mu_);
    auto it = tokens_.find(token);
    if (it == tokens_.end() || it->second.expires < std::chrono::system_clock::now()) return std::nullopt;
    const auto& a = it->second.audiences;
    if (std::find(a.begin(), a.end(), audience) == a.end()) return std::nullopt;
    return it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Holder> tokens_;
};

}  // namespace kvb::testcluster
