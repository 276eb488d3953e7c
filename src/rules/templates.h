// Rule templates: the seed's own notation `<vm-name>` and `<vm-namespace>`, and
// `{{vm.name}}` / `{{vm.namespace}}`, in pod selector values, container names
// and action values. expand() makes the plain rule for one VM; in action
// values (shell text) the VM's name is shell-quoted, so a name can never turn
// into shell syntax.
#pragma once

#include "common/error.h"
#include "rules/model.h"
#include "rules/parse.h"

#include <boost/json/value.hpp>

#include <string>

namespace kvb::rules {

bool has_template_markers(std::string_view text);

struct TemplateVm {
  std::string name;
  std::string ns;
};

// Substitutes the markers in a rule document (JSON) for one VM.
boost::json::value expand_template_document(const boost::json::value& doc, const TemplateVm& vm);

// The plain rule of a template for one VM (a plain rule is returned as is).
Result<Rule> expand_rule(const Rule& tmpl, const TemplateVm& vm, Phase phase);

}  // namespace kvb::rules
