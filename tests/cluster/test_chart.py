"""The Helm chart on the real control plane: install, upgrade, uninstall, and each component's RBAC
exercised with its own ServiceAccount token (TokenRequest API), allowed and denied."""

from __future__ import annotations

import base64
import pathlib
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from fairpack_dev import chart, cluster, credentials, fairpack_up, operator_process, testkit
from fairpack_dev.operator_fixtures import Kube, kube
from kubernetes import client, config
from kubernetes.client import exceptions as client_exceptions

from fairpack.solver import labels

pytestmark = pytest.mark.cluster
__all__ = ["kube"]  # the operator tests' fixture, used here too

NAMESPACE = "fairpack-chart-test"
RELEASE = "fpct"
WORK_NAMESPACE = "fairpack-chart-work"
SCHEDULER_NAME = "fpct-scheduler"
# A release of its own: cluster-scoped names (ClusterRoles, peering) and the scheduler's profile must
# not clash with the demo's or another test's.
# A peering of this run's own: a peer left registered by an earlier run would pause the operator.
PEERING = f"fpct-{uuid.uuid4().hex[:6]}"
VALUES = {
    "operator": {"peering": PEERING},
    "scheduler": {"schedulerName": SCHEDULER_NAME},
    # The local scheduler dials the local extender at 127.0.0.1: the certificate must name it.
    "extender": {"tls": {"extraIPs": ["127.0.0.1"]}},
}


def admin(kubeconfig: pathlib.Path) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return api


@pytest.fixture(scope="module")
def release(kubeconfig: str, api: client.ApiClient) -> Iterator[list[dict[str, Any]]]:
    """The chart installed as release fpct; yields the objects `helm get manifest` lists."""
    path = pathlib.Path(kubeconfig)
    objects = Kube(api)
    chart.helm("uninstall", RELEASE, "-n", NAMESPACE, "--ignore-not-found", kubeconfig=path)
    # The release's namespace enforces the restricted Pod Security Standard: the chart's pods must pass it.
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    for name, labels_ in ((NAMESPACE, restricted), (WORK_NAMESPACE, {})):
        if objects.get("v1", "Namespace", name) is None:
            objects.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        objects.patch("v1", "Namespace", name, {"metadata": {"labels": labels_}})
    chart.helm(
        "install", RELEASE, str(chart.CHART), "-n", NAMESPACE, *chart.set_args(VALUES), kubeconfig=path
    )
    manifest = chart.helm("get", "manifest", RELEASE, "-n", NAMESPACE, kubeconfig=path)
    yield [doc for doc in yaml.safe_load_all(manifest) if doc]
    chart.helm("uninstall", RELEASE, "-n", NAMESPACE, "--ignore-not-found", kubeconfig=path)


def sa_client(kubeconfig: str, tmp_path: pathlib.Path, component: str) -> client.ApiClient:
    """A client that authenticates as the chart's ServiceAccount of ``component``."""
    path = credentials.write_kubeconfig(
        pathlib.Path(kubeconfig),
        tmp_path / f"{component}.kubeconfig",
        namespace=NAMESPACE,
        service_account=f"{RELEASE}-fairpack-{component}",
    )
    return admin(path)


def allowed(api: client.ApiClient, verb: str, resource: str, *, namespace: str = "", name: str = "") -> bool:
    """Whether the client's own identity may do ``verb`` on ``resource`` (``group/plural/sub``)."""
    group, _, rest = resource.rpartition(":")
    plural, _, subresource = rest.partition("/")
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                group=group,
                resource=plural,
                subresource=subresource or None,
                verb=verb,
                namespace=namespace or None,
                name=name or None,
            )
        )
    )
    result = client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    return bool(result.status and result.status.allowed)


def test_every_object_of_the_release_is_in_the_cluster(release: list[dict[str, Any]], kube: Kube) -> None:
    kinds = set()
    for obj in release:
        resource = kube.res(obj["apiVersion"], obj["kind"])
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        found = resource.get(name=obj["metadata"]["name"], namespace=namespace).to_dict()
        assert found["metadata"]["name"] == obj["metadata"]["name"]
        kinds.add(obj["kind"])
    expected = {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role"}
    assert (
        expected | {"RoleBinding", "ConfigMap", "Secret", "PodDisruptionBudget", "ClusterKopfPeering"}
        <= kinds
    )
    for name in ("llmservices.fairpack.io", "sparkjobs.fairpack.io", "tenants.fairpack.io"):
        assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) is not None


