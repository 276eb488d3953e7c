// Where an S3 location's settings come from, resolved as the AWS CLI and SDKs
// resolve them (docs/location.md, "Configuration").
//
//   profile     URL ?profile= > AWS_PROFILE > "default"
//   credentials URL ?profile= given: that profile; else AWS_ACCESS_KEY_ID +
//               AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN); else the profile in
//               ~/.aws/credentials, then ~/.aws/config ([profile NAME])
//   region      URL ?region= > AWS_REGION > AWS_DEFAULT_REGION > profile region > us-east-1
//   endpoint    URL ?endpoint= > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL > profile
//               endpoint_url (top level or in its "s3 =" block) > AWS (https://s3.REGION.amazonaws.com)
//   addressing  URL ?addressing=path|virtual > profile s3.addressing_style >
//               virtual-hosted for AWS, path-style for a custom endpoint
//   CA bundle   URL ?ca_bundle= > AWS_CA_BUNDLE > profile ca_bundle > the system's
// The files are AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE when set.
//
// Invariants: secrets are held as Secret and never appear in an error; a
// setting that is malformed is an error naming where it came from (the
// variable, or the file and line), never silently ignored. Reading files goes
// through the bounded reader (common/bounded_read.h).
#pragma once

#include "common/error.h"
#include "location/s3/sigv4.h"

#include <functional>
#include <map>
#include <set>
#include <optional>
#include <string>

namespace kvb::location::s3 {

// s3://BUCKET/PREFIX?region=...&endpoint=...&profile=...&addressing=...&ca_bundle=...
struct S3Url {
  std::string bucket;
  std::string prefix;  // without leading or trailing '/'; may be empty
  std::map<std::string, std::string> options;
  std::string display() const;  // "s3://bucket/prefix" (options left out)
};
Result<S3Url> parse_s3_url(std::string_view url);

struct Settings {
  std::string bucket, prefix, display;
  std::string region;
  std::string region_origin;  // where the region came from, for error messages
  std::string endpoint;       // scheme://host[:port]
  bool tls = true;
  bool path_style = false;
  bool aws = false;           // the endpoint is AWS's own
  std::string ca_bundle;      // a PEM file; empty: the system's store
  Credentials credentials;
  std::string credentials_origin;  // "AWS_ACCESS_KEY_ID", "profile prod in ~/.aws/credentials"
};

// Environment lookups are injectable so that tests need not touch the process environment.
using Getenv = std::function<std::optional<std::string>(const std::string&)>;
Getenv process_environment();

Result<Settings> resolve_settings(const S3Url& url, const Getenv& env = process_environment());

// An AWS shared config/credentials file: section -> key -> value; the keys of
// nested blocks ("s3 =" followed by indented lines) are "s3.KEY".
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
Result<IniFile> parse_aws_ini(const std::string& text, const std::string& origin);

}  // namespace kvb::location::s3
