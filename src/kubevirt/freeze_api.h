// KubeVirt's two ways to freeze a guest, in one home: the freeze API
// (subresources.kubevirt.io .../virtualmachineinstances/{name}/freeze,
// /unfreeze, and the agent's fsFreezeStatus from /guestosinfo) and the
// virt-freezer command line run in the launcher pod's compute container.
//
// Results are typed (FreezeState): callers never read error texts. The one
// message KubeVirt gives no code for — a Windows guest whose VSS released the
// freeze ("fsfreeze is limited up to 10 seconds") — is recognised here only.
//
// FreezeApi is an interface so that freeze and thaw logic can be tested with a
// fake; cluster_freeze_api() is the real one. Thread-safe: any thread may call.
#pragma once

#include "common/error.h"
#include "kube/client.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvb::kubevirt {

enum class FreezeState {
  kFrozen,           // the guest's file systems are frozen
  kThawed,           // they are not (or the thaw succeeded)
  kNoAgent,          // no guest agent: nothing can be frozen
  kNotRunning,       // no running VMI (409 / 404): nothing to freeze or thaw
  kVssLimitReached,  // Windows: VSS released the freeze by itself (10 s at most)
  kError,            // the call failed; `error` says why (the state is unknown)
};
std::string_view to_string(FreezeState s);

struct FreezeCall {
  FreezeState state = FreezeState::kError;
  std::optional<Error> error;  // set with kError (and kept for the other failure states)
  std::chrono::milliseconds duration{0};
  std::string detail;          // a short human account: "fsFreezeStatus=frozen", "409 Conflict: ..."
};

class FreezeApi {
 public:
  virtual ~FreezeApi() = default;
  // PUT .../freeze {"unfreezeTimeout": ...}: the guest thaws by itself after `unfreeze_timeout`.
  virtual FreezeCall freeze(const std::string& ns, const std::string& vmi, std::chrono::seconds unfreeze_timeout) = 0;
  // PUT .../unfreeze, once: the first answer is kept (a retry would hide
  // kVssLimitReached); callers retry in rounds.
  virtual FreezeCall unfreeze(const std::string& ns, const std::string& vmi) = 0;
  // GET .../guestosinfo: kFrozen when fsFreezeStatus is "frozen", else kThawed.
  virtual FreezeCall status(const std::string& ns, const std::string& vmi) = 0;
};

std::shared_ptr<FreezeApi> cluster_freeze_api(std::shared_ptr<kube::Client> client);

// The API paths, for records: "/apis/subresources.kubevirt.io/v1/namespaces/NS/virtualmachineinstances/VMI/SUB".
std::string freeze_api_path(const std::string& ns, const std::string& vmi, std::string_view sub);

enum class FreezerMode { kFreeze, kUnfreeze };
// /usr/bin/virt-freezer --freeze|--unfreeze --name VMI --namespace NS [--unfreezeTimeoutSeconds=N]
std::vector<std::string> virt_freezer_argv(FreezerMode mode, const std::string& vmi, const std::string& ns,
                                           std::optional<std::chrono::seconds> unfreeze_timeout = std::nullopt);
// "--unfreezeTimeoutSeconds=N"
std::string unfreeze_timeout_flag(std::chrono::seconds timeout);

// True when a message says that Windows VSS already released the freeze.
bool says_vss_limit(std::string_view text);

}  // namespace kvb::kubevirt
