// deploy/rbac.yaml is enough, and needed: backups and restores run against the
// test cluster as a user holding exactly the rules of one of its ClusterRoles
// (the test cluster's RBAC-lite checks verb, resource and subresource), and
// fail with a message naming the missing permission when a rule is taken away.
#include "tests/backup/backup_fixture.h"

#include "common/atomic_file.h"
#include "common/yaml_json.h"
#include "kube/object.h"
#include "kube/resource.h"
#include "kubevirt/resources.h"
#include "kubevirt/volume_export.h"
#include "record/naming.h"
#include "repo/repository.h"
#include "restore/runner.h"
#include "restore/verify.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>

#include <algorithm>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
namespace json = boost::json;

// One ClusterRole of deploy/rbac.yaml as scenario token rules, without `drop`
// (a resource: its whole rule; "resource:verb": that verb of its rule).
std::string role_rules(const std::string& role, const std::string& drop = {}) {
  const auto colon = drop.find(':');
  const std::string drop_resource = drop.substr(0, colon);
  const std::string drop_verb = colon == std::string::npos ? "" : drop.substr(colon + 1);
  auto text = read_file(std::filesystem::path(KVB_SOURCE_DIR) / "deploy/rbac.yaml");
  if (!text) throw std::runtime_error(text.error().message);
  auto docs = parse_yaml_documents(*text, "deploy/rbac.yaml");
  if (!docs) throw std::runtime_error(docs.error().message);
  std::string out;
  for (const auto& d : *docs) {
    if (kube::str_at(d, {"kind"}) != "ClusterRole" || kube::str_at(d, {"metadata", "name"}) != role) continue;
    for (const auto& rule : *kube::array_at(d, {"rules"})) {
      std::string verbs, resources, less_verbs;
      for (const auto& v : *kube::array_at(rule, {"verbs"})) {
        verbs += (verbs.empty() ? "" : ", ") + std::string(v.as_string());
        if (v.as_string() != drop_verb) less_verbs += (less_verbs.empty() ? "" : ", ") + std::string(v.as_string());
      }
      for (const auto& r : *kube::array_at(rule, {"resources"})) {
        if (r.as_string() == drop_resource && drop_verb.empty()) continue;
        if (r.as_string() == drop_resource) {
          if (!less_verbs.empty()) out += "      - {verbs: [" + less_verbs + "], resources: [" + drop_resource + "]}\n";
          continue;
        }
        resources += (resources.empty() ? "" : ", ") + std::string(r.as_string());
      }
      if (!resources.empty()) out += "      - {verbs: [" + verbs + "], resources: [" + resources + "]}\n";
    }
  }
  if (out.empty()) throw std::runtime_error("no ClusterRole " + role + " in deploy/rbac.yaml");
  return out;
}

std::string scenario(const std::string& rules, const std::string& size = "10Gi") {
  return R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 30ms, readyLatency: 10ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, count: 2, volumes: [{name: root, type: dataVolume, storageClass: fast, size: )" + size + R"(}]}
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
    EXPECT_THAT(v.reason, HasSubstr("cannot get resource \"pods/exec\""));
  }

  // `create` alone (what kubectl's SPDY POST needs) is not enough: kvbackup
  // execs over a WebSocket, a GET, which the API server authorizes as `get`.
  BackupFixture create_only(scenario(role_rules("kvbackup-backup-exec", "pods/exec:get")));
  auto refused = backup_as_kvbackup(create_only, create_only.spec("createonly"));
  ASSERT_TRUE(refused) << refused.error().message;
  for (const auto& v : refused->vms) {
    EXPECT_EQ(v.phase, record::VmPhase::kFailed);
    EXPECT_THAT(v.reason, HasSubstr("cannot get resource \"pods/exec\""));
  }
  create_only.expect_nothing_frozen();
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

// A --copy-data backup as the kvbackup user holding the exec role and the
// copy-data role without `drop`; everything the run said (error, VM reasons,
// problems, copy errors, warnings) in one text.
struct CopyRun {
  std::optional<record::BackupRecord> rec;
  std::string said;
};

