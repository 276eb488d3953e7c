// ExecService: pods/{name}/exec in the test cluster, over WebSocket
// (v5.channel.k8s.io, v4.channel.k8s.io), with the real error-channel Status.
//
// What runs, in order: an injected exec fault (hang, fail, drop); virt-freezer
// in a launcher pod's compute container (as argv, or as the simple command of
// `sh -c`), emulated by KubeVirt; a scenario-scripted answer whose pattern
// matches the command line; otherwise the command itself, in a real shell
// inside the container's own file-system view (exec_sandbox.h: bubblewrap,
// /usr/bin/virt-freezer relayed to the simulated launcher, none of the host's
// files), stdin, stdout, stderr streamed, closing the stream kills it.
// Bare-argv (and simple `sh -c`) virt-freezer calls stay on the in-process
// fast path: the sandbox costs a few ms per exec (docs/testcluster.md "Exec").
#pragma once

#include <memory>

#include "testcluster/cluster.h"
#include "testcluster/exec_sandbox.h"

namespace kvb::testcluster {

class ExecService {
 public:
  explicit ExecService(Cluster& c);
  void handle(ServerRequest&& req, std::shared_ptr<Responder> r, const std::string& ns, const std::string& pod);
  size_t running() const { return *running_; }

 private:
  friend struct ExecSession;
  Cluster& c_;
  // Shared with the sessions, which may close after the service is gone
  // (a client hanging up while the cluster stops).
  std::shared_ptr<size_t> running_ = std::make_shared<size_t>(0);
  std::shared_ptr<ExecSandbox> sandbox_;
  uint64_t sessions_ = 0;  // names each sandboxed exec's virt-freezer socket
};

}  // namespace kvb::testcluster
