// Where custom rules come from on the command line: a file, or the name of a
// Stork Rule object in the cluster (read from each namespace in scope).
#pragma once

#include "common/error.h"
#include "kube/client.h"
#include "rules/model.h"
#include "rules/parse.h"

#include <string>
#include <vector>

namespace kvb::rules {

extern const kube::ResourceRef kStorkRules;

// FILE when the path exists, else NAME: the Stork Rule of that name in every
// namespace of `namespaces` that has one (an error when none has).
Result<std::vector<Rule>> load_rules(const std::string& file_or_name, Phase phase, kube::Client& client,
                                     const std::vector<std::string>& namespaces);

}  // namespace kvb::rules
