// JSON Merge Patch (RFC 7386), JSON Patch (RFC 6902) and strategic merge patch
// for the built-in kinds, for the test cluster's PATCH support. The strategic
// merge patch knows the patchMergeKey of the lists kvbackup and kubectl patch
// (containers, volumes, env, ... by name; ports by containerPort; volumeMounts
// by mountPath; ownerReferences by uid; conditions by type; finalizers as a
// set), and the $patch, $retainKeys, $setElementOrder and
// $deleteFromPrimitiveList directives; any other list is replaced.
#pragma once

#include "common/error.h"

#include <boost/json/value.hpp>

namespace kvb::testcluster {

void apply_merge_patch(boost::json::value& target, const boost::json::value& patch);
void apply_strategic_merge_patch(boost::json::value& target, const boost::json::value& patch);
Status apply_json_patch(boost::json::value& target, const boost::json::value& patch);

}  // namespace kvb::testcluster
