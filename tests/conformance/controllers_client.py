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
  raw KUBECONFIG METHOD PATH [BODY]       a request with a JSON BODY: the HTTP status, the JSON answer and the Warning headers
  pv KUBECONFIG NAME [delete]              typed read (after a typed delete): phase, finalizers, deletionTimestamp
  apply KUBECONFIG MANAGER FORCE DRYRUN BODY
        server-side apply of the JSON BODY through the dynamic client as MANAGER
        (FORCE, DRYRUN: true/false; MANAGER "" sends none): the HTTP status
        (0 on success) and the object or the Status body
"""
import json
import sys

try:
    from kubernetes import client, config, dynamic
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic.exceptions import DynamicApiError
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


def cmd_raw(kubeconfig, method, path, body=""):
    query = []
    if "?" in path:
        path, q = path.split("?", 1)
        query = [tuple(kv.split("=", 1)) for kv in q.split("&")]
    try:
        resp = api(kubeconfig).call_api(path, method, query_params=query, body=json.loads(body) if body else None,
                                        header_params={"Content-Type": "application/json"},
                                        auth_settings=["BearerToken"], _preload_content=False)
        r = resp[0] if isinstance(resp, tuple) else resp
        return {"status": r.status, "body": json.loads(r.data), "warnings": r.headers.getlist("Warning")}
    except ApiException as e:
        return {"status": e.status, "body": json.loads(e.body) if e.body else None, "warnings": []}


def cmd_pv(kubeconfig, name, action=""):
    core = client.CoreV1Api(api(kubeconfig))
    if action == "delete":
        core.delete_persistent_volume(name)
    pv = core.read_persistent_volume(name)
    return {"phase": pv.status.phase if pv.status else None, "finalizers": pv.metadata.finalizers,
            "deletionTimestamp": pv.metadata.deletion_timestamp and pv.metadata.deletion_timestamp.isoformat()}


def cmd_pods(kubeconfig, ns, selector):
    pods = client.CoreV1Api(api(kubeconfig)).list_namespaced_pod(ns, label_selector=selector)
    out = []
    for p in pods.items:
        sched = [c for c in (p.status.conditions or []) if c.type == "PodScheduled"]
        out.append({"name": p.metadata.name, "phase": p.status.phase, "nodeName": p.spec.node_name,
                    "scheduled": sched[0].status if sched else None, "reason": sched[0].reason if sched else None})
    return {"pods": out}


def cmd_apply(kubeconfig, manager, force, dry_run, body):
    obj = json.loads(body)
    if not manager:  # the dynamic client always names a manager: a raw PATCH without one
        ns = obj["metadata"].get("namespace")
        path = (f"/api/{obj['apiVersion']}" if "/" not in obj["apiVersion"] else f"/apis/{obj['apiVersion']}")
        path += (f"/namespaces/{ns}" if ns else "") + f"/{obj['kind'].lower()}s/{obj['metadata']['name']}"
        try:
            api(kubeconfig).call_api(path, "PATCH", body=body, header_params={"Content-Type": "application/apply-patch+yaml"},
                                     auth_settings=["BearerToken"], _preload_content=False)
            return {"status": 0}
        except ApiException as e:
            return {"status": e.status, "body": json.loads(e.body) if e.body else None}
    dyn = dynamic.DynamicClient(api(kubeconfig))
    res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    kwargs = {"field_manager": manager, "force_conflicts": force == "true"}
    if dry_run == "true":
        kwargs["dry_run"] = "All"
    try:
        # python3-kubernetes 22.6 sends an apply-patch+yaml body only as text
        out = dyn.server_side_apply(res, body=body, name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"),
                                    **kwargs)
        return {"status": 0, "object": out.to_dict()}
    except DynamicApiError as e:
        return {"status": e.status, "body": json.loads(e.body) if e.body else None}


def main(argv):
    cmds = {"rv": cmd_rv, "watch": cmd_watch, "freeze": cmd_freeze, "put": cmd_put, "pvc": cmd_pvc, "pods": cmd_pods,
            "apply": cmd_apply, "pv": cmd_pv, "raw": cmd_raw}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(cmds[argv[1]](*argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
