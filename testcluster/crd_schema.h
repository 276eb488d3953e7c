// The structural-schema engine of CustomResourceDefinitions, as the test
// cluster applies a CRD version's `schema.openAPIV3Schema` to custom resources:
// pruning of undeclared fields (apiextensions-apiserver pkg/apiserver/schema/
// pruning), defaulting (pkg/apiserver/schema/defaulting), value validation
// (pkg/apiserver/validation over kube-openapi's validator, its errors turned
// into field errors by kubeOpenAPIResultToFieldErrors) and the structural
// rules a v1 CRD's schema must obey (pkg/apiserver/schema/validation.go).
//
// Pure functions over boost::json values. Invariants: prune() and
// apply_defaults() never touch apiVersion, kind or metadata of the root or of
// an x-kubernetes-embedded-resource object; below x-kubernetes-preserve-
// unknown-fields only declared properties are pruned within; errors are
// upstream's field.Error texts ("spec.size: Invalid value: ...") in schema
// order, paths written as field.Path writes them (spec.items[0].name).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <vector>

namespace kvb::testcluster::crd {

// Which part of a custom resource a write may change (and so is validated):
// the whole object, everything but status (main resource with a status
// subresource), or status only (the /status subresource).
enum class Part { kAll, kAllButStatus, kStatusOnly };

// Removes fields the schema does not declare; returns their paths
// ("spec.foo", "spec.items[1].bar") for fieldValidation Strict/Warn.
std::vector<std::string> prune(boost::json::value& obj, const boost::json::object& schema);

// Sets `default:` values of absent fields (and of nulls where the field is not
// nullable); drops other nulls of non-nullable fields.
void apply_defaults(boost::json::value& obj, const boost::json::object& schema);

// Value validation; empty when valid.
std::vector<std::string> validate(const boost::json::value& obj, const boost::json::object& schema, Part part = Part::kAll);

// Why a schema is not structural; `path` is where it sits in the CRD
// (spec.versions[0].schema.openAPIV3Schema).
std::vector<std::string> structural_problems(const boost::json::object& schema, const std::string& path);

// A Go %v / field.Error rendering of a JSON scalar (1, 1.5, true, "text" quoted).
std::string go_value(const boost::json::value& v);

}  // namespace kvb::testcluster::crd
