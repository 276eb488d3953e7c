// JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902), for the test cluster's
// PATCH support. Strategic merge patch is served as a merge patch (documented
// in docs/testcluster.md).
#pragma once

#include "common/error.h"

#include <boost/json/value.hpp>

namespace kvb::testcluster {

void apply_merge_patch(boost::json::value& target, const boost::json::value& patch);
Status apply_json_patch(boost::json::value& target, const boost::json::value& patch);

}  // namespace kvb::testcluster
