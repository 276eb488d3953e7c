#include "kubevirt/resources.h"

namespace kvb::kubevirt {

const kube::ResourceRef kVirtualMachines{"kubevirt.io", "v1", "virtualmachines", "VirtualMachine", true};
const kube::ResourceRef kVirtualMachineInstances{"kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};
const kube::ResourceRef kVmiSubresources{"subresources.kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", true};
const kube::ResourceRef kDataVolumes{"cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume", true};
const kube::ResourceRef kVirtualMachineExports{"export.kubevirt.io", "v1beta1", "virtualmachineexports", "VirtualMachineExport", true};
const kube::ResourceRef kInstancetypes{"instancetype.kubevirt.io", "v1beta1", "virtualmachineinstancetypes",
                                       "VirtualMachineInstancetype", true};
const kube::ResourceRef kClusterInstancetypes{"instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterinstancetypes",
                                              "VirtualMachineClusterInstancetype", false};
const kube::ResourceRef kPreferences{"instancetype.kubevirt.io", "v1beta1", "virtualmachinepreferences",
                                     "VirtualMachinePreference", true};
const kube::ResourceRef kClusterPreferences{"instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterpreferences",
                                            "VirtualMachineClusterPreference", false};

}  // namespace kvb::kubevirt
