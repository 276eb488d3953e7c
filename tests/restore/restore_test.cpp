// Restores end to end against the test cluster: into another namespace with
// rename and storage class mapping, in place over the original, after the
// original was deleted; and the failure paths. The test cluster's data model
// proves each restored claim holds exactly the generation its snapshot was cut at.
#include "tests/backup/backup_fixture.h"

#include "kube/object.h"
#include "kube/resource.h"
#include "kubevirt/resources.h"
#include "restore/plan.h"
#include "restore/runner.h"
#include "restore/transform.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>

namespace kvb::testing {
namespace {
using ::testing::HasSubstr;
namespace json = boost::json;
namespace res = kube::resources;

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 50ms, readyLatency: 20ms}]
storageClasses:
  - {name: fast, provisioner: csi.example.com}
  - {name: slow, provisioner: csi.example.com}
namespaces:
  - name: prod
    vms:
      - name: db
        volumes:
          - {name: rootdisk, type: dataVolume, size: 10Gi, storageClass: fast}
          - {name: data, type: persistentVolumeClaim, size: 20Gi, storageClass: fast}
      - {name: web, volumes: [{name: rootdisk, type: dataVolume, storageClass: fast}]}
  - name: lab
)";

struct RestoreFixture : BackupFixture {
  RestoreFixture() : BackupFixture(kScenario) {
    auto rec = run(spec("nightly"));
    if (!rec || rec->phase != record::BackupPhase::kCompleted) throw std::runtime_error("the backup failed");
    backup_record = *rec;
  }

  restore::RestoreSpec restore_spec(const std::string& name) const {
    restore::RestoreSpec s;
    s.name = name;
    s.backup = "nightly";
    s.bind_timeout = std::chrono::seconds(30);
    s.start_timeout = std::chrono::seconds(30);
    return s;
  }
  Result<restore::RestoreRecord> restore(const restore::RestoreSpec& s) {
    restore::RestoreRunner r(tc.client(), *location, s);
    return r.run();
  }
  // The generation each backed-up snapshot of a VM was cut at, by volume name.
  std::map<std::string, int64_t> cut_generations(const std::string& vm) {
    std::map<std::string, int64_t> out;
    for (const auto& v : this->vm(backup_record, vm).volumes) {
      auto snap = tc.client()->get(res::kVolumeSnapshots, "prod", v.volume_snapshot);
      if (!snap) throw std::runtime_error(snap.error().message);
      out[v.name] = std::stoll(std::string(kube::annotation_of(*snap, "testcluster.kvbackup.io/generation")));
    }
    return out;
  }
  int64_t restored_generation(const std::string& ns, const std::string& claim) {
    auto volumes = tc.volumes();  // kept alive: range-for over a temporary's member dangles
    for (const auto& v : volumes.at("volumes").as_array()) {
      if (kube::str_at(v, {"namespace"}) == ns && kube::str_at(v, {"pvc"}) == claim) {
        return v.at("restoredFromGeneration").to_number<int64_t>();
      }
    }
    return -2;
  }
  size_t objects_labelled(const kube::ResourceRef& ref, const std::string& ns, const std::string& restore) {
    kube::ListOptions o;
    o.label_selector = std::string(restore::kRestoreLabel) + "=" + restore;
    auto l = tc.client()->list(ref, ns, o);
    if (!l) throw std::runtime_error(l.error().message);
    return l->items.size();
  }
  // The VM's claims, as its spec references them.
  std::vector<std::string> claims_of(const json::object& vm) {
    std::vector<std::string> out;
    EXPECT_FALSE(kube::array_at(vm, {"spec", "dataVolumeTemplates"})) << "no DataVolume templates in a restored VM";
    if (const auto* vols = kube::array_at(vm, {"spec", "template", "spec", "volumes"})) {
      for (const auto& v : *vols) {
        EXPECT_TRUE(kube::str_at(v, {"dataVolume", "name"}).empty());
        if (auto c = kube::str_at(v, {"persistentVolumeClaim", "claimName"}); !c.empty()) out.emplace_back(c);
      }
    }
    return out;
  }

  record::BackupRecord backup_record;
};

