// KubeVirt and CDI resources and the label/annotation keys kvbackup relies on.
#pragma once

#include "kube/resource.h"

namespace kvb::kubevirt {

extern const kube::ResourceRef kVirtualMachines;
extern const kube::ResourceRef kVirtualMachineInstances;
extern const kube::ResourceRef kVmiSubresources;  // subresources.kubevirt.io: freeze, unfreeze, guestosinfo
extern const kube::ResourceRef kDataVolumes;
extern const kube::ResourceRef kVirtualMachineExports;  // export.kubevirt.io/v1beta1
extern const kube::ResourceRef kInstancetypes;
extern const kube::ResourceRef kClusterInstancetypes;
extern const kube::ResourceRef kPreferences;
extern const kube::ResourceRef kClusterPreferences;

inline constexpr const char* kLabelKubevirt = "kubevirt.io";                  // "virt-launcher" on launcher pods
inline constexpr const char* kLabelCreatedBy = "kubevirt.io/created-by";      // VMI uid, on launcher pods
inline constexpr const char* kLabelVmName = "vm.kubevirt.io/name";            // the hostname, NOT always the VM name
inline constexpr const char* kAnnotationSkipHooks = "kubevirt.io/skip-backup-hooks";
inline constexpr const char* kComputeContainer = "compute";
inline constexpr const char* kVirtFreezer = "/usr/bin/virt-freezer";

}  // namespace kvb::kubevirt
