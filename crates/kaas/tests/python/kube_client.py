"""The official Python Kubernetes client against a kaas cluster.

Usage: python3 kube_client.py KUBECONFIG VERSION CONTROL_PLANES WORKERS

The cluster runs Kubernetes VERSION on CONTROL_PLANES + WORKERS nodes, with the
addons ingress and cert-manager (ACME e-mail ops@example.org).

Runs every check below, prints `ok NAME` for each that passes and a traceback for
each that fails, and exits non-zero if any failed. The checks ask what the client's
own code asks of a real API server (paths with and without trailing slashes,
discovery, typed and dynamic clients, watch, server-side apply, eviction) and hold
the answers to what a real kube-apiserver gives (status codes, Status bodies).
"""

import json
import sys
import threading
import time
import traceback

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

KUBECONFIG, EXPECTED_VERSION = sys.argv[1], sys.argv[2]
CONTROL_PLANES, WORKERS = int(sys.argv[3]), int(sys.argv[4])
NS = "py-client"
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def status_of(err: ApiException):
    """The Status object of an error answer, checked for the fields clients read."""
    body = json.loads(err.body)
    assert body["kind"] == "Status", body
    assert body["apiVersion"] == "v1", body
    assert body["status"] == "Failure", body
    assert body["code"] == err.status, (body, err.status)
    assert isinstance(body["message"], str) and body["message"], body
    return body


