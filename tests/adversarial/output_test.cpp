// The adversarial review, part three: what kvbackup prints and records of what
// servers and guests say. Credentials in a server URL, tokens echoed in an API
// error, and terminal escape sequences from a guest never reach the output or
// the record.
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
using ::testing::Not;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 100ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
)";

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string everything_written(const std::filesystem::path& dir) {
  std::string all;
  if (!std::filesystem::exists(dir)) return all;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) all += slurp(e.path());
  }
  return all;
}

TEST(AdversarialOutput, CredentialsInTheServerUrlAreNeverPrintedOrRecorded) {
  TestCluster tc(kScenario);
  std::string kc = slurp(tc.kubeconfig());
  auto at = kc.find("server: https://");
  ASSERT_NE(at, std::string::npos) << kc;
  kc.insert(at + std::string("server: https://").size(), "admin:pw-S3CRET@");
  auto leaky = tc.dir() / "leaky-kubeconfig";
  std::ofstream(leaky) << kc;
  auto loc = tc.dir() / "loc";
  ProcessSpec spec;
  spec.argv = {kvbackup_binary(), "--kubeconfig", leaky.string(), "backup", "create", "url", "-n", "prod", "--location", loc.string()};
  auto r = run_process(spec);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exit_code, 0) << r->err;  // the user information is the server's business, not the client's
  EXPECT_THAT(r->out + r->err, Not(HasSubstr("pw-S3CRET")));
  EXPECT_THAT(everything_written(loc), Not(HasSubstr("pw-S3CRET")));
}

TEST(AdversarialOutput, ATokenEchoedByTheServerIsRedacted) {
  TestCluster tc(kScenario);
  tc.add_fault(R"({"type":"api-error","code":403,"verb":"list","resource":"virtualmachines",
                   "message":"Authorization: Bearer eyJTOKSECRET.abc is not valid; token=TOKSECRET2"})");
  auto loc = tc.dir() / "loc";
  auto r = run_kvbackup(tc, {"backup", "create", "tok", "-n", "prod", "--location", loc.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("<redacted>"));
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("TOKSECRET")));
  EXPECT_THAT(everything_written(loc), Not(HasSubstr("TOKSECRET")));
}

TEST(AdversarialOutput, TerminalEscapesFromAGuestAreNeverPrintedOrRecorded) {
  TestCluster tc(kScenario);
  // What a guest (or a rule command) says on stderr: retitle the terminal, then colour it.
  tc.add_fault(R"({"type":"exec-fail","vm":"db","command":"--freeze","exitCode":1,
                   "message":"\u001b]0;pwned\u0007\u001b[31mboom\u009b2J"})");
  auto loc = tc.dir() / "loc";
  auto r = run_kvbackup(tc, {"backup", "create", "esc", "-n", "prod", "--location", loc.string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.out + r.err, HasSubstr("boom")) << "the message itself is kept";
  EXPECT_EQ((r.out + r.err).find('\x1b'), std::string::npos) << r.err;
  EXPECT_EQ(everything_written(loc).find('\x1b'), std::string::npos);
  auto d = run_kvbackup(tc, {"backup", "describe", "esc", "--location", loc.string()});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out.find('\x1b'), std::string::npos);
}

}  // namespace
}  // namespace kvb::testing
