#include "rules/executor.h"

#include "common/random.h"
#include "kube/object.h"

#include <boost/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

namespace kvb::rules {
namespace json = boost::json;

PodInfo pod_info(const json::object& pod) {
  PodInfo p;
  p.ns = std::string(kube::namespace_of(pod));
  p.name = std::string(kube::name_of(pod));
  p.phase = std::string(kube::str_at(pod, {"status", "phase"}));
  p.labels = kube::labels_of(pod);
  if (const auto* cs = kube::array_at(pod, {"spec", "containers"})) {
    for (const auto& c : *cs) p.containers.emplace_back(kube::str_at(c, {"name"}));
  }
  return p;
}

PodLister cluster_pod_lister(std::shared_ptr<kube::Client> client) {
  return [client](const std::string& ns, const kube::LabelSelector& sel) -> Result<std::vector<PodInfo>> {
    kube::ListOptions lo;
    lo.label_selector = sel.to_string();
    KVB_TRY(auto list, client->list(kube::resources::kPods, ns, lo));
    std::vector<PodInfo> out;
    for (const auto& p : list.items) {
      if (p.is_object()) out.push_back(pod_info(p.as_object()));
    }
    return out;
  };
}

namespace {
class ClusterPodExec : public PodExec {
 public:
  explicit ClusterPodExec(std::shared_ptr<kube::Client> c) : client_(std::move(c)) {}
  std::shared_ptr<kube::ExecSession> start(kube::ExecRequest request, kube::ExecObserver observer) override {
    return kube::start_exec(client_, std::move(request), std::move(observer));
  }

