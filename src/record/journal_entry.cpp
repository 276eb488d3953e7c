#include "record/journal_entry.h"

#include "common/doc_reader.h"

#include <boost/json.hpp>

namespace kvb::record {
namespace json = boost::json;

json::object JournalEntry::to_json() const {
  json::array arr;
  for (const auto& v : vms) {
    arr.push_back(json::object{{"namespace", v.ns}, {"name", v.name}, {"method", to_string(v.method)}});
  }
  json::array copy_ns;
  for (const auto& n : copy_namespaces) copy_ns.push_back(json::string(n));
  return json::object{{"kind", "FreezeJournalEntry"},
                      {"backup", backup},
                      {"uid", uid},
                      {"pid", pid},
                      {"host", host},
                      {"startedAt", format_rfc3339(started, TimePrecision::kNanos)},
                      {"vms", arr},
                      {"copyNamespaces", copy_ns}};
}

Result<JournalEntry> JournalEntry::from_json(const json::value& v, const std::string& origin) {
  DocReader r(v, origin, "");
  if (!v.is_object()) return r.error_here("a journal entry must be a JSON object");
  JournalEntry e;
  (void)r.raw("kind");
  KVB_TRY(e.backup, r.required_str("backup"));
  KVB_TRY(e.uid, r.str("uid"));
  KVB_TRY(auto pid, r.integer("pid", 0));
  e.pid = static_cast<int>(pid);
  KVB_TRY(e.host, r.str("host"));
  KVB_TRY(auto started, r.str("startedAt"));
  if (!started.empty()) {
    auto t = parse_rfc3339(started);
    if (!t) return r.error("startedAt", t.error().message);
    e.started = *t;
  }
  KVB_TRY(auto vms, r.list("vms"));
  for (auto& vr : vms) {
    JournalVm jv;
    KVB_TRY(jv.ns, vr.required_str("namespace"));
    KVB_TRY(jv.name, vr.required_str("name"));
    KVB_TRY(auto method, vr.str("method", "exec"));
    auto m = parse_freeze_method(method, "method");
    if (!m) return vr.error("method", m.error().message);
    jv.method = *m;
    // Entries of kvbackup 0.1 also named a pod, a container and a thaw command: never used again.
    for (const char* old : {"pod", "container", "thawCommand"}) (void)vr.raw(old);
    e.vms.push_back(std::move(jv));
  }
  KVB_TRY(e.copy_namespaces, r.string_list("copyNamespaces"));
  return e;
}

}  // namespace kvb::record