CopyRun copy_as_kvbackup(const std::string& drop) {
  CopyRun out;
  BackupFixture f(scenario(role_rules("kvbackup-backup-exec") + role_rules("kvbackup-copy-data", drop), "8Mi"));
  auto repo_dir = f.location_dir / "repository";
  std::filesystem::create_directories(repo_dir);
  if (auto st = repo::Repository::init(repo_dir, Secret("pw")); !st) throw std::runtime_error(st.error().message);
  auto repo = repo::Repository::open(repo_dir, Secret("pw"));
  if (!repo) throw std::runtime_error(repo.error().message);
  auto spec = f.spec("copy");
  spec.copy_data = true;
  spec.ready_timeout = std::chrono::seconds(10);
  backup::BackupRunner runner(as_kvbackup(f.tc), *f.location, spec, {}, repo->get());
  auto rec = runner.run({});
  if (!rec) {
    out.said = rec.error().message;
  } else {
    f.expect_truthful(*rec);
    out.said = rec->error;
    for (const auto& w : rec->warnings) out.said += " " + w;
    for (const auto& v : rec->vms) {
      out.said += " " + v.reason;
      for (const auto& p : v.problems) out.said += " " + p;
    }
    out.rec = std::move(*rec);
  }
  f.expect_nothing_frozen();
  // Whatever a denied rule made the run leave, an admin sees no temporary of the
  // copy (unless the rule denied was the delete itself: then the warning says so).
  if (drop.ends_with(":delete")) return out;
  kube::ListOptions lo;
  lo.label_selector = std::string(record::kRoleLabel) + "=" + record::kDataCopyRole;
  for (const auto* ref : {&kube::resources::kPersistentVolumeClaims, &kubevirt::kVirtualMachineExports, &kube::resources::kSecrets}) {
    auto left = f.tc.client()->list(*ref, "prod", lo);
    EXPECT_TRUE(left && left->items.empty()) << drop << ": " << ref->resource << " left behind";
  }
  return out;
}