TEST(Restore, IntoAnotherNamespaceWithRenameAndStorageClassMapping) {
  RestoreFixture f;
  auto s = f.restore_spec("clone");
  s.vms = {"prod/db"};
  s.namespace_mapping = {{"prod", "lab"}};
  s.rename = {{"db", "db-copy"}};
  s.storage_class_mapping = {{"fast", "slow"}};
  auto rec = f.restore(s);
  ASSERT_TRUE(rec) << rec.error().message;
  ASSERT_EQ(rec->phase, restore::RestorePhase::kCompleted) << rec->vms[0].reason;
  ASSERT_EQ(rec->vms.size(), 1u);
  const auto& v = rec->vms[0];
  EXPECT_EQ(v.ns, "lab");
  EXPECT_EQ(v.name, "db-copy");
  auto cut = f.cut_generations("db");
  ASSERT_EQ(v.claims.size(), 2u);
  for (const auto& c : v.claims) {
    auto pvc = f.tc.client()->get(res::kPersistentVolumeClaims, "lab", c.claim);
    ASSERT_TRUE(pvc) << c.claim;
    EXPECT_EQ(kube::str_at(*pvc, {"spec", "storageClassName"}), "slow");
    EXPECT_EQ(kube::str_at(*pvc, {"status", "phase"}), "Bound");
    EXPECT_EQ(f.restored_generation("lab", c.claim), cut.at(c.volume)) << c.claim << " holds exactly the data cut";
  }
  auto vm = f.tc.client()->get(kubevirt::kVirtualMachines, "lab", "db-copy");
  ASSERT_TRUE(vm);
  auto claims = f.claims_of(*vm);
  std::vector<std::string> restored;
  for (const auto& c : v.claims) restored.push_back(c.claim);
  EXPECT_THAT(claims, ::testing::UnorderedElementsAreArray(restored));
  auto vmi = f.tc.client()->get(kubevirt::kVirtualMachineInstances, "lab", "db-copy");
  ASSERT_TRUE(vmi) << "the restored VM starts";
  EXPECT_EQ(kube::str_at(*vmi, {"status", "phase"}), "Running");
  // The original is untouched.
  EXPECT_TRUE(f.tc.client()->get(kubevirt::kVirtualMachines, "prod", "db"));
  EXPECT_TRUE(f.tc.client()->get(res::kPersistentVolumeClaims, "prod", "db-data"));
  // The record on disk says the same.
  auto stored = f.location->get(restore::restore_record_path("clone"));
  ASSERT_TRUE(stored);
  auto parsed = restore::RestoreRecord::from_json(json::parse(*stored), "restore.json");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->vms[0].claims.size(), 2u);
}

TEST(Restore, InPlaceReplacesTheVmOnlyAfterTheRestoredClaimsAreBound) {
  RestoreFixture f;
  auto s = f.restore_spec("back");
  s.vms = {"db"};
  s.existing = restore::Existing::kReplace;
  auto rec = f.restore(s);
  ASSERT_TRUE(rec) << rec.error().message;
  ASSERT_EQ(rec->phase, restore::RestorePhase::kCompleted) << rec->vms[0].reason;
  const auto& v = rec->vms[0];
  EXPECT_THAT(v.replaced, ::testing::Contains("virtualmachines prod/db"));
  EXPECT_THAT(v.replaced, ::testing::Contains("persistentvolumeclaims prod/db-data"));
  EXPECT_FALSE(f.tc.client()->get(res::kPersistentVolumeClaims, "prod", "db-data")) << "the replaced claim is gone";
  auto vm = f.tc.client()->get(kubevirt::kVirtualMachines, "prod", "db");
  ASSERT_TRUE(vm);
  auto cut = f.cut_generations("db");
  for (const auto& c : v.claims) EXPECT_EQ(f.restored_generation("prod", c.claim), cut.at(c.volume));
  EXPECT_EQ(f.claims_of(*vm).size(), 2u);
  auto vmi = f.tc.client()->get(kubevirt::kVirtualMachineInstances, "prod", "db");
  ASSERT_TRUE(vmi);
  EXPECT_EQ(kube::str_at(*vmi, {"status", "phase"}), "Running");
  // The other VM of the backup was not touched.
  EXPECT_TRUE(f.tc.client()->get(res::kPersistentVolumeClaims, "prod", "web-rootdisk"));
}

