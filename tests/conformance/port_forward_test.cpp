// Reaching a VirtualMachineExport from outside the cluster, with real clients
// (issue 16 item 5): the official Python client downloads links.external
// (an Ingress), and without one (the fault export-no-ingress) goes through a
// WebSocket port-forward to the exporter pod with TLS to the pod, as virtctl's
// --port-forward does; the bytes are the oracle's (SHA-256). kvbackup's own
// port-forward client (kube/port_forward.h) gets the kubelet's error for a
// port the pod does not listen on, and the API's error for a missing pod.
#include "common/subprocess.h"
#include "kube/object.h"
#include "kube/port_forward.h"
#include "kube/watch.h"
#include "tests/support/test_cluster.h"

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace kvb::testing {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

const kube::ResourceRef kVme{"export.kubevirt.io", "v1beta1", "virtualmachineexports", "VirtualMachineExport", true};

const char* kScenario = R"(
snapshotClasses: [{name: csi-snap, driver: csi.example.com, cutLatency: 50ms, readyLatency: 50ms}]
storageClasses: [{name: fast, provisioner: csi.example.com}]
namespaces:
  - name: prod
    vms:
      - name: db
        volumes: [{name: rootdisk, type: dataVolume, size: 48Mi, storageClass: fast}]
)";

// A claim holding the running disk's bytes at a snapshot: what kvbackup exports.
class PortForward : public ::testing::Test {
 protected:
  void SetUp() override {
    tc_ = std::make_unique<TestCluster>(kScenario);
    auto c = tc_->client();
    ASSERT_TRUE(c->create(kube::resources::kVolumeSnapshots, "prod",
                          {{"apiVersion", "snapshot.storage.k8s.io/v1"},
                           {"kind", "VolumeSnapshot"},
                           {"metadata", json::object{{"name", "snap1"}}},
                           {"spec", json::object{{"source", json::object{{"persistentVolumeClaimName", "db-rootdisk"}}}}}}));
    auto ready = kube::wait_for_object(
        c, kube::resources::kVolumeSnapshots, "prod", "snap1",
        [](const json::object* o) { return o && kube::bool_at(*o, {"status", "readyToUse"}).value_or(false); }, 20s);
    ASSERT_TRUE(ready) << ready.error().describe();
    ASSERT_TRUE(c->create(kube::resources::kPersistentVolumeClaims, "prod",
                          {{"apiVersion", "v1"},
                           {"kind", "PersistentVolumeClaim"},
                           {"metadata", json::object{{"name", "restored"},
                                                     {"annotations", json::object{{"cdi.kubevirt.io/storage.contentType", "kubevirt"}}}}},
                           {"spec", json::object{{"storageClassName", "fast"},
                                                 {"volumeMode", "Filesystem"},
                                                 {"accessModes", json::array{"ReadWriteOnce"}},
                                                 {"resources", json::object{{"requests", json::object{{"storage", "48Mi"}}}}},
                                                 {"dataSource", json::object{{"apiGroup", "snapshot.storage.k8s.io"},
                                                                             {"kind", "VolumeSnapshot"},
                                                                             {"name", "snap1"}}}}}}));
    oracle_ = tc_->snapshot_sha256("prod", "snap1");
    ASSERT_EQ(oracle_.size(), 64u) << oracle_;
  }

  json::object python(const std::string& export_name, const std::string& mode) {
    ProcessSpec spec;
    spec.argv = {"/usr/bin/python3", std::string(KVB_SOURCE_DIR) + "/tests/conformance/export_client.py",
                 tc_->kubeconfig().string(), "prod", "restored", export_name, mode};
    spec.timeout = 120s;
    auto r = run_process(spec);
    EXPECT_TRUE(r.has_value());
    if (!r) return {};
    EXPECT_EQ(r->exit_code, 0) << "python client failed: " << r->err;
    boost::system::error_code ec;
    json::value v = json::parse(r->out, ec);
    EXPECT_FALSE(ec) << r->out << r->err;
    return v.is_object() ? v.as_object() : json::object();
  }

  // An export of `restored`, Ready, as kvbackup's client sees it.
  json::object ready_export(const std::string& name) {
    auto c = tc_->client();
    auto created = c->create(kVme, "prod",
                             {{"apiVersion", "export.kubevirt.io/v1beta1"},
                              {"kind", "VirtualMachineExport"},
                              {"metadata", json::object{{"name", name}}},
                              {"spec", json::object{{"source", json::object{{"apiGroup", ""},
                                                                            {"kind", "PersistentVolumeClaim"},
                                                                            {"name", "restored"}}}}}});
    EXPECT_TRUE(created) << created.error().describe();
    auto r = kube::wait_for_object(
        c, kVme, "prod", name, [](const json::object* o) { return o && kube::str_at(*o, {"status", "phase"}) == "Ready"; }, 20s);
    EXPECT_TRUE(r) << r.error().describe();
    return r ? *r : json::object();
  }

