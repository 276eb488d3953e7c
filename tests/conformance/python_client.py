#!/usr/bin/python3
"""Conformance checks of kvbackup-testcluster with the official Python client.

Usage: python_client.py KUBECONFIG
Prints one JSON object per line: {"check": name, "ok": bool, "detail": text}.
Each check is one behaviour of a real Kubernetes 1.31 API server that the
simulator once got wrong (issue 15); tests/conformance/conformance_test.cpp
asserts on them one by one. Exits 2 when the kubernetes package is missing.
"""
import json
import re
import sys
import threading
import time
import traceback

try:
    import kubernetes
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException
except ImportError as e:  # a missing client fails the run, it never skips
    print(json.dumps({"check": "import", "ok": False, "detail": str(e)}))
    sys.exit(2)

NS = "pyconf"


def report(name, ok, detail=""):
    print(json.dumps({"check": name, "ok": bool(ok), "detail": str(detail)}), flush=True)


CHECKS = []


def check(name):
    def wrap(fn):
        def run():
            try:
                ok, detail = fn()
            except Exception as e:  # any exception is a failed check, with its story
                ok, detail = False, "".join(traceback.format_exception_only(type(e), e)).strip()
            report(name, ok, detail)
        CHECKS.append(run)
        return run
    return wrap


