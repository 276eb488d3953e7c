// The restore plan's decisions against an in-memory world (PlanSources): what
// is refused before anything changes, and what an interrupted restore may
// adopt as its own. No cluster, milliseconds per test.
#include "record/naming.h"
#include "restore/plan.h"
#include "restore/transform.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace kvb::restore {
namespace {
namespace json = boost::json;
using ::testing::HasSubstr;

class World : public PlanSources {
 public:
  record::BackupRecord backup_record;
  std::map<std::string, json::object> saved_files;  // path under the backup
  std::map<std::string, json::object> objects;      // "resource/ns/name"

  World() {
    backup_record.name = "nightly";
    backup_record.phase = record::BackupPhase::kCompleted;
    record::VmRecord vm;
    vm.ns = "prod";
    vm.name = "db";
    vm.phase = record::VmPhase::kCompleted;
    vm.consistency = record::Consistency::kFileSystemConsistent;
    record::VolumeRecord vol;
    vol.name = "root";
    vol.pvc = "db-root";
    vol.storage_class = "fast";
    vol.volume_snapshot = "nightly-db-root";
    vol.size = "10Gi";
    vol.restore_size = "10Gi";
    vm.volumes = {vol};
    backup_record.vms = {vm};
    saved_files["resources/prod/virtualmachines.kubevirt.io/db.json"] = json::parse(R"({
      "apiVersion":"kubevirt.io/v1","kind":"VirtualMachine","metadata":{"name":"db","namespace":"prod"},
      "spec":{"runStrategy":"Always","template":{"spec":{"domain":{"devices":{}},
        "volumes":[{"name":"root","dataVolume":{"name":"db-root"}}]}}}})").as_object();
    put("namespaces", "", "prod", {});
    put("storageclasses", "", "fast", {});
    put("volumesnapshots", "prod", "nightly-db-root",
        json::parse(R"({"status":{"readyToUse":true,"restoreSize":"10Gi","boundVolumeSnapshotContentName":"c1"}})").as_object());
    put("volumesnapshotcontents", "", "c1",
        json::parse(R"({"spec":{"driver":"csi.example.com"},"status":{"snapshotHandle":"h1"}})").as_object());
  }
  void put(const std::string& resource, const std::string& ns, const std::string& name, json::object o) {
    o["metadata"] = json::object{{"name", name}, {"namespace", ns}};
    objects[resource + "/" + ns + "/" + name] = std::move(o);
  }
  void label(const std::string& key, const std::string& restore) {
    objects[key]["metadata"].as_object()["labels"] = json::object{{kRestoreLabel, restore}};
  }
  Result<record::BackupRecord> backup(const std::string& name) override {
    if (name != backup_record.name) return Error(Errc::kNotFound, "backup \"" + name + "\" not found");
    return backup_record;
  }
  bool restore_exists(const std::string&) override { return false; }
  Result<json::object> saved(const std::string&, const std::string& path) override {
    auto it = saved_files.find(path);
    if (it == saved_files.end()) return Error(Errc::kNotFound, "no saved " + path);
    return it->second;
  }
  Result<std::optional<json::object>> live(const kube::ResourceRef& ref, const std::string& ns, const std::string& name) override {
    auto it = objects.find(ref.resource + "/" + ns + "/" + name);
    if (it == objects.end()) return std::optional<json::object>();
    return std::optional<json::object>(it->second);
  }
};

RestoreSpec spec() {
  RestoreSpec s;
  s.name = "r1";
  s.backup = "nightly";
  return s;
}

TEST(RestorePlan, InPlaceAfterTheVmWasDeletedUsesTheBackupsSnapshot) {
  World w;
  auto p = plan_restore(spec(), w);
  ASSERT_TRUE(p) << p.error().message;
  ASSERT_EQ(p->vms.size(), 1u);
  EXPECT_FALSE(p->vms[0].existing);
  EXPECT_FALSE(p->vms[0].copy);
  ASSERT_EQ(p->vms[0].volumes.size(), 1u);
  EXPECT_EQ(p->vms[0].volumes[0].snapshot, "nightly-db-root");
  EXPECT_FALSE(p->vms[0].volumes[0].import);
  EXPECT_EQ(p->vms[0].run_strategy, "Always");
}

TEST(RestorePlan, WhatIsInTheWayIsRefusedBeforeAnythingChanges) {
  World w;
  w.put("virtualmachines", "prod", "db", {});
  auto p = plan_restore(spec(), w);
  ASSERT_FALSE(p);
  EXPECT_THAT(p.error().message, HasSubstr("--existing replace"));
  auto s = spec();
  s.existing = Existing::kReplace;
  p = plan_restore(s, w);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_TRUE(p->vms[0].existing);
  w.objects.erase("virtualmachines/prod/db");
  w.put("persistentvolumeclaims", "prod", record::snapshot_name("r1", "db", "root"), {});
  p = plan_restore(spec(), w);
  ASSERT_FALSE(p);
  EXPECT_THAT(p.error().message, HasSubstr("PersistentVolumeClaim prod/r1-db-root exists"));
}