def expect_error(code, reason, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException as err:
        assert err.status == code, f"{call.__name__}: {err.status} {err.body}"
        body = status_of(err)
        assert body["reason"] == reason, body
        return body
    raise AssertionError(f"{call.__name__} answered without the {code} {reason} it should")


def until(what, predicate, timeout=30.0):
    """Polls `predicate` until it returns something true (controllers act in the
    background), failing after `timeout` seconds. A status not written yet reads as
    not true."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = predicate()
        except AttributeError:  # `.status` is still None
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


config.load_kube_config(config_file=KUBECONFIG)
api = client.ApiClient()
core = client.CoreV1Api(api)
apps = client.AppsV1Api(api)


@check
def version():
    # VersionApi asks for GET /version/ (with the slash).
    info = client.VersionApi(api).get_code()
    assert info.git_version == EXPECTED_VERSION, info
    assert info.major == EXPECTED_VERSION[1:].split(".")[0], info
    assert info.platform, info


@check
def discovery():
    legacy = client.CoreApi(api).get_api_versions()  # GET /api/
    assert "v1" in legacy.versions, legacy
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}  # GET /apis/
    for group in ["apps", "rbac.authorization.k8s.io", "storage.k8s.io", "policy",
                  "apiextensions.k8s.io", "coordination.k8s.io", "networking.k8s.io"]:
        assert group in groups, sorted(groups)
        assert groups[group].preferred_version.group_version, groups[group]
    core_resources = {r.name: r for r in core.get_api_resources().resources}  # GET /api/v1/
    for name in ["nodes", "namespaces", "pods", "pods/eviction", "configmaps", "secrets",
                 "services", "serviceaccounts"]:
        assert name in core_resources, sorted(core_resources)
    assert core_resources["pods"].namespaced and not core_resources["nodes"].namespaced
    assert "list" in core_resources["pods"].verbs and "watch" in core_resources["pods"].verbs
    apps_resources = {r.name for r in apps.get_api_resources().resources}  # /apis/apps/v1/
    assert {"deployments", "daemonsets", "statefulsets", "deployments/scale"} <= apps_resources
    group = client.AppsApi(api).get_api_group()  # GET /apis/apps/
    assert group.name == "apps", group


@check
def nodes():
    items = core.list_node().items
    assert len(items) == CONTROL_PLANES + WORKERS, [n.metadata.name for n in items]
    for node in items:
        assert node.spec.provider_id.startswith("openstack:///"), node.spec
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", node.status.conditions
        assert node.status.node_info.kubelet_version == EXPECTED_VERSION, node.status.node_info
    one = core.read_node(items[0].metadata.name)
    assert one.metadata.uid == items[0].metadata.uid
    workers = core.list_node(label_selector="!node-role.kubernetes.io/control-plane").items
    assert len(workers) == WORKERS, [n.metadata.name for n in workers]


@check
def namespaced_crud():
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}),
        data={"colour": "blue"},
    )
    created = core.create_namespaced_config_map(NS, body)
    assert created.metadata.resource_version and created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    expect_error(409, "AlreadyExists", core.create_namespaced_config_map, NS, body)
    expect_error(404, "NotFound", core.read_namespaced_config_map, "nope", NS)
    got = core.read_namespaced_config_map("settings", NS)
    assert got.data == {"colour": "blue"}, got.data

    # A dict body is sent as a strategic merge patch, a list as a JSON patch.
    patched = core.patch_namespaced_config_map("settings", NS, {"data": {"size": "3"}})
    assert patched.data == {"colour": "blue", "size": "3"}, patched.data
    patched = core.patch_namespaced_config_map(
        "settings", NS, [{"op": "replace", "path": "/data/colour", "value": "red"}])
    assert patched.data["colour"] == "red", patched.data
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    # Replace with a stale resourceVersion conflicts, as optimistic concurrency wants.
    stale = got
    stale.data = {"colour": "green"}
    expect_error(409, "Conflict", core.replace_namespaced_config_map, "settings", NS, stale)
    fresh = core.read_namespaced_config_map("settings", NS)
    fresh.data["colour"] = "green"
    assert core.replace_namespaced_config_map("settings", NS, fresh).data["colour"] == "green"

    listed = core.list_namespaced_config_map(NS, label_selector="app=py")
    assert [c.metadata.name for c in listed.items] == ["settings"], listed.items
    assert listed.metadata.resource_version
    by_field = core.list_namespaced_config_map(NS, field_selector="metadata.name=settings")
    assert len(by_field.items) == 1
    everywhere = core.list_config_map_for_all_namespaces(label_selector="app=py")
    assert [c.metadata.namespace for c in everywhere.items] == [NS]

    secret = core.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="token"), string_data={"key": "value"}))
    assert secret.data == {"key": "dmFsdWU="}, secret.data

    deleted = core.delete_namespaced_config_map(
        "settings", NS, body=client.V1DeleteOptions(propagation_policy="Foreground"))
    assert deleted is not None
    expect_error(404, "NotFound", core.read_namespaced_config_map, "settings", NS)
    expect_error(404, "NotFound", core.delete_namespaced_config_map, "settings", NS)


@check
def invalid_objects_are_refused_with_a_status():
    bad = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_A_Name"))
    body = expect_error(422, "Invalid", core.create_namespaced_config_map, NS, bad)
    assert body["details"]["name"] == "Not_A_Name", body
    expect_error(404, "NotFound", core.create_namespaced_config_map, "no-such-namespace",
                 client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))


@check
def watch_sees_changes():
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    seen = []

    def make():
        time.sleep(0.5)
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"),
                                   data={"n": "1"}))
        core.patch_namespaced_config_map("watched", NS, {"data": {"n": "2"}})
        core.delete_namespaced_config_map("watched", NS)

    maker = threading.Thread(target=make)
    maker.start()
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, NS, resource_version=start,
                          timeout_seconds=20):
        obj = event["object"]
        if obj.metadata.name != "watched":
            continue
        seen.append((event["type"], (obj.data or {}).get("n")))
        if event["type"] == "DELETED":
            w.stop()
    maker.join()
    assert seen == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")], seen


@check
def server_side_apply_and_dynamic_client():
    dyn = dynamic.DynamicClient(api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    applied = deployments.server_side_apply(body=manifest, field_manager="py-client")
    managers = [m.manager for m in applied.metadata.managedFields]
    assert "py-client" in managers, managers
    # Another manager taking a field it does not own conflicts, then forces.
    taken = dict(manifest, spec=dict(manifest["spec"], replicas=3))
    try:
        deployments.server_side_apply(body=taken, field_manager="other")
        raise AssertionError("a conflicting apply went through")
    except ApiException as err:
        assert err.status == 409, err.body
        assert status_of(err)["reason"] == "Conflict"
    forced = deployments.server_side_apply(body=taken, field_manager="other", force_conflicts=True)
    assert forced.spec.replicas == 3
    until("the deployment to be available", lambda: (
        apps.read_namespaced_deployment("web", NS).status.available_replicas == 3))
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert scale.spec.replicas == 3
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert len(pods) == 3 and all(p.spec.node_name for p in pods), pods


@check
def eviction_honours_disruption_budgets():
    policy = client.PolicyV1Api(api)
    pods = core.list_namespaced_pod(NS, label_selector="app=web").items
    assert pods, "the deployment's pods"
    policy.create_namespaced_pod_disruption_budget(NS, client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1PodDisruptionBudgetSpec(
            max_unavailable=0, selector=client.V1LabelSelector(match_labels={"app": "web"}))))
    until("the budget's status", lambda: policy.read_namespaced_pod_disruption_budget(
        "web", NS).status.observed_generation == 1)
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pods[0].metadata.name,
                                                              namespace=NS))
    body = expect_error(429, "TooManyRequests", core.create_namespaced_pod_eviction,
                        pods[0].metadata.name, NS, eviction)
    assert "disruption budget" in body["message"], body
    policy.delete_namespaced_pod_disruption_budget("web", NS)
    core.create_namespaced_pod_eviction(pods[0].metadata.name, NS, eviction)
    until("the evicted pod to go", lambda: pods[0].metadata.name not in [
        p.metadata.name for p in core.list_namespaced_pod(NS).items])


@check
def custom_resources():
    ext = client.ApiextensionsV1Api(api)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }
    ext.create_custom_resource_definition(crd)
    until("the CRD to be established", lambda: any(
        c.type == "Established" and c.status == "True"
        for c in (ext.read_custom_resource_definition("widgets.example.com").status.conditions
                  or [])))
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object("example.com", "v1", NS, "widgets", {
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}})
    got = custom.get_namespaced_custom_object("example.com", "v1", NS, "widgets", "w1")
    assert got["spec"]["size"] == 3, got
    custom.patch_namespaced_custom_object("example.com", "v1", NS, "widgets", "w1",
                                          {"spec": {"size": 4}})
    listed = custom.list_namespaced_custom_object("example.com", "v1", NS, "widgets")
    assert [i["spec"]["size"] for i in listed["items"]] == [4], listed
    custom.delete_namespaced_custom_object("example.com", "v1", NS, "widgets", "w1")
    ext.delete_custom_resource_definition("widgets.example.com")


@check
def the_addons_kinds():
    """Everything the cluster's addons installed, read back through typed clients."""
    assert any(d.metadata.name == "cilium" for d in
               apps.list_namespaced_daemon_set("kube-system").items)
    deployments = apps.list_deployment_for_all_namespaces().items
    for d in deployments:
        assert d.status.available_replicas == d.spec.replicas, (d.metadata.name, d.status)
    names = {d.metadata.name for d in deployments}
    assert {"cert-manager", "cert-manager-cainjector", "cert-manager-webhook",
            "nginx-ingress-controller"} <= names, names
    storage = client.StorageV1Api(api)
    defaults = [s.metadata.name for s in storage.list_storage_class().items
                if (s.metadata.annotations or {}).get(
                    "storageclass.kubernetes.io/is-default-class") == "true"]
    assert len(defaults) == 1, defaults
    assert storage.list_csi_driver().items
    rbac = client.RbacAuthorizationV1Api(api)
    assert rbac.list_cluster_role().items and rbac.list_cluster_role_binding().items
    rbac.list_role_binding_for_all_namespaces()  # answers, with or without items
    assert core.list_service_account_for_all_namespaces().items
    services = core.list_service_for_all_namespaces(
        field_selector="metadata.name=nginx-ingress-controller").items
    assert services and services[0].spec.type == "LoadBalancer", services
    classes = client.NetworkingV1Api(api).list_ingress_class().items
    assert [(c.metadata.name, c.spec.controller) for c in classes] == [
        ("nginx", "nginx.org/ingress-controller")], classes
    # Webhooks and the metrics API registered by the charts.
    admission = client.AdmissionregistrationV1Api(api)
    assert any(w.metadata.name == "cert-manager-webhook" for w in
               admission.list_validating_webhook_configuration().items)
    assert client.ApiregistrationV1Api(api).read_api_service("v1beta1.metrics.k8s.io")
    crds = {c.metadata.name for c in
            client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert "clusterissuers.cert-manager.io" in crds, crds
    issuers = client.CustomObjectsApi(api).list_cluster_custom_object(
        "cert-manager.io", "v1", "clusterissuers")
    assert {i["spec"]["acme"]["email"] for i in issuers["items"]} == {"ops@example.org"}
    # Each node's kubelet holds its lease.
    leases = client.CoordinationV1Api(api).list_namespaced_lease("kube-node-lease").items
    assert sorted(l.spec.holder_identity for l in leases) == sorted(
        n.metadata.name for n in core.list_node().items), leases


@check
def cleanup():
    core.delete_namespace(NS)
    until("the namespace to go", lambda: NS not in [
        n.metadata.name for n in core.list_namespace().items])


failed = 0
for fn in CHECKS:
    try:
        fn()
        print(f"ok {fn.__name__}", flush=True)
    except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
        failed += 1
        print(f"FAILED {fn.__name__}", flush=True)
        traceback.print_exc(file=sys.stdout)
sys.exit(1 if failed else 0)