 private:
  std::shared_ptr<kube::Client> client_;
};
}  // namespace

std::shared_ptr<PodExec> cluster_pod_exec(std::shared_ptr<kube::Client> client) {
  return std::make_shared<ClusterPodExec>(std::move(client));
}

std::string wait_command(const std::string& marker) {
  // No single quotes and no '$': it is substituted into shell text that may
  // itself be single-quoted (Stork's mysql example). `read` returns on a line
  // or when stdin ends (kvbackup released it, or its stream went away).
  return "sh -c \"echo " + marker + "; read kvbackup_release\"";
}

namespace {

std::string excerpt(const std::string& s) { return s.size() > 4096 ? s.substr(0, 4096) + "…" : s; }

// Picks the container an action runs in, Stork's way.
Result<std::string> container_for(const RuleItem& item, const PodInfo& pod) {
  if (!item.container.empty()) {
    if (std::find(pod.containers.begin(), pod.containers.end(), item.container) == pod.containers.end()) {
      std::string list;
      for (const auto& c : pod.containers) list += (list.empty() ? "" : " ") + c;
      return Error(Errc::kInvalidArgument, "container \"" + item.container + "\" does not exist in pod " + pod.ns + "/" +
                                               pod.name + " (it has: " + list + ")");
    }
    return item.container;
  }
  if (pod.containers.size() == 1) return pod.containers[0];
  std::string list;
  for (const auto& c : pod.containers) list += (list.empty() ? "" : " ") + c;
  return Error(Errc::kInvalidArgument, "could not determine which container to use in pod " + pod.ns + "/" + pod.name +
                                           ": it has several (" + list + ") and the rule item names none");
}

void set_verdict(ActionRun& r, OnError on_error) {
  if (r.status && r.exit_code == 0) {
    r.verdict = "succeeded";
    return;
  }
  if (!r.status) {
    r.verdict = r.status.error().code == Errc::kTimeout ? "timed out" : "error: " + r.status.error().message;
  } else {
    r.verdict = "failed (exit " + std::to_string(r.exit_code) + ")";
  }
  if (on_error == OnError::kContinue) {
    r.continued = true;
    r.verdict += " (continued)";
  }
}

Error action_error(const ActionRun& r, const std::string& display) {
  std::string where = "rule " + r.rule + ": action \"" + display + "\" in pod " + r.ns + "/" + r.pod +
                      (r.container.empty() ? "" : " container " + r.container);
  if (!r.status) return r.status.error().with_context(where);
  std::string msg = where + " exited with code " + std::to_string(r.exit_code);
  std::string err = r.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (!err.empty()) msg += ": " + (err.size() > 300 ? err.substr(err.size() - 300) : err);
  return Error(Errc::kInternal, msg);
}

}  // namespace

BackgroundActions::~BackgroundActions() {
  if (!released_) release(std::chrono::seconds(10));
}

std::vector<ActionRun> BackgroundActions::release(std::chrono::milliseconds timeout) {
  std::vector<ActionRun> out;
  if (released_) return out;
  released_ = true;
  for (auto& h : held_) {
    h.session->write_stdin("\n");
    h.session->close_stdin();
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& h : held_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto r = h.session->wait_for(std::max(left, std::chrono::milliseconds(0)));
    if (!r) {
      h.session->cancel();  // closing the stream ends the wait in the container too
      r = h.session->wait();
    }
    ActionRun run = h.run;
    run.finished = WallClock::now();
    run.status = r->status;
    run.exit_code = r->exit_code;
    run.out = excerpt(r->out);
    run.err = excerpt(r->err);
    set_verdict(run, OnError::kFail);
    out.push_back(std::move(run));
  }
  return out;
}

Executor::Executor(std::shared_ptr<PodExec> exec, ExecutorOptions options) : exec_(std::move(exec)), options_(options) {}

Status Executor::run_action(const std::string& rule_name, const RuleItem& item, const Action& action,
                            const std::vector<PodInfo>& all_pods, RuleRun& out, std::stop_token stop) {
  std::vector<PodInfo> pods = all_pods;
  if (action.run_in_single_pod && pods.size() > 1) pods.resize(1);
  struct Pending {
    ActionRun run;
    std::shared_ptr<kube::ExecSession> session;
  };
  std::vector<Pending> work;
  Status first_failure = ok();
  for (const auto& pod : pods) {
    ActionRun run;
    run.rule = rule_name;
    run.ns = pod.ns;
    run.pod = pod.name;
    run.command = action.command();
    auto container = container_for(item, pod);
    if (!container) {
      run.status = container.error();
      run.started = run.finished = WallClock::now();
      set_verdict(run, action.on_error);
      if (action.on_error == OnError::kFail && first_failure) first_failure = action_error(run, action.display());
      out.runs.push_back(std::move(run));
      continue;
    }
    run.container = *container;
    work.push_back({std::move(run), nullptr});
  }
  for (int attempt = 1; attempt <= std::max(1, options_.max_attempts); ++attempt) {
    bool any = false;
    for (auto& w : work) {
      if (!w.run.verdict.empty()) continue;  // done
      kube::ExecRequest req;
      req.ns = w.run.ns;
      req.pod = w.run.pod;
      req.container = w.run.container;
      req.command = w.run.command;
      req.timeout = action.timeout;
      req.critical = options_.critical;
      if (attempt == 1) w.run.started = WallClock::now();
      w.session = exec_->start(req);
      w.run.attempts = attempt;
      any = true;
    }
    if (!any) break;
    // Without a wait limit a stop request cancels the commands; with one they are left running (below).
    std::optional<std::stop_callback<std::function<void()>>> on_stop;
    if (!options_.wait_limit) {
      on_stop.emplace(stop, std::function<void()>([&work] {
                        for (auto& w : work)
                          if (w.session) w.session->cancel();
                      }));
    }
    auto wait_until = std::chrono::steady_clock::now() + options_.wait_limit.value_or(std::chrono::milliseconds(0));
    bool retry = false;
    for (auto& w : work) {
      if (!w.run.verdict.empty() || !w.session) continue;
      std::optional<kube::ExecResult> got;
      if (!options_.wait_limit) {
        got = w.session->wait();
      } else {
        // In slices when a stop may come, so that it ends the wait (not the command) at once.
        while (!got && !stop.stop_requested()) {
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wait_until - std::chrono::steady_clock::now());
          if (left <= std::chrono::milliseconds(0)) break;
          got = w.session->wait_for(stop.stop_possible() ? std::min(left, std::chrono::milliseconds(20)) : left);
        }
        if (!got) got = w.session->wait_for(std::chrono::milliseconds(0));
      }
      if (!got) {
        w.run.status = Error(stop.stop_requested() ? Errc::kCancelled : Errc::kTimeout,
                             "still running after " + std::to_string(options_.wait_limit->count()) +
                                 " ms; left running and watched");
        w.run.finished = WallClock::now();
        w.run.running = std::move(w.session);
        set_verdict(w.run, action.on_error);
        continue;
      }
      kube::ExecResult r = std::move(*got);
      w.session.reset();
      w.run.status = r.status;
      w.run.exit_code = r.exit_code;
      w.run.out = excerpt(r.out);
      w.run.err = excerpt(r.err);
      w.run.finished = WallClock::now();
      bool failed = !r.succeeded();
      bool timed_out = !r.status && r.status.error().code == Errc::kTimeout;
      bool cancelled = !r.status && r.status.error().code == Errc::kCancelled;
      bool retryable = failed && !cancelled && (!timed_out || options_.retry_after_timeout) &&
                       !(r.status.has_error() && (r.status.error().code == Errc::kForbidden ||
                                                  r.status.error().code == Errc::kNotFound));
      if (failed && retryable && attempt < options_.max_attempts) {
        retry = true;  // verdict stays empty: run again
        continue;
      }
      set_verdict(w.run, action.on_error);
    }
    if (!retry || stop.stop_requested()) break;
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, options_.retry_delay, [] { return false; });
  }
  for (auto& w : work) {
    if (w.run.verdict.empty()) set_verdict(w.run, action.on_error);
    if (!w.run.succeeded() && action.on_error == OnError::kFail && first_failure) {
      first_failure = action_error(w.run, action.display());
    }
    out.runs.push_back(std::move(w.run));
  }
  return first_failure;
}

