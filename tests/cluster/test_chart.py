"""The Helm chart on the real control plane: install, upgrade, uninstall, and each component's RBAC
exercised with its own ServiceAccount token (TokenRequest API), allowed and denied."""

from __future__ import annotations

import base64
import copy
import json
import pathlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from fairpack_dev import chart, cluster, credentials, fairpack_up, operator_process, testkit
from fairpack_dev.operator_fixtures import FAIRPACK, Kube, executor_pod, kube, priority_class, single_replica
from fairpack_dev.testkit import Pod
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
    # The API server calls the local operator's webhook at 127.0.0.1: its certificate must name it.
    "operator": {"peering": PEERING, "webhook": {"enabled": True, "tls": {"extraIPs": ["127.0.0.1"]}}},
    "scheduler": {"schedulerName": SCHEDULER_NAME},
    # The local scheduler dials the local extender at 127.0.0.1: the certificate must name it.
    "extender": {"tls": {"extraIPs": ["127.0.0.1"]}},
}
OPERATOR = f"{RELEASE}-fairpack-operator"


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
        pytest.param(
            "extender", "patch", ":pods", WORK_NAMESPACE, "", False, id="extender-cannot-patch-pods"
        ),
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
        pytest.param("operator", "patch", ":pods/status", WORK_NAMESPACE, "", True, id="operator-pins"),
        pytest.param(
            "operator", "list", "policy:poddisruptionbudgets", "", "", True, id="operator-reads-budgets"
        ),
        pytest.param("operator", "update", ":pods", WORK_NAMESPACE, "", False, id="operator-never-puts"),
        pytest.param(
            "operator",
            "patch",
            "admissionregistration.k8s.io:mutatingwebhookconfigurations",
            "",
            OPERATOR,
            False,
            id="operator-cannot-change-its-webhook",
        ),
        pytest.param(
            "operator", "patch", "kopf.dev:clusterkopfpeerings", "", PEERING, True, id="operator-peers"
        ),
        pytest.param("operator", "patch", ":configmaps", NAMESPACE, "", True, id="operator-own-configmaps"),
        pytest.param(
            "operator", "patch", ":configmaps", WORK_NAMESPACE, "", False, id="op-no-foreign-configmaps"
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


def refused(call: Callable[[], object]) -> int:
    """The HTTP status with which the API server refused ``call`` (the test fails if it went through)."""
    with pytest.raises(client_exceptions.ApiException) as denied:
        call()
    return int(denied.value.status)


def test_extender_token_can_bind_a_pod_with_its_devices_but_not_patch_nor_delete_it(
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
            assert refused(lambda: core.patch_namespaced_pod(name, WORK_NAMESPACE, patch)) == 403
            # As the extender binds: the Binding carries the device annotations, which the API
            # server copies onto the pod. (The client cannot parse the Status the apiserver
            # answers with, hence the raw response.)
            binding = client.V1Binding(
                metadata=client.V1ObjectMeta(name=name, annotations={labels.GPU_INDICES_ANNOTATION: "0"}),
                target=client.V1ObjectReference(api_version="v1", kind="Node", name="chart-test-node"),
            )
            core.create_namespaced_pod_binding(name, WORK_NAMESPACE, binding, _preload_content=False)
            assert refused(lambda: core.delete_namespaced_pod(name, WORK_NAMESPACE)) == 403
            assert refused(lambda: core.list_namespaced_secret(NAMESPACE)) == 403
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


def operator_kubeconfig(kubeconfig: str, tmp_path: pathlib.Path) -> pathlib.Path:
    """A kubeconfig that authenticates as the chart's operator ServiceAccount."""
    return credentials.write_kubeconfig(
        pathlib.Path(kubeconfig),
        tmp_path / "operator.kubeconfig",
        namespace=NAMESPACE,
        service_account=OPERATOR,
    )


def chart_operator_env(release: list[dict[str, Any]], **overrides: str) -> dict[str, str]:
    """The FAIRPACK_* settings the chart's operator Deployment sets (its namespace included), with
    ``overrides``; the liveness and metrics ports are off (other processes here may hold them)."""
    deployment = next(o for o in release if o["kind"] == "Deployment" and o["metadata"]["name"] == OPERATOR)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: str(e["value"]) for e in container["env"] if "value" in e}
    return {
        **env,
        "FAIRPACK_NAMESPACE": NAMESPACE,
        "FAIRPACK_LIVENESS_PORT": "0",
        "FAIRPACK_METRICS_PORT": "0",
        **overrides,
    }


def assert_refused_nothing(log: pathlib.Path, kube: Kube, namespace: str) -> None:
    """Neither the operator's log nor the events it posted (an LLMService's CannotRealise carries
    the API's refusal) tell of a refused call."""
    text = log.read_text()
    assert "Forbidden" not in text, text[-3000:]
    assert " 403" not in text, text[-3000:]
    messages = [str(e.get("message")) for e in kube.list("v1", "Event", namespace)]
    assert [m for m in messages if "forbidden" in m.lower()] == []


def local_webhook(kube: Kube, tmp_path: pathlib.Path, port: int) -> tuple[str, dict[str, str]]:
    """The chart's MutatingWebhookConfiguration, copied with its Service swapped for the local
    operator's address (no pod runs here); the operator settings that serve it with the chart's
    certificate. Returns the copy's name and those settings."""
    chart_config = kube.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", OPERATOR)
    assert chart_config is not None
    local = copy.deepcopy(chart_config)
    name = f"{OPERATOR}-local"
    local["metadata"] = {"name": name}
    for hook in local["webhooks"]:
        path = hook["clientConfig"].pop("service")["path"]
        hook["clientConfig"]["url"] = f"https://127.0.0.1:{port}{path}"
    kube.create(local)
    secret = kube.get("v1", "Secret", f"{OPERATOR}-webhook-tls", NAMESPACE)
    assert secret is not None
    files = {}
    for key in ("tls.crt", "tls.key"):
        files[key] = tmp_path / f"webhook-{key}"
        files[key].write_bytes(base64.b64decode(secret["data"][key]))
    env = {
        "FAIRPACK_WEBHOOK_ADDR": "127.0.0.1",
        "FAIRPACK_WEBHOOK_PORT": str(port),
        "FAIRPACK_WEBHOOK_CERTFILE": str(files["tls.crt"]),
        "FAIRPACK_WEBHOOK_KEYFILE": str(files["tls.key"]),
    }
    return name, env


@pytest.mark.local_only  # the API server calls the webhook at 127.0.0.1 on this machine
def test_operator_token_queues_a_sparkjob_and_its_webhook_gates_the_drivers_executors(
    release: list[dict[str, Any]],
    kubeconfig: str,
    tmp_path: pathlib.Path,
    kube: Kube,
) -> None:
    """The operator, run locally as the chart's ServiceAccount with the chart's settings, queues a
    SparkJob (writes its status) and creates its gated pods; the chart's webhook configuration
    (pointed at the local operator) and certificate gate an executor the driver creates, with
    kopf's management of the configuration off. It is refused nothing on the way."""
    name = f"chart-{uuid.uuid4().hex[:6]}"
    tenant = {"apiVersion": FAIRPACK, "kind": "Tenant", "metadata": {"name": name}}
    kube.create({**tenant, "spec": {"weight": 1}})
    job = {
        "apiVersion": FAIRPACK,
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
    hook_name, hook_env = local_webhook(kube, tmp_path, free_port())
    env = chart_operator_env(release, FAIRPACK_FALLBACK_ENABLED="false", **hook_env)
    assert (env["FAIRPACK_WEBHOOK_ENABLED"], env["FAIRPACK_WEBHOOK_MANAGE"]) == ("true", "false")

    def phase_and_pods() -> tuple[str, list[str]] | None:
        found = kube.get(FAIRPACK, "SparkJob", name, WORK_NAMESPACE) or {}
        phase = (found.get("status") or {}).get("phase")
        pods = [p["metadata"]["name"] for p in kube.list("v1", "Pod", WORK_NAMESPACE)]
        mine = [p for p in pods if p.startswith(name)]
        return (phase, mine) if phase and mine else None

    extra: list[str] = []

    def gated_executor() -> dict[str, Any] | None:
        # Until kopf's server listens the API server ignores the webhook (failurePolicy Ignore):
        # try again with a fresh executor.
        driver = kube.get("v1", "Pod", f"{name}-driver", WORK_NAMESPACE)
        if driver is None:
            return None
        extra.append(f"{name}-exec-extra-{len(extra)}")
        created = kube.create(executor_pod(driver, extra[-1]))
        gated = {"name": labels.ADMISSION_GATE} in (created["spec"].get("schedulingGates") or [])
        return created if gated else None

    try:
        with operator_process.OperatorProcess(operator_kubeconfig(kubeconfig, tmp_path), log, env=env):
            # Queued, or admitted at once: either way the operator wrote the status with its token.
            seen = testkit.wait_for(phase_and_pods, 90, what="the job's status and pods")
            executor = testkit.wait_for(gated_executor, 60, what="an executor gated by the webhook")
        assert seen is not None
        assert executor is not None
        assert seen[0] in ("Queued", "Admitted", "Running"), log.read_text()[-3000:]
        assert executor["metadata"]["labels"][labels.TENANT_LABEL] == name
        assert executor["metadata"]["labels"]["fairpack.io/sparkjob"] == name
        assert_refused_nothing(log, kube, WORK_NAMESPACE)
        # kopf left the configurations alone: no configuration of its own was made.
        assert (
            kube.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "fairpack.io") is None
        )
    finally:
        kube.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", hook_name)
        for pod in extra:
            kube.delete("v1", "Pod", pod, WORK_NAMESPACE)
        kube.delete(FAIRPACK, "SparkJob", name, WORK_NAMESPACE)
        kube.delete(FAIRPACK, "Tenant", name)


def without_finalizers(kube: Kube, kind: str, name: str, namespace: str | None) -> None:
    """Delete a fairpack object whose operator has stopped (kopf's finalizer would hold it)."""
    if kube.get(FAIRPACK, kind, name, namespace) is not None:
        kube.patch(FAIRPACK, kind, name, {"metadata": {"finalizers": None}}, namespace=namespace)
    kube.delete(FAIRPACK, kind, name, namespace)


def test_operator_token_applies_an_llmservices_deployment_service_and_pdb(
    release: list[dict[str, Any]],
    kubeconfig: str,
    tmp_path: pathlib.Path,
    kube: Kube,
    namespace: str,
    gpu_nodes: Any,
) -> None:
    """Server-side apply of the three objects (a PATCH that creates them), status to Ready, and
    a removed role's Deployment deleted, all with the chart's operator token."""
    gpu_nodes("h100", count=1, taint=False)
    log = tmp_path / "operator.log"
    spec = {
        "model": {"name": "meta-llama/Llama-3.1-8B", "image": "vllm/vllm-openai:v0.6.4"},
        "replicas": 1,
        "gpu": {"count": 1},
        "resources": {"cpu": "1", "memory": "1Gi"},
    }
    kube.create(
        {
            "apiVersion": FAIRPACK,
            "kind": "LLMService",
            "metadata": {"name": "llm", "namespace": namespace},
            "spec": spec,
        }
    )
    selector = "fairpack.io/llmservice=llm"
    kinds = (("apps/v1", "Deployment"), ("v1", "Service"), ("policy/v1", "PodDisruptionBudget"))

    def children() -> dict[str, list[str]]:
        return {
            k: sorted(o["metadata"]["name"] for o in kube.list(a, k, namespace, selector)) for a, k in kinds
        }

    def ready() -> bool:
        found = kube.get(FAIRPACK, "LLMService", "llm", namespace) or {}
        conditions = (found.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    env = chart_operator_env(release, FAIRPACK_FALLBACK_ENABLED="false", FAIRPACK_WEBHOOK_ENABLED="false")
    try:
        with operator_process.OperatorProcess(operator_kubeconfig(kubeconfig, tmp_path), log, env=env):
            made = testkit.wait_for(
                lambda: children() if all(children().values()) else None, 60, what="Deployment, Service, PDB"
            )
            testkit.wait_for(ready, 90, what="the LLMService Ready")
            # A prefill role: "serve" becomes "decode", so the serve Deployment goes (list + delete).
            prefill = {"replicas": 1, "gpu": {"count": 1}}
            kube.patch(FAIRPACK, "LLMService", "llm", {"spec": {"prefill": prefill}}, namespace=namespace)
            after = testkit.wait_for(
                lambda: children()["Deployment"] if "llm-serve" not in children()["Deployment"] else None,
                60,
                what="the serve role's Deployment deleted",
            )
            testkit.wait_for(
                lambda: children()["Service"] == ["llm", "llm-prefill"], 60, what="the prefill pods' Service"
            )
            # Back to one role: the prefill pods' headless Service goes too (list + delete).
            kube.patch(FAIRPACK, "LLMService", "llm", {"spec": {"prefill": None}}, namespace=namespace)
            testkit.wait_for(lambda: children()["Service"] == ["llm"], 60, what="the prefill Service deleted")
        assert made == {"Deployment": ["llm-serve"], "Service": ["llm"], "PodDisruptionBudget": ["llm"]}
        assert after == ["llm-decode", "llm-prefill"]
        assert_refused_nothing(log, kube, namespace)
    finally:
        without_finalizers(kube, "LLMService", "llm", namespace)


def test_operator_token_executes_a_fallback_plan(
    release: list[dict[str, Any]],
    kubeconfig: str,
    tmp_path: pathlib.Path,
    kube: Kube,
    namespace: str,
    gpu_nodes: Any,
) -> None:
    """tests/cluster/test_operator_fallback.py's case with the chart's operator token: the pin
    (annotation and status.nominatedNodeName), the eviction, the event and the plan ConfigMap in
    the release's namespace all go through, so the high-priority pod runs."""
    group = gpu_nodes("h100", count=2)  # 8 GPUs each, tainted for this test only
    priority = f"{namespace}-high"
    kube.create(priority_class(priority, 1000))
    log = tmp_path / "operator.log"

    def half(name: str, avoid: str | None = None) -> dict[str, Any]:
        pod = Pod(name, namespace).fairpack().gpus(4).on(group).label(app="half").manifest()
        pod["spec"]["priorityClassName"] = priority
        return single_replica(pod, app="half", avoid=avoid)

    def running(count: int) -> dict[str, str]:
        pods = kube.list("v1", "Pod", namespace, "app=half")
        found = {
            p["metadata"]["uid"]: p["spec"].get("nodeName", "")
            for p in pods
            if (p.get("status") or {}).get("phase") == "Running"
        }
        return found if len(found) == count else {}

    def big_node() -> str | None:
        pod = kube.get("v1", "Pod", "big", namespace) or {}
        return str(pod["spec"]["nodeName"]) if (pod.get("status") or {}).get("phase") == "Running" else None

    def unschedulable() -> bool:
        conds = ((kube.get("v1", "Pod", "big", namespace) or {}).get("status") or {}).get("conditions") or ()
        return any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conds)

    try:
        kube.create(half("half-a"))
        first = testkit.wait_for(lambda: running(1), 60, what="the first 4-GPU pod running")
        kube.create(half("half-b", avoid=next(iter(first.values()))))
        testkit.wait_for(lambda: running(2), 60, what="both 4-GPU pods running")
        big = Pod("big", namespace).fairpack().gpus(8).on(group).manifest()
        big["spec"]["priorityClassName"] = priority
        kube.create(big)
        testkit.wait_for(unschedulable, 60, what="kube-scheduler to leave the 8-GPU pod Unschedulable")
        env = chart_operator_env(
            release,
            FAIRPACK_WEBHOOK_ENABLED="false",
            FAIRPACK_FALLBACK_ENABLED="true",
            FAIRPACK_FALLBACK_DRY_RUN="false",
            FAIRPACK_FALLBACK_PENDING_DELAY_S="3",
            FAIRPACK_FALLBACK_INTERVAL_S="2",
            FAIRPACK_FALLBACK_SOLVER_WINDOW_S="3",
            FAIRPACK_FALLBACK_MAX_EVICTIONS="2",
        )
        with operator_process.OperatorProcess(operator_kubeconfig(kubeconfig, tmp_path), log, env=env):
            node = testkit.wait_for(big_node, 120, what="the 8-GPU pod running")
        plans = (kube.get("v1", "ConfigMap", "fairpack-fallback-plans", NAMESPACE) or {}).get("data") or {}
        executed = [p for p in map(json.loads, plans.values()) if p["outcome"] == "executed"]
        assert [p["pins"] for p in executed] == [{f"{namespace}/big": node}], plans
        assert [e for e in kube.list("v1", "Event", namespace) if e.get("reason") == "FallbackPlan"]
        assert_refused_nothing(log, kube, namespace)
    finally:
        kube.delete("scheduling.k8s.io/v1", "PriorityClass", priority)
        kube.delete("v1", "ConfigMap", "fairpack-fallback-plans", NAMESPACE)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda core, rbac, adm: core.list_namespaced_secret(NAMESPACE), id="read-secrets"),
        pytest.param(
            lambda core, rbac, adm: core.create_namespaced_config_map(
                WORK_NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
            ),
            id="config-map-outside-its-namespace",
        ),
        pytest.param(lambda core, rbac, adm: core.delete_node("no-such-node"), id="delete-a-node"),
        pytest.param(
            lambda core, rbac, adm: rbac.create_cluster_role(
                client.V1ClusterRole(metadata=client.V1ObjectMeta(name="fpct-escalate"))
            ),
            id="write-rbac",
        ),
        pytest.param(
            lambda core, rbac, adm: adm.delete_mutating_webhook_configuration(OPERATOR),
            id="remove-its-webhook",
        ),
    ],
)
def test_operator_token_is_refused_what_it_may_not_do(
    release: list[dict[str, Any]], kubeconfig: str, tmp_path: pathlib.Path, call: Any
) -> None:
    """Real calls, not only access reviews: the API server answers 403."""
    with sa_client(kubeconfig, tmp_path, "operator") as api:
        apis = (
            client.CoreV1Api(api),
            client.RbacAuthorizationV1Api(api),
            client.AdmissionregistrationV1Api(api),
        )
        assert refused(lambda: call(*apis)) == 403


