// The schemas of the kinds the test cluster serves itself (not those of
// CustomResourceDefinitions, see crds.cpp): one compact table
// (openapi_builtin_table.cpp) from which come the OpenAPI v3 components
// (`kubectl explain pod.spec.containers`, names as upstream publishes them:
// io.k8s.api.core.v1.Pod, io.kubevirt.v1.VirtualMachine, ...), the unknown
// fields of a write at any depth (fieldValidation Strict/Warn/Ignore) and
// their pruning, and server-side apply's "field not declared in schema".
//
// Table notation, one line each:
//   @NAME [+open] [GROUP/VERSION/KIND]: description     a type (an object)
//     FIELD TYPE: description                          one of its fields
// TYPE is string, integer, boolean, number, time, quantity, object (free
// form), map:string, map:quantity, []TYPE or another type's NAME. NAME
// prefixes: meta. core. storage. snap. kv. cdi. stand for
// io.k8s.apimachinery.pkg.apis.meta.v1., io.k8s.api.core.v1.,
// io.k8s.api.storage.v1., io.k8s.storage.snapshot.v1., io.kubevirt.v1.,
// io.kubevirt.cdi.v1beta1. A `+open` type keeps fields it does not list
// (x-kubernetes-preserve-unknown-fields): they are neither reported nor
// pruned, so every closed type must list all fields of its upstream type.
// Invariant: the table is parsed once; a malformed line is a programming
// error caught by testcluster_test (builtin_schemas().errors is empty).
#pragma once

#include "testcluster/registry.h"

#include <boost/json/object.hpp>

#include <map>
#include <string>
#include <vector>

namespace kvb::testcluster {

const char* builtin_schema_table();

struct SchemaField {
  std::string name, type, description;
};
struct SchemaType {
  std::string name, description, group, version, kind;  // kind empty: not a top-level kind
  bool open = false;
  std::vector<SchemaField> fields;
  const SchemaField* field(const std::string& n) const;
};
struct BuiltinSchemas {
  std::map<std::string, SchemaType> types;
  std::vector<std::string> errors;  // lines of the table that did not parse
  const SchemaType* for_kind(const std::string& group, const std::string& version, const std::string& kind) const;
};
const BuiltinSchemas& builtin_schemas();

// Adds the schemas of the kinds of group/version (gv_path "api/v1" or
// "apis/G/V") and of every type they use to `schemas`.
void add_builtin_schemas(const std::string& gv_path, boost::json::object& schemas);

// x-kubernetes-list-map-keys of the built-in kinds' lists, by field name
// (containers, volumes, env by name; ports by containerPort+protocol; ...);
// nullptr: the list is atomic. ObjectMeta's ownerReferences (uid) and
// finalizers (a set) are the server-side apply code's.
const std::vector<std::string>* list_map_keys(const std::string& field);

enum class PathStyle {
  kDecoder,     // spec.containers[0].imagee (the strict decoder's `unknown field "..."`)
  kStructured,  // .spec.containers[name="c"].imagee (structured-merge-diff's paths)
};
// The fields of obj its kind's schema does not declare (empty for kinds
// without a schema); removes them from obj when prune is set.
std::vector<std::string> unknown_fields(const ResourceInfo& r, boost::json::object& obj, bool prune,
                                        PathStyle style = PathStyle::kDecoder);

}  // namespace kvb::testcluster