TEST(RestorePlan, ObjectsThisRestoreMadeAreItsOwnNotInTheWay) {
  World w;
  w.put("virtualmachines", "prod", "db", {});
  w.label("virtualmachines/prod/db", "r1");  // created just before a kill
  w.put("persistentvolumeclaims", "prod", "r1-db-root", {});
  w.label("persistentvolumeclaims/prod/r1-db-root", "r1");
  auto p = plan_restore(spec(), w);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_FALSE(p->vms[0].existing) << "its own VM is never replaced";
  w.label("persistentvolumeclaims/prod/r1-db-root", "another-restore");
  EXPECT_FALSE(plan_restore(spec(), w)) << "another restore's claim is in the way";
}

TEST(RestorePlan, AnotherNamespaceImportsTheSnapshotByItsHandle) {
  World w;
  auto s = spec();
  s.namespace_mapping = {{"prod", "lab"}};
  EXPECT_THAT(plan_restore(s, w).error().message, HasSubstr("namespace \"lab\" does not exist"));
  s.create_namespaces = true;
  auto p = plan_restore(s, w);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->create_namespaces, std::vector<std::string>{"lab"});
  const auto& v = p->vms[0].volumes[0];
  EXPECT_TRUE(v.import);
  EXPECT_EQ(v.handle, "h1");
  EXPECT_EQ(v.driver, "csi.example.com");
}

TEST(RestorePlan, UnrestorableInputIsNamed) {
  World w;
  w.objects.erase("storageclasses//fast");
  EXPECT_THAT(plan_restore(spec(), w).error().message, HasSubstr("StorageClass \"fast\" not found"));
  World w2;
  w2.objects["volumesnapshots/prod/nightly-db-root"]["status"].as_object()["readyToUse"] = false;
  EXPECT_THAT(plan_restore(spec(), w2).error().message, HasSubstr("not readyToUse"));
  World w3;
  w3.backup_record.vms[0].volumes[0].deleted = true;
  EXPECT_THAT(plan_restore(spec(), w3).error().message, HasSubstr("has no snapshot"));
  World w4;
  auto s = spec();
  s.vms = {"prod/ghost"};
  EXPECT_THAT(plan_restore(s, w4).error().message, HasSubstr("has no VM \"prod/ghost\""));
  World w5;
  w5.backup_record.phase = record::BackupPhase::kFailed;
  EXPECT_THAT(plan_restore(spec(), w5).error().message, HasSubstr("nothing to restore"));
}

}  // namespace
}  // namespace kvb::restore

namespace kvb::restore {
namespace {
// A verification copy (restore/verify.h) cannot reach or clash with the network:
// no interfaces, no networks, no pod interface, no MAC, no firmware UUID.
TEST(RestoreTransform, AnIsolatedCopyHasNoNetworkAndNoIdentity) {
  auto saved = boost::json::parse(R"({"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine",
    "metadata":{"name":"db","namespace":"prod","uid":"u1"},
    "spec":{"runStrategy":"Halted","template":{"spec":{
      "domain":{"firmware":{"uuid":"5d307ca9-b3ef-428c-8861-06e72d69f223"},
                "devices":{"interfaces":[{"name":"default","masquerade":{},"macAddress":"02:00:00:00:00:01"}]}},
      "networks":[{"name":"default","pod":{}}],
      "volumes":[{"name":"root","dataVolume":{"name":"db-root"}}]}}}})").as_object();
  VmRewrite w;
  w.ns = "kvb-verify-1";
  w.name = "db";
  w.claim_for_volume["root"] = "db-root";
  w.run_strategy = "Always";
  w.strip_identity = true;
  w.isolate = true;
  w.restore = "r1";
  auto vm = boost::json::value(restored_vm(saved, w));
  const auto& ts = vm.at("spec").at("template").at("spec").as_object();
  EXPECT_FALSE(ts.contains("networks"));
  const auto& devices = ts.at("domain").at("devices").as_object();
  EXPECT_FALSE(devices.contains("interfaces"));
  EXPECT_EQ(devices.at("autoattachPodInterface"), boost::json::value(false));
  EXPECT_FALSE(ts.at("domain").at("firmware").as_object().contains("uuid"));
  EXPECT_EQ(vm.at("spec").at("runStrategy").as_string(), "Always");
  EXPECT_EQ(vm.at("spec").at("template").at("spec").at("volumes").at(0).at("persistentVolumeClaim").at("claimName").as_string(),
            "db-root");
  w.isolate = false;  // a plain restore keeps its network
  auto plain = boost::json::value(restored_vm(saved, w));
  EXPECT_TRUE(plain.at("spec").at("template").at("spec").as_object().contains("networks"));
}
}  // namespace
}  // namespace kvb::restore
