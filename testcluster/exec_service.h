// ExecService: pods/{name}/exec in the test cluster, over WebSocket
// (v5.channel.k8s.io, v4.channel.k8s.io), with the real error-channel Status.
//
// What runs, in order: an injected exec fault (hang, fail, drop); virt-freezer
// in a launcher pod's compute container (as argv, or as the simple command of
// `sh -c`), emulated by KubeVirt; a scenario-scripted answer whose pattern
// matches the command line; otherwise the command itself, as a real local
// process in a private working directory per container (stdin, stdout, stderr
// streamed; closing the stream kills it).
#pragma once

#include <memory>

#include "testcluster/cluster.h"

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
};

}  // namespace kvb::testcluster