  std::unique_ptr<TestCluster> tc_;
  std::string oracle_;
};

TEST_F(PortForward, ThePythonClientDownloadsTheExternalLink) {
  auto out = python("pyext", "external");
  EXPECT_TRUE(out.contains("external") && out.at("external").as_bool());
  EXPECT_EQ(kube::str_at(out, {"sha256"}), oracle_);
  EXPECT_EQ(out.at("bytes").to_number<int64_t>(), int64_t{48} << 20);
}

TEST_F(PortForward, WithoutAnIngressThePythonClientDownloadsThroughAPortForwardToTheExporterPod) {
  tc_->add_fault(R"({"type": "export-no-ingress"})");
  tc_->clear_exports();
  auto out = python("pypf", "port-forward");
  EXPECT_FALSE(out.contains("external") && out.at("external").as_bool()) << "links.external without an Ingress";
  EXPECT_EQ(kube::str_at(out, {"pod"}), "virt-export-pypf");
  EXPECT_EQ(json::serialize(out.at("pods")), R"(["virt-export-pypf"])") << "the exporter pod, by its upstream label";
  EXPECT_EQ(out.at("status").to_number<int>(), 200);
  EXPECT_EQ(kube::str_at(out, {"sha256"}), oracle_) << "the bytes through the tunnel are the snapshot's";
  EXPECT_EQ(out.at("bytes").to_number<int64_t>(), int64_t{48} << 20);
  // The server's view: the request came through the pod, on its own path layout.
  int via_pod = 0;
  const json::object served = tc_->exports();
  for (const auto& q : served.at("requests").as_array()) {
    if (kube::str_at(q, {"via"}) == "pod" && kube::str_at(q, {"export"}) == "prod/pypf") ++via_pod;
  }
  EXPECT_GE(via_pod, 1);
  // A port the pod does not listen on: no data, the kubelet's error text.
  EXPECT_EQ(out.at("bad_port_data").to_number<int>(), 0);
  EXPECT_THAT(std::string(kube::str_at(out, {"bad_port_error"})), HasSubstr("error forwarding port 9999 to pod"));
}

TEST_F(PortForward, KvbackupsClientTunnelsToTheExporterAndReportsWhatTheKubeletSaid) {
  auto vme = ready_export("kvb");
  std::string pod(kube::str_at(vme, {"status", "serviceName"}));
  ASSERT_EQ(pod, "virt-export-kvb");
  // A port nothing listens on: the stream opens, the error channel explains, the socket ends.
  auto bad = kube::open_port_forward(tc_->client(), {"prod", pod, 9999});
  ASSERT_TRUE(bad) << bad.error().describe();
  int fd = (*bad)->take_fd();
  ASSERT_GE(fd, 0);
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0) << "EOF: nothing listens there";
  ::close(fd);
  EXPECT_THAT((*bad)->error(), HasSubstr("error forwarding port 9999 to pod"));
  // A pod that does not exist: the API's 404, typed.
  auto missing = kube::open_port_forward(tc_->client(), {"prod", "virt-export-nothere", 8443});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound) << missing.error().describe();
  EXPECT_THAT(missing.error().message, HasSubstr("virt-export-nothere"));
  // The exporter's port: a TLS server answers (its first bytes are a TLS record).
  auto good = kube::open_port_forward(tc_->client(), {"prod", pod, 8443});
  ASSERT_TRUE(good) << good.error().describe();
  int gfd = (*good)->take_fd();
  // A TLS ClientHello would be long; a plain HTTP request gets a TLS alert or close, never HTTP.
  const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(gfd, req, sizeof req - 1), static_cast<ssize_t>(sizeof req - 1));
  char buf[64];
  ssize_t n = ::read(gfd, buf, sizeof buf);
  EXPECT_TRUE(n <= 0 || buf[0] == 0x15) << "not a TLS endpoint: " << std::string(buf, std::max<ssize_t>(n, 0));
  ::close(gfd);
  EXPECT_EQ((*good)->error(), "");
}

TEST_F(PortForward, TheSocketIsHandedOutOnceAndDestroyingTheClientEndsTheTunnel) {
  ready_export("ends");
  // The socket is the user's, once.
  auto pf = kube::open_port_forward(tc_->client(), {"prod", "virt-export-ends", 8443});
  ASSERT_TRUE(pf) << pf.error().describe();
  ::close((*pf)->take_fd());
  EXPECT_EQ((*pf)->take_fd(), -1) << "the socket is handed out once";
  // Destroying the client ends its tunnels: the user reads EOF, nothing hangs.
  auto own = kube::Client::create(tc_->rest_config(), {});
  ASSERT_TRUE(own) << own.error().describe();
  auto held = kube::open_port_forward(*own, {"prod", "virt-export-ends", 8443});
  ASSERT_TRUE(held) << held.error().describe();
  int fd = (*held)->take_fd();
  own->reset();
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0);
  ::close(fd);
  EXPECT_TRUE((*held)->ended());
}

