// The XML of S3 responses and requests (ListObjectsV2, errors, multipart,
// DeleteObjects), read with Boost.PropertyTree and written by hand with
// escaping. Only what kvbackup uses.
//
// Invariants: parsing never throws (malformed XML is an Error naming the
// operation); every text written into a request is XML-escaped.
#pragma once

#include "common/error.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kvb::location::s3 {

struct S3ErrorBody {
  std::string code, message, region, resource;
};
// An <Error> document; empty fields when the body is not one.
S3ErrorBody parse_error_body(const std::string& body);

struct ListedObject {
  std::string key;
  uint64_t size = 0;
  std::chrono::system_clock::time_point last_modified{};
};

struct ListPage {
  std::vector<ListedObject> objects;
  std::vector<std::string> prefixes;  // CommonPrefixes (with a delimiter)
  bool truncated = false;
  std::string next_token;
};
Result<ListPage> parse_list_objects_v2(const std::string& body);

Result<std::string> parse_upload_id(const std::string& body);
std::string complete_multipart_xml(const std::vector<std::pair<int, std::string>>& parts);  // part number, ETag
std::string delete_objects_xml(const std::vector<std::string>& keys);
// The keys DeleteObjects could not delete, with their error codes.
Result<std::vector<std::pair<std::string, std::string>>> parse_delete_errors(const std::string& body);

std::string xml_escape(std::string_view s);

}  // namespace kvb::location::s3
