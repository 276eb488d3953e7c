#include "kubevirt/hooks.h"

#include "common/duration.h"
#include "kube/object.h"
#include "kubevirt/resources.h"

#include <boost/json.hpp>

namespace kvb::kubevirt {
namespace json = boost::json;

Result<std::optional<VeleroHook>> velero_hook(const json::object& pod, const std::string& phase) {
  std::string prefix = phase + ".hook.backup.velero.io/";
  std::string where = "pod " + std::string(kube::namespace_of(pod)) + "/" + std::string(kube::name_of(pod)) + " annotation ";
  std::string_view command = kube::annotation_of(pod, prefix + "command");
  if (command.empty()) return std::optional<VeleroHook>();
  VeleroHook h;
  h.phase = phase;
  boost::system::error_code ec;
  json::value v = json::parse(command, ec);
  if (ec || !v.is_array() || v.as_array().empty()) {
    // Velero also accepts a bare command string as a one-element command.
    if (!ec && v.is_string()) {
      h.command = {std::string(v.as_string())};
    } else if (ec) {
      h.command = {std::string(command)};
    } else {
      return Error(Errc::kInvalidArgument, where + prefix + "command: must be a non-empty JSON array of strings");
    }
  } else {
    for (const auto& e : v.as_array()) {
      if (!e.is_string()) return Error(Errc::kInvalidArgument, where + prefix + "command: elements must be strings");
      h.command.emplace_back(e.as_string());
    }
  }
  h.container = std::string(kube::annotation_of(pod, prefix + "container"));
  std::string_view on_error = kube::annotation_of(pod, prefix + "on-error");
  if (on_error == "Continue") h.on_error_continue = true;
  else if (!on_error.empty() && on_error != "Fail") {
    return Error(Errc::kInvalidArgument, where + prefix + "on-error: \"" + std::string(on_error) + "\" is not Fail or Continue");
  }
  std::string_view timeout = kube::annotation_of(pod, prefix + "timeout");
  if (!timeout.empty()) {
    auto d = parse_duration(timeout);
    if (!d) return Error(Errc::kInvalidArgument, where + prefix + "timeout: " + d.error().message);
    h.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    h.timeout_given = true;
  }
  return std::optional<VeleroHook>(std::move(h));
}

bool skip_backup_hooks(const json::object& obj) {
  std::string_view v = kube::annotation_of(obj, kAnnotationSkipHooks);
  return v == "true" || v == "True" || v == "TRUE" || v == "1";
}

}  // namespace kvb::kubevirt