Status Executor::start_background(const std::string& rule_name, const RuleItem& item, const Action& action,
                                  const std::vector<PodInfo>& all_pods, RuleRun& out, std::stop_token stop) {
  std::vector<PodInfo> pods = all_pods;
  if (action.run_in_single_pod && pods.size() > 1) pods.resize(1);
  if (!out.background) out.background = std::make_shared<BackgroundActions>();
  struct Waiter {
    std::mutex mu;
    std::condition_variable_any cv;
    std::string seen;
    bool reached = false;
  };
  std::vector<std::shared_ptr<Waiter>> waiters;
  std::vector<size_t> indexes;
  for (const auto& pod : pods) {
    ActionRun run;
    run.rule = rule_name;
    run.ns = pod.ns;
    run.pod = pod.name;
    run.background = true;
    run.started = WallClock::now();
    auto container = container_for(item, pod);
    if (!container) {
      run.status = container.error();
      set_verdict(run, action.on_error);
      out.runs.push_back(run);
      if (action.on_error == OnError::kFail) return action_error(run, action.display());
      continue;
    }
    run.container = *container;
    std::string marker = "KVBACKUP-WAIT-READY-" + random_hex(16);
    std::string value = action.value;
    for (size_t pos = value.find("${WAIT_CMD}"); pos != std::string::npos; pos = value.find("${WAIT_CMD}", pos)) {
      std::string wc = wait_command(marker);
      value.replace(pos, 11, wc);
      pos += wc.size();
    }
    run.command = {"sh", "-c", value};
    auto waiter = std::make_shared<Waiter>();
    kube::ExecObserver obs;
    obs.on_stdout = [waiter, marker](std::string_view data) {
      std::lock_guard lock(waiter->mu);
      waiter->seen.append(data);
      if (waiter->seen.find(marker) != std::string::npos) waiter->reached = true;
      if (waiter->seen.size() > 8192) waiter->seen.erase(0, waiter->seen.size() - 1024);
      waiter->cv.notify_all();
    };
    kube::ExecRequest req;
    req.ns = pod.ns;
    req.pod = pod.name;
    req.container = run.container;
    req.command = run.command;
    req.stdin = true;
    req.timeout = options_.background_max_hold;
    run.attempts = 1;
    auto session = exec_->start(req, obs);
    out.background->held_.push_back({run, session});
    waiters.push_back(waiter);
    indexes.push_back(out.background->held_.size() - 1);
  }
  // Wait until every pod reached ${WAIT_CMD}, or one of them ended early.
  auto deadline = std::chrono::steady_clock::now() + options_.background_ready_timeout;
  for (size_t i = 0; i < waiters.size(); ++i) {
    auto& w = *waiters[i];
    auto& held = out.background->held_[indexes[i]];
    std::unique_lock lock(w.mu);
    bool reached = w.cv.wait_until(lock, stop, deadline, [&] { return w.reached || held.session->done(); });
    if (w.reached) continue;
    lock.unlock();
    ActionRun run = held.run;
    run.finished = WallClock::now();
    if (held.session->done()) {
      auto r = held.session->wait();
      run.status = r.status;
      run.exit_code = r.exit_code;
      run.err = excerpt(r.err);
      run.out = excerpt(r.out);
      if (run.status) {
        run.status = Error(Errc::kInternal, "background action ended (exit " + std::to_string(r.exit_code) +
                                                ") before reaching ${WAIT_CMD}");
      }
    } else {
      run.status = Error(stop.stop_requested() ? Errc::kCancelled : Errc::kTimeout,
                         "background action did not reach ${WAIT_CMD} within " +
                             std::to_string(options_.background_ready_timeout.count()) + " ms");
    }
    (void)reached;
    set_verdict(run, action.on_error);
    out.runs.push_back(run);
    if (action.on_error == OnError::kFail) return action_error(run, action.display());
  }
  return ok();
}

