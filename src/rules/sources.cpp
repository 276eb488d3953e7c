#include "rules/sources.h"

#include "kube/object.h"

#include <boost/json.hpp>

#include <filesystem>

namespace kvb::rules {

const kube::ResourceRef kStorkRules{"stork.libopenstorage.org", "v1alpha1", "rules", "Rule", true};

Result<std::vector<Rule>> load_rules(const std::string& file_or_name, Phase phase, kube::Client& client,
                                     const std::vector<std::string>& namespaces) {
  std::error_code ec;
  if (std::filesystem::exists(file_or_name, ec) || file_or_name.find('/') != std::string::npos ||
      file_or_name.ends_with(".yaml") || file_or_name.ends_with(".yml") || file_or_name.ends_with(".json")) {
    return load_rule_file(file_or_name, phase);
  }
  std::vector<Rule> out;
  for (const auto& ns : namespaces) {
    auto obj = client.get(kStorkRules, ns, file_or_name);
    if (!obj) {
      if (obj.error().code == Errc::kNotFound) continue;
      return obj.error().with_context("reading Stork Rule " + ns + "/" + file_or_name);
    }
    KVB_TRY(Rule rule, parse_rule_object(boost::json::value(*obj), "cluster Rule " + ns + "/" + file_or_name, phase,
                                         RuleSource::kStorkCluster));
    rule.ns = ns;
    out.push_back(std::move(rule));
  }
  if (out.empty()) {
    std::string where;
    for (const auto& ns : namespaces) where += (where.empty() ? "" : ", ") + ns;
    return Error(Errc::kInvalidArgument, "rule \"" + file_or_name + "\" is neither a file nor a Stork Rule in namespace(s) " + where);
  }
  return out;
}

}  // namespace kvb::rules
