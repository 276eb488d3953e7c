// Real S3 servers for the tests of a test binary, started once for the whole
// binary (a GoogleTest environment) and stopped at its end:
//
//   radosgw   Ceph's RADOS Gateway from Debian (a throwaway one-node cluster,
//             tests/support/s3/radosgw-cluster): verifies signatures for real;
//             the server every S3 test must pass against. ~20 s to start.
//   s3rver    the npm server: lighter, does not verify signatures.
//   proxy     tests/support/s3/fault_proxy.py in front of radosgw.
//
// A server that cannot be started fails the run (every test that asks for
// it fails); nothing is skipped. The daemons watch this process and stop
// when it dies, so a killed test binary leaves none behind.
#pragma once

#include "common/subprocess.h"

#include <filesystem>
#include <string>

namespace kvb::testing {

struct S3Server {
  std::string name;       // "radosgw", "s3rver", "proxy"
  std::string endpoint;   // http://127.0.0.1:PORT
  std::string access_key;
  std::string secret_key;
  std::string bucket;     // created at start
  bool ok = false;
  std::string error;      // why it is not running
};

// Registers the environment; call once from a test binary (static initializer helper below).
void register_s3_servers(bool with_s3rver, bool with_proxy);

const S3Server& radosgw();
const S3Server& s3rver();
const S3Server& fault_proxy();
// Kills radosgw and starts it again (data kept); returns false on failure.
bool restart_radosgw();
// Scripts the proxy's faults (a JSON list, see fault_proxy.py); returns the proxy's answer body.
std::string set_proxy_faults(const std::string& rules_json);
std::string proxy_stats();

// The environment variables that point the AWS configuration at `s`
// (access key, secret, region, endpoint), for kvbackup and awscli.
EnvVars s3_env(const S3Server& s);
// "s3://BUCKET/PREFIX" on `s`.
std::string s3_url(const S3Server& s, const std::string& prefix);

// Runs awscli (Debian's /usr/bin/aws) against `s`.
ProcessResult run_aws(const S3Server& s, const std::vector<std::string>& args);

}  // namespace kvb::testing
