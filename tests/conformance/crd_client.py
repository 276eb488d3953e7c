#!/usr/bin/python3
"""The official Python client (python3-kubernetes) on custom resources of the
test cluster, for tests/conformance/crd_test.cpp. Each subcommand prints one
JSON document on stdout; a missing `kubernetes` module is an error (exit 3),
never a skip.

  create KUBECONFIG GROUP VERSION NS PLURAL BODY [FIELD_VALIDATION]
        CustomObjectsApi.create_namespaced_custom_object: the HTTP status, the
        object or Status body, and the Warning headers
  get KUBECONFIG GROUP VERSION NS PLURAL NAME
        CustomObjectsApi.get_namespaced_custom_object: status and body
  patch KUBECONFIG GROUP VERSION NS PLURAL NAME PATCH
        CustomObjectsApi.patch_namespaced_custom_object (merge patch): status and body
  patch_status KUBECONFIG GROUP VERSION NS PLURAL NAME PATCH
        CustomObjectsApi.patch_namespaced_custom_object_status (merge patch)
  crd KUBECONFIG BODY
        ApiextensionsV1Api.create_custom_resource_definition: status and body
"""
import json
import sys

try:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
except ImportError as e:  # a missing real part fails the run
    print(f"the Python kubernetes package is missing: {e}", file=sys.stderr)
    sys.exit(3)


def api(kubeconfig):
    return client.ApiClient(config.new_client_from_config(config_file=kubeconfig).configuration)


def answer(call):
    """Runs call(); the status, the JSON body and the Warning headers."""
    try:
        resp = call()
        data = resp.data.decode() if hasattr(resp, "data") else resp
        return {"status": resp.status, "body": json.loads(data) if data else None,
                "warnings": resp.headers.getlist("Warning") if hasattr(resp.headers, "getlist") else
                [v for k, v in resp.getheaders().items() if k.lower() == "warning"]}
    except ApiException as e:
        return {"status": e.status, "body": json.loads(e.body) if e.body else None, "warnings": []}


def cmd_create(kubeconfig, group, version, ns, plural, body, field_validation=""):
    if field_validation:
        # CustomObjectsApi of python3-kubernetes 22.6 has no field_validation: the same POST through its ApiClient.
        path = f"/apis/{group}/{version}/namespaces/{ns}/{plural}"
        return answer(lambda: api(kubeconfig).call_api(path, "POST", body=json.loads(body),
                                                       query_params=[("fieldValidation", field_validation)],
                                                       auth_settings=["BearerToken"], _preload_content=False,
                                                       _return_http_data_only=True))
    capi = client.CustomObjectsApi(api(kubeconfig))
    return answer(lambda: capi.create_namespaced_custom_object(group, version, ns, plural, json.loads(body),
                                                               _preload_content=False))


def cmd_get(kubeconfig, group, version, ns, plural, name):
    capi = client.CustomObjectsApi(api(kubeconfig))
    return answer(lambda: capi.get_namespaced_custom_object(group, version, ns, plural, name, _preload_content=False))


def cmd_patch(kubeconfig, group, version, ns, plural, name, patch):
    capi = client.CustomObjectsApi(api(kubeconfig))
    return answer(lambda: capi.patch_namespaced_custom_object(group, version, ns, plural, name, json.loads(patch),
                                                              _preload_content=False))


def cmd_patch_status(kubeconfig, group, version, ns, plural, name, patch):
    capi = client.CustomObjectsApi(api(kubeconfig))
    return answer(lambda: capi.patch_namespaced_custom_object_status(group, version, ns, plural, name, json.loads(patch),
                                                                     _preload_content=False))


def cmd_crd(kubeconfig, body):
    ext = client.ApiextensionsV1Api(api(kubeconfig))
    return answer(lambda: ext.create_custom_resource_definition(json.loads(body), _preload_content=False))


def main(argv):
    cmds = {"create": cmd_create, "get": cmd_get, "patch": cmd_patch, "patch_status": cmd_patch_status, "crd": cmd_crd}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(cmds[argv[1]](*argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
