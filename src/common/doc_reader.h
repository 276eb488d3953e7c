// DocReader: strict, path-aware reading of a configuration document held as a
// JSON value (scenario files, rule files, records).
//
// Every accessor names the field it reads; errors read
// "<origin>: <path>.<field>: <problem> (got <value>)". finish() reports fields
// that no accessor asked for, so typos are errors instead of silently ignored.
#pragma once

#include "common/error.h"

#include <boost/json/value.hpp>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace kvb {

class DocReader {
 public:
  DocReader(const boost::json::value& v, std::string origin, std::string path);

  const std::string& path() const { return path_; }
  const std::string& origin() const { return origin_; }
  const boost::json::value& value() const { return *v_; }
  bool is_object() const;
  bool has(std::string_view key) const;

  Result<std::string> str(std::string_view key, std::string def = {});
  Result<std::string> required_str(std::string_view key);
  Result<bool> boolean(std::string_view key, bool def);
  Result<int64_t> integer(std::string_view key, int64_t def);
  Result<std::chrono::nanoseconds> duration(std::string_view key, std::chrono::nanoseconds def);
  Result<std::map<std::string, std::string>> string_map(std::string_view key);
  Result<std::vector<std::string>> string_list(std::string_view key);
  Result<std::vector<DocReader>> list(std::string_view key);
  // Marks the key as known and returns its raw value (nullptr when absent).
  const boost::json::value* raw(std::string_view key);
  Result<DocReader> object(std::string_view key);  // absent: an empty object

  // Error if the value is not an object, or if it has fields nobody read.
  Status finish() const;
  Error error(std::string_view key, std::string_view problem) const;
  Error error_here(std::string_view problem) const;

 private:
  std::string field_path(std::string_view key) const;
  const boost::json::value* v_;
  std::string origin_;
  std::string path_;
  std::set<std::string, std::less<>> known_;
};

std::string describe_json_value(const boost::json::value& v);

}  // namespace kvb
