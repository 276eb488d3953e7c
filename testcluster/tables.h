// Table output (meta.k8s.io/v1 Table): what `kubectl get` asks for with
// Accept: application/json;as=Table;v=v1;g=meta.k8s.io. Columns are the
// upstream printer columns: the built-in printers of kubernetes (events too)
// pkg/printers/internalversion/printers.go for pods, PVCs, namespaces, nodes,
// secrets, config maps and storage classes; the CRDs' additionalPrinterColumns
// for KubeVirt, CDI and external-snapshotter kinds; Name and Age otherwise.
#pragma once

#include "testcluster/net/http_server.h"
#include "testcluster/store.h"

#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace kvb::testcluster {

// The request asks for a Table (in its Accept header).
bool wants_table(const ServerRequest& req);
// The age of an RFC 3339 timestamp as kubectl prints it (apimachinery/pkg/util/duration HumanDuration).
std::string human_age(const std::string& ts);
// includeObject: "None", "Metadata" (default) or "Object".
boost::json::object to_table(const ResourceInfo& r, const std::vector<Object>& items, const std::string& rv,
                             const std::string& continue_token, const std::string& include_object);

}  // namespace kvb::testcluster
