// kubectl port-forward's protocol, served by the test cluster: SPDY/3.1
// inside a WebSocket (subprotocol SPDY/3.1+portforward.k8s.io, client-go's
// PortForwardWebsockets tunnel, on by default since kubectl 1.31): the binary
// messages carry a SPDY connection (spdy.h) as the kubelet's port-forward
// handler serves it (kubernetes pkg/kubelet/cri/streaming/portforward/
// httpstream.go): the client opens, per local connection, an error stream
// and a data stream with headers streamType (error|data), port and
// requestID; each gets a SYN_REPLY; once both of a requestID are there the
// pod's port is dialled (dial_pod_port); its bytes flow as DATA frames on the
// data stream; a failure is written on the error stream; when the pod side
// ends, both streams are closed (DATA with FIN). PINGs are echoed; RST_STREAM
// ends its pair; WINDOW_UPDATE and SETTINGS are read and ignored (moby/
// spdystream does no flow control either).
//
// Invariants: every header block received goes through the connection's one
// inflater, in order, even for refused streams; the pod side is read only
// while the WebSocket's queue is below a bound (back-pressure); all on the
// loop thread.
#pragma once

#include "testcluster/cluster.h"

#include <memory>
#include <string>

namespace kvb::testcluster {

inline constexpr const char* kSpdyTunnelProtocol = "SPDY/3.1+portforward.k8s.io";

// Upgrades the request's WebSocket with kSpdyTunnelProtocol and serves it.
void serve_port_forward_spdy(Cluster& c, std::shared_ptr<Responder> r, const std::string& ns, const std::string& pod,
                             const std::string& uid, const std::string& export_name);

}  // namespace kvb::testcluster
