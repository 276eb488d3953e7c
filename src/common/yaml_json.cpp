#include "common/yaml_json.h"

#include <boost/json.hpp>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>

namespace kvb {
namespace json = boost::json;
namespace {

json::value scalar_value(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return json::string(s);  // quoted
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  {
    int64_t i = 0;
    const char* b = s.data();
    const char* e = s.data() + s.size();
    if (*b == '+') ++b;
    auto [p, ec] = std::from_chars(b, e, i);
    if (ec == std::errc() && p == e && b != e) return i;
  }
  {
    bool looks_numeric = s.find_first_not_of("0123456789.eE+-") == std::string::npos &&
                         s.find_first_of("0123456789") != std::string::npos;
    if (looks_numeric) {
      double d = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
      if (ec == std::errc() && p == s.data() + s.size() && std::isfinite(d)) return d;
    }
  }
  return json::string(s);
}

// Limits on what one document may expand to. Aliases make a small text stand
// for an exponentially large tree (a "billion laughs" YAML bomb): the
// conversion counts what it produces and stops at these, far above any real
// configuration document.
constexpr size_t kMaxNodes = 1'000'000;
constexpr size_t kMaxScalarBytes = size_t{64} << 20;
constexpr int kMaxDepth = 256;

// Thrown inside the conversion only; parse_yaml_documents turns it into an Error.
struct ConvertError {
  std::string message;
  int line = -1;  // 0-based within the document, -1 when unknown
};

class Converter {
 public:
  json::value convert(const YAML::Node& n, int depth) {
    if (++nodes_ > kMaxNodes) {
      throw ConvertError{"the document expands to more than " + std::to_string(kMaxNodes) +
                         " values (YAML aliases repeating a large part of it?)", line_of(n)};
    }
    if (depth > kMaxDepth) throw ConvertError{"nested more than " + std::to_string(kMaxDepth) + " levels deep", line_of(n)};
    switch (n.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return nullptr;
      case YAML::NodeType::Scalar:
        check_text(n.Scalar(), n);
        return scalar_value(n);
      case YAML::NodeType::Sequence: {
        json::array a;
        for (const auto& item : n) a.push_back(convert(item, depth + 1));
        return a;
      }
      case YAML::NodeType::Map: {
        json::object o;
        for (const auto& kv : n) {
          std::string key = kv.first.as<std::string>();
          check_text(key, kv.first);
          if (o.contains(key)) {
            throw ConvertError{"key \"" + key + "\" appears twice in the same mapping (YAML and JSON readers disagree on which one wins)",
                               line_of(kv.first)};
          }
          o[key] = convert(kv.second, depth + 1);
        }
        return o;
      }
    }
    return nullptr;
  }

 private:
  static int line_of(const YAML::Node& n) { return n.Mark().is_null() ? -1 : n.Mark().line; }

  void check_text(const std::string& s, const YAML::Node& n) {
    if (s.find('\0') != std::string::npos) throw ConvertError{"a NUL byte in a name or value", line_of(n)};
    scalar_bytes_ += s.size();
    if (scalar_bytes_ > kMaxScalarBytes) {
      throw ConvertError{"the document expands to more than " + std::to_string(kMaxScalarBytes >> 20) +
                         " MiB of text (YAML aliases repeating a large value?)", line_of(n)};
    }
  }

  size_t nodes_ = 0;
  size_t scalar_bytes_ = 0;
};

void emit(YAML::Emitter& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: out << YAML::Null; break;
    case json::kind::bool_: out << v.get_bool(); break;
    case json::kind::int64: out << v.get_int64(); break;
    case json::kind::uint64: out << v.get_uint64(); break;
    case json::kind::double_: out << v.get_double(); break;
    case json::kind::string: {
      std::string s(v.get_string());
      // Quote strings that YAML would read back as something else.
      json::value back = scalar_value(YAML::Node(s));
      if (!back.is_string() || s.empty()) out << YAML::DoubleQuoted << s;
      else out << s;
      break;
    }
    case json::kind::array:
      out << YAML::BeginSeq;
      for (const auto& x : v.get_array()) emit(out, x);
      out << YAML::EndSeq;
      break;
    case json::kind::object:
      out << YAML::BeginMap;
      for (const auto& [k, x] : v.get_object()) {
        out << YAML::Key << std::string(k) << YAML::Value;
        emit(out, x);
      }
      out << YAML::EndMap;
      break;
  }
}

}  // namespace

namespace {

// A YAML stream cut into documents at their markers. yaml-cpp 0.7's LoadAll
// loops forever, allocating, on some malformed streams (a document that is
// just ",": jbeder/yaml-cpp#1040, fixed upstream after Debian 12's 0.7.0;
// found here by libFuzzer). Each document is loaded on its own with Load,
// which has no such loop.
struct YamlDocument {
  std::string text;
  int first_line = 0;  // 0-based, in the whole stream
};

bool is_marker(std::string_view line, std::string_view marker) {
  return line.substr(0, 3) == marker && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' || line[3] == '\n');
}

// True when a line is more than blank space, a comment or a directive.
bool has_content(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    auto line = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string_view::npos && line[first] != '#' && line[first] != '%') return true;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return false;
}

std::vector<YamlDocument> split_documents(const std::string& text) {
  std::vector<YamlDocument> docs;
  YamlDocument cur;
  bool marked = false;  // cur began with "---": a document even when empty
  int line_no = 0;
  auto emit = [&] {
    if (marked || has_content(cur.text)) docs.push_back(std::move(cur));
    cur = YamlDocument{};
    marked = false;
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string::npos ? text.size() : end + 1;
    std::string_view line(text.data() + pos, next - pos);
    if (is_marker(line, "---")) {
      if (marked || has_content(cur.text)) {
        emit();
      }
      if (cur.text.empty()) cur.first_line = line_no;  // else: comments and directives carried into this document
      cur.text += line;
      marked = true;
    } else if (is_marker(line, "...")) {
      emit();
      cur.first_line = line_no + 1;
    } else {
      if (cur.text.empty()) cur.first_line = line_no;
      cur.text += line;
    }
    ++line_no;
    pos = next;
  }
  emit();
  return docs;
}

}  // namespace

Result<std::vector<json::value>> parse_yaml_documents(const std::string& text, const std::string& origin) {
  std::vector<json::value> out;
  for (const auto& doc : split_documents(text)) {
    try {
      out.push_back(Converter().convert(YAML::Load(doc.text), 0));
    } catch (const YAML::Exception& e) {
      return Error(Errc::kParse, origin + ": line " + std::to_string(doc.first_line + e.mark.line + 1) + ": invalid YAML: " + e.msg);
    } catch (const ConvertError& e) {
      std::string where = e.line >= 0 ? ": line " + std::to_string(doc.first_line + e.line + 1) : "";
      return Error(Errc::kParse, origin + where + ": " + e.message);
    }
  }
  return out;
}

Result<json::value> parse_yaml(const std::string& text, const std::string& origin) {
  auto docs = parse_yaml_documents(text, origin);
  if (!docs) return docs.error();
  if (docs->empty()) return json::value(nullptr);
  if (docs->size() > 1) return Error(Errc::kParse, origin + ": expected one YAML document, found " + std::to_string(docs->size()));
  return std::move(docs->front());
}

std::string to_yaml(const json::value& v) {
  YAML::Emitter out;
  emit(out, v);
  return std::string(out.c_str()) + "\n";
}

Result<boost::json::value> parse_json(std::string_view text, const std::string& origin) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec) return Error(Errc::kParse, origin + ": not JSON: " + ec.message());
  return v;
}

}  // namespace kvb
