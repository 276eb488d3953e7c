// Admission: the write validation of the simulated API server, applied to
// requests from clients (never to the simulated controllers): object-meta
// validation (DNS-1123 names, label values), create with a resourceVersion,
// unknown fields at any depth under fieldValidation=Strict (from the schema
// table of openapi_builtin.h; custom resources are crds.cpp's), the
// PVC spec immutability rules, the custom-resource rule that an update needs a
// resourceVersion, KubeVirt's VirtualMachine admission webhook (running vs
// runStrategy), and which field selectors each resource supports. Messages
// follow the upstream sources named in docs/testcluster.md.
#pragma once

#include "common/error.h"
#include "kube/selector.h"
#include "testcluster/store.h"

namespace kvb::testcluster {

// A built-in Kubernetes kind (vs a custom resource served from a CRD).
bool is_builtin(const ResourceInfo& r);
// old: nullptr on create. strict: fieldValidation=Strict.
Status validate_write(const ResourceInfo& r, const Object& obj, const Object* old, bool strict);
// 400 "field label not supported: X" for fields the resource cannot select on.
Status check_field_selector(const ResourceInfo& r, const kube::FieldSelector& fs);

}  // namespace kvb::testcluster
