// The test cluster's schema table (openapi_builtin.h) and server-side apply
// model (server_side_apply.h), without a server: the table parses, unknown
// fields are found at any depth and pruned, apply merges, conflicts, forces
// and removes, and Update operations take ownership of what they change.
#include "testcluster/openapi_builtin.h"
#include "testcluster/registry.h"
#include "testcluster/server_side_apply.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

namespace kvb::testcluster {
namespace {

namespace json = boost::json;

const ResourceInfo& find(const Registry& reg, const char* group, const char* version, const char* resource) {
  const ResourceInfo* r = reg.find(group, version, resource);
  EXPECT_NE(r, nullptr) << resource;
  return *r;
}

json::object obj(const char* text) { return json::parse(text).as_object(); }

TEST(BuiltinSchemas, TheTableParsesAndCoversTheServedKinds) {
  const auto& s = builtin_schemas();
  for (const auto& e : s.errors) ADD_FAILURE() << "schema table: " << e;
  EXPECT_NE(s.for_kind("", "v1", "Pod"), nullptr);
  EXPECT_NE(s.for_kind("", "v1", "PersistentVolumeClaim"), nullptr);
  EXPECT_NE(s.for_kind("kubevirt.io", "v1", "VirtualMachine"), nullptr);
  EXPECT_NE(s.for_kind("snapshot.storage.k8s.io", "v1", "VolumeSnapshot"), nullptr);
  json::object schemas;
  add_builtin_schemas("apis/kubevirt.io/v1", schemas);
  EXPECT_TRUE(schemas.contains("io.kubevirt.v1.VirtualMachine"));
  EXPECT_TRUE(schemas.contains("io.kubevirt.cdi.v1beta1.DataVolumeSpec")) << "referenced types come along";
  EXPECT_TRUE(schemas.contains("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
  EXPECT_FALSE(schemas.contains("io.k8s.api.core.v1.Pod"));
}

TEST(BuiltinSchemas, UnknownFieldsAreFoundAtAnyDepthAndPruned) {
  Registry reg;
  const auto& pods = find(reg, "", "v1", "pods");
  json::object pod = obj(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","x":1},
      "spec":{"containers":[{"name":"c","image":"i","imagee":"t","resources":{"requestz":{}}}],"securityContext":{"any":1}},
      "status":{"whatever":true}})");
  auto unknown = unknown_fields(pods, pod, false);
  ASSERT_EQ(unknown.size(), 3u);
  EXPECT_EQ(unknown[0], "metadata.x");
  EXPECT_EQ(unknown[1], "spec.containers[0].imagee");
  EXPECT_EQ(unknown[2], "spec.containers[0].resources.requestz");
  EXPECT_EQ(unknown_fields(pods, pod, false, PathStyle::kStructured)[1], R"(.spec.containers[name="c"].imagee)");
  unknown_fields(pods, pod, true);
  EXPECT_EQ(json::serialize(pod.at("spec")), R"({"containers":[{"name":"c","image":"i","resources":{}}],"securityContext":{"any":1}})");
  EXPECT_TRUE(unknown_fields(pods, pod, false).empty());
}

TEST(ServerSideApply, CreatesMergesByKeyConflictsForcesAndRemoves) {
  Registry reg;
  const auto& pods = find(reg, "", "v1", "pods");
  auto now = WallClock::now();
  auto a = server_side_apply(pods, nullptr, obj(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"1"}},
      "spec":{"containers":[{"name":"c","image":"one"}]}})"), "m1", false, now);
  ASSERT_TRUE(a.conflicts.empty());
  EXPECT_EQ(json::serialize(a.object.at("metadata").at("managedFields").at(0).at("fieldsV1")),
            R"({"f:metadata":{"f:labels":{"f:a":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{}}}}})");
  // m2 adds a container and changes m1's image: one conflict, named by the item's key.
  json::object m2 = obj(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
      "spec":{"containers":[{"name":"c","image":"two"},{"name":"d","image":"x"}]}})");
  auto b = server_side_apply(pods, &a.object, m2, "m2", false, now);
  ASSERT_EQ(b.conflicts.size(), 1u);
  EXPECT_EQ(conflict_message(b.conflicts), R"(Apply failed with 1 conflict: conflict with "m1": .spec.containers[name="c"].image)");
  b = server_side_apply(pods, &a.object, m2, "m2", true, now);
  ASSERT_TRUE(b.conflicts.empty());
  EXPECT_EQ(json::serialize(b.object.at("spec").at("containers")), R"([{"name":"c","image":"two"},{"name":"d","image":"x"}])");
  // m1 stops applying its label; the container stays (m2 co-owns it), its image belongs to m2 now.
  auto c = server_side_apply(pods, &b.object, obj(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
      "spec":{"containers":[{"name":"c"}]}})"), "m1", false, now);
  ASSERT_TRUE(c.conflicts.empty());
  EXPECT_FALSE(c.object.at("metadata").as_object().contains("labels"));
  EXPECT_EQ(json::serialize(c.object.at("spec").at("containers")), R"([{"name":"c","image":"two"},{"name":"d","image":"x"}])");
  // Several conflicts, grouped by manager.
  std::vector<ApplyConflict> two{{R"("b" using v1)", ".x"}, {R"("a")", ".y"}};
  EXPECT_EQ(conflict_message(two), "Apply failed with 2 conflicts: conflicts with \"a\":\n- .y\nconflicts with \"b\" using v1:\n- .x");
}

TEST(ServerSideApply, AnUpdateOwnsWhatItChangesAndTakesItFromOthers) {
  Registry reg;
  const auto& cms = find(reg, "", "v1", "configmaps");
  auto now = WallClock::now();
  json::object created = obj(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1","b":"2"}})");
  record_update(cms, nullptr, created, "creator", now);
  EXPECT_EQ(json::serialize(created.at("metadata").at("managedFields").at(0).at("fieldsV1")),
            R"({"f:data":{".":{},"f:a":{},"f:b":{}}})");
  json::object next = created;
  next["data"].as_object()["a"] = "9";
  next["data"].as_object().erase("b");
  record_update(cms, &created, next, "editor", now);
  const auto& mf = next.at("metadata").at("managedFields").as_array();
  ASSERT_EQ(mf.size(), 2u);
  EXPECT_EQ(json::serialize(mf[0].at("fieldsV1")), R"({"f:data":{}})") << "a taken, b gone: the map itself is left";
  EXPECT_EQ(json::serialize(mf[1].at("fieldsV1")), R"({"f:data":{"f:a":{}}})");
  EXPECT_EQ(mf[1].at("operation"), "Update");
  EXPECT_EQ(default_manager("", "OpenAPI-Generator/22.6.0/python"), "OpenAPI-Generator");
  EXPECT_EQ(default_manager("mine", "kubectl/v1.31"), "mine");
}

}  // namespace
}  // namespace kvb::testcluster