def main():
    config.load_kube_config(config_file=sys.argv[1])
    core = client.CoreV1Api()
    custom = client.CustomObjectsApi()
    report("import", True, "kubernetes " + kubernetes.__version__)
    core.create_namespace({"metadata": {"name": NS}})

    def requests(resource):
        stats = client.ApiClient().call_api("/testcluster/v1/stats", "GET", auth_settings=["BearerToken"],
                                            response_type="object", _return_http_data_only=True)
        by = stats.get("requestsByVerb", {})
        return by.get("list " + resource, 0) + by.get("watch " + resource, 0)

    def cm(name, labels=None, finalizers=None):
        meta = {"name": name, "labels": labels or {}}
        if finalizers:
            meta["finalizers"] = finalizers
        return core.create_namespaced_config_map(NS, {"metadata": meta, "data": {"k": "v"}})

    @check("version_trailing_slash")
    def _():
        v = client.VersionApi().get_code()
        return v.git_version.startswith("v1.31"), v.git_version

    @check("watch_true_streams")
    def _():
        listed = core.list_namespaced_config_map(NS)
        rv = listed.metadata.resource_version
        cm("watched")
        before = requests("configmaps")
        w = watch.Watch()
        seen = []
        for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=1):
            seen.append((ev["type"], ev["object"].metadata.name))
        calls = requests("configmaps") - before
        # One watch request for the whole second: no re-list loop.
        return ("ADDED", "watched") in seen and calls == 1, "events=%s requests=%d" % (seen, calls)

    @check("typed_pod_list")
    def _():
        pods = core.list_namespaced_pod("prod")
        ids = [(p.metadata.name, [s.image_id for s in (p.status.container_statuses or [])]) for p in pods.items]
        return len(pods.items) >= 2 and all(all(i) for _, i in ids), ids

    @check("pod_conditions")
    def _():
        pods = core.list_namespaced_pod("prod").items
        conds = {p.metadata.name: sorted(c.type for c in (p.status.conditions or [])) for p in pods}
        return all("Ready" in c and "PodScheduled" in c for c in conds.values()), conds

    @check("distinct_pod_ips")
    def _():
        ips = [p.status.pod_ip for p in core.list_namespaced_pod("prod").items]
        return len(ips) >= 2 and None not in ips and len(set(ips)) == len(ips), ips

    @check("namespace_metadata_name_label")
    def _():
        ns = core.read_namespace(NS)
        return (ns.metadata.labels or {}).get("kubernetes.io/metadata.name") == NS, ns.metadata.labels

    @check("uid_rfc4122_v4")
    def _():
        uids = [core.read_namespace(NS).metadata.uid] + [p.metadata.uid for p in core.list_namespaced_pod("prod").items]
        v4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
        return len(uids) >= 4 and all(v4.fullmatch(u) for u in uids), uids

    @check("pvc_volume_mode_default")
    def _():
        pvc = core.create_namespaced_persistent_volume_claim(NS, {
            "metadata": {"name": "plain"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        return pvc.spec.volume_mode == "Filesystem", pvc.spec.volume_mode

    @check("create_drops_status")
    def _():
        pod = core.create_namespaced_pod(NS, {
            "metadata": {"name": "liar"},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
            "status": {"phase": "Succeeded", "podIP": "192.0.2.1"}})
        return pod.status.phase == "Running" and pod.status.pod_ip != "192.0.2.1", (pod.status.phase, pod.status.pod_ip)

    @check("delete_dry_run_in_body")
    def _():
        cm("keep")
        core.delete_namespaced_config_map("keep", NS, body=client.V1DeleteOptions(dry_run=["All"]))
        return core.read_namespaced_config_map("keep", NS).metadata.name == "keep", "still there"

    @check("delete_precondition_uid")
    def _():
        cm("guarded")
        try:
            core.delete_namespaced_config_map("guarded", NS, body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid="00000000-0000-4000-8000-000000000000")))
        except ApiException as e:
            return e.status == 409 and "Precondition failed: UID" in e.body, e.body
        return False, "deleted despite a wrong uid"

    @check("deletecollection")
    def _():
        for i in range(3):
            cm("batch-%d" % i, labels={"tier": "batch"})
        core.delete_collection_namespaced_config_map(NS, label_selector="tier=batch")
        left = core.list_namespaced_config_map(NS, label_selector="tier=batch").items
        return left == [], [c.metadata.name for c in left]

    @check("continue_from_snapshot")
    def _():
        for i in range(3):
            cm("page-%d" % i, labels={"tier": "page"})
        first = core.list_namespaced_config_map(NS, label_selector="tier=page", limit=1)
        core.delete_namespaced_config_map("page-2", NS)
        cm("page-3", labels={"tier": "page"})
        rest = core.list_namespaced_config_map(NS, label_selector="tier=page", limit=10, _continue=first.metadata._continue)
        names = [c.metadata.name for c in first.items + rest.items]
        return names == ["page-0", "page-1", "page-2"] and rest.metadata.resource_version == first.metadata.resource_version, names

    @check("finalizers_hold_deletion")
    def _():
        cm("held", finalizers=["example.com/hold"])
        core.delete_namespaced_config_map("held", NS)
        held = core.read_namespaced_config_map("held", NS)
        marked = held.metadata.deletion_timestamp is not None
        core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
        try:
            core.read_namespaced_config_map("held", NS)
            return False, "still there after its finalizers were removed"
        except ApiException as e:
            return marked and e.status == 404, "marked=%s then %d" % (marked, e.status)

    @check("namespace_terminating")
    def _():
        core.create_namespace({"metadata": {"name": "doomed"}})
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "pin", "finalizers": ["example.com/pin"]}})
        core.delete_namespace("doomed")
        phase = core.read_namespace("doomed").status.phase
        try:
            core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
            return False, "created in a terminating namespace"
        except ApiException as e:
            refused = e.status == 403 and "unable to create new content in namespace doomed because it is being terminated" in e.body
        core.patch_namespaced_config_map("pin", "doomed", {"metadata": {"finalizers": None}})
        try:
            core.read_namespace("doomed")
            gone = False
        except ApiException as e:
            gone = e.status == 404
        return phase == "Terminating" and refused and gone, "phase=%s refused=%s gone=%s" % (phase, refused, gone)

    @check("field_selector_pvc_unsupported")
    def _():
        try:
            core.list_namespaced_persistent_volume_claim(NS, field_selector="spec.storageClassName=standard")
        except ApiException as e:
            return e.status == 400 and "field label not supported: spec.storageClassName" in e.body, e.body
        return False, "accepted"

    @check("field_selector_pod_phase")
    def _():
        pods = core.list_namespaced_pod("prod", field_selector="status.phase=Running").items
        return len(pods) >= 2, [p.metadata.name for p in pods]

    @check("field_selector_custom_resource")
    def _():
        ok = custom.list_namespaced_custom_object("kubevirt.io", "v1", "prod", "virtualmachines",
                                                  field_selector="metadata.name=db")
        try:
            custom.list_namespaced_custom_object("kubevirt.io", "v1", "prod", "virtualmachines",
                                                 field_selector="status.printableStatus=Running")
            return False, "accepted status.printableStatus"
        except ApiException as e:
            return len(ok["items"]) == 1 and e.status == 400 and "field label not supported" in e.body, e.body

    @check("custom_resource_put_needs_resource_version")
    def _():
        vm = custom.get_namespaced_custom_object("kubevirt.io", "v1", "prod", "virtualmachines", "db")
        del vm["metadata"]["resourceVersion"]
        try:
            custom.replace_namespaced_custom_object("kubevirt.io", "v1", "prod", "virtualmachines", "db", vm)
            return False, "replaced without a resourceVersion"
        except ApiException as e:
            return e.status == 422 and "must be specified for an update" in e.body, e.body

    @check("create_with_resource_version")
    def _():
        try:
            core.create_namespaced_config_map(NS, {"metadata": {"name": "rv", "resourceVersion": "5"}})
            return False, "accepted"
        except ApiException as e:
            return e.status == 400 and "resourceVersion should not be set on objects to be created" in e.body, e.body

    @check("invalid_name")
    def _():
        try:
            core.create_namespaced_config_map(NS, {"metadata": {"name": "Bad_Name"}})
            return False, "accepted"
        except ApiException as e:
            return e.status == 422 and "a lowercase RFC 1123 subdomain" in e.body, e.body

    @check("label_value_too_long")
    def _():
        try:
            core.create_namespaced_config_map(NS, {"metadata": {"name": "long", "labels": {"a": "x" * 70}}})
            return False, "accepted"
        except ApiException as e:
            return e.status == 422 and "must be no more than 63 characters" in e.body, e.body

    @check("pvc_spec_immutable")
    def _():
        try:
            core.patch_namespaced_persistent_volume_claim("plain", NS, {"spec": {"accessModes": ["ReadWriteMany"]}})
            changed = "accepted an access mode change"
        except ApiException as e:
            changed = e.status == 422 and "spec is immutable after creation" in e.body
        try:
            core.patch_namespaced_persistent_volume_claim("plain", NS, {"spec": {"resources": {"requests": {"storage": "512Mi"}}}})
            shrunk = "accepted a smaller size"
        except ApiException as e:
            shrunk = e.status == 422 and "field can not be less than previous value" in e.body
        grown = core.patch_namespaced_persistent_volume_claim("plain", NS, {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})
        return changed is True and shrunk is True and grown.spec.resources.requests["storage"] == "2Gi", (changed, shrunk)

    @check("list_future_resource_version")
    def _():
        start = time.monotonic()
        try:
            core.list_namespaced_config_map(NS, resource_version="999999999", resource_version_match="NotOlderThan")
            return False, "served at once"
        except ApiException as e:
            waited = time.monotonic() - start
            return e.status == 504 and "Too large resource version" in e.body and waited >= 2.5, "%s after %.1fs" % (e.body, waited)

    @check("watch_from_a_future_resource_version")
    def _():
        def stats():
            return client.ApiClient().call_api("/testcluster/v1/stats", "GET", auth_settings=["BearerToken"],
                                               response_type="object", _return_http_data_only=True)
        future = int(core.list_namespaced_config_map(NS).metadata.resource_version) + 1
        watches = stats()["watches"]
        seen = []

        def follow():
            for ev in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=str(future),
                                           timeout_seconds=2):
                seen.append(ev["object"].metadata.name)
        t = threading.Thread(target=follow)
        t.start()
        deadline = time.monotonic() + 5
        while stats()["watches"] <= watches and time.monotonic() < deadline:
            pass  # until the watch is registered (polling the server, not sleeping)
        a = cm("at-future")       # this write gets resourceVersion `future`
        cm("after-future")
        t.join()
        # The watch cache only sends changes newer than the requested version.
        return int(a.metadata.resource_version) == future and seen == ["after-future"], seen

    @check("watch_410_is_an_error_event")
    def _():
        api = client.ApiClient()
        api.call_api("/testcluster/v1/faults", "POST", body={"type": "api-error", "verb": "watch", "resource": "configmaps",
                                                             "namespace": NS, "code": 410, "count": 1},
                      auth_settings=["BearerToken"], response_type="object")
        try:
            for _ev in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version="1", timeout_seconds=1):
                pass
            return False, "no error"
        except ApiException as e:
            # The client only sees a 410 inside the stream as an ERROR event it turns into ApiException(410).
            return e.status == 410 and "Expired" in str(e.reason), "status=%s reason=%s" % (e.status, e.reason)

    @check("self_subject_access_review")
    def _():
        review = client.AuthorizationV1Api().create_self_subject_access_review(
            {"spec": {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "prod"}}})
        return review.status.allowed is True, review.status

    for run in CHECKS:
        run()


if __name__ == "__main__":
    main()
