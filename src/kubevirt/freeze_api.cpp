#include "kubevirt/freeze_api.h"

#include "common/duration.h"
#include "kube/object.h"
#include "kubevirt/resources.h"

#include <boost/json.hpp>

namespace kvb::kubevirt {
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::string_view to_string(FreezeState s) {
  switch (s) {
    case FreezeState::kFrozen: return "frozen";
    case FreezeState::kThawed: return "thawed";
    case FreezeState::kNoAgent: return "no guest agent";
    case FreezeState::kNotRunning: return "not running";
    case FreezeState::kVssLimitReached: return "thawed itself (VSS limit)";
    case FreezeState::kError: return "unknown (error)";
  }
  return "unknown";
}

bool says_vss_limit(std::string_view text) { return text.find("fsfreeze is limited up to 10 seconds") != std::string_view::npos; }

std::string freeze_api_path(const std::string& ns, const std::string& vmi, std::string_view sub) {
  return "/apis/subresources.kubevirt.io/v1/namespaces/" + ns + "/virtualmachineinstances/" + vmi + "/" + std::string(sub);
}

std::string unfreeze_timeout_flag(std::chrono::seconds timeout) {
  return "--unfreezeTimeoutSeconds=" + std::to_string(timeout.count());
}

std::vector<std::string> virt_freezer_argv(FreezerMode mode, const std::string& vmi, const std::string& ns,
                                           std::optional<std::chrono::seconds> unfreeze_timeout) {
  std::vector<std::string> argv{kVirtFreezer, mode == FreezerMode::kFreeze ? "--freeze" : "--unfreeze", "--name", vmi,
                                "--namespace", ns};
  if (unfreeze_timeout && mode == FreezerMode::kFreeze) argv.push_back(unfreeze_timeout_flag(*unfreeze_timeout));
  return argv;
}

namespace {

// Classifies a failed freeze-API call by its HTTP status, and by KubeVirt's
// messages where it gives no better signal.
FreezeCall failed(const Error& e) {
  FreezeCall c;
  c.error = e;
  c.detail = e.describe();
  if (says_vss_limit(e.message)) c.state = FreezeState::kVssLimitReached;
  else if (e.code == Errc::kNotFound || e.code == Errc::kConflict) c.state = FreezeState::kNotRunning;
  else if (e.message.find("guest agent is not connected") != std::string::npos ||
           e.message.find("does not have guest agent connected") != std::string::npos) {
    c.state = FreezeState::kNoAgent;
  }
  else c.state = FreezeState::kError;
  return c;
}

class ClusterFreezeApi : public FreezeApi {
 public:
  explicit ClusterFreezeApi(std::shared_ptr<kube::Client> client) : client_(std::move(client)) {}

  FreezeCall freeze(const std::string& ns, const std::string& vmi, std::chrono::seconds unfreeze_timeout) override {
    json::value body = json::object{{"unfreezeTimeout", format_duration(unfreeze_timeout)}};
    kube::CallOptions o;
    o.retry = false;  // a freeze that timed out on our side may still happen: no blind repeat
    o.timeout = std::chrono::seconds(90);
    auto t0 = Clock::now();
    auto r = client_->subresource("PUT", kVmiSubresources, ns, vmi, "freeze", body, o);
    FreezeCall c = r ? FreezeCall{FreezeState::kFrozen, std::nullopt, {}, "200 OK"} : failed(r.error());
    c.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    return c;
  }

  FreezeCall unfreeze(const std::string& ns, const std::string& vmi) override {
    kube::CallOptions o;
    o.critical = true;
    o.retry = false;  // the first answer tells whether the guest thawed itself
    auto t0 = Clock::now();
    // One attempt: the caller retries in rounds (backup/freezer.h), within its own budget.
    auto r = client_->subresource("PUT", kVmiSubresources, ns, vmi, "unfreeze", std::nullopt, o);
    FreezeCall c = r ? FreezeCall{FreezeState::kThawed, std::nullopt, {}, "200 OK"} : failed(r.error());
    c.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    return c;
  }

  FreezeCall status(const std::string& ns, const std::string& vmi) override {
    kube::CallOptions o;
    o.critical = true;
    auto t0 = Clock::now();
    auto r = client_->subresource("GET", kVmiSubresources, ns, vmi, "guestosinfo", std::nullopt, o);
    FreezeCall c;
    if (!r) {
      c = failed(r.error());
    } else {
      std::string s(kube::str_at(*r, {"fsFreezeStatus"}));
      c.state = s == "frozen" ? FreezeState::kFrozen : FreezeState::kThawed;
      c.detail = "guestosinfo fsFreezeStatus=" + (s.empty() ? std::string("(none)") : s);
    }
    c.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    return c;
  }

 private:
  std::shared_ptr<kube::Client> client_;
};

}  // namespace

std::shared_ptr<FreezeApi> cluster_freeze_api(std::shared_ptr<kube::Client> client) {
  return std::make_shared<ClusterFreezeApi>(std::move(client));
}

}  // namespace kvb::kubevirt
