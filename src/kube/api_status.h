// The Kubernetes API's Status object and its mapping to kvb::Error.
//
// Every API error response carries a Status body {kind: Status, status: Failure,
// reason, message, code, details}. error_from_response() turns any HTTP error
// response (Status body or not) into a typed Error; status_json() writes one
// (the test cluster answers with it, exactly like the real API server).
#pragma once

#include "common/error.h"

#include <string>
#include <string_view>

namespace kvb::kube {

// Errc for an HTTP status code and Status.reason (reason wins when known).
Errc errc_for(int http_status, std::string_view reason);

// `what` names the request ("GET https://host:6443/api/v1/pods") for the message.
Error error_from_response(int http_status, std::string_view body, std::string_view retry_after,
                          std::string_view what);

struct StatusDetails {
  std::string name;
  std::string group;
  std::string kind;
  // causes[] as (reason, message) pairs, e.g. ("ExitCode", "2").
  std::vector<std::pair<std::string, std::string>> causes;
};

std::string status_json(int code, std::string_view reason, std::string_view message,
                        const StatusDetails& details = {});

// The canonical reason string for an HTTP status ("NotFound" for 404, ...).
std::string_view reason_for_code(int code);

}  // namespace kvb::kube
