// Port-forward: one TCP connection to a pod's port through the API server
// (pods/{name}/portforward over WebSocket, v4.channel.k8s.io, as the kubelet
// serves it; kube/exec_protocol.h has the framing), handed to the caller as a
// local stream socket. What `kubectl port-forward` / `virtctl vmexport
// download --port-forward` do, without a listening port: nothing else on the
// machine can use the tunnel.
//
// open_port_forward() blocks until the stream is open (the upgrade accepted
// and both channels announced the port) or fails with the API's typed error
// (403 without `create` on pods/portforward, 404 for a missing pod). After
// that the bytes flow on the client's io thread: the socket's bytes go to the
// pod's port and back. One WebSocket carries one connection: open another for
// the next (parallel ranges = several tunnels).
//
// Ends: the pod side closing (or the kubelet's error text on the error
// channel, kept in error()) closes the local socket's other end, so its user
// reads EOF; the user closing its socket closes the WebSocket; destroying the
// Client ends every tunnel (the handle may outlive the Client: it then only
// reports what happened).
//
// This header is free of Beast and Asio.
#pragma once

#include "common/error.h"
#include "kube/client.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace kvb::kube {

struct PortForwardRequest {
  std::string ns;
  std::string pod;
  uint16_t port = 0;
  std::chrono::milliseconds open_timeout{30'000};  // until the stream is open
};

class PortForward {
 public:
  virtual ~PortForward() = default;
  // The local end (a connected AF_UNIX stream socket). The caller owns it after
  // this call and closes it; a second call returns -1.
  virtual int take_fd() = 0;
  // What the kubelet wrote on the port's error channel ("" so far).
  virtual std::string error() const = 0;
  // True once the stream has ended (either side).
  virtual bool ended() const = 0;
};

Result<std::shared_ptr<PortForward>> open_port_forward(const std::shared_ptr<Client>& client, PortForwardRequest request);

}  // namespace kvb::kube
