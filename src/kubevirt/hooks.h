// The Velero backup hook annotations KubeVirt writes on every launcher pod
// (pre/post.hook.backup.velero.io/{container,command,on-error,timeout}).
//
// The command is a JSON array of strings run without a shell. Velero's
// defaults apply to what is absent: the pod's first container, on-error Fail,
// timeout 30s.
#pragma once

#include "common/error.h"

#include <boost/json/object.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kvb::kubevirt {

struct VeleroHook {
  std::string phase;               // "pre" or "post"
  std::string container;           // empty: Velero uses the first container
  std::vector<std::string> command;
  bool on_error_continue = false;  // on-error: Continue
  std::chrono::milliseconds timeout{30'000};
  bool timeout_given = false;
};

// The hook of one phase on a pod; nullopt when the pod has no command
// annotation for it. A malformed annotation is an error naming pod and key.
Result<std::optional<VeleroHook>> velero_hook(const boost::json::object& pod, const std::string& phase);

// True when kubevirt.io/skip-backup-hooks is set to a true value on the object.
bool skip_backup_hooks(const boost::json::object& obj);

}  // namespace kvb::kubevirt
