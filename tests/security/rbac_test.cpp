// deploy/rbac.yaml is enough, and needed: backups and restores run against the
// test cluster as a user holding exactly the rules of one of its ClusterRoles
// (the test cluster's RBAC-lite checks verb, resource and subresource), and
// fail with a message naming the missing permission when a rule is taken away.
#include "tests/backup/backup_fixture.h"

#include "common/atomic_file.h"
#include "common/yaml_json.h"
#include "kube/object.h"
#include "repo/repository.h"
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

// --copy-data on a cluster without an Ingress (no links.external): the copy
// role's pods/portforward is what reaches the exporter pod.
TEST(Rbac, TheCopyRoleCopiesThroughPortForwardAndPodsPortforwardIsNeeded) {
  auto copy_backup = [](const std::string& copy_rules, const std::string& name) {
    // Small disks: this is about permissions, not bytes (the default 10Gi would be read whole).
    std::string sc = scenario(role_rules("kvbackup-backup-exec") + copy_rules);
    const std::string big = "type: dataVolume, storageClass: fast}";
    sc.replace(sc.find(big), big.size(), "type: dataVolume, storageClass: fast, size: 16Mi}");
    auto f = std::make_unique<BackupFixture>(sc);
    f->tc.add_fault(R"({"type": "export-no-ingress"})");
    const Secret pw("rbac test password");
    auto dir = f->tc.dir() / "repository";
    EXPECT_TRUE(repo::Repository::init(dir, pw));
    auto repo = repo::Repository::open(dir, pw);
    EXPECT_TRUE(repo) << repo.error().message;
    auto s = f->spec(name);
    s.copy_data = true;
    backup::BackupRunner r(as_kvbackup(f->tc), *f->location, s, {}, repo->get());
    auto rec = r.run({});
    return std::make_pair(std::move(f), std::move(rec));
  };
  auto [f, rec] = copy_backup(role_rules("kvbackup-copy-data"), "copied");
  ASSERT_TRUE(rec) << rec.error().message;
  for (const auto& v : rec->vms) {
    EXPECT_EQ(v.phase, record::VmPhase::kCompleted) << v.reason;
    for (const auto& vol : v.volumes) {
      ASSERT_TRUE(vol.copy) << vol.name;
      EXPECT_EQ(vol.copy->transport, "port-forward");
      EXPECT_TRUE(vol.copy->ok()) << vol.copy->error;
    }
  }
  auto [less, denied] = copy_backup(role_rules("kvbackup-copy-data", "pods/portforward"), "denied");
  ASSERT_TRUE(denied) << denied.error().message;
  for (const auto& v : denied->vms) {
    EXPECT_EQ(v.phase, record::VmPhase::kPartiallyFailed) << v.reason;
    for (const auto& vol : v.volumes) {
      ASSERT_TRUE(vol.copy) << vol.name;
      EXPECT_FALSE(vol.copy->ok());
      EXPECT_THAT(vol.copy->error, HasSubstr("cannot create resource \"pods/portforward\""));
    }
  }
  less->expect_nothing_frozen();
}

}  // namespace
}  // namespace kvb::testing
