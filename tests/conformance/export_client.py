#!/usr/bin/python3
"""A VirtualMachineExport read with the official Python client, as a user outside
the cluster would: through links.external (an Ingress), or, without one,
through a WebSocket port-forward to the exporter pod (kubernetes.stream.portforward)
with TLS to the pod against links.internal.cert, as virtctl's --port-forward does.

Usage: export_client.py KUBECONFIG NAMESPACE CLAIM EXPORT_NAME MODE
  MODE external     : download links.external's raw disk.img (urllib, the export's CA)
  MODE port-forward : expect no links.external; download links.internal's raw
                      disk.img over a port-forward to pod status.serviceName:8443;
                      then forward port 9999 of that pod and report the error channel
Prints one JSON object: {"sha256", "bytes", "external", "pod", "bad_port_error", ...}.
Exits 2 when the kubernetes package is missing (a missing client fails, never skips).
"""
import base64
import hashlib
import http.client
import json
import ssl
import sys
import time
import urllib.parse
import urllib.request

try:
    from kubernetes import client, config
    from kubernetes.stream import portforward
except ImportError as e:
    print(json.dumps({"error": "import: %s" % e}))
    sys.exit(2)

GROUP, VERSION, PLURAL = "export.kubevirt.io", "v1beta1", "virtualmachineexports"


def create_export(custom, ns, name, claim):
    body = {"apiVersion": GROUP + "/" + VERSION, "kind": "VirtualMachineExport",
            "metadata": {"name": name},
            "spec": {"source": {"apiGroup": "", "kind": "PersistentVolumeClaim", "name": claim}}}
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    deadline = time.time() + 30
    while time.time() < deadline:
        vme = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        if vme.get("status", {}).get("phase") == "Ready":
            return vme
        time.sleep(0.2)  # polling the API, as virtctl does (it waits 2 s)
    raise RuntimeError("export %s/%s never became Ready: %s" % (ns, name, vme.get("status")))


def raw_url(link, claim):
    for v in link["volumes"]:
        if v["name"] == claim:
            for f in v["formats"]:
                if f["format"] == "raw":
                    return f["url"]
    raise RuntimeError("no raw format for %s in %s" % (claim, link))


def read_body(resp):
    h = hashlib.sha256()
    n = 0
    while True:
        chunk = resp.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def main():
    kubeconfig, ns, claim, name, mode = sys.argv[1:6]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    custom = client.CustomObjectsApi()
    vme = create_export(custom, ns, name, claim)
    status = vme["status"]
    secret = core.read_namespaced_secret(status["tokenSecretRef"], ns)
    token = base64.b64decode(secret.data["token"]).decode()
    out = {"external": "external" in status.get("links", {}), "pod": status.get("serviceName", "")}
    if mode == "external":
        link = status["links"]["external"]
        ctx = ssl.create_default_context(cadata=link["cert"])
        req = urllib.request.Request(raw_url(link, claim), headers={"x-kubevirt-export-token": token})
        with urllib.request.urlopen(req, context=ctx, timeout=60) as resp:
            out["status"] = resp.status
            out["sha256"], out["bytes"] = read_body(resp)
    else:
        link = status["links"]["internal"]
        url = urllib.parse.urlparse(raw_url(link, claim))
        pod = status["serviceName"]
        out["pods"] = [p.metadata.name for p in core.list_namespaced_pod(
            ns, label_selector="kubevirt.io.virt-export-service=" + pod).items]
        pf = portforward(core.connect_get_namespaced_pod_portforward, pod, ns, ports="8443")
        ctx = ssl.create_default_context(cadata=link["cert"])
        # The pod's certificate names its Service: verify against the internal link's host.
        tls = ctx.wrap_socket(pf.socket(8443)._socket, server_hostname=url.hostname)
        conn = http.client.HTTPConnection(url.hostname)
        conn.sock = tls
        conn.request("GET", url.path, headers={"x-kubevirt-export-token": token})
        resp = conn.getresponse()
        out["status"] = resp.status
        out["sha256"], out["bytes"] = read_body(resp)
        conn.close()
        pf.close()
        # A port the pod does not listen on: the kubelet's error channel says so, the data ends.
        bad = portforward(core.connect_get_namespaced_pod_portforward, pod, ns, ports="9999")
        s = bad.socket(9999)
        s.settimeout(30)
        data = s.recv(1024)
        deadline = time.time() + 30
        while bad.error(9999) is None and time.time() < deadline:
            time.sleep(0.05)
        out["bad_port_data"] = len(data)
        out["bad_port_error"] = bad.error(9999) or ""
        bad.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