TEST(Restore, BringsBackADeletedVm) {
  RestoreFixture f;
  ASSERT_TRUE(f.tc.client()->remove(kubevirt::kVirtualMachines, "prod", "web"));
  auto s = f.restore_spec("undelete");
  s.vms = {"prod/web"};
  auto rec = f.restore(s);
  ASSERT_TRUE(rec) << rec.error().message;
  ASSERT_EQ(rec->phase, restore::RestorePhase::kCompleted) << rec->vms[0].reason;
  auto vm = f.tc.client()->get(kubevirt::kVirtualMachines, "prod", "web");
  ASSERT_TRUE(vm);
  auto cut = f.cut_generations("web");
  EXPECT_EQ(f.restored_generation("prod", rec->vms[0].claims[0].claim), cut.at("rootdisk"));
  EXPECT_TRUE(rec->vms[0].problems.empty()) << "not a copy: identity kept";
}

TEST(Restore, ValidationErrorsChangeNothing) {
  RestoreFixture f;
  struct Case {
    std::function<void(restore::RestoreSpec&)> edit;
    std::string message;
  };
  std::vector<Case> cases = {
      {[](auto& s) { s.vms = {"prod/db"}; }, "VirtualMachine prod/db exists (--existing replace"},
      {[](auto& s) { s.namespace_mapping = {{"prod", "nowhere"}}; }, "namespace \"nowhere\" does not exist"},
      {[](auto& s) { s.vms = {"ghost"}; }, "backup \"nightly\" has no VM \"ghost\""},
      {[](auto& s) { s.backup = "nope"; }, "backup \"nope\" not found"},
      {[](auto& s) {
         s.namespace_mapping = {{"prod", "lab"}};
         s.storage_class_mapping = {{"fast", "gold"}};
       },
       "StorageClass \"gold\" not found"},
      {[](auto& s) { s.name = "Bad"; }, "restore name \"Bad\""},
  };
  for (const auto& c : cases) {
    auto s = f.restore_spec("x");
    c.edit(s);
    auto rec = f.restore(s);
    ASSERT_FALSE(rec) << c.message;
    EXPECT_THAT(rec.error().message, HasSubstr(c.message));
    EXPECT_FALSE(f.location->exists(restore::restore_record_path("x")));
  }
  // A snapshot that no longer exists.
  ASSERT_TRUE(f.tc.client()->remove(res::kVolumeSnapshots, "prod", f.vm(f.backup_record, "web").volumes[0].volume_snapshot));
  auto s = f.restore_spec("x");
  s.namespace_mapping = {{"prod", "lab"}};
  auto rec = f.restore(s);
  ASSERT_FALSE(rec);
  EXPECT_THAT(rec.error().message, HasSubstr("no longer exists"));
  EXPECT_EQ(f.objects_labelled(res::kPersistentVolumeClaims, "lab", "x"), 0u);
  EXPECT_FALSE(f.tc.client()->get(kubevirt::kVirtualMachines, "lab", "db"));
}

TEST(Restore, AnApiFailureMidRestoreRemovesWhatItCreatedAndRecordsIt) {
  RestoreFixture f;
  f.tc.add_fault(R"({"type":"api-error","verb":"create","resource":"virtualmachines","namespace":"lab","code":500})");
  auto s = f.restore_spec("broken");
  s.vms = {"prod/db"};
  s.namespace_mapping = {{"prod", "lab"}};
  auto rec = f.restore(s);
  ASSERT_TRUE(rec) << rec.error().message;
  EXPECT_EQ(rec->phase, restore::RestorePhase::kFailed);
  const auto& v = rec->vms[0];
  EXPECT_EQ(v.phase, "Failed");
  EXPECT_THAT(v.reason, HasSubstr("creating virtualmachines lab/db"));
  ASSERT_FALSE(v.created.empty());
  for (const auto& c : v.created) EXPECT_TRUE(c.removed) << c.resource << " " << c.name;
  EXPECT_EQ(f.objects_labelled(res::kPersistentVolumeClaims, "lab", "broken"), 0u);
  EXPECT_EQ(f.objects_labelled(res::kVolumeSnapshots, "lab", "broken"), 0u);
  EXPECT_EQ(f.objects_labelled(res::kVolumeSnapshotContents, "", "broken"), 0u);
  auto stored = f.location->get(restore::restore_record_path("broken"));
  ASSERT_TRUE(stored);
  EXPECT_THAT(*stored, HasSubstr("\"removed\":true"));
}

