#include "kube/selector.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>

namespace kvb::kube {
namespace json = boost::json;
namespace {

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool valid_name_part(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  if (!is_alnum(s.front()) || !is_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool valid_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  if (!is_alnum(s.front()) || !is_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

Error selector_error(std::string_view text, size_t pos, std::string_view why) {
  return Error(Errc::kInvalidArgument, "invalid label selector \"" + std::string(text) + "\" at position " +
                                           std::to_string(pos) + ": " + std::string(why));
}

// A tiny lexer over the selector text.
class Lexer {
 public:
  explicit Lexer(std::string_view t) : text_(t) {}
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool done() {
    skip_space();
    return pos_ >= text_.size();
  }
  bool consume(std::string_view s) {
    skip_space();
    if (text_.substr(pos_, s.size()) == s) {
      pos_ += s.size();
      return true;
    }
    return false;
  }
  // A word: label key/value characters.
  std::string word() {
    skip_space();
    size_t start = pos_;
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (is_alnum(c) || c == '-' || c == '_' || c == '.' || c == '/') ++pos_;
      else break;
    }
    return std::string(text_.substr(start, pos_ - start));
  }
  // "in"/"notin" must be whole words followed by space or '('.
  bool keyword(std::string_view kw) {
    skip_space();
    if (text_.substr(pos_, kw.size()) != kw) return false;
    size_t after = pos_ + kw.size();
    if (after < text_.size() && (is_alnum(text_[after]) || text_[after] == '-')) return false;
    pos_ = after;
    return true;
  }
  size_t pos() const { return pos_; }
  char peek() {
    skip_space();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

Status validate_label_key(std::string_view key) {
  auto slash = key.find('/');
  std::string_view name = key;
  if (slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (!valid_dns_subdomain(prefix)) {
      return Error(Errc::kInvalidArgument, "label key \"" + std::string(key) + "\": prefix \"" + std::string(prefix) +
                                               "\" must be a lower-case DNS subdomain");
    }
  }
  if (!valid_name_part(name, 63)) {
    return Error(Errc::kInvalidArgument,
                 "label key \"" + std::string(key) +
                     "\": name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric");
  }
  return ok();
}

Status validate_label_value(std::string_view value) {
  if (value.empty()) return ok();
  if (!valid_name_part(value, 63)) {
    return Error(Errc::kInvalidArgument,
                 "label value \"" + std::string(value) +
                     "\" must be at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric");
  }
  return ok();
}

bool LabelRequirement::matches(const Labels& labels) const {
  auto it = labels.find(key);
  bool has = it != labels.end();
  switch (op) {
    case Op::kExists: return has;
    case Op::kDoesNotExist: return !has;
    case Op::kEquals:
    case Op::kIn: return has && std::find(values.begin(), values.end(), it->second) != values.end();
    case Op::kNotEquals:
    case Op::kNotIn: return !has || std::find(values.begin(), values.end(), it->second) == values.end();
  }
  return false;
}

std::string LabelRequirement::to_string() const {
  auto list = [&] {
    std::string s;
    for (const auto& v : values) s += (s.empty() ? "" : ",") + v;
    return s;
  };
  switch (op) {
    case Op::kExists: return key;
    case Op::kDoesNotExist: return "!" + key;
    case Op::kEquals: return key + "=" + (values.empty() ? "" : values[0]);
    case Op::kNotEquals: return key + "!=" + (values.empty() ? "" : values[0]);
    case Op::kIn: return key + " in (" + list() + ")";
    case Op::kNotIn: return key + " notin (" + list() + ")";
  }
  return key;
}

Result<LabelSelector> LabelSelector::parse(std::string_view text) {
  LabelSelector sel;
  Lexer lx(text);
  if (lx.done()) return sel;
  for (;;) {
    LabelRequirement r;
    bool negated = lx.consume("!");
    size_t key_pos = lx.pos();
    r.key = lx.word();
    if (r.key.empty()) return selector_error(text, key_pos, "expected a label key");
    if (auto st = validate_label_key(r.key); !st) return selector_error(text, key_pos, st.error().message);
    if (negated) {
      r.op = LabelRequirement::Op::kDoesNotExist;
    } else if (lx.consume("==") || lx.consume("=")) {
      r.op = LabelRequirement::Op::kEquals;
    } else if (lx.consume("!=")) {
      r.op = LabelRequirement::Op::kNotEquals;
    } else if (lx.keyword("notin")) {
      r.op = LabelRequirement::Op::kNotIn;
    } else if (lx.keyword("in")) {
      r.op = LabelRequirement::Op::kIn;
    } else {
      r.op = LabelRequirement::Op::kExists;
    }
    if (r.op == LabelRequirement::Op::kEquals || r.op == LabelRequirement::Op::kNotEquals) {
      size_t vpos = lx.pos();
      std::string v = lx.word();
      if (auto st = validate_label_value(v); !st) return selector_error(text, vpos, st.error().message);
      r.values.push_back(v);
    } else if (r.op == LabelRequirement::Op::kIn || r.op == LabelRequirement::Op::kNotIn) {
      if (!lx.consume("(")) return selector_error(text, lx.pos(), "expected '(' after in/notin");
      for (;;) {
        size_t vpos = lx.pos();
        std::string v = lx.word();
        if (auto st = validate_label_value(v); !st) return selector_error(text, vpos, st.error().message);
        r.values.push_back(v);
        if (lx.consume(")")) break;
        if (!lx.consume(",")) return selector_error(text, lx.pos(), "expected ',' or ')' in value list");
      }
    }
    sel.requirements_.push_back(std::move(r));
    if (lx.done()) break;
    if (!lx.consume(",")) return selector_error(text, lx.pos(), "expected ',' between requirements");
  }
  return sel;
}

Result<LabelSelector> LabelSelector::from_json(const json::value& v, std::string_view where) {
  auto bad = [&](const std::string& why) { return Error(Errc::kInvalidArgument, std::string(where) + ": " + why); };
  LabelSelector sel;
  if (v.is_null()) return sel;
  if (!v.is_object()) return bad("must be a mapping with matchLabels and/or matchExpressions");
  const auto& o = v.get_object();
  for (const auto& [k, _] : o) {
    if (k != "matchLabels" && k != "matchExpressions") return bad("unknown field \"" + std::string(k) + "\"");
  }
  if (auto* ml = o.if_contains("matchLabels"); ml && !ml->is_null()) {
    if (!ml->is_object()) return bad("matchLabels must be a mapping of label keys to values");
    for (const auto& [k, val] : ml->get_object()) {
      if (!val.is_string()) return bad("matchLabels." + std::string(k) + " must be a string");
      if (auto st = validate_label_key(k); !st) return bad(st.error().message);
      if (auto st = validate_label_value(val.get_string()); !st) return bad(st.error().message);
      sel.requirements_.push_back({std::string(k), LabelRequirement::Op::kEquals, {std::string(val.get_string())}});
    }
  }
  if (auto* me = o.if_contains("matchExpressions"); me && !me->is_null()) {
    if (!me->is_array()) return bad("matchExpressions must be a list");
    size_t i = 0;
    for (const auto& e : me->get_array()) {
      std::string w = "matchExpressions[" + std::to_string(i++) + "]";
      if (!e.is_object()) return bad(w + " must be a mapping {key, operator, values}");
      const auto& eo = e.get_object();
      auto* key = eo.if_contains("key");
      auto* op = eo.if_contains("operator");
      if (!key || !key->is_string()) return bad(w + ".key is required");
      if (!op || !op->is_string()) return bad(w + ".operator is required (In, NotIn, Exists, DoesNotExist)");
      LabelRequirement r;
      r.key = std::string(key->get_string());
      if (auto st = validate_label_key(r.key); !st) return bad(w + ": " + st.error().message);
      std::string_view ops = op->get_string();
      if (ops == "In") r.op = LabelRequirement::Op::kIn;
      else if (ops == "NotIn") r.op = LabelRequirement::Op::kNotIn;
      else if (ops == "Exists") r.op = LabelRequirement::Op::kExists;
      else if (ops == "DoesNotExist") r.op = LabelRequirement::Op::kDoesNotExist;
      else return bad(w + ".operator \"" + std::string(ops) + "\" is not one of In, NotIn, Exists, DoesNotExist");
      if (auto* vals = eo.if_contains("values"); vals && !vals->is_null()) {
        if (!vals->is_array()) return bad(w + ".values must be a list of strings");
        for (const auto& x : vals->get_array()) {
          if (!x.is_string()) return bad(w + ".values must be a list of strings");
          r.values.emplace_back(x.get_string());
        }
      }
      bool set_op = r.op == LabelRequirement::Op::kIn || r.op == LabelRequirement::Op::kNotIn;
      if (set_op && r.values.empty()) return bad(w + ": operator " + std::string(ops) + " needs at least one value");
      if (!set_op && !r.values.empty()) return bad(w + ": operator " + std::string(ops) + " takes no values");
      sel.requirements_.push_back(std::move(r));
    }
  }
  return sel;
}

LabelSelector LabelSelector::from_map(const Labels& labels) {
  LabelSelector sel;
  for (const auto& [k, v] : labels) sel.requirements_.push_back({k, LabelRequirement::Op::kEquals, {v}});
  return sel;
}

bool LabelSelector::matches(const Labels& labels) const {
  return std::all_of(requirements_.begin(), requirements_.end(), [&](const auto& r) { return r.matches(labels); });
}

std::string LabelSelector::to_string() const {
  std::string s;
  for (const auto& r : requirements_) s += (s.empty() ? "" : ",") + r.to_string();
  return s;
}

Labels LabelSelector::required_equalities() const {
  Labels out;
  for (const auto& r : requirements_) {
    if ((r.op == LabelRequirement::Op::kEquals || (r.op == LabelRequirement::Op::kIn && r.values.size() == 1))) {
      out[r.key] = r.values[0];
    }
  }
  return out;
}

Result<FieldSelector> FieldSelector::parse(std::string_view text) {
  FieldSelector sel;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    std::string_view part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    FieldRequirement r;
    size_t op = part.find("!=");
    size_t len = 2;
    if (op != std::string_view::npos) {
      r.equals = false;
    } else if ((op = part.find("==")) != std::string_view::npos) {
      len = 2;
    } else if ((op = part.find('=')) != std::string_view::npos) {
      len = 1;
    } else {
      return Error(Errc::kInvalidArgument, "invalid field selector \"" + std::string(text) + "\": \"" +
                                               std::string(part) + "\" has no =, == or !=");
    }
    r.path = std::string(part.substr(0, op));
    r.value = std::string(part.substr(op + len));
    while (!r.path.empty() && r.path.back() == ' ') r.path.pop_back();
    while (!r.path.empty() && r.path.front() == ' ') r.path.erase(0, 1);
    if (r.path.empty()) return Error(Errc::kInvalidArgument, "invalid field selector \"" + std::string(text) + "\": empty field");
    sel.requirements_.push_back(std::move(r));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return sel;
}

bool FieldSelector::matches(const json::value& object) const {
  const json::object* o = object.if_object();
  return o ? matches(*o) : requirements_.empty();
}

bool FieldSelector::matches(const json::object& object) const {
  for (const auto& r : requirements_) {
    const json::object* parent = &object;
    const json::value* cur = nullptr;
    size_t start = 0;
    for (;;) {
      size_t dot = r.path.find('.', start);
      std::string_view key = std::string_view(r.path).substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      cur = parent ? parent->if_contains(key) : nullptr;
      if (dot == std::string::npos || !cur) {
        if (dot != std::string::npos) cur = nullptr;  // an intermediate field is missing
        break;
      }
      parent = cur->if_object();
      start = dot + 1;
    }
    std::string actual;
    if (cur) {
      if (cur->is_string()) actual = std::string(cur->get_string());
      else if (!cur->is_null() && !cur->is_object() && !cur->is_array()) actual = json::serialize(*cur);
    }
    if ((actual == r.value) != r.equals) return false;
  }
  return true;
}

}  // namespace kvb::kube
