#include "testcluster/exec_service.h"

#include "common/shell.h"
#include "kube/api_status.h"
#include "kube/exec_protocol.h"
#include "kube/object.h"
#include "testcluster/exec_sandbox.h"
#include "testcluster/kubevirt.h"
#include "testcluster/net/child_process.h"

#include <boost/json.hpp>

#include <regex>

namespace kvb::testcluster {
namespace json = boost::json;
using kube::ExecChannel;
using kube::encode_exec_frame;

namespace {

ServerResponse status_response(int code, const std::string& message) {
  ServerResponse r;
  r.status = code;
  r.body = kube::status_json(code, kube::reason_for_code(code), message);
  return r;
}

std::string basename_of(const std::string& p) {
  auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// The argv virt-freezer would get, if this command runs virt-freezer.
std::optional<std::vector<std::string>> freezer_args(const std::vector<std::string>& cmd) {
  if (cmd.empty()) return std::nullopt;
  std::vector<std::string> argv = cmd;
  std::string prog = basename_of(cmd[0]);
  if ((prog == "sh" || prog == "bash") && cmd.size() >= 3 && cmd[1] == "-c") {
    auto words = split_shell_words(cmd[2]);
    if (!words || !words->simple || words->words.empty()) return std::nullopt;
    argv = words->words;
  }
  if (basename_of(argv[0]) != "virt-freezer") return std::nullopt;
  return std::vector<std::string>(argv.begin() + 1, argv.end());
}

std::string command_line(const std::vector<std::string>& cmd) {
  std::string s;
  for (const auto& a : cmd) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace

// One exec stream: the WebSocket plus whatever runs behind it.
struct ExecSession : std::enable_shared_from_this<ExecSession> {
  std::shared_ptr<size_t> running;  // the service's count of running sessions
  std::shared_ptr<ExecSandbox> sandbox;
  uint64_t id = 0;
  Cluster& c;
  std::string ns, pod, container;
  std::vector<std::string> command;
  bool v5 = true;
  std::shared_ptr<WebSocket> ws;
  std::shared_ptr<ChildProcess> child;
  std::shared_ptr<Timer> timer;
  std::shared_ptr<FreezerEndpoint> freezer;  // the sandbox's virt-freezer talks to this
  bool finished = false;

  ExecSession(ExecService& s, Cluster& cl) : running(s.running_), sandbox(s.sandbox_), id(++s.sessions_), c(cl) {}

  void close_freezer() {
    if (freezer) freezer->close();
    freezer.reset();
  }

  void send(ExecChannel ch, const std::string& data) {
    if (ws && ws->open() && !data.empty()) ws->send(encode_exec_frame(ch, data));
  }

  void finish(int exit_code, const std::string& out, const std::string& err) {
    if (finished) return;
    finished = true;
    close_freezer();
    --*running;
    send(ExecChannel::kStdout, out);
    send(ExecChannel::kStderr, err);
    if (ws && ws->open()) {
      ws->send(encode_exec_frame(ExecChannel::kError, kube::exec_status_json(exit_code)));
      ws->close();
    }
  }

  void fail_to_run(const std::string& message) {
    if (finished) return;
    finished = true;
    close_freezer();
    --*running;
    if (ws && ws->open()) {
      ws->send(encode_exec_frame(ExecChannel::kError, kube::status_json(500, "InternalError", message)));
      ws->close();
    }
  }

  void on_message(const std::string& msg) {
    auto f = kube::decode_exec_frame(msg);
    if (!f || !child) return;
    if (f->channel == ExecChannel::kStdin) child->write_stdin(std::string(f->payload));
    if (f->channel == ExecChannel::kClose && f->payload == std::string(1, '\0')) child->close_stdin();
  }

  void on_close() {
    // The client went away: stop whatever runs, as the kubelet does.
    if (child) child->kill();
    if (timer) timer->cancel();
    close_freezer();
    if (!finished) {
      finished = true;
      --*running;
    }
  }

  void run() {
    Guest* g = c.kubevirt().guest_for_pod(ns, pod);
    std::string vm = g ? g->vm : "";
    std::string line = command_line(command);
    c.timeline().record(TimelineEvent{WallClock::now(), "Exec", ns, vm, "", "", g && g->frozen,
                                      "pod=" + pod + " container=" + container + " command=" + line});
    if (const Fault* f = c.faults().exec(ns, pod, vm, container, line)) {
      if (f->type == "exec-hang") return;  // until the client gives up
      if (f->type == "exec-drop") {
        auto self = shared_from_this();
        c.loop().after(f->delay, [self] {
          if (self->ws) self->ws->abort();
        });
        return;
      }
      std::string msg = f->message.empty() ? "simulated failure" : f->message;
      auto self = shared_from_this();
      int code = f->exit_code;
      timer = c.loop().after(f->delay, [self, code, msg] { self->finish(code, "", msg + "\n"); });
      return;
    }
    if (g && container == "compute") {
      if (auto args = freezer_args(command)) {
        auto self = shared_from_this();
        c.kubevirt().virt_freezer(g, *args, [self](std::string out, std::string err, int code) {
          self->finish(code, out, err);
        });
        return;
      }
    }
    const std::vector<ExecScript>* scripts = g ? &g->scripts : nullptr;
    std::vector<ExecScript> pod_scripts;
    for (const auto& nsp : c.scenario().namespaces) {
      if (nsp.name != ns) continue;
      for (const auto& p : nsp.pods) {
        if (p.name == pod) pod_scripts = p.exec;
      }
    }
    if (!scripts) scripts = &pod_scripts;
    for (const auto& s : *scripts) {
      if (!s.container.empty() && s.container != container) continue;
      if (!std::regex_search(line, std::regex(s.pattern))) continue;
      if (s.hang) return;
      auto self = shared_from_this();
      timer = c.loop().after(s.delay, [self, s] { self->finish(s.exit_code, s.stdout_text, s.stderr_text); });
      return;
    }
    run_process();
  }

  // The command in the container's view (exec_sandbox.h): a real shell, the
  // image's programs and /usr/bin/virt-freezer, none of the host's files.
  void run_process() {
    std::filesystem::path dir = c.options().state_dir / "containers" / ns / pod / container;
    if (!sandbox->resolves(SandboxContainer{dir, ns, pod, container}, command[0])) {
      // What the kubelet reports when the executable does not exist.
      fail_to_run("failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: "
                  "unable to start container process: exec: \"" + command[0] + "\": executable file not found in $PATH");
      return;
    }
    std::filesystem::path socket = c.options().state_dir / "s" / (std::to_string(id) + ".sock");
    std::error_code ec;
    std::filesystem::create_directories(socket.parent_path(), ec);
    Cluster* cluster = &c;
    auto endpoint = FreezerEndpoint::listen(c.loop(), socket, [cluster, ns = ns, pod = pod](const std::vector<std::string>& args,
                                                                                           FreezerEndpoint::Reply reply) {
      // The launcher of this pod, looked up now: the VM may have gone meanwhile.
      cluster->kubevirt().virt_freezer(cluster->kubevirt().guest_for_pod(ns, pod), args,
                                       [reply](std::string out, std::string err, int code) { reply(out, err, code); });
    });
    if (!endpoint) return fail_to_run("failed to exec in container: " + endpoint.error().message);
    freezer = *endpoint;
    auto argv = sandbox->argv(SandboxContainer{dir, ns, pod, container}, command, socket);
    if (!argv) return fail_to_run("failed to exec in container: " + argv.error().message);
    EnvVars env = {{"PATH", ExecSandbox::container_path()},
                   {"HOME", "/root"},
                   {"TMPDIR", "/tmp"},
                   {"HOSTNAME", pod},
                   {"POD_NAMESPACE", ns}};
    std::weak_ptr<ExecSession> weak = shared_from_this();
    ChildCallbacks cb;
    cb.on_stdout = [weak](std::string d) {
      if (auto s = weak.lock()) s->send(ExecChannel::kStdout, d);
    };
    cb.on_stderr = [weak](std::string d) {
      if (auto s = weak.lock()) s->send(ExecChannel::kStderr, d);
    };
    cb.on_exit = [weak](int code) {
      if (auto s = weak.lock()) s->finish(code, "", "");
    };
    auto started = ChildProcess::start(c.loop(), *argv, env, dir, cb);
    if (!started) return fail_to_run("failed to exec in container: " + started.error().message);
    child = *started;
  }
};

ExecService::ExecService(Cluster& c) : c_(c), sandbox_(std::make_shared<ExecSandbox>(c.options().state_dir)) {}

void ExecService::handle(ServerRequest&& req, std::shared_ptr<Responder> r, const std::string& ns, const std::string& pod) {
  const Object* p = c_.store().find(c_.resource(kube::resources::kPods), ns, pod);
  if (!p) return r->respond(status_response(404, "pods \"" + pod + "\" not found"));
  json::value pv(*p);
  std::string phase(kube::str_at(pv, {"status", "phase"}));
  if (phase != "Running") {
    return r->respond(status_response(400, "cannot exec into a container in a completed pod; current phase is " + phase));
  }
  std::vector<std::string> containers;
  if (const auto* cs = kube::array_at(pv, {"spec", "containers"})) {
    for (const auto& cn : *cs) containers.emplace_back(kube::str_at(cn, {"name"}));
  }
  std::string container = req.query_param("container");
  if (container.empty()) {
    if (containers.size() != 1) {
      std::string list;
      for (const auto& cn : containers) list += (list.empty() ? "" : " ") + cn;
      return r->respond(status_response(400, "a container name must be specified for pod " + pod + ", choose one of: [" + list + "]"));
    }
    container = containers[0];
  } else if (std::find(containers.begin(), containers.end(), container) == containers.end()) {
    return r->respond(status_response(400, "container " + container + " is not valid for pod " + pod));
  }
  auto command = req.query_params("command");
  if (command.empty()) return r->respond(status_response(400, "you must specify at least 1 command"));
  if (!req.websocket) {
    return r->respond(status_response(400, "Upgrade request required: the test cluster serves exec over WebSocket "
                                           "(v5.channel.k8s.io, v4.channel.k8s.io) only"));
  }
  std::string protocol;
  for (const auto& want : {kube::kExecProtocolV5, kube::kExecProtocolV4}) {
    for (const auto& offered : req.websocket_protocols) {
      if (protocol.empty() && offered == want) protocol = offered;
    }
  }
  if (protocol.empty()) {
    return r->respond(status_response(400, "none of the offered WebSocket subprotocols is supported "
                                           "(v5.channel.k8s.io, v4.channel.k8s.io)"));
  }
  auto session = std::make_shared<ExecSession>(*this, c_);
  session->ns = ns;
  session->pod = pod;
  session->container = container;
  session->command = command;
  session->v5 = protocol == kube::kExecProtocolV5;
  ++*running_;
  WebSocketHandlers h;
  h.on_open = [session](std::shared_ptr<WebSocket> ws) {
    session->ws = ws;
    session->run();
  };
  h.on_message = [session](std::string m) { session->on_message(m); };
  h.on_close = [session] { session->on_close(); };
  r->upgrade(protocol, h);
}

}  // namespace kvb::testcluster