RuleRun Executor::run_item(const std::string& rule_name, const RuleItem& item, const PodInfo& pod, std::stop_token stop) {
  RuleRun out;
  out.pods_matched = 1;
  for (const auto& action : item.actions) {
    Status st = action.background ? start_background(rule_name, item, action, {pod}, out, stop)
                                  : run_action(rule_name, item, action, {pod}, out, stop);
    if (!st) {
      out.status = st;
      if (out.background) {
        auto released = out.background->release(std::chrono::seconds(30));
        out.runs.insert(out.runs.end(), released.begin(), released.end());
      }
      break;
    }
  }
  return out;
}

RuleRun Executor::run(const Rule& rule, const std::vector<std::string>& namespaces, const PodLister& pods,
                      std::stop_token stop) {
  RuleRun out;
  std::vector<std::string> nss = rule.ns.empty() ? namespaces : std::vector<std::string>{rule.ns};
  std::string name = rule.name.empty() ? rule.origin : rule.name;
  auto fail = [&](Status st) {
    out.status = st;
    if (out.background) {
      auto released = out.background->release(std::chrono::seconds(30));
      out.runs.insert(out.runs.end(), released.begin(), released.end());
    }
    return out;
  };
  for (const auto& item : rule.items) {
    std::vector<PodInfo> matched;
    for (const auto& ns : nss) {
      if (!item.pod_namespace.empty() && item.pod_namespace != ns) continue;
      auto listed = pods(ns, item.pod_selector);
      if (!listed) return fail(listed.error().with_context("rule " + name + ": listing pods for " + item.origin));
      for (auto& p : *listed) {
        if (!item.pod_name.empty() && p.name != item.pod_name) continue;
        if (p.phase != "Running") continue;  // Stork skips pods that are not running
        matched.push_back(std::move(p));
      }
    }
    if (matched.empty()) {
      out.warnings.push_back("rule " + name + ": " + item.origin + ": no running pod matches selector \"" +
                             item.pod_selector.to_string() + "\"");
      continue;
    }
    out.pods_matched += static_cast<int>(matched.size());
    for (const auto& action : item.actions) {
      if (stop.stop_requested()) return fail(Error(Errc::kCancelled, "rule " + name + ": cancelled"));
      Status st = action.background ? start_background(name, item, action, matched, out, stop)
                                    : run_action(name, item, action, matched, out, stop);
      if (!st) return fail(st);
    }
  }
  return out;
}

}  // namespace kvb::rules