TEST(RestoreTransform, ACopyLosesItsIdentityAndUsesOnlyRestoredClaims) {
  auto saved = json::parse(R"({"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine",
    "metadata":{"name":"db","namespace":"prod","uid":"u","ownerReferences":[{"kind":"X"}],"labels":{"app":"db"}},
    "spec":{"running":true,
      "dataVolumeTemplates":[{"metadata":{"name":"db-root"}}],
      "template":{"spec":{
        "domain":{"firmware":{"uuid":"1234","serial":"s"},"devices":{"interfaces":[{"name":"default","macAddress":"02:00:00:00:00:01"}]}},
        "volumes":[{"name":"root","dataVolume":{"name":"db-root"}},
                   {"name":"data","persistentVolumeClaim":{"claimName":"db-data","hotpluggable":true}},
                   {"name":"ci","cloudInitNoCloud":{"userData":"x"}}]}}},
    "status":{"ready":true}})").as_object();
  restore::VmRewrite w;
  w.ns = "lab";
  w.name = "db2";
  w.claim_for_volume = {{"root", "r-db2-root"}, {"data", "r-db2-data"}};
  w.run_strategy = "Halted";
  w.strip_identity = true;
  w.restore = "r";
  w.restored_from = "nightly/prod/db";
  auto vm = restore::restored_vm(saved, w);
  EXPECT_EQ(kube::str_at(vm, {"metadata", "namespace"}), "lab");
  EXPECT_EQ(kube::str_at(vm, {"metadata", "name"}), "db2");
  EXPECT_FALSE(vm.at("metadata").as_object().contains("ownerReferences"));
  EXPECT_FALSE(vm.at("metadata").as_object().contains("uid"));
  EXPECT_FALSE(vm.contains("status"));
  EXPECT_EQ(kube::str_at(vm, {"metadata", "labels", "app"}), "db");
  EXPECT_EQ(kube::str_at(vm, {"spec", "runStrategy"}), "Halted");
  EXPECT_FALSE(vm.at("spec").as_object().contains("running"));
  EXPECT_FALSE(vm.at("spec").as_object().contains("dataVolumeTemplates"));
  const auto& vols = *kube::array_at(vm, {"spec", "template", "spec", "volumes"});
  EXPECT_EQ(kube::str_at(vols[0], {"persistentVolumeClaim", "claimName"}), "r-db2-root");
  EXPECT_FALSE(vols[0].as_object().contains("dataVolume"));
  EXPECT_EQ(kube::str_at(vols[1], {"persistentVolumeClaim", "claimName"}), "r-db2-data");
  EXPECT_EQ(kube::bool_at(vols[1], {"persistentVolumeClaim", "hotpluggable"}), true);
  EXPECT_EQ(kube::str_at(vols[2], {"cloudInitNoCloud", "userData"}), "x");
  EXPECT_TRUE(kube::str_at(vm, {"spec", "template", "spec", "domain", "firmware", "uuid"}).empty());
  EXPECT_EQ(kube::str_at(vm, {"spec", "template", "spec", "domain", "firmware", "serial"}), "s");
  const auto& ifs = *kube::array_at(vm, {"spec", "template", "spec", "domain", "devices", "interfaces"});
  EXPECT_FALSE(ifs[0].as_object().contains("macAddress"));
  w.strip_identity = false;
  w.run_strategy = "keep";
  auto kept = restore::restored_vm(saved, w);
  EXPECT_EQ(kube::str_at(kept, {"spec", "template", "spec", "domain", "firmware", "uuid"}), "1234");
  EXPECT_EQ(kube::bool_at(kept, {"spec", "running"}), true);
  EXPECT_EQ(restore::run_strategy_of(kept), "Always");
}

TEST(RestoreTransform, QuantitiesAndMappings) {
  EXPECT_EQ(restore::quantity_bytes("10Gi"), int64_t{10} << 30);
  EXPECT_EQ(restore::quantity_bytes("1500M"), int64_t{1500000000});
  EXPECT_EQ(restore::quantity_bytes("12"), 12);
  EXPECT_FALSE(restore::quantity_bytes("ten"));
  EXPECT_FALSE(restore::quantity_bytes("10Qi"));
  EXPECT_EQ(restore::larger_quantity("10Gi", "10737418241"), "10737418241");
  EXPECT_EQ(restore::larger_quantity("20Gi", "10Gi"), "20Gi");
  auto m = restore::parse_mapping("--rename", {"db:db2", "prod/web:web2"});
  ASSERT_TRUE(m);
  EXPECT_EQ(m->at("prod/web"), "web2");
  auto bad = restore::parse_mapping("--namespace-mapping", {"prod"});
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("--namespace-mapping \"prod\": expected OLD:NEW"));
  EXPECT_FALSE(restore::parse_mapping("--rename", {"a:b", "a:c"}));
}

}  // namespace
}  // namespace kvb::testing