def test_every_pod_passes_the_restricted_pod_security_standard(
    release: list[dict[str, Any]], kube: Kube
) -> None:
    """The namespace enforces `restricted`: the ReplicaSets could create every replica (no container
    runs here, so admission is what is checked: non-root, no escalation, capabilities dropped, seccomp)."""
    replicas = sum(o["spec"]["replicas"] for o in release if o["kind"] == "Deployment")

    def created() -> int | None:
        pods = kube.list("v1", "Pod", NAMESPACE)
        return len(pods) if len(pods) >= replicas else None

    assert testkit.wait_for(created, 60, what="the chart's pods") == replicas
    refused = [e for e in kube.list("v1", "Event", NAMESPACE) if e.get("reason") == "FailedCreate"]
    assert refused == []


def test_upgrade_changes_the_scheduler_configuration_and_keeps_the_certificate(
    release: list[dict[str, Any]],
    kubeconfig: str,
    kube: Kube,
) -> None:
    path = pathlib.Path(kubeconfig)

    def ca() -> str:
        secret = kube.get("v1", "Secret", f"{RELEASE}-fairpack-extender-tls", NAMESPACE)
        assert secret is not None
        return str(secret["data"]["ca.crt"])

    ca_before = ca()
    values = {
        **VALUES,
        "scheduler": {"schedulerName": SCHEDULER_NAME, "extender": {"ignorable": True, "weight": 7}},
    }
    chart.helm(
        "upgrade", RELEASE, str(chart.CHART), "-n", NAMESPACE, *chart.set_args(values), kubeconfig=path
    )
    try:
        config_map = kube.get("v1", "ConfigMap", f"{RELEASE}-fairpack-scheduler-config", NAMESPACE)
        assert config_map is not None
        (extender,) = yaml.safe_load(config_map["data"]["config.yaml"])["extenders"]
        assert (extender["ignorable"], extender["weight"]) == (True, 7)
        assert ca() == ca_before
        assert base64.b64decode(ca_before).startswith(b"-----BEGIN CERTIFICATE-----")
    finally:
        chart.helm(
            "upgrade", RELEASE, str(chart.CHART), "-n", NAMESPACE, *chart.set_args(VALUES), kubeconfig=path
        )
    history = chart.helm("history", RELEASE, "-n", NAMESPACE, kubeconfig=path)
    assert "upgrade complete" in history.lower() or "deployed" in history