TEST(Rbac, TheCopyDataRoleIsEnoughForACopyAndEachOfItsRulesIsNeeded) {
  auto full = copy_as_kvbackup("");
  ASSERT_TRUE(full.rec) << full.said;
  for (const auto& v : full.rec->vms) {
    EXPECT_EQ(v.phase, record::VmPhase::kCompleted) << v.reason;
    for (const auto& vol : v.volumes) EXPECT_TRUE(vol.copy && vol.copy->ok()) << v.name << " " << vol.name;
  }
  EXPECT_THAT(full.rec->warnings, ::testing::IsEmpty());
  // Each rule taken away in turn: the copy (or the run, before anything is
  // frozen) fails with the API server's Forbidden naming the resource.
  std::vector<std::string> rules;
  auto text = read_file(std::filesystem::path(KVB_SOURCE_DIR) / "deploy/rbac.yaml");
  ASSERT_TRUE(text);
  auto docs = parse_yaml_documents(*text, "deploy/rbac.yaml");
  ASSERT_TRUE(docs);
  for (const auto& d : *docs) {
    if (kube::str_at(d, {"metadata", "name"}) != "kvbackup-copy-data" || kube::str_at(d, {"kind"}) != "ClusterRole") continue;
    for (const auto& rule : *kube::array_at(d, {"rules"})) {
      for (const auto& r : *kube::array_at(rule, {"resources"})) {
        // Needed only where an export has no external link: proven by
        // TheCopyRoleCopiesThroughPortForwardAndPodsPortforwardIsNeeded.
        if (r.as_string() != "pods/portforward") rules.emplace_back(r.as_string());
      }
    }
  }
  ASSERT_GE(rules.size(), 4u);
  for (const auto& drop : rules) {
    SCOPED_TRACE("without " + drop);
    auto t0 = std::chrono::steady_clock::now();
    auto less = copy_as_kvbackup(drop);
    std::printf("without %s (%.1f s): %s\n", drop.c_str(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                less.said.substr(0, 300).c_str());
    EXPECT_THAT(less.said, HasSubstr("resource \"" + drop + "\"")) << drop;
    EXPECT_THAT(less.said, ::testing::AnyOf(HasSubstr("forbidden"), HasSubstr("Forbidden"))) << drop;
    if (less.rec) {
      for (const auto& v : less.rec->vms) EXPECT_NE(v.phase, record::VmPhase::kCompleted) << drop << ": " << v.name;
    }
  }
}

// Each verb of each copy-data rule: taken away alone, the run names the
// resource in a Forbidden (the copy fails, or, for list and delete, the run
// warns that temporaries may be left), unless the backup role grants the same
// verb on the same resource (the copy-data role repeats it to stand alone).
TEST(Rbac, EachVerbOfTheCopyDataRoleIsNeededOrGrantedByTheBackupRole) {
  auto verbs_of = [](const std::string& role) {
    std::vector<std::pair<std::string, std::string>> out;  // (resource, verb)
    auto text = read_file(std::filesystem::path(KVB_SOURCE_DIR) / "deploy/rbac.yaml");
    auto docs = parse_yaml_documents(*text, "deploy/rbac.yaml");
    for (const auto& d : *docs) {
      if (kube::str_at(d, {"metadata", "name"}) != role || kube::str_at(d, {"kind"}) != "ClusterRole") continue;
      for (const auto& rule : *kube::array_at(d, {"rules"})) {
        for (const auto& r : *kube::array_at(rule, {"resources"})) {
          for (const auto& v : *kube::array_at(rule, {"verbs"})) out.emplace_back(r.as_string(), v.as_string());
        }
      }
    }
    return out;
  };
  auto backup_role = verbs_of("kvbackup-backup-exec");
  auto copy_role = verbs_of("kvbackup-copy-data");
  ASSERT_FALSE(copy_role.empty());
  int needed = 0, repeated = 0;
  for (const auto& [resource, verb] : copy_role) {
    if (resource == "pods/portforward") continue;  // without an Ingress only: its own test below
    // Needed only while an export is not Ready yet; the test cluster's is Ready by
    // the first list: its own test below (AWaitForAnExportNotReadyYetNeedsWatch).
    if (resource == "virtualmachineexports" && verb == "watch") continue;
    bool in_backup_role = std::find(backup_role.begin(), backup_role.end(), std::make_pair(resource, verb)) != backup_role.end();
    auto less = copy_as_kvbackup(resource + ":" + verb);
    bool named = less.said.find("resource \"" + resource + "\"") != std::string::npos &&
                 less.said.find("forbidden") != std::string::npos;
    std::printf("without %s %s: %s\n", verb.c_str(), resource.c_str(),
                named ? "named in a Forbidden" : in_backup_role ? "granted by kvbackup-backup-exec too" : "NOT NOTICED");
    EXPECT_TRUE(named || in_backup_role) << verb << " " << resource << " is granted but nothing needs it: " << less.said;
    needed += named;
    repeated += !named && in_backup_role;
  }
  EXPECT_GT(needed, 0);
  std::printf("%d verbs needed, %d repeated from the backup role\n", needed, repeated);
}

// `backup verify` as the kvbackup user holding the restore role and the
// verify role without `drop`: what the verification said, and whether it passed.
std::pair<bool, std::string> verify_as_kvbackup(const std::string& drop) {
  BackupFixture f(scenario(role_rules("kvbackup-restore") + role_rules("kvbackup-verify", drop), "8Mi"));
  auto rec = f.run(f.spec("nightly"));  // backed up as admin
  if (!rec) throw std::runtime_error(rec.error().message);
  restore::RestoreSpec s;
  s.backup = "nightly";
  s.bind_timeout = s.start_timeout = std::chrono::seconds(20);
  restore::VerifyOptions o;
  o.agent_timeout = o.cleanup_timeout = std::chrono::seconds(10);
  auto results = restore::verify_backup(as_kvbackup(f.tc), *f.location, s, o, {}, {});
  if (!results) return {false, results.error().message};
  bool passed = !results->empty();
  std::string said;
  for (const auto& v : *results) {
    passed = passed && v.result == "Passed" && v.problems.empty();  // nothing kept, or it did not pass
    said += " " + v.result + ": " + v.reason;
    for (const auto& p : v.problems) said += " " + p;
  }
  if (drop.empty() || !drop.ends_with(":delete")) {
    kube::ListOptions lo;
    lo.label_selector = restore::kVerifyLabel;
    auto left = f.tc.client()->list(kube::resources::kNamespaces, "", lo);
    EXPECT_TRUE(left && left->items.empty()) << drop << ": a verification namespace was left";
  }
  return {passed, said};
}

// The verify role with the restore role is enough for `backup verify`, and
// its delete of namespaces is needed: without it the copy boots but its
// namespace cannot be removed, which fails the verification (nothing may be
// kept) and names the forbidden delete. (get/list/watch are for waiting until
// the namespace is gone; the test cluster deletes an empty namespace at once,
// so that wait never needs them here.)
TEST(Rbac, TheVerifyRoleIsEnoughForABackupVerifyAndItsNamespaceDeleteIsNeeded) {
  auto [passed, said] = verify_as_kvbackup("");
  EXPECT_TRUE(passed) << said;
  auto [ok, why] = verify_as_kvbackup("namespaces:delete");
  EXPECT_FALSE(ok) << why;
  EXPECT_THAT(why, HasSubstr("cannot delete resource \"namespaces\"")) << why;
}

// The copy waits for its export by watch: with the copy role, an export that
// is not Ready (its claim does not exist) times out saying why; without the
// role's `watch` on virtualmachineexports the wait fails with the Forbidden.
TEST(Rbac, AWaitForAnExportNotReadyYetNeedsWatch) {
  auto wait = [](const std::string& copy_rules) {
    BackupFixture f(scenario(role_rules("kvbackup-backup-exec") + copy_rules, "8Mi"));
    auto client = as_kvbackup(f.tc);
    kubevirt::ExportRequest req{"prod", "waiting", "no-such-claim", {}, "2h"};
    auto token = kubevirt::create_volume_export(*client, req);
    EXPECT_TRUE(token) << token.error().message;
    auto link = kubevirt::wait_raw_link(client, req, token ? *token : "", std::chrono::seconds(2), {});
    EXPECT_TRUE(kubevirt::remove_volume_export(*client, "prod", "waiting"));
    return link;
  };
  auto slow = wait(role_rules("kvbackup-copy-data"));
  ASSERT_FALSE(slow);
  EXPECT_EQ(slow.error().code, Errc::kTimeout) << slow.error().message;
  EXPECT_THAT(slow.error().message, HasSubstr("was not Ready within 2 s"));
  auto denied = wait(role_rules("kvbackup-copy-data", "virtualmachineexports:watch"));
  ASSERT_FALSE(denied);
  EXPECT_THAT(denied.error().message, HasSubstr("resource \"virtualmachineexports\""));
  EXPECT_THAT(denied.error().message, HasSubstr("forbidden"));
}

// --copy-data on a cluster without an Ingress (no links.external): the copy
// role's pods/portforward is what reaches the exporter pod.
TEST(Rbac, TheCopyRoleCopiesThroughPortForwardAndPodsPortforwardIsNeeded) {
  auto copy_backup = [](const std::string& copy_rules, const std::string& name) {
    // Small disks: this is about permissions, not bytes (the default 10Gi would be read whole).
    auto f = std::make_unique<BackupFixture>(scenario(role_rules("kvbackup-backup-exec") + copy_rules, "16Mi"));
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
      EXPECT_THAT(vol.copy->error, HasSubstr("cannot get resource \"pods/portforward\""));
    }
  }
  less->expect_nothing_frozen();
}

