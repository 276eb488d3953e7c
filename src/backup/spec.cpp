#include "backup/spec.h"

namespace kvb::backup {

std::chrono::seconds BackupSpec::unfreeze_timeout() const {
  return std::chrono::duration_cast<std::chrono::seconds>(freeze_deadline + std::chrono::milliseconds(999)) +
         std::chrono::seconds(60);
}

kubevirt::Scope BackupSpec::inventory_scope() const {
  kubevirt::Scope s;
  s.namespaces = scope.namespaces;
  s.all_namespaces = scope.all_namespaces;
  s.vm_names = scope.vms;
  s.label_selector = scope.selector;
  return s;
}

}  // namespace kvb::backup
