// CoreControllers: what a real cluster does outside KubeVirt, CDI and CSI that
// clients can see, simulated on the cluster's loop thread:
//  - API defaulting (PVC/PV volumeMode Filesystem; a namespace's
//    kubernetes.io/metadata.name label, spec.finalizers [kubernetes] and phase
//    Active) and the pod status a scheduler and kubelet would write (nodeName,
//    a distinct podIP, containerStatuses with imageID and containerID, the
//    standard conditions), applied by the Store to every write;
//  - the namespace controller: a namespace being deleted has its content
//    deleted, and goes once nothing is left in it (objects with finalizers
//    keep it Terminating);
//  - pvc-protection (pvc_protection.cpp): claims get the
//    kubernetes.io/pvc-protection finalizer and stay Terminating while a pod
//    that is not shut down uses them; pv-protection: persistent volumes get
//    kubernetes.io/pv-protection and stay Terminating while their phase is Bound;
//  - CustomResourceDefinitions (crds.cpp): a CRD's served versions become
//    resources of the Registry, with the CRD's status as apiextensions writes it;
//  - the serviceaccount controller: a "default" ServiceAccount in every namespace;
//  - the node objects (node01, node02);
//  - KubeVirt's VM status sync that virt-controller does beside the lifecycle:
//    conditions copied from the VMI (Ready as VMINotExists/VMIConditionMissing
//    when there is none), observedGeneration/desiredGeneration and
//    volumeSnapshotStatuses; and the VMI's IP taken from its launcher pod.
// Invariant: every write goes through the Store, so watches see it; writes
// that change nothing are no-ops, so reacting to its own events terminates.
#pragma once

#include "testcluster/cluster.h"

#include <map>
#include <string>
#include <vector>

namespace kvb::testcluster {

inline constexpr const char* kPvcProtection = "kubernetes.io/pvc-protection";
inline constexpr const char* kPvProtection = "kubernetes.io/pv-protection";

class CoreControllers {
 public:
  explicit CoreControllers(Cluster& c);
  // The Store's defaulter (old: nullptr on create).
  void apply_defaults(const ResourceInfo& r, Object& obj, const Object* old);
  void on_change(const StoreEvent& e);
  // Cluster-scoped objects every cluster has (nodes).
  Status populate();

 private:
  void default_pod(Object& pod, const Object* old);
  void namespace_terminating(const std::string& ns);
  void mirror_vm_status(const std::string& ns, const std::string& name);
  void vmi_ip_from_pod(const Object& pod);
  // crds.cpp
  void crd_changed(const StoreEvent& e);
  void crd_cleanup(const std::string& name);
  void custom_resource_deleted(const ResourceInfo& r);
  // pvc_protection.cpp
  static void protect_claim(Object& pvc);
  static void add_finalizer(Object& o, const char* finalizer);
  void pvc_protection(const StoreEvent& e);
  void release_claim_if_unused(const std::string& ns, const std::string& claim);

  Cluster& c_;
  uint32_t next_ip_ = 0;
  std::map<std::string, std::vector<kube::ResourceRef>> custom_;  // CRD name -> the resources it serves
};

}  // namespace kvb::testcluster