def test_uninstall_removes_the_release_but_keeps_the_crds(kubeconfig: str, kube: Kube) -> None:
    """A fresh release of its own, installed then uninstalled."""
    path = pathlib.Path(kubeconfig)
    name, namespace = "fpct-gone", "fairpack-chart-gone"
    # The optional objects too, so the API server accepts them as well (a NetworkPolicy with a
    # metrics peer, the dashboard ConfigMap, the webhook's Service, Secret and configuration).
    values = {
        "operator": {"peering": "fpct-gone", "webhook": {"enabled": True}},
        "networkPolicy": {
            "enabled": True,
            "metricsNamespaceSelector": {"matchLabels": {"monitoring": "yes"}},
        },
        "dashboard": {"enabled": True},
    }
    install = ["install", name, str(chart.CHART), "-n", namespace, "--create-namespace"]
    chart.helm(*install, *chart.set_args(values), kubeconfig=path)
    rbac = "rbac.authorization.k8s.io/v1"
    made = [
        (rbac, "ClusterRole", f"{name}-fairpack-operator", None),
        (rbac, "RoleBinding", f"{name}-fairpack-scheduler-authentication-reader", "kube-system"),
        ("apps/v1", "Deployment", f"{name}-fairpack-extender", namespace),
        ("networking.k8s.io/v1", "NetworkPolicy", f"{name}-fairpack-extender", namespace),
        ("v1", "ConfigMap", f"{name}-fairpack-dashboard", namespace),
        (
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            f"{name}-fairpack-operator",
            None,
        ),
    ]
    assert [ref for ref in made if kube.get(*ref) is None] == []
    chart.helm("uninstall", name, "-n", namespace, "--wait", kubeconfig=path)
    assert [ref for ref in made if kube.get(*ref) is not None] == []
    assert (
        kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "sparkjobs.fairpack.io") is not None
    )
    kube.delete("v1", "Namespace", namespace)


