// Label and field selectors, with Kubernetes' syntax and semantics.
//
// Label selector text (labels.Parse): comma-separated requirements
//   key | !key | key=value | key==value | key!=value | key in (a,b) | key notin (a,b)
// and the structured metav1.LabelSelector {matchLabels, matchExpressions} that
// Velero hooks, kvbackup rules and Kubernetes objects use. "!=" and "notin" also
// match objects without the key, as in Kubernetes. An empty selector matches
// everything.
//
// Field selector text: comma-separated  path=value | path==value | path!=value,
// where path is a dotted JSON path into the object (metadata.name, status.phase,
// involvedObject.uid). Used by the test cluster; the API defines which paths
// each resource supports.
#pragma once

#include "common/error.h"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kvb::kube {

using Labels = std::map<std::string, std::string>;

struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op;
  std::vector<std::string> values;

  bool matches(const Labels& labels) const;
  std::string to_string() const;
};

class LabelSelector {
 public:
  LabelSelector() = default;  // matches everything

  static Result<LabelSelector> parse(std::string_view text);
  // metav1.LabelSelector JSON ({matchLabels, matchExpressions}); `where` names it in errors.
  static Result<LabelSelector> from_json(const boost::json::value& v, std::string_view where);
  static LabelSelector from_map(const Labels& labels);

  bool matches(const Labels& labels) const;
  bool empty() const { return requirements_.empty(); }
  // Canonical text form, usable as a labelSelector query parameter.
  std::string to_string() const;
  const std::vector<LabelRequirement>& requirements() const { return requirements_; }
  // The key=value pairs the selector requires (for reports and matchLabels).
  Labels required_equalities() const;

  void add(LabelRequirement r) { requirements_.push_back(std::move(r)); }

 private:
  std::vector<LabelRequirement> requirements_;
};

// Validates a label key (optional DNS-subdomain prefix "/" name) or value.
Status validate_label_key(std::string_view key);
Status validate_label_value(std::string_view value);

struct FieldRequirement {
  std::string path;
  bool equals = true;
  std::string value;
};

class FieldSelector {
 public:
  static Result<FieldSelector> parse(std::string_view text);
  bool matches(const boost::json::value& object) const;
  bool matches(const boost::json::object& object) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<FieldRequirement>& requirements() const { return requirements_; }

 private:
  std::vector<FieldRequirement> requirements_;
};

}  // namespace kvb::kube
