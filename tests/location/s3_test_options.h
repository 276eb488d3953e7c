// The S3 options a test opens a server's location with: the server's AWS_*
// variables as the environment, quick retries, and the lock timings it asks for.
#pragma once

#include "location/s3/s3_location.h"
#include "tests/support/s3_servers.h"

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace kvb::location::s3 {

inline S3Options options_for(const kvb::testing::S3Server& s, LockTimings lock = {}) {
  S3Options o;
  std::map<std::string, std::string> vars;
  for (const auto& [k, v] : kvb::testing::s3_env(s)) vars[k] = v;
  o.env = [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  o.client.max_attempts = 3;
  o.client.base_delay = std::chrono::milliseconds(20);
  o.lock = lock;
  return o;
}

}  // namespace kvb::location::s3