// Reads fd (a pipe) until `text` has appeared in what was read, or 30 s pass; everything read.
std::string read_until(int fd, const std::string& text, std::string& seen) {
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (seen.find(text) == std::string::npos) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) break;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
  }
  return seen;
}

// The local port kubectl prints for a remote one ("Forwarding from 127.0.0.1:41234 -> 8443").
std::string local_port(const std::string& out, const std::string& remote) {
  std::string suffix = " -> " + remote;
  size_t at = out.find("Forwarding from 127.0.0.1:");
  while (at != std::string::npos) {
    size_t colon = at + std::string("Forwarding from 127.0.0.1:").size();
    size_t arrow = out.find(suffix, colon);
    size_t eol = out.find('\n', colon);
    if (arrow != std::string::npos && arrow < eol) return out.substr(colon, arrow - colon);
    at = out.find("Forwarding from 127.0.0.1:", colon);
  }
  return {};
}

// kubectl port-forward (1.31+) speaks SPDY/3.1 inside a WebSocket
// (SPDY/3.1+portforward.k8s.io): a curl through the forwarded port gets the
// export's bytes (TLS from the exporter pod, its token), and a port the pod
// does not listen on gets the kubelet's error, which kubectl reports.
TEST_F(PortForward, KubectlPortForwardTunnelsSpdyToTheExporterPod) {
  ASSERT_TRUE(kubectl_available()) << "kubectl is required (scripts/deps)";
  auto vme = ready_export("kctl");
  std::string url;
  for (const auto& v : *kube::array_at(vme, {"status", "links", "internal", "volumes"})) {
    for (const auto& f : *kube::array_at(v, {"formats"})) {
      if (kube::str_at(f, {"format"}) == "raw") url = std::string(kube::str_at(f, {"url"}));
    }
  }
  ASSERT_FALSE(url.empty()) << json::serialize(vme);
  std::string path = url.substr(url.find('/', url.find("//") + 2));
  auto secret = run_kubectl(tc_->kubeconfig(), {"-n", "prod", "get", "secret", std::string(kube::str_at(vme, {"status", "tokenSecretRef"})),
                                                "-o", "go-template={{.data.token | base64decode}}"});
  ASSERT_TRUE(secret && secret->exit_code == 0);
  std::string token = secret->out;

  auto pf = spawn_process({"/usr/bin/kubectl", "--kubeconfig", tc_->kubeconfig().string(), "-n", "prod", "port-forward",
                           "pod/virt-export-kctl", "0:8443", "0:9999"},
                          environment_with({}), std::filesystem::current_path());
  ASSERT_TRUE(pf) << pf.error().describe();
  std::string out, err;
  read_until(pf->stdout_fd, "-> 9999", out);
  std::string good = local_port(out, "8443"), bad = local_port(out, "9999");
  ASSERT_FALSE(good.empty() || bad.empty()) << out;

  auto run = [](std::vector<std::string> argv) {
    ProcessSpec spec;
    spec.argv = std::move(argv);
    spec.timeout = 90s;
    return run_process(spec);
  };
  std::string file = ::testing::TempDir() + "/kctl-disk.img";
  auto curl = run({"/usr/bin/curl", "-sk", "--max-time", "60", "-o", file, "-w", "%{http_code}", "-H",
                   "x-kubevirt-export-token: " + token, "https://127.0.0.1:" + good + path});
  ASSERT_TRUE(curl);
  EXPECT_EQ(curl->out, "200") << curl->err;
  auto sum = run({"/usr/bin/sha256sum", file});
  ASSERT_TRUE(sum);
  EXPECT_EQ(sum->out.substr(0, 64), oracle_) << "the bytes through kubectl's tunnel are the snapshot's";
  std::filesystem::remove(file);

  auto refused = run({"/usr/bin/curl", "-sk", "--max-time", "20", "https://127.0.0.1:" + bad + "/"});
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->exit_code, 0);
  read_until(pf->stderr_fd, "error forwarding port 9999 to pod", err);
  EXPECT_THAT(err, HasSubstr("error forwarding port 9999 to pod")) << err;

  ::kill(-pf->pid, SIGTERM);
  int status = 0;
  ::waitpid(pf->pid, &status, 0);
  for (int fd : {pf->stdin_fd, pf->stdout_fd, pf->stderr_fd}) {
    if (fd >= 0) ::close(fd);
  }
}

}  // namespace
}  // namespace kvb::testing
