// deploy/rbac.yaml is enough, and needed: backups and restores run against the
// test cluster as a user holding exactly the rules of one of its ClusterRoles
// (the test cluster's RBAC-lite checks verb, resource and subresource), and
// fail with a message naming the missing permission when a rule is taken away.
#include "tests/backup/backup_fixture.h"

#include "common/atomic_file.h"
#include "common/yaml_json.h"
#include "kube/object.h"
#include "restore/runner.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
namespace json = boost::json;

// One ClusterRole of deploy/rbac.yaml as scenario token rules, without `drop`.
std::string role_rules(const std::string& role, const std::string& drop = {}) {
  auto text = read_file(std::filesystem::path(KVB_SOURCE_DIR) / "deploy/rbac.yaml");
  if (!text) throw std::runtime_error(text.error().message);
  auto docs = parse_yaml_documents(*text, "deploy/rbac.yaml");
  if (!docs) throw std::runtime_error(docs.error().message);
  std::string out;
  for (const auto& d : *docs) {
    if (kube::str_at(d, {"kind"}) != "ClusterRole" || kube::str_at(d, {"metadata", "name"}) != role) continue;
    for (const auto& rule : *kube::array_at(d, {"rules"})) {
      std::string verbs, resources;
      for (const auto& v : *kube::array_at(rule, {"verbs"})) verbs += (verbs.empty() ? "" : ", ") + std::string(v.as_string());
      for (const auto& r : *kube::array_at(rule, {"resources"})) {
        if (r.as_string() == drop) continue;
        resources += (resources.empty() ? "" : ", ") + std::string(r.as_string());
      }
      if (!resources.empty()) out += "      - {verbs: [" + verbs + "], resources: [" + resources + "]}\n";
    }
  }
  if (out.empty()) throw std::runtime_error("no ClusterRole " + role + " in deploy/rbac.yaml");
  return out;
}

std::string scenario(const std::string& rules) {
  return R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 30ms, readyLatency: 10ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, count: 2, volumes: [{name: root, type: dataVolume, storageClass: fast}]}
  - name: lab
tokens:
  - user: system:serviceaccount:kvbackup:kvbackup
    token: kvbackup-token
    rules:
)" + rules;
}

std::shared_ptr<kube::Client> as_kvbackup(const TestCluster& tc) {
  auto rc = tc.rest_config();
  rc.user.token = Secret("kvbackup-token");
  auto c = kube::Client::create(rc, {});
  if (!c) throw std::runtime_error(c.error().message);
  return *c;
}

Result<record::BackupRecord> backup_as_kvbackup(BackupFixture& f, const backup::BackupSpec& s) {
  backup::BackupRunner r(as_kvbackup(f.tc), *f.location, s);
  return r.run({});
}

TEST(Rbac, TheExecRoleIsEnoughForABackupAndPodsExecIsNeeded) {
  BackupFixture f(scenario(role_rules("kvbackup-backup-exec")));
  auto rec = backup_as_kvbackup(f, f.spec("exec"));
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  for (const auto& v : rec->vms) {
    EXPECT_EQ(v.consistency, record::Consistency::kFileSystemConsistent) << v.reason;
    EXPECT_THAT(v.problems, ::testing::IsEmpty());
  }

  BackupFixture less(scenario(role_rules("kvbackup-backup-exec", "pods/exec")));
  auto denied = backup_as_kvbackup(less, less.spec("noexec"));
  ASSERT_TRUE(denied) << denied.error().message;
  less.expect_truthful(*denied);
  for (const auto& v : denied->vms) {
    EXPECT_EQ(v.phase, record::VmPhase::kFailed);
    EXPECT_THAT(v.reason, HasSubstr("cannot create resource \"pods/exec\""));
  }
}

TEST(Rbac, TheSubresourceRoleBacksUpWithoutPodsExec) {
  BackupFixture f(scenario(role_rules("kvbackup-backup-subresource")));
  auto s = f.spec("api");
  s.freeze_method = backup::FreezeMethod::kSubresource;
  auto rec = backup_as_kvbackup(f, s);
  ASSERT_TRUE(rec) << rec.error().message;
  f.expect_truthful(*rec);
  for (const auto& v : rec->vms) EXPECT_EQ(v.consistency, record::Consistency::kFileSystemConsistent) << v.reason;
  // The same user cannot exec into a launcher pod.
  auto exec = f.spec("exec");
  auto denied = backup_as_kvbackup(f, exec);
  ASSERT_TRUE(denied);
  f.expect_nothing_frozen();
  for (const auto& v : denied->vms) EXPECT_THAT(v.reason, HasSubstr("pods/exec"));
}

TEST(Rbac, EachMissingPermissionIsNamedBeforeAnyGuestIsFrozen) {
  for (const char* drop : {"virtualmachines", "volumesnapshots", "volumesnapshotclasses", "persistentvolumeclaims",
                           "volumesnapshotcontents", "datavolumes", "leases"}) {
    BackupFixture f(scenario(role_rules("kvbackup-backup-exec", drop)));
    auto rec = backup_as_kvbackup(f, f.spec("less"));
    std::string message = rec ? rec->error : rec.error().message;
    if (rec) {
      for (const auto& v : rec->vms) {
        message += " " + v.reason;
        for (const auto& p : v.problems) message += " " + p;
      }
    }
    EXPECT_THAT(message, HasSubstr("resource \"" + std::string(drop) + "\"")) << drop;
    f.expect_nothing_frozen();
  }
}

TEST(Rbac, TheRestoreRoleIsEnoughForARestoreIntoAnotherNamespace) {
  std::string rules = role_rules("kvbackup-restore");
  BackupFixture f(scenario(rules));
  auto rec = f.run(f.spec("nightly"));  // backed up as admin
  ASSERT_TRUE(rec) << rec.error().message;
  restore::RestoreSpec s;
  s.name = "clone";
  s.backup = "nightly";
  s.namespace_mapping = {{"prod", "lab"}};
  s.bind_timeout = s.start_timeout = std::chrono::seconds(30);
  restore::RestoreRunner runner(as_kvbackup(f.tc), *f.location, s);
  auto r = runner.run();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->phase, restore::RestorePhase::kCompleted) << r->vms[0].reason;
}

}  // namespace
}  // namespace kvb::testing
