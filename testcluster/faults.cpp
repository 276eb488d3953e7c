#include "testcluster/faults.h"

#include "common/doc_reader.h"

#include <boost/json.hpp>

namespace kvb::testcluster {
namespace json = boost::json;

namespace {
const char* kTypes[] = {"api-error", "latency", "exec-hang", "exec-fail", "exec-drop", "watch-disconnect",
                        "agent-disconnect", "snapshot-cut-delay", "snapshot-fail", "export-restart",
                        "export-unreachable", "export-wrong-token", "restore-pending", "export-no-ingress"};

bool field_matches(const std::string& want, const std::string& have) { return want.empty() || want == have; }
}  // namespace

json::object Fault::to_json() const {
  json::object o{{"id", id}, {"type", type}, {"rate", rate}, {"count", count}, {"hits", hits}};
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) o[k] = v;
  };
  put("verb", verb);
  put("resource", resource);
  put("namespace", ns);
  put("name", name);
  put("vm", vm);
  put("pod", pod);
  put("container", container);
  put("command", command);
  put("pvc", pvc);
  put("message", message);
  if (type == "api-error") o["code"] = code;
  if (retry_after >= 0) o["retryAfter"] = retry_after;
  if (type == "export-restart") o["afterBytes"] = after_bytes;
  return o;
}

Result<Fault> Faults::add(const json::value& spec, const std::string& origin) {
  DocReader r(spec, origin, "fault");
  Fault f;
  KVB_TRY(f.type, r.required_str("type"));
  bool known = false;
  for (const char* t : kTypes) known = known || f.type == t;
  if (!known) {
    return r.error("type", "\"" + f.type + "\" is not a fault type (api-error, latency, exec-hang, exec-fail, "
                                          "exec-drop, watch-disconnect, agent-disconnect, snapshot-cut-delay, snapshot-fail, "
                                          "export-restart, export-unreachable, export-wrong-token, restore-pending, export-no-ingress)");
  }
  KVB_TRY(f.verb, r.str("verb"));
  KVB_TRY(f.resource, r.str("resource"));
  KVB_TRY(f.ns, r.str("namespace"));
  KVB_TRY(f.name, r.str("name"));
  KVB_TRY(f.vm, r.str("vm"));
  KVB_TRY(f.pod, r.str("pod"));
  KVB_TRY(f.container, r.str("container"));
  KVB_TRY(f.command, r.str("command"));
  KVB_TRY(f.pvc, r.str("pvc"));
  KVB_TRY(f.message, r.str("message"));
  KVB_TRY(auto code, r.integer("code", 500));
  KVB_TRY(f.count, r.integer("count", 0));
  KVB_TRY(f.retry_after, r.integer("retryAfter", -1));
  KVB_TRY(auto exit_code, r.integer("exitCode", 1));
  KVB_TRY(f.delay, r.duration("delay", Duration{0}));
  KVB_TRY(f.duration, r.duration("duration", f.duration));
  KVB_TRY(f.after_bytes, r.integer("afterBytes", 0));
  if (f.type == "export-restart" && f.after_bytes <= 0) return r.error("afterBytes", "must be a positive number of bytes");
  if (const json::value* rate = r.raw("rate")) {
    if (!rate->is_number()) return r.error("rate", "must be a number between 0 and 1");
    f.rate = rate->to_number<double>();
    if (f.rate < 0 || f.rate > 1) return r.error("rate", "must be between 0 and 1");
  }
  KVB_CHECK(r.finish());
  if (code < 400 || code > 599) return r.error("code", "must be an HTTP error status (400-599)");
  f.code = static_cast<int>(code);
  f.exit_code = static_cast<int>(exit_code);
  f.id = next_id_++;
  faults_.push_back(f);
  return f;
}

json::array Faults::to_json() const {
  json::array a;
  for (const auto& f : faults_) a.push_back(f.to_json());
  return a;
}

Fault* Faults::fire(const std::function<bool(const Fault&)>& match) {
  for (auto& f : faults_) {
    if (f.count > 0 && f.hits >= f.count) continue;
    if (!match(f)) continue;
    if (f.rate < 1.0 && std::uniform_real_distribution<double>(0, 1)(rng_) >= f.rate) continue;
    ++f.hits;
    return &f;
  }
  return nullptr;
}

const Fault* Faults::api_error(const RequestInfo& r) {
  return fire([&](const Fault& f) {
    return f.type == "api-error" && field_matches(f.verb, r.verb) && field_matches(f.resource, r.resource) &&
           field_matches(f.ns, r.ns) && field_matches(f.name, r.name);
  });
}

std::optional<Duration> Faults::latency(const RequestInfo& r) {
  const Fault* f = fire([&](const Fault& x) {
    return x.type == "latency" && field_matches(x.verb, r.verb) && field_matches(x.resource, r.resource) &&
           field_matches(x.ns, r.ns) && field_matches(x.name, r.name);
  });
  if (!f) return std::nullopt;
  return f->delay;
}

const Fault* Faults::exec(const std::string& ns, const std::string& pod, const std::string& vm,
                          const std::string& container, const std::string& cmd) {
  return fire([&](const Fault& f) {
    return (f.type == "exec-hang" || f.type == "exec-fail" || f.type == "exec-drop") && field_matches(f.ns, ns) &&
           field_matches(f.pod, pod) && field_matches(f.vm, vm) && field_matches(f.container, container) &&
           (f.command.empty() || cmd.find(f.command) != std::string::npos);
  });
}

std::optional<Duration> Faults::snapshot_cut_delay(const std::string& ns, const std::string& vm, const std::string& pvc) {
  const Fault* f = fire([&](const Fault& x) {
    return x.type == "snapshot-cut-delay" && field_matches(x.ns, ns) && field_matches(x.vm, vm) &&
           field_matches(x.pvc, pvc);
  });
  if (!f) return std::nullopt;
  return f->delay;
}

const Fault* Faults::snapshot_failure(const std::string& ns, const std::string& vm, const std::string& pvc) {
  return fire([&](const Fault& f) {
    return f.type == "snapshot-fail" && field_matches(f.ns, ns) && field_matches(f.vm, vm) && field_matches(f.pvc, pvc);
  });
}

bool Faults::export_no_ingress(const std::string& ns, const std::string& name) const {
  for (const auto& f : faults_) {
    if (f.type == "export-no-ingress" && field_matches(f.ns, ns) && field_matches(f.name, name)) return true;
  }
  return false;
}

const Fault* Faults::agent_disconnect(const std::string& ns, const std::string& vm) {
  return fire([&](const Fault& f) { return f.type == "agent-disconnect" && field_matches(f.ns, ns) && field_matches(f.vm, vm); });
}

const Fault* Faults::restore_pending(const std::string& ns, const std::string& pvc) {
  return fire([&](const Fault& f) { return f.type == "restore-pending" && field_matches(f.ns, ns) && field_matches(f.pvc, pvc); });
}

const Fault* Faults::export_fault(const std::string& type, const std::string& ns, const std::string& name) {
  return fire([&](const Fault& f) { return f.type == type && field_matches(f.ns, ns) && field_matches(f.name, name); });
}

}  // namespace kvb::testcluster
