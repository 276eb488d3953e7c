// Building API responses the way the real API server writes them (JSON bodies,
// Status objects for errors), shared by the test cluster's request handlers.
#pragma once

#include "common/error.h"
#include "testcluster/net/http_server.h"

#include <boost/json/value.hpp>

#include <string>

namespace kvb::testcluster {

ServerResponse json_response(int status, const boost::json::value& body);
ServerResponse status_response(int code, const std::string& message, const std::string& reason = {});
// An Error as a Status response: http_status when set, else mapped from its code.
ServerResponse error_response(const Error& e);
// A boolean query parameter as apimachinery converts it (Convert_Slice_string_To_bool):
// absent is false; "0" and "false" in any case are false; anything else (True, 1, "") is true.
bool query_bool(const ServerRequest& req, const std::string& key);
// A JSON or YAML request body.
Result<boost::json::value> parse_request_body(const ServerRequest& req);

}  // namespace kvb::testcluster
