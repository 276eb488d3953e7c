// RestoreSpec: what a user asked `kvbackup restore create` to do.
#pragma once

#include "common/error.h"

#include <boost/json/object.hpp>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace kvb {
class DocReader;
}

namespace kvb::restore {

enum class Existing { kFail, kReplace };

struct RestoreSpec {
  std::string name;
  std::string backup;
  std::vector<std::string> vms;                          // NS/NAME or NAME; empty: every restorable VM
  std::map<std::string, std::string> namespace_mapping;  // old namespace -> new
  std::map<std::string, std::string> rename;             // old VM name (or NS/NAME) -> new name
  std::map<std::string, std::string> storage_class_mapping;
  Existing existing = Existing::kFail;
  std::string run_strategy = "keep";  // keep | Halted | Always
  bool keep_mac = false;
  bool create_namespaces = false;
  bool wait = true;  // wait until a VM that should run is Running
  std::chrono::milliseconds bind_timeout{300'000};
  std::chrono::milliseconds start_timeout{300'000};
};

// What a restore record keeps of its spec, so that `kvbackup recover` can
// finish an interrupted restore the way it was asked for.
boost::json::object spec_json(const RestoreSpec& s);
Result<RestoreSpec> spec_from_json(DocReader& r);

// "OLD:NEW" pairs from the command line; the error names the flag and value.
Result<std::map<std::string, std::string>> parse_mapping(const std::string& flag, const std::vector<std::string>& pairs);

}  // namespace kvb::restore