def crds_removed(kube: Kube) -> None:
    """Remove fairpack's CRDs (and so every fairpack object, finalizers dropped first: no operator
    runs to remove them), as on a cluster that never had them."""
    names = [yaml.safe_load(f.read_text())["metadata"]["name"] for f in sorted(chart.CRDS.glob("*.yaml"))]
    for kind in ("LLMService", "SparkJob", "Tenant"):
        for obj in kube.list(FAIRPACK, kind):
            where = obj["metadata"].get("namespace")
            kube.patch(
                FAIRPACK, kind, obj["metadata"]["name"], {"metadata": {"finalizers": None}}, namespace=where
            )
    crd = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
    for name in names:
        kube.delete(*crd, name)
    testkit.wait_for(lambda: all(kube.get(*crd, n) is None for n in names), 60, what="the CRDs gone")


def test_plain_manifests_install_on_a_cluster_without_the_crds_and_delete_cleanly(
    kubeconfig: str, kube: Kube
) -> None:
    """README's install without Helm on a cluster without fairpack's CRDs: manifests/crds/ first,
    wait until Established, then manifests/fairpack.yaml (server-side apply), whose
    ClusterKopfPeering needs its CRD served. Its own objects are then deleted again (the CRDs, which
    other tests use, stay)."""
    crds_removed(kube)
    kubectl = [str(chart.kubectl_binary()), f"--kubeconfig={kubeconfig}"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*kubectl, *args], capture_output=True, text=True, check=False, timeout=120)

    crds = run("apply", "--server-side", "-f", str(chart.CRDS))
    assert crds.returncode == 0, crds.stderr
    established = run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(chart.CRDS))
    assert established.returncode == 0, established.stderr
    applied = run("apply", "--server-side", "-f", str(chart.PLAIN_MANIFEST))
    try:
        assert applied.returncode == 0, applied.stderr
        assert kube.get("apps/v1", "Deployment", "fairpack-extender", chart.NAMESPACE) is not None
        assert kube.get("v1", "ConfigMap", "fairpack-scheduler-config", chart.NAMESPACE) is not None
        assert kube.get("kopf.dev/v1", "ClusterKopfPeering", "fairpack") is not None
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
