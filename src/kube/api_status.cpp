#include "kube/api_status.h"

#include <boost/json.hpp>

#include <charconv>

namespace kvb::kube {
namespace json = boost::json;

Errc errc_for(int code, std::string_view reason) {
  if (reason == "NotFound") return Errc::kNotFound;
  if (reason == "AlreadyExists") return Errc::kAlreadyExists;
  if (reason == "Conflict") return Errc::kConflict;
  if (reason == "Gone" || reason == "Expired") return Errc::kGone;
  if (reason == "Invalid") return Errc::kInvalid;
  if (reason == "BadRequest") return Errc::kBadRequest;
  if (reason == "Unauthorized") return Errc::kUnauthorized;
  if (reason == "Forbidden") return Errc::kForbidden;
  if (reason == "MethodNotAllowed") return Errc::kMethodNotAllowed;
  if (reason == "TooManyRequests") return Errc::kTooManyRequests;
  if (reason == "InternalError") return Errc::kInternal;
  if (reason == "ServiceUnavailable") return Errc::kServiceUnavailable;
  if (reason == "Timeout" || reason == "ServerTimeout") return Errc::kServerTimeout;
  switch (code) {
    case 400: return Errc::kBadRequest;
    case 401: return Errc::kUnauthorized;
    case 403: return Errc::kForbidden;
    case 404: return Errc::kNotFound;
    case 405: return Errc::kMethodNotAllowed;
    case 409: return Errc::kConflict;
    case 410: return Errc::kGone;
    case 422: return Errc::kInvalid;
    case 429: return Errc::kTooManyRequests;
    case 500: return Errc::kInternal;
    case 503: return Errc::kServiceUnavailable;
    case 504: return Errc::kServerTimeout;
    default: break;
  }
  return code >= 500 ? Errc::kInternal : Errc::kUnknown;
}

std::string_view reason_for_code(int code) {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 406: return "NotAcceptable";
    case 409: return "Conflict";
    case 410: return "Expired";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return "";
  }
}

Error error_from_response(int code, std::string_view body, std::string_view retry_after,
                          std::string_view what) {
  std::string reason, message;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.get_object();
    if (auto* r = o.if_contains("reason"); r && r->is_string()) reason = std::string(r->get_string());
    if (auto* m = o.if_contains("message"); m && m->is_string()) message = std::string(m->get_string());
  }
  if (message.empty()) {
    // Not a Status: show the start of the body, on one line.
    std::string excerpt(body.substr(0, 200));
    for (char& c : excerpt)
      if (c == '\n' || c == '\r') c = ' ';
    message = excerpt.empty() ? "HTTP " + std::to_string(code) : excerpt;
  }
  Error e(errc_for(code, reason), std::string(what) + ": " + message);
  e.http_status = code;
  e.reason = reason.empty() ? std::string(reason_for_code(code)) : reason;
  if (!retry_after.empty()) {
    int secs = 0;
    auto [p, err] = std::from_chars(retry_after.data(), retry_after.data() + retry_after.size(), secs);
    if (err == std::errc() && secs >= 0) e.retry_after = std::chrono::seconds(secs);
  }
  return e;
}

std::string status_json(int code, std::string_view reason, std::string_view message,
                        const StatusDetails& details) {
  json::object o;
  o["kind"] = "Status";
  o["apiVersion"] = "v1";
  o["metadata"] = json::object();
  o["status"] = code < 400 ? "Success" : "Failure";
  o["message"] = message;
  o["reason"] = reason;
  json::object d;
  if (!details.name.empty()) d["name"] = details.name;
  if (!details.group.empty()) d["group"] = details.group;
  if (!details.kind.empty()) d["kind"] = details.kind;
  if (!details.causes.empty()) {
    json::array causes;
    for (const auto& [r, m] : details.causes) causes.push_back(json::object{{"reason", r}, {"message", m}});
    d["causes"] = std::move(causes);
  }
  if (!d.empty()) o["details"] = std::move(d);
  o["code"] = code;
  return json::serialize(o);
}

}  // namespace kvb::kube
