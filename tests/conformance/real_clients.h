// RealClients: the fixture of the conformance tests that drive the test
// cluster with kubectl and the official Python client
// (tests/conformance/controllers_client.py) instead of kvbackup's own client.
// A missing kubectl or python3 FAILS the test (scripts/deps installs both);
// nothing here skips.
#pragma once

#include "common/subprocess.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace kvb::testing {

class RealClients : public ::testing::Test {
 protected:
  explicit RealClients(const char* scenario) : scenario_(scenario) {}

  void SetUp() override {
    ASSERT_TRUE(kubectl_available()) << "kubectl is required by the conformance tests (scripts/deps)";
    tc_ = std::make_unique<TestCluster>(scenario_);
  }

  ProcessResult kubectl(std::vector<std::string> args, const std::string& in = {}) {
    auto r = run_kubectl(tc_->kubeconfig(), args, in);
    EXPECT_TRUE(r.has_value()) << "kubectl could not be run";
    return r ? *r : ProcessResult{};
  }
  void apply(const std::string& yaml) {
    auto r = kubectl({"apply", "-f", "-"}, yaml);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // controllers_client.py with `args`; its JSON answer (null when it failed, with a test failure).
  boost::json::value python(std::vector<std::string> args) { return python_script("controllers_client.py", std::move(args)); }
  // tests/conformance/<script> with `args`, the same way.
  boost::json::value python_script(const std::string& script, std::vector<std::string> args) {
    ProcessSpec spec;
    spec.argv = {"/usr/bin/python3", std::string(KVB_SOURCE_DIR) + "/tests/conformance/" + script};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.timeout = std::chrono::seconds(60);
    auto r = run_process(spec);
    EXPECT_TRUE(r.has_value());
    if (!r) return nullptr;
    EXPECT_EQ(r->exit_code, 0) << "python client failed: " << r->err;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(r->out, ec);
    EXPECT_FALSE(ec) << r->out << r->err;
    return v;
  }
  std::string kc() const { return tc_->kubeconfig().string(); }

  const char* scenario_;
  std::unique_ptr<TestCluster> tc_;
};

}  // namespace kvb::testing
