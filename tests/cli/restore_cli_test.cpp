// `kvbackup restore ...` end to end: the binary against the test cluster.
#include "common/subprocess.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kvb::testing {
namespace {

using ::testing::HasSubstr;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 20ms, readyLatency: 20ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
)";

ProcessResult kvbackup(const TestCluster& tc, const std::vector<std::string>& args) { return run_kvbackup(tc, args); }

TEST(RestoreCli, CloneIntoANewNamespaceThenDescribeAndList) {
  TestCluster tc(kScenario);
  std::string loc = (tc.dir() / "loc").string();
  auto b = kvbackup(tc, {"backup", "create", "nightly", "-n", "prod", "--location", loc});
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;

  auto missing_ns = kvbackup(tc, {"restore", "create", "r0", "--from-backup", "nightly", "--location", loc,
                                  "--namespace-mapping", "prod:lab"});
  EXPECT_EQ(missing_ns.exit_code, 1);
  EXPECT_THAT(missing_ns.err, HasSubstr("namespace \"lab\" does not exist (--create-namespace creates it)"));

  auto r = kvbackup(tc, {"restore", "create", "r1", "--from-backup", "nightly", "--location", loc, "--namespace-mapping",
                         "prod:lab", "--create-namespace", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto rec = boost::json::parse(r.out).as_object();
  EXPECT_EQ(rec.at("phase").as_string(), "Completed");
  auto vm = run_kubectl(tc.kubeconfig(), {"get", "vm", "db", "-n", "lab", "-o", "jsonpath={.metadata.labels}"});
  if (vm) {
    EXPECT_EQ(vm->exit_code, 0) << vm->err;
    EXPECT_THAT(vm->out, HasSubstr("kvbackup.io/restore"));
  }
  auto d = kvbackup(tc, {"restore", "describe", "r1", "--location", loc});
  EXPECT_EQ(d.exit_code, 0);
  EXPECT_THAT(d.out, HasSubstr("VM prod/db -> lab/db: Completed"));
  auto l = kvbackup(tc, {"restore", "list", "--location", loc});
  EXPECT_THAT(l.out, HasSubstr("r1"));

  auto again = kvbackup(tc, {"restore", "create", "r2", "--from-backup", "nightly", "--location", loc});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("VirtualMachine prod/db exists"));
  auto bad = kvbackup(tc, {"restore", "create", "r3", "--from-backup", "nightly", "--location", loc, "--rename", "db"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--rename \"db\": expected OLD:NEW"));
}

}  // namespace
}  // namespace kvb::testing
