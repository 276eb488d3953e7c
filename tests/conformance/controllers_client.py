#!/usr/bin/python3
"""The official Python client (python3-kubernetes) against the test cluster,
for tests/conformance/controllers_test.cpp. Each subcommand prints one JSON
document on stdout; a missing `kubernetes` module is an error (exit 3), never
a skip.

  rv KUBECONFIG PATH                       resourceVersion of a list
  watch KUBECONFIG PATH RV FIELD VALUE SECONDS [TYPE]
        the events of a watch from RV (replayed, then live) until the dotted
        FIELD of an object equals VALUE (in an event of TYPE, when given), or
        SECONDS pass
  freeze KUBECONFIG NS VMI                 PUT .../freeze; the HTTP status
  put KUBECONFIG PATH BODY                 PUT of a JSON BODY ("" for none); the HTTP status and Status body
  pvc KUBECONFIG NS NAME                   typed read: phase, finalizers, deletionTimestamp, dataSource, dataSourceRef
  pods KUBECONFIG NS SELECTOR              typed list: name, phase, PodScheduled
"""
import json
import sys

try:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.watch.watch import iter_resp_lines
except ImportError as e:  # a missing real part fails the run
    print(f"the Python kubernetes package is missing: {e}", file=sys.stderr)
    sys.exit(3)


def api(kubeconfig):
    return client.ApiClient(config.new_client_from_config(config_file=kubeconfig).configuration)


def field(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def cmd_rv(kubeconfig, path):
    data = api(kubeconfig).call_api(path, "GET", auth_settings=["BearerToken"], response_type="object",
                                    _return_http_data_only=True)
    return {"resourceVersion": data["metadata"]["resourceVersion"]}


def cmd_watch(kubeconfig, path, rv, dotted, value, seconds, etype=""):
    resp = api(kubeconfig).call_api(
        path, "GET",
        query_params=[("watch", "true"), ("resourceVersion", rv), ("timeoutSeconds", str(int(float(seconds))))],
        auth_settings=["BearerToken"], _preload_content=False, _request_timeout=float(seconds) + 5)
    events = []
    for line in iter_resp_lines(resp[0] if isinstance(resp, tuple) else resp):
        ev = json.loads(line)
        events.append({"type": ev["type"], "object": ev["object"]})
        if str(field(ev["object"], dotted)) == value and (not etype or ev["type"] == etype):
            break
    return {"events": events}


def cmd_freeze(kubeconfig, ns, vmi):
    path = f"/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{vmi}/freeze"
    try:
        api(kubeconfig).call_api(path, "PUT", body={"unfreezeTimeout": "60s"}, auth_settings=["BearerToken"], _preload_content=False)
        return {"status": 200}
    except ApiException as e:
        return {"status": e.status, "body": json.loads(e.body) if e.body else None}


def cmd_put(kubeconfig, path, body):
    try:
        resp = api(kubeconfig).call_api(path, "PUT", body=json.loads(body) if body else None,
                                        auth_settings=["BearerToken"], _preload_content=False)
        return {"status": resp[1] if isinstance(resp, tuple) else resp.status}
    except ApiException as e:
        return {"status": e.status, "body": json.loads(e.body) if e.body else None}


def cmd_pvc(kubeconfig, ns, name):
    pvc = client.CoreV1Api(api(kubeconfig)).read_namespaced_persistent_volume_claim(name, ns)
    ds, ref = pvc.spec.data_source, pvc.spec.data_source_ref
    return {"phase": pvc.status.phase, "finalizers": pvc.metadata.finalizers,
            "deletionTimestamp": pvc.metadata.deletion_timestamp and pvc.metadata.deletion_timestamp.isoformat(),
            "dataSource": ds and {"apiGroup": ds.api_group, "kind": ds.kind, "name": ds.name},
            "dataSourceRef": ref and {"apiGroup": ref.api_group, "kind": ref.kind, "name": ref.name}}


def cmd_pods(kubeconfig, ns, selector):
    pods = client.CoreV1Api(api(kubeconfig)).list_namespaced_pod(ns, label_selector=selector)
    out = []
    for p in pods.items:
        sched = [c for c in (p.status.conditions or []) if c.type == "PodScheduled"]
        out.append({"name": p.metadata.name, "phase": p.status.phase, "nodeName": p.spec.node_name,
                    "scheduled": sched[0].status if sched else None, "reason": sched[0].reason if sched else None})
    return {"pods": out}


def main(argv):
    cmds = {"rv": cmd_rv, "watch": cmd_watch, "freeze": cmd_freeze, "put": cmd_put, "pvc": cmd_pvc, "pods": cmd_pods}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(cmds[argv[1]](*argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