@pytest.mark.parametrize(
    ("component", "verb", "resource", "namespace", "name", "expected"),
    [
        pytest.param("extender", "watch", ":nodes", "", "", True, id="extender-watches-nodes"),
        pytest.param("extender", "patch", ":pods", WORK_NAMESPACE, "", True, id="extender-annotates-pods"),
        pytest.param("extender", "create", ":pods/binding", WORK_NAMESPACE, "", True, id="extender-binds"),
        pytest.param(
            "extender", "delete", ":pods", WORK_NAMESPACE, "", False, id="extender-cannot-delete-pods"
        ),
        pytest.param(
            "extender", "create", ":pods/eviction", WORK_NAMESPACE, "", False, id="extender-cannot-evict"
        ),
        pytest.param("extender", "get", ":secrets", NAMESPACE, "", False, id="extender-cannot-read-secrets"),
        pytest.param("extender", "update", ":nodes", "", "", False, id="extender-cannot-change-nodes"),
        pytest.param("operator", "list", "fairpack.io:sparkjobs", "", "", True, id="operator-lists-jobs"),
        pytest.param(
            "operator", "patch", "fairpack.io:sparkjobs/status", WORK_NAMESPACE, "", True, id="op-status"
        ),
        pytest.param(
            "operator", "create", "apps:deployments", WORK_NAMESPACE, "", True, id="operator-deployments"
        ),
        pytest.param("operator", "create", ":pods/eviction", WORK_NAMESPACE, "", True, id="operator-evicts"),
        pytest.param(
            "operator", "patch", "kopf.dev:clusterkopfpeerings", "", PEERING, True, id="operator-peers"
        ),
        pytest.param("operator", "create", ":configmaps", NAMESPACE, "", True, id="operator-own-configmaps"),
        pytest.param(
            "operator", "create", ":configmaps", WORK_NAMESPACE, "", False, id="op-no-foreign-configmaps"
        ),
        pytest.param("operator", "get", ":secrets", WORK_NAMESPACE, "", False, id="operator-no-secrets"),
        pytest.param("operator", "get", ":secrets", NAMESPACE, "", False, id="operator-no-own-secrets"),
        pytest.param(
            "operator", "create", ":pods/binding", WORK_NAMESPACE, "", False, id="operator-cannot-bind"
        ),
        pytest.param("operator", "delete", ":nodes", "", "", False, id="operator-cannot-delete-nodes"),
        pytest.param(
            "operator",
            "create",
            "rbac.authorization.k8s.io:clusterroles",
            "",
            "",
            False,
            id="operator-no-rbac",
        ),
        pytest.param("scheduler", "create", ":pods/binding", WORK_NAMESPACE, "", True, id="scheduler-binds"),
        pytest.param(
            "scheduler",
            "update",
            "coordination.k8s.io:leases",
            NAMESPACE,
            "fairpack-scheduler",
            True,
            id="lease",
        ),
        pytest.param(
            "scheduler",
            "update",
            "coordination.k8s.io:leases",
            NAMESPACE,
            "someone-else",
            False,
            id="other-lease",
        ),
        pytest.param(
            "scheduler",
            "get",
            ":configmaps",
            "kube-system",
            "extension-apiserver-authentication",
            True,
            id="scheduler-reads-client-ca",
        ),
        pytest.param("scheduler", "get", ":secrets", NAMESPACE, "", False, id="scheduler-no-secrets"),
        # Delegated authentication and authorisation of the scheduler's secure port (/healthz, /metrics).
        pytest.param(
            "scheduler", "create", "authentication.k8s.io:tokenreviews", "", "", True, id="scheduler-authn"
        ),
        pytest.param(
            "scheduler",
            "create",
            "authorization.k8s.io:subjectaccessreviews",
            "",
            "",
            True,
            id="scheduler-authz",
        ),
    ],
)
def test_service_account_permissions(
    release: list[dict[str, Any]],
    kubeconfig: str,
    tmp_path: pathlib.Path,
    component: str,
    verb: str,
    resource: str,
    namespace: str,
    name: str,
    expected: bool,
) -> None:
    with sa_client(kubeconfig, tmp_path, component) as api:
        assert allowed(api, verb, resource, namespace=namespace, name=name) is expected


