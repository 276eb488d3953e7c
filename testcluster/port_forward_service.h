// serve_port_forward: pods/{name}/portforward in the test cluster, over
// WebSocket as the kubelet serves it (v4.channel.k8s.io, or channel.k8s.io /
// no subprotocol; kube/exec_protocol.h has the framing): the `ports` query
// names the ports; per port a data channel and an error channel, each opened
// with the port number; the bytes of one TCP connection to that port flow on
// the data channel. The connection ending ends the stream; a port nothing
// listens on gets the kubelet's "error forwarding port ..." text on its error
// channel, then the stream closes.
//
// What listens: the exporter pod of a Ready VirtualMachineExport
// (virt-export-<name>, label kubevirt.io.virt-export-service) on 8443,
// played by the ExportServer (TLS with the pod's certificate, /volumes/...).
// kubectl's SPDY/3.1 tunnelled in the WebSocket (subprotocol
// SPDY/3.1+portforward.k8s.io) is port_forward_spdy.h's; a bare SPDY upgrade
// (kubectl's fallback) is refused with 400.
//
// Invariant: the pod side is read only while the WebSocket's queue is below
// a bound (back-pressure), so a slow client never makes the cluster buffer an
// image; everything runs on the loop thread.
#pragma once

#include "testcluster/cluster.h"

#include <memory>
#include <string>

namespace kvb::testcluster {

// Answers one pods/{name}/portforward request (after authorization).
void serve_port_forward(Cluster& c, ServerRequest&& req, std::shared_ptr<Responder> r, const std::string& ns,
                        const std::string& pod);

// A connection to a pod's port (the exporter's 8443), or the kubelet's error
// text ("error forwarding port 9999 to pod ...") as the error's message.
Result<int> dial_pod_port(Cluster& c, const std::string& ns, const std::string& pod, const std::string& uid,
                          const std::string& export_name, uint16_t port);

}  // namespace kvb::testcluster
