// Reading Kubernetes objects held as boost::json values.
//
// Accessors take a path of keys and never throw: a missing or mistyped field
// reads as empty/nullopt/nullptr, which is how the API's optional fields behave.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace kvb::kube {

using Path = std::initializer_list<std::string_view>;

const boost::json::value* value_at(const boost::json::value& v, Path path);
const boost::json::object* object_at(const boost::json::value& v, Path path);
const boost::json::array* array_at(const boost::json::value& v, Path path);
std::string_view str_at(const boost::json::value& v, Path path);
std::optional<int64_t> int_at(const boost::json::value& v, Path path);
std::optional<bool> bool_at(const boost::json::value& v, Path path);

// The same on an object, without copying it into a value. Returned pointers and
// views point into the argument: never pass a temporary you keep them beyond.
const boost::json::value* value_at(const boost::json::object& o, Path path);
const boost::json::object* object_at(const boost::json::object& o, Path path);
const boost::json::array* array_at(const boost::json::object& o, Path path);
std::string_view str_at(const boost::json::object& o, Path path);
std::optional<int64_t> int_at(const boost::json::object& o, Path path);
std::optional<bool> bool_at(const boost::json::object& o, Path path);

// metadata shortcuts (on values and on objects)
std::string_view name_of(const boost::json::object& obj);
std::string_view namespace_of(const boost::json::object& obj);
std::string_view uid_of(const boost::json::object& obj);
std::string_view resource_version_of(const boost::json::object& obj);
std::map<std::string, std::string> labels_of(const boost::json::object& obj);
std::map<std::string, std::string> annotations_of(const boost::json::object& obj);
std::string_view annotation_of(const boost::json::object& obj, std::string_view key);
std::string_view label_of(const boost::json::object& obj, std::string_view key);
std::string key_of(const boost::json::object& obj);
std::string_view name_of(const boost::json::value& obj);
std::string_view namespace_of(const boost::json::value& obj);
std::string_view uid_of(const boost::json::value& obj);
std::string_view resource_version_of(const boost::json::value& obj);
std::map<std::string, std::string> labels_of(const boost::json::value& obj);
std::map<std::string, std::string> annotations_of(const boost::json::value& obj);
std::string_view annotation_of(const boost::json::value& obj, std::string_view key);
std::string_view label_of(const boost::json::value& obj, std::string_view key);

// "namespace/name" (or "name" for cluster-scoped objects).
std::string key_of(const boost::json::value& obj);

}  // namespace kvb::kube
