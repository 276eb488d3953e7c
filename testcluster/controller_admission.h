// Admission for the kinds the simulated controllers own: the defaulting and
// validation the real API server applies before such objects are stored.
//
//  - PersistentVolumeClaim create: spec.dataSource and spec.dataSourceRef are
//    kept in step (kube-apiserver pkg/api/persistentvolumeclaim
//    NormalizeDataSources) and must agree when both are given (422
//    "must match dataSourceRef", pkg/apis/core/validation).
//  - VolumeSnapshot create/update: the CRD's CEL rules of external-snapshotter
//    (exactly one source, sources immutable and required once set, no empty
//    class name), answered as 422 Invalid with the upstream messages.
//
// Invariant: pure functions of (resource, old, next); no cluster state.
#pragma once

#include "common/error.h"
#include "testcluster/registry.h"
#include "testcluster/store.h"

namespace kvb::testcluster {

// Defaulting (old: nullptr on create).
void default_data_sources(const ResourceInfo& r, Object& obj, const Object* old);
// Validation of the result (old: nullptr on create).
Status validate_controller_kinds(const ResourceInfo& r, const Object& obj, const Object* old);
// Both, as the Store's admission hook.
Status admit_controller_kinds(const ResourceInfo& r, const Object* old, Object& next);

}  // namespace kvb::testcluster
