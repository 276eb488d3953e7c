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

// Where the restored claims' bytes come from (docs/restore.md "Data sources"):
// kAuto: the backup's VolumeSnapshots when they exist and are ready in the
// target cluster, else the copy in the repository (--copy-data).
enum class DataSource { kAuto, kSnapshot, kRepository };
std::string_view to_string(DataSource d);  // auto, snapshot, repository

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
  DataSource data_source = DataSource::kAuto;
  std::string upload_proxy_url;  // empty: CDIConfig status.uploadProxyURL
  std::string upload_proxy_ca;   // PEM file to trust for the upload proxy; empty: the system's
  unsigned parallel_uploads = 4;  // volumes uploaded at once
  std::chrono::milliseconds upload_timeout{1'800'000};  // one volume's upload, until Succeeded
  // A verification copy (restore/verify.h): VMs without network interfaces
  // (no networks, no pod interface), MAC addresses and firmware UUID removed.
  bool isolate = false;
};

// What a restore record keeps of its spec, so that `kvbackup recover` can
// finish an interrupted restore the way it was asked for.
boost::json::object spec_json(const RestoreSpec& s);
Result<RestoreSpec> spec_from_json(DocReader& r);

// "OLD:NEW" pairs from the command line; the error names the flag and value.
Result<std::map<std::string, std::string>> parse_mapping(const std::string& flag, const std::vector<std::string>& pairs);

}  // namespace kvb::restore