def gpu_pod(name: str) -> dict[str, Any]:
    """A pod no scheduler will take (its scheduler does not run), so only our Binding places it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": WORK_NAMESPACE},
        "spec": {
            "schedulerName": "nobody-" + uuid.uuid4().hex[:6],
            "containers": [
                {"name": "main", "image": "busybox", "resources": {"limits": {labels.GPU_RESOURCE: "1"}}}
            ],
        },
    }


def test_extender_token_can_annotate_and_bind_a_pod_but_not_delete_it(
    release: list[dict[str, Any]],
    kubeconfig: str,
    tmp_path: pathlib.Path,
    kube: Kube,
) -> None:
    name = f"bind-{uuid.uuid4().hex[:6]}"
    kube.create(gpu_pod(name))
    try:
        with sa_client(kubeconfig, tmp_path, "extender") as api:
            core = client.CoreV1Api(api)
            patch = {"metadata": {"annotations": {labels.GPU_INDICES_ANNOTATION: "0"}}}
            core.patch_namespaced_pod(name, WORK_NAMESPACE, patch)
            binding = client.V1Binding(
                metadata=client.V1ObjectMeta(name=name),
                target=client.V1ObjectReference(api_version="v1", kind="Node", name="chart-test-node"),
            )
            # As kube-scheduler binds: POST pods/<name>/binding. (The client cannot parse the Status
            # the apiserver answers with, hence the raw response.)
            core.create_namespaced_pod_binding(name, WORK_NAMESPACE, binding, _preload_content=False)
            with pytest.raises(client_exceptions.ApiException) as denied:
                core.delete_namespaced_pod(name, WORK_NAMESPACE)
            assert denied.value.status == 403
        bound = kube.get("v1", "Pod", name, WORK_NAMESPACE)
        assert bound is not None
        assert bound["spec"]["nodeName"] == "chart-test-node"
        assert bound["metadata"]["annotations"][labels.GPU_INDICES_ANNOTATION] == "0"
    finally:
        kube.delete("v1", "Pod", name, WORK_NAMESPACE)


def test_scheduler_and_extender_run_the_charts_configuration_and_bind_a_gpu_pod(
    release: list[dict[str, Any]],
    kubeconfig: str,
    tmp_path: pathlib.Path,
    kube: Kube,
    namespace: str,
    gpu_nodes: Any,
) -> None:
    """kube-scheduler with the ConfigMap the chart installed (profile, leader election, extenders
    entry with TLS) as the chart's scheduler ServiceAccount, calling fairpack-extender served with
    the chart's certificate as the extender ServiceAccount: the scheduler takes its own Lease, the
    extender binds the pod and records the GPU it chose; neither is refused anything."""
    group = gpu_nodes("h100", count=1)
    creds = fairpack_up.credentials_for(
        pathlib.Path(kubeconfig), tmp_path, fullname=f"{RELEASE}-fairpack", namespace=NAMESPACE
    )
    chart_config = fairpack_up.chart_scheduler_config(
        pathlib.Path(kubeconfig), fullname=f"{RELEASE}-fairpack", namespace=NAMESPACE
    )
    port = free_port()
    with fairpack_up.extender(creds, tmp_path / "extender.log", port=port) as url:
        local = fairpack_up.local_scheduler_config(
            chart_config, kubeconfig=creds.scheduler, ca_file=creds.ca, extender_url=url
        )
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(local))
        binary = chart.kubectl_binary().with_name("kube-scheduler")
        args = [str(binary), f"--config={tmp_path / 'config.yaml'}", "--secure-port=0"]
        pod = gpu_pod(f"sched-{uuid.uuid4().hex[:6]}")
        pod["metadata"]["namespace"] = namespace
        pod["spec"]["schedulerName"] = SCHEDULER_NAME
        pod["spec"]["nodeSelector"] = group.selector
        pod["spec"]["tolerations"] = [group.toleration]
        with fairpack_up.process(args, tmp_path / "scheduler.log", {}):
            kube.create(pod)
            name = pod["metadata"]["name"]
            bound = testkit.wait_for(
                lambda: _bound(kube, name, namespace), 90, what="the pod bound through the extender"
            )
            lease = kube.get("coordination.k8s.io/v1", "Lease", "fairpack-scheduler", NAMESPACE)
    logs = {f: (tmp_path / f).read_text() for f in ("scheduler.log", "extender.log")}
    assert bound["spec"]["nodeName"] in group.names
    assert labels.GPU_INDICES_ANNOTATION in bound["metadata"]["annotations"], logs["extender.log"][-3000:]
    assert lease is not None
    assert lease["spec"]["holderIdentity"]
    for log in logs.values():
        assert "forbidden" not in log.lower(), log[-3000:]


def _bound(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    """The pod once it has a node, else {}."""
    pod = kube.get("v1", "Pod", name, namespace) or {}
    return pod if (pod.get("spec") or {}).get("nodeName") else {}


def free_port() -> int:
    return cluster.free_ports(1)[0]


def test_operator_runs_with_its_service_account_token(
    release: list[dict[str, Any]],
    kubeconfig: str,
    tmp_path: pathlib.Path,
    kube: Kube,
) -> None:
    """The operator, run locally as the chart's ServiceAccount, queues a SparkJob (writes its status)
    and creates its gated pods, and is refused nothing on the way."""
    token_config = credentials.write_kubeconfig(
        pathlib.Path(kubeconfig),
        tmp_path / "operator.kubeconfig",
        namespace=NAMESPACE,
        service_account=f"{RELEASE}-fairpack-operator",
    )
    name = f"chart-{uuid.uuid4().hex[:6]}"
    tenant = {"apiVersion": "fairpack.io/v1alpha1", "kind": "Tenant", "metadata": {"name": name}}
    kube.create({**tenant, "spec": {"weight": 1}})
    job = {
        "apiVersion": "fairpack.io/v1alpha1",
        "kind": "SparkJob",
        "metadata": {"name": name, "namespace": WORK_NAMESPACE},
        "spec": {
            "tenant": name,
            "user": "tester",
            "mainApplicationFile": "local:///opt/spark/examples/jars/spark-examples.jar",
            "executor": {"instances": 1, "cores": 1, "memory": "1Gi"},
            "driver": {"cores": 1, "memory": "1Gi"},
            "estimatedSeconds": 60,
        },
    }
    kube.create(job)
    log = tmp_path / "operator.log"
    env = {"FAIRPACK_NAMESPACE": NAMESPACE, "FAIRPACK_PEERING": PEERING, "FAIRPACK_FALLBACK_ENABLED": "false"}

    def phase_and_pods() -> tuple[str, list[str]] | None:
        found = kube.get("fairpack.io/v1alpha1", "SparkJob", name, WORK_NAMESPACE) or {}
        phase = (found.get("status") or {}).get("phase")
        pods = [p["metadata"]["name"] for p in kube.list("v1", "Pod", WORK_NAMESPACE)]
        mine = [p for p in pods if p.startswith(name)]
        return (phase, mine) if phase and mine else None

    try:
        with operator_process.OperatorProcess(token_config, log, env=env):
            # Queued, or admitted at once: either way the operator wrote the status with its token.
            seen = testkit.wait_for(phase_and_pods, 90, what="the job's status and pods")
        text = log.read_text()
        assert seen is not None
        assert seen[0] in ("Queued", "Admitted", "Running"), text[-3000:]
        assert "Forbidden" not in text, text[-3000:]
    finally:
        kube.delete("fairpack.io/v1alpha1", "SparkJob", name, WORK_NAMESPACE)
        kube.delete("fairpack.io/v1alpha1", "Tenant", name)


def test_uninstall_removes_the_release_but_keeps_the_crds(kubeconfig: str, kube: Kube) -> None:
    """A fresh release of its own, installed then uninstalled."""
    path = pathlib.Path(kubeconfig)
    name, namespace = "fpct-gone", "fairpack-chart-gone"
    values = {"operator": {"peering": "fpct-gone"}}
    install = ["install", name, str(chart.CHART), "-n", namespace, "--create-namespace"]
    chart.helm(*install, *chart.set_args(values), kubeconfig=path)
    rbac = "rbac.authorization.k8s.io/v1"
    made = [
        (rbac, "ClusterRole", f"{name}-fairpack-operator", None),
        (rbac, "RoleBinding", f"{name}-fairpack-scheduler-authentication-reader", "kube-system"),
        ("apps/v1", "Deployment", f"{name}-fairpack-extender", namespace),
    ]
    assert all(kube.get(*ref) is not None for ref in made)
    chart.helm("uninstall", name, "-n", namespace, "--wait", kubeconfig=path)
    assert [ref for ref in made if kube.get(*ref) is not None] == []
    assert (
        kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "sparkjobs.fairpack.io") is not None
    )
    kube.delete("v1", "Namespace", namespace)


def test_plain_manifests_apply_to_the_cluster_and_delete_cleanly(kubeconfig: str, kube: Kube) -> None:
    """manifests/fairpack.yaml, for users without Helm, is accepted as a whole (server-side apply);
    its own objects are then deleted again (the CRDs, which other tests use, are left)."""
    kubectl = [str(chart.kubectl_binary()), f"--kubeconfig={kubeconfig}"]
    applied = subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(chart.PLAIN_MANIFEST)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    try:
        assert applied.returncode == 0, applied.stderr
        assert kube.get("apps/v1", "Deployment", "fairpack-extender", chart.NAMESPACE) is not None
        assert kube.get("v1", "ConfigMap", "fairpack-scheduler-config", chart.NAMESPACE) is not None
    finally:
        subprocess.run(
            [
                *kubectl,
                "delete",
                "-f",
                str(chart.PLAIN_MANIFEST),
                "-l",
                "app.kubernetes.io/instance=fairpack",
            ],
            capture_output=True,
            check=False,
            timeout=120,
        )
        kube.delete("v1", "Namespace", chart.NAMESPACE)
    assert kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", "fairpack-operator") is None
