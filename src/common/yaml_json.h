// YAML documents as JSON values: kvbackup reads every configuration document
// (rule files, scenario files, backup records) through boost::json, and YAML
// input is converted on the way in.
//
// Scalars follow the YAML 1.2 core schema: unquoted true/false, null/~, integers
// and floats become JSON booleans, null and numbers; quoted scalars and
// everything else stay strings. Errors carry the origin and the line number.
//
// Hostile input is an error, never a crash or an exhausted machine: a key
// repeated in one mapping, a NUL byte in a key or value, nesting deeper than
// 256 levels, and a document that expands (through aliases) to more than a
// million values or 64 MiB of text are refused with the line.
#pragma once

#include "common/error.h"

#include <boost/json/value.hpp>

#include <string>
#include <vector>

namespace kvb {

// All documents of a (possibly multi-document) YAML or JSON text. Empty
// documents (a lone "---") are kept as null so that indexes match the file.
Result<std::vector<boost::json::value>> parse_yaml_documents(const std::string& text, const std::string& origin);
Result<boost::json::value> parse_yaml(const std::string& text, const std::string& origin);
// JSON text; the error names `origin`.
Result<boost::json::value> parse_json(std::string_view text, const std::string& origin);

// YAML rendering of a JSON value (block style, stable key order of the input).
std::string to_yaml(const boost::json::value& v);

}  // namespace kvb
