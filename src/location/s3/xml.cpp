#include "location/s3/xml.h"

#include "common/time.h"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>

#include <sstream>

namespace kvb::location::s3 {
namespace pt = boost::property_tree;

namespace {

Result<pt::ptree> parse(const std::string& body, const char* what) {
  try {
    pt::ptree tree;
    std::istringstream in(body);
    pt::read_xml(in, tree, pt::xml_parser::no_comments);
    return tree;
  } catch (const std::exception& e) {
    return Error(Errc::kParse, std::string(what) + ": the server's answer is not XML (" + e.what() + ")");
  }
}

std::string child_text(const pt::ptree& t, const char* name) { return t.get<std::string>(name, ""); }

}  // namespace

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

S3ErrorBody parse_error_body(const std::string& body) {
  S3ErrorBody e;
  if (body.empty()) return e;
  auto tree = parse(body, "error");
  if (!tree) return e;
  auto err = tree->get_child_optional("Error");
  if (!err) return e;
  e.code = child_text(*err, "Code");
  e.message = child_text(*err, "Message");
  e.region = child_text(*err, "Region");
  e.resource = child_text(*err, "Resource");
  return e;
}

Result<ListPage> parse_list_objects_v2(const std::string& body) {
  KVB_TRY(auto tree, parse(body, "ListObjectsV2"));
  auto root = tree.get_child_optional("ListBucketResult");
  if (!root) return Error(Errc::kParse, "ListObjectsV2: the answer has no ListBucketResult");
  ListPage page;
  for (const auto& [name, child] : *root) {
    if (name == "Contents") {
      ListedObject o;
      o.key = child_text(child, "Key");
      try {
        o.size = child.get<uint64_t>("Size", 0);
      } catch (const std::exception&) {
        return Error(Errc::kParse, "ListObjectsV2: object " + o.key + " has a malformed Size");
      }
      if (auto t = parse_rfc3339(child_text(child, "LastModified"))) o.last_modified = *t;
      page.objects.push_back(std::move(o));
    } else if (name == "CommonPrefixes") {
      page.prefixes.push_back(child_text(child, "Prefix"));
    }
  }
  page.truncated = child_text(*root, "IsTruncated") == "true";
  page.next_token = child_text(*root, "NextContinuationToken");
  if (page.truncated && page.next_token.empty()) return Error(Errc::kParse, "ListObjectsV2: truncated, with no continuation token");
  return page;
}

Result<std::string> parse_upload_id(const std::string& body) {
  KVB_TRY(auto tree, parse(body, "CreateMultipartUpload"));
  std::string id = tree.get<std::string>("InitiateMultipartUploadResult.UploadId", "");
  if (id.empty()) return Error(Errc::kParse, "CreateMultipartUpload: the answer has no UploadId");
  return id;
}

std::string complete_multipart_xml(const std::vector<std::pair<int, std::string>>& parts) {
  std::string x = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (const auto& [n, etag] : parts) {
    x += "<Part><PartNumber>" + std::to_string(n) + "</PartNumber><ETag>" + xml_escape(etag) + "</ETag></Part>";
  }
  return x + "</CompleteMultipartUpload>";
}

std::string delete_objects_xml(const std::vector<std::string>& keys) {
  std::string x = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>";
  for (const auto& k : keys) x += "<Object><Key>" + xml_escape(k) + "</Key></Object>";
  return x + "</Delete>";
}

Result<std::vector<std::pair<std::string, std::string>>> parse_delete_errors(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> out;
  if (body.empty()) return out;
  KVB_TRY(auto tree, parse(body, "DeleteObjects"));
  auto root = tree.get_child_optional("DeleteResult");
  if (!root) return Error(Errc::kParse, "DeleteObjects: the answer has no DeleteResult");
  for (const auto& [name, child] : *root) {
    if (name == "Error") out.emplace_back(child_text(child, "Key"), child_text(child, "Code"));
  }
  return out;
}

}  // namespace kvb::location::s3
