#include "rules/templates.h"

#include "common/shell.h"

#include <boost/json.hpp>

namespace kvb::rules {
namespace json = boost::json;

namespace {
constexpr std::string_view kMarkers[][2] = {
    {"<vm-name>", "name"}, {"<vm-namespace>", "ns"}, {"{{vm.name}}", "name"}, {"{{vm.namespace}}", "ns"},
    {"{{ vm.name }}", "name"}, {"{{ vm.namespace }}", "ns"}};

std::string substitute(std::string text, const TemplateVm& vm, bool shell) {
  for (const auto& m : kMarkers) {
    std::string value = m[1] == "name" ? vm.name : vm.ns;
    if (shell) value = shell_quote(value);
    for (size_t pos = text.find(m[0]); pos != std::string::npos; pos = text.find(m[0], pos + value.size())) {
      text.replace(pos, m[0].size(), value);
    }
  }
  return text;
}

void walk(json::value& v, const TemplateVm& vm, bool in_value_field) {
  if (v.is_string()) {
    v = substitute(std::string(v.as_string()), vm, in_value_field);
  } else if (v.is_array()) {
    for (auto& x : v.as_array()) walk(x, vm, false);
  } else if (v.is_object()) {
    // Keys can be templated too (a label key is rarely, but a matchLabels value often is).
    json::object out;
    for (auto& [k, x] : v.as_object()) {
      walk(x, vm, k == "value");
      out[substitute(std::string(k), vm, false)] = std::move(x);
    }
    v = std::move(out);
  }
}
}  // namespace

bool has_template_markers(std::string_view text) {
  for (const auto& m : kMarkers) {
    if (text.find(m[0]) != std::string_view::npos) return true;
  }
  return false;
}

json::value expand_template_document(const json::value& doc, const TemplateVm& vm) {
  json::value out = doc;
  walk(out, vm, false);
  // A templated rule name becomes unique per VM.
  return out;
}

}  // namespace kvb::rules