// --copy-data with changed-block tracking: the kvbackup-changed-blocks role
// is enough for a second copy to download only the delta, and each of its
// rules is needed (taken away, the copy still succeeds with the fingerprint
// map and its record names the Forbidden resource).
TEST(Rbac, TheChangedBlocksRoleLetsASecondCopyUseTheDeltaAndEachRuleIsNeeded) {
  ::setenv("KVBACKUP_SERVICE_ACCOUNT", "prod/default", 1);  // the serviceaccount controller's
  auto second_copy = [](const std::string& drop) {
    const std::string rules = role_rules("kvbackup-backup-exec") + role_rules("kvbackup-copy-data") + role_rules("kvbackup-changed-blocks", drop);
    BackupFixture f(R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 30ms, readyLatency: 10ms, snapshotMetadata: true}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - {name: db, volumes: [{name: data, type: persistentVolumeClaim, storageClass: fast, size: 8Mi}]}
tokens:
  - user: system:serviceaccount:kvbackup:kvbackup
    token: kvbackup-token
    rules:
)" + rules);
    const Secret pw("rbac test password");
    auto dir = f.tc.dir() / "repository";
    EXPECT_TRUE(repo::Repository::init(dir, pw));
    auto repo = repo::Repository::open(dir, pw);
    EXPECT_TRUE(repo) << repo.error().message;
    std::optional<record::DataCopyRecord> second;
    for (const char* name : {"first", "second"}) {
      auto s = f.spec(name);
      s.copy_data = true;
      backup::BackupRunner r(as_kvbackup(f.tc), *f.location, s, {}, repo->get());
      auto rec = r.run({});
      EXPECT_TRUE(rec) << rec.error().message;
      if (!rec) return second;
      EXPECT_EQ(rec->vms.at(0).phase, record::VmPhase::kCompleted) << rec->vms.at(0).reason;
      second = rec->vms.at(0).volumes.at(0).copy;
    }
    f.expect_nothing_frozen();
    return second;
  };
  auto all = second_copy("");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->ok()) << all->error;
  EXPECT_EQ(all->change_tracking, "snapshot-metadata") << all->change_tracking_reason;
  EXPECT_LT(all->downloaded_bytes, all->bytes);
  for (const std::string drop : {"snapshotmetadataservices", "serviceaccounts/token"}) {
    SCOPED_TRACE("without " + drop);
    auto less = second_copy(drop);
    ASSERT_TRUE(less);
    EXPECT_TRUE(less->ok()) << less->error;
    EXPECT_EQ(less->change_tracking, "fingerprint");
    EXPECT_EQ(less->downloaded_bytes, less->bytes);
    EXPECT_THAT(less->change_tracking_reason, HasSubstr("resource \"" + drop + "\"")) << less->change_tracking_reason;
    EXPECT_THAT(less->change_tracking_reason, ::testing::AnyOf(HasSubstr("forbidden"), HasSubstr("Forbidden")));
  }
}

}  // namespace
}  // namespace kvb::testing
