#include "testcluster/responses.h"

#include "common/yaml_json.h"
#include "kube/api_status.h"

#include <boost/json.hpp>

#include <cctype>

namespace kvb::testcluster {
namespace json = boost::json;

ServerResponse json_response(int status, const json::value& body) {
  ServerResponse r;
  r.status = status;
  r.body = json::serialize(body);
  r.headers.emplace_back("Content-Type", "application/json");
  return r;
}

ServerResponse status_response(int code, const std::string& message, const std::string& reason) {
  ServerResponse r;
  r.status = code;
  r.body = kube::status_json(code, reason.empty() ? kube::reason_for_code(code) : reason, message);
  r.headers.emplace_back("Content-Type", "application/json");
  return r;
}

ServerResponse error_response(const Error& e) {
  int code = e.http_status;
  if (!code) {
    switch (e.code) {
      case Errc::kNotFound: code = 404; break;
      case Errc::kConflict:
      case Errc::kAlreadyExists: code = 409; break;
      case Errc::kInvalid: code = 422; break;
      case Errc::kBadRequest:
      case Errc::kInvalidArgument:
      case Errc::kParse: code = 400; break;
      default: code = 500;
    }
  }
  return status_response(code, e.message, e.reason);
}

bool query_bool(const ServerRequest& req, const std::string& key) {
  auto it = req.query.find(key);
  if (it == req.query.end()) return false;
  std::string v = it->second;
  for (auto& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return !(v == "0" || v == "false");
}

Result<json::value> parse_request_body(const ServerRequest& req) {
  if (req.header("Content-Type").find("yaml") != std::string::npos) return parse_yaml(req.body, "request body");
  boost::system::error_code ec;
  json::value v = json::parse(req.body, ec);
  if (ec) {
    Error e(Errc::kBadRequest, "the request body is not valid JSON: " + ec.message());
    e.http_status = 400;
    return e;
  }
  return v;
}

}  // namespace kvb::testcluster
