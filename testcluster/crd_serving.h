// How the test cluster's API serves the resources of CustomResourceDefinitions
// beyond plain storage (apiextensions-apiserver pkg/apiserver/customresource_handler.go
// and its codecs, pkg/registry/customresource, pkg/apis/apiextensions/validation):
//
// - writes (create, update, patch, their dry runs; /status): the object is
//   pruned to the version's structural schema, unknown fields are refused
//   (fieldValidation=Strict: 400), warned about (Warn or unset: a Warning
//   header each) or dropped silently (Ignore); defaults are applied; the
//   result is validated (422 Invalid with upstream's field errors; /status
//   validates status only, the main resource all but a subresource's status);
// - writes of a CustomResourceDefinition itself: metadata.name must be
//   `<plural>.<group>`, exactly one version is the storage version, every
//   version of a v1 CRD has a structural schema; webhook conversion is refused;
// - every answer for a custom resource is served in the requested version
//   (apiVersion rewritten: conversion strategy None), pruned and defaulted as
//   on a read from storage; Tables carry the version's additionalPrinterColumns;
//   a deprecated version adds its deprecationWarning as a Warning header;
// - the OpenAPI v3 document of a group/version carries its CRDs' schemas.
//
// Invariants: resources that are not custom (and not the CRD resource) pass
// through untouched; the CRD is looked up by `<plural>.<group>` on each call
// (no cache to go stale); all of it runs on the event loop thread.
#pragma once

#include "common/error.h"
#include "testcluster/net/http_server.h"
#include "testcluster/store.h"

#include <memory>

namespace kvb::testcluster {

// The responder for a request on `r`: `inner` itself unless r is a custom
// resource, else one that converts, defaults and prints as above and adds the
// Warning headers the request collects.
std::shared_ptr<Responder> custom_responder(const Store& store, const ResourceInfo& r, std::shared_ptr<Responder> inner);

// Admission of a client's write of a custom resource or of a CRD (old:
// nullptr on create; status: a write to the /status subresource). May change
// obj (pruning, defaults); warnings go to `resp` when it came from custom_responder.
Status admit_custom_write(const Store& store, const ResourceInfo& r, const ServerRequest& req, Object& obj,
                          const Object* old, bool status, Responder& resp);

// The CRD schemas of a group/version's custom resources in its OpenAPI v3
// document (gv_path "apis/example.com/v1"), as components.schemas entries
// named like upstream's (com.example.v1.Gadget) with their
// x-kubernetes-group-version-kind: what `kubectl explain` reads.
void add_crd_openapi(const Store& store, const std::string& gv_path, boost::json::object& doc);

}  // namespace kvb::testcluster
