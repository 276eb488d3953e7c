#include "restore/spec.h"

#include "common/doc_reader.h"
#include "common/duration.h"

#include <boost/json.hpp>

namespace kvb::restore {

Result<std::map<std::string, std::string>> parse_mapping(const std::string& flag, const std::vector<std::string>& pairs) {
  std::map<std::string, std::string> out;
  for (const auto& p : pairs) {
    auto colon = p.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == p.size()) {
      return Error(Errc::kInvalidArgument, flag + " \"" + p + "\": expected OLD:NEW");
    }
    auto [it, inserted] = out.emplace(p.substr(0, colon), p.substr(colon + 1));
    if (!inserted) return Error(Errc::kInvalidArgument, flag + " \"" + p + "\": " + it->first + " is mapped twice");
  }
  return out;
}

std::string_view to_string(DataSource d) {
  switch (d) {
    case DataSource::kAuto: return "auto";
    case DataSource::kSnapshot: return "snapshot";
    case DataSource::kRepository: return "repository";
  }
  return "auto";
}

namespace {
boost::json::object map_json(const std::map<std::string, std::string>& m) {
  boost::json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}
}  // namespace

boost::json::object spec_json(const RestoreSpec& s) {
  boost::json::array vms;
  for (const auto& v : s.vms) vms.push_back(boost::json::string(v));
  return boost::json::object{{"vms", vms},
                             {"namespaceMapping", map_json(s.namespace_mapping)},
                             {"rename", map_json(s.rename)},
                             {"storageClassMapping", map_json(s.storage_class_mapping)},
                             {"existing", s.existing == Existing::kReplace ? "replace" : "fail"},
                             {"runStrategy", s.run_strategy},
                             {"keepMac", s.keep_mac},
                             {"createNamespaces", s.create_namespaces},
                             {"wait", s.wait},
                             {"bindTimeout", format_duration(s.bind_timeout)},
                             {"startTimeout", format_duration(s.start_timeout)},
                             {"dataSource", to_string(s.data_source)},
                             {"uploadProxyURL", s.upload_proxy_url},
                             {"uploadProxyCA", s.upload_proxy_ca},
                             {"parallelUploads", s.parallel_uploads},
                             {"uploadTimeout", format_duration(s.upload_timeout)},
                             {"isolate", s.isolate}};
}

Result<RestoreSpec> spec_from_json(DocReader& r) {
  RestoreSpec s;
  KVB_TRY(s.vms, r.string_list("vms"));
  KVB_TRY(s.namespace_mapping, r.string_map("namespaceMapping"));
  KVB_TRY(s.rename, r.string_map("rename"));
  KVB_TRY(s.storage_class_mapping, r.string_map("storageClassMapping"));
  KVB_TRY(auto existing, r.str("existing", "fail"));
  if (existing != "fail" && existing != "replace") return r.error("existing", "\"" + existing + "\" is not fail or replace");
  s.existing = existing == "replace" ? Existing::kReplace : Existing::kFail;
  KVB_TRY(s.run_strategy, r.str("runStrategy", "keep"));
  KVB_TRY(s.keep_mac, r.boolean("keepMac", false));
  KVB_TRY(s.create_namespaces, r.boolean("createNamespaces", false));
  KVB_TRY(s.wait, r.boolean("wait", true));
  KVB_TRY(auto source, r.str("dataSource", "auto"));
  if (source == "auto") s.data_source = DataSource::kAuto;
  else if (source == "snapshot") s.data_source = DataSource::kSnapshot;
  else if (source == "repository") s.data_source = DataSource::kRepository;
  else return r.error("dataSource", "\"" + source + "\" is not auto, snapshot or repository");
  KVB_TRY(s.upload_proxy_url, r.str("uploadProxyURL", ""));
  KVB_TRY(s.upload_proxy_ca, r.str("uploadProxyCA", ""));
  KVB_TRY(auto parallel, r.integer("parallelUploads", 4));
  if (parallel < 1 || parallel > 64) return r.error("parallelUploads", std::to_string(parallel) + " is not between 1 and 64");
  s.parallel_uploads = static_cast<unsigned>(parallel);
  KVB_TRY(s.isolate, r.boolean("isolate", false));
  for (auto [key, target] : {std::pair{"bindTimeout", &s.bind_timeout}, std::pair{"startTimeout", &s.start_timeout},
                             std::pair{"uploadTimeout", &s.upload_timeout}}) {
    KVB_TRY(auto text, r.str(key, format_duration(*target)));
    auto d = parse_duration(text);
    if (!d) return r.error(key, d.error().message);
    *target = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  }
  return s;
}

}  // namespace kvb::restore
