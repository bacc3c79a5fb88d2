"""The Helm chart, rendered offline with the pinned helm: lint, values schema, the scheduler's
configuration (also checked by the pinned kube-scheduler binary itself), security and RBAC."""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import kopf
import pytest
import yaml
from cryptography import x509
from fairpack_dev import chart

from fairpack.operator import settings, spark_pods, webhook
from fairpack.solver import gpumodels, labels

pytestmark = pytest.mark.skipif(
    not chart.helm_binary().exists(), reason=f"helm not built: run `make binaries` ({chart.helm_binary()})"
)

Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def default_objects() -> Objects:
    return chart.render()


def containers(objects: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield obj["metadata"]["name"], container


def rules(objects: Objects, kind: str, name_suffix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = chart.find(objects, kind, name_suffix)["rules"]
    return found


def allows(rule_list: list[dict[str, Any]], verb: str, resource: str, group: str = "") -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rule_list
    )


def test_chart_passes_helm_lint_strict() -> None:
    out = chart.helm("lint", "--strict", str(chart.CHART))
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out
    assert "[ERROR]" not in out


def test_chart_crds_are_the_manifests_crds() -> None:
    crds = chart.CHART / "crds"
    assert crds.is_symlink()
    assert crds.resolve() == chart.CRDS.resolve()


def test_chart_renders_every_crd_of_manifests() -> None:
    rendered = chart.render(include_crds=True)
    names = {o["metadata"]["name"] for o in rendered if o["kind"] == "CustomResourceDefinition"}
    sources = {yaml.safe_load(p.read_text())["metadata"]["name"] for p in chart.CRDS.glob("*.yaml")}
    assert names == sources
    assert {"llmservices.fairpack.io", "sparkjobs.fairpack.io", "tenants.fairpack.io"} <= names


def test_plain_manifests_are_rendered_from_the_current_chart() -> None:
    assert chart.PLAIN_MANIFEST.read_text() == chart.plain_manifest_text(), "run `make manifests`"


def test_default_scheduler_configuration_points_the_fairpack_profile_at_the_extender_service(
    default_objects: Objects,
) -> None:
    config = chart.scheduler_config(default_objects)
    service = chart.find(default_objects, "Service", "-extender")
    (extender,) = config["extenders"]
    host = f"{service['metadata']['name']}.{chart.NAMESPACE}.svc"
    port = service["spec"]["ports"][0]["port"]

    assert [p["schedulerName"] for p in config["profiles"]] == [labels.SCHEDULER_NAME]
    assert extender["urlPrefix"] == f"https://{host}:{port}"
    assert (extender["filterVerb"], extender["prioritizeVerb"], extender["preemptVerb"]) == (
        "filter",
        "prioritize",
        "preempt",
    )
    assert extender["bindVerb"] == "bind"
    assert extender["weight"] > 0
    assert extender["nodeCacheCapable"] is True
    assert extender["ignorable"] is False
    assert extender["enableHTTPS"] is True
    assert extender["tlsConfig"] == {"serverName": host, "caFile": "/etc/fairpack/extender-tls/ca.crt"}
    assert config["leaderElection"]["leaderElect"] is True
    assert config["leaderElection"]["resourceName"] == "fairpack-scheduler"
    assert config["leaderElection"]["resourceNamespace"] == chart.NAMESPACE


def test_managed_resources_are_whole_gpus_and_every_mig_profile_of_the_catalogue(
    default_objects: Objects,
) -> None:
    (extender,) = chart.scheduler_config(default_objects)["extenders"]
    managed = [r["name"] for r in extender["managedResources"]]
    expected = {labels.GPU_RESOURCE} | {
        f"{labels.MIG_RESOURCE_PREFIX}{p.name}" for m in gpumodels.MODELS for p in m.mig_profiles
    }
    assert len(managed) == len(set(managed))
    assert set(managed) == expected


@pytest.mark.parametrize(
    ("values", "check"),
    [
        pytest.param(
            {"scheduler": {"extender": {"ignorable": True, "weight": 9}}},
            lambda e: e["ignorable"] is True and e["weight"] == 9,
            id="ignorable-and-weight",
        ),
        pytest.param(
            {"extender": {"tls": {"enabled": False}}},
            lambda e: e["urlPrefix"].startswith("http://") and not e["enableHTTPS"] and "tlsConfig" not in e,
            id="plain-http",
        ),
        pytest.param(
            {"scheduler": {"extender": {"preempt": False, "bind": False}}},
            lambda e: "preemptVerb" not in e and "bindVerb" not in e and e["filterVerb"] == "filter",
            id="filter-and-prioritize-only",
        ),
        pytest.param(
            {"extender": {"pathPrefix": "/fairpack", "servicePort": 8443}},
            lambda e: e["urlPrefix"].endswith(".svc:8443/fairpack"),
            id="path-prefix-and-port",
        ),
        pytest.param(
            {"scheduler": {"extender": {"insecureSkipVerify": True}}},
            lambda e: e["tlsConfig"]["insecure"] is True and "caFile" not in e["tlsConfig"],
            id="insecure",
        ),
        pytest.param(
            {"scheduler": {"extender": {"managedResources": ["nvidia.com/gpu"], "nodeCacheCapable": False}}},
            lambda e: (
                [r["name"] for r in e["managedResources"]] == ["nvidia.com/gpu"]
                and e["nodeCacheCapable"] is False
            ),
            id="gpu-only-full-nodes",
        ),
    ],
)
def test_non_default_values_reach_the_scheduler_configuration(values: Mapping[str, Any], check: Any) -> None:
    (extender,) = chart.scheduler_config(chart.render(values))["extenders"]
    assert check(extender), extender


def test_scheduler_name_and_lease_follow_their_values() -> None:
    values = {"scheduler": {"schedulerName": "gpu-sched", "leaderElection": {"leaseName": "gpu-sched-lease"}}}
    objects = chart.render(values)
    config = chart.scheduler_config(objects)
    assert config["profiles"] == [{"schedulerName": "gpu-sched"}]
    role = chart.find(objects, "Role", "-scheduler-leader-election")
    assert {"resourceNames": ["gpu-sched-lease"]}.items() <= role["rules"][1].items()


def test_rendered_scheduler_configuration_is_accepted_by_kube_scheduler(
    default_objects: Objects, tmp_path: pathlib.Path
) -> None:
    """The pinned kube-scheduler validates the configuration (and loads the CA) before it connects."""
    binary = chart.kubectl_binary().with_name("kube-scheduler")
    if not binary.exists():
        pytest.skip(f"kube-scheduler not built: run `make binaries` ({binary})")
    secret = chart.find(default_objects, "Secret", "-extender-tls")
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(secret["data"]["ca.crt"]))
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    config = chart.scheduler_config(default_objects)
    config["clientConnection"] = {"kubeconfig": str(tmp_path / "kubeconfig")}
    config["extenders"][0]["tlsConfig"]["caFile"] = str(tmp_path / "ca.crt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [str(binary), f"--config={tmp_path / 'config.yaml'}", f"--write-config-to={tmp_path / 'out.yaml'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert written["profiles"][0]["schedulerName"] == labels.SCHEDULER_NAME
    assert written["extenders"][0]["bindVerb"] == "bind"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"scheduler": {"extender": {"weight": 0}}}, "/scheduler/extender/weight", id="weight"),
        pytest.param({"scheduler": {"extender": {"ignorable": "yes"}}}, "want boolean", id="ignorable-type"),
        pytest.param({"operator": {"replica": 3}}, "'replica' not allowed", id="misspelt-key"),
        pytest.param({"extender": {"tls": {"source": "vault"}}}, "/extender/tls/source", id="tls-source"),
        pytest.param({"extender": {"tls": {"source": "secret"}}}, "/extender/tls/secretName", id="no-secret"),
        pytest.param(
            {"scheduler": {"extender": {"managedResources": ["amd.com/gpu"]}}},
            "/scheduler/extender/managedResources/0",
            id="foreign-resource",
        ),
        pytest.param({"scheduler": {"image": {"tag": "latest"}}}, "/scheduler/image/tag", id="version-tag"),
        pytest.param(
            {"scheduler": {"replicas": 2, "leaderElection": {"enabled": False}}},
            "/scheduler/leaderElection/enabled",
            id="replicas-without-leader-election",
        ),
        pytest.param(
            {"operator": {"replicas": 2, "peering": ""}}, "/operator/peering", id="replicas-without-peering"
        ),
        pytest.param(
            {"containerSecurityContext": {"runAsNonRoot": "yes"}},
            "/containerSecurityContext/runAsNonRoot",
            id="security-context-type",
        ),
        pytest.param(
            {"podSecurityContext": {"runAsUsr": 1000}},
            "'runAsUsr' not allowed",
            id="pod-security-context-key",
        ),
        pytest.param(
            {"containerSecurityContext": {"capabilities": {"drop": "ALL"}}},
            "/containerSecurityContext/capabilities/drop",
            id="capabilities-list",
        ),
        pytest.param(
            {"operator": {"webhook": {"enabled": True, "failurePolicy": "Retry"}}},
            "/operator/webhook/failurePolicy",
            id="webhook-failure-policy",
        ),
        pytest.param(
            {
                "extender": {"tls": {"source": "secret", "secretName": "s"}},
                "operator": {"webhook": {"enabled": True, "failurePolicy": "Ignore"}},
            },
            "/operator/webhook/tls",
            id="webhook-secret",
        ),
    ],
)
def test_a_wrong_value_fails_with_the_path_of_the_value(values: Mapping[str, Any], message: str) -> None:
    with pytest.raises(chart.HelmError, match="values don't meet the specifications") as failure:
        chart.render(values)
    assert message in str(failure.value)


def test_every_container_runs_non_root_read_only_without_capabilities_and_with_limits(
    default_objects: Objects,
) -> None:
    seen = {name for name, _ in containers(default_objects)}
    assert len(seen) == 3
    for name, container in containers(default_objects):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False, name
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name
        assert "livenessProbe" in container, name


def test_operator_runs_two_peered_replicas_with_a_peering_object(default_objects: Objects) -> None:
    deployment = chart.find(default_objects, "Deployment", "-operator")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    peering = chart.find(default_objects, "ClusterKopfPeering")
    assert deployment["spec"]["replicas"] == 2
    assert env["FAIRPACK_PEERING"] == peering["metadata"]["name"]


def test_every_component_has_a_disruption_budget_selecting_its_pods(default_objects: Objects) -> None:
    for component in ("operator", "extender", "scheduler"):
        pdb = chart.find(default_objects, "PodDisruptionBudget", f"-{component}")
        deployment = chart.find(default_objects, "Deployment", f"-{component}")
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_extender_may_bind_pods_but_not_change_nor_delete_them_nor_read_secrets(
    default_objects: Objects,
) -> None:
    """The Binding carries the device annotations, so the extender never patches a pod."""
    granted = rules(default_objects, "ClusterRole", "-extender")
    assert allows(granted, "create", "pods/binding")
    assert allows(granted, "watch", "nodes")
    assert not allows(granted, "patch", "pods")
    assert not allows(granted, "delete", "pods")
    assert not any("secrets" in r["resources"] or "*" in r["verbs"] for r in granted)


def test_operator_reads_no_secrets_and_writes_config_maps_only_in_its_namespace(
    default_objects: Objects,
) -> None:
    cluster_rules = rules(default_objects, "ClusterRole", "-operator")
    assert allows(cluster_rules, "create", "pods/eviction")
    assert not any("secrets" in r["resources"] or "configmaps" in r["resources"] for r in cluster_rules)
    assert not any("*" in r["verbs"] or "*" in r["resources"] for r in cluster_rules)
    role = chart.find(default_objects, "Role", "-operator")
    assert role["metadata"]["namespace"] == chart.NAMESPACE
    assert allows(role["rules"], "patch", "configmaps")


def test_operator_may_pin_pods_through_the_status_subresource(default_objects: Objects) -> None:
    """The fallback's pin writes status.nominatedNodeName (operator/fallback.py ``pin``)."""
    assert allows(rules(default_objects, "ClusterRole", "-operator"), "patch", "pods/status")


@pytest.mark.parametrize(
    ("verb", "resource", "group"),
    [
        pytest.param("update", "pods", "", id="no-put-on-pods"),
        pytest.param("update", "sparkjobs", "fairpack.io", id="no-put-on-its-resources"),
        pytest.param("patch", "llmservices/scale", "fairpack.io", id="no-scale-subresource"),
        pytest.param("update", "services", "", id="services-applied-never-put"),
        pytest.param("list", "namespaces", "", id="cluster-wide-kopf-lists-no-namespaces"),
        pytest.param("watch", "nodes", "", id="nodes-only-listed"),
        pytest.param("list", "priorityclasses", "scheduling.k8s.io", id="no-priority-classes"),
        pytest.param(
            "create", "mutatingwebhookconfigurations", "admissionregistration.k8s.io", id="no-webhook"
        ),
    ],
)
def test_operator_is_granted_no_verb_its_code_does_not_use(
    default_objects: Objects, verb: str, resource: str, group: str
) -> None:
    granted = rules(default_objects, "ClusterRole", "-operator")
    granted += chart.find(default_objects, "Role", "-operator")["rules"]
    assert not allows(granted, verb, resource, group)


def test_scheduler_gets_the_upstream_scheduler_roles(default_objects: Objects) -> None:
    bound = {
        o["roleRef"]["name"]
        for o in default_objects
        if o["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and o["metadata"]["name"].startswith("fairpack-sch")
    }
    assert {
        "system:kube-scheduler",
        "system:volume-scheduler",
        "extension-apiserver-authentication-reader",
    } <= bound


def test_scheduler_image_is_the_pinned_kubernetes_version(default_objects: Objects) -> None:
    deployment = chart.find(default_objects, "Deployment", "-scheduler")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.k8s.io/kube-scheduler:{chart.versions()['KUBERNETES_VERSION']}"


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        pytest.param({"networkPolicy": {"enabled": True}}, "NetworkPolicy", id="network-policy"),
        pytest.param({"serviceMonitor": {"enabled": True}}, "ServiceMonitor", id="service-monitor"),
        pytest.param(
            {"extender": {"tls": {"source": "certManager", "certManager": {"issuerName": "ca"}}}},
            "Certificate",
            id="cert-manager",
        ),
    ],
)
def test_optional_objects_appear_only_when_enabled(
    default_objects: Objects, values: Mapping[str, Any], kind: str
) -> None:
    assert not [o for o in default_objects if o["kind"] == kind]
    assert [o for o in chart.render(values) if o["kind"] == kind]


def test_dashboard_config_map_holds_the_dashboard_json() -> None:
    objects = chart.render({"dashboard": {"enabled": True}})
    config_map = chart.find(objects, "ConfigMap", "-dashboard")
    dashboard = json.loads(config_map["data"]["fairpack.json"])
    assert dashboard == json.loads((chart.CHART / "dashboards" / "fairpack.json").read_text())
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_the_one_replica_cases_the_schema_rules_allow() -> None:
    """The if/then rules bind only with more than one replica."""
    chart.render({"scheduler": {"replicas": 1, "leaderElection": {"enabled": False}}})
    chart.render({"operator": {"replicas": 1, "peering": ""}})


def network_policy(objects: Objects, component: str) -> dict[str, Any]:
    return chart.find(objects, "NetworkPolicy", f"-{component}")


def test_default_network_policy_admits_only_the_scheduler_pods_to_the_extender() -> None:
    objects = chart.render({"networkPolicy": {"enabled": True}})
    scheduler = chart.find(objects, "Deployment", "-scheduler")["spec"]["selector"]["matchLabels"]
    (rule,) = network_policy(objects, "extender")["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": scheduler}}]
    assert rule["ports"] == [{"port": 8443, "protocol": "TCP"}]
    # The operator: only the liveness port (the kubelet), no metrics peer without a selector.
    (operator_rule,) = network_policy(objects, "operator")["spec"]["ingress"]
    assert "from" not in operator_rule
    assert operator_rule["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_a_metrics_namespace_selector_adds_that_peer_only() -> None:
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    objects = chart.render({"networkPolicy": {"enabled": True, "metricsNamespaceSelector": monitoring}})
    (rule,) = network_policy(objects, "extender")["spec"]["ingress"]
    assert rule["from"][1:] == [{"namespaceSelector": monitoring}]
    metrics_rules = [r for r in network_policy(objects, "operator")["spec"]["ingress"] if "from" in r]
    assert metrics_rules == [
        {"from": [{"namespaceSelector": monitoring}], "ports": [{"port": 9090, "protocol": "TCP"}]}
    ]


def test_plain_manifests_hold_no_crd_so_the_crds_are_applied_first() -> None:
    kinds = {d["kind"] for d in yaml.safe_load_all(chart.PLAIN_MANIFEST.read_text()) if d}
    assert "CustomResourceDefinition" not in kinds
    assert "ClusterKopfPeering" in kinds  # the custom object that needs its CRD Established first


def test_examples_name_only_priority_classes_the_examples_ship() -> None:
    examples = chart.REPO / "manifests" / "examples"
    shipped = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all((examples / "priorityclasses.yaml").read_text())
        if d and d["kind"] == "PriorityClass"
    }
    named = set()
    for path in examples.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            named |= set(_values_of(doc, "priorityClassName"))
    assert named
    assert named <= shipped


def _values_of(node: Any, key: str) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _values_of(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values_of(item, key)


def webhook_objects(values: Mapping[str, Any] | None = None) -> Objects:
    return chart.render(
        {"operator": {"webhook": {"enabled": True, "failurePolicy": "Fail", "port": 9443}}, **(values or {})}
    )


def test_webhook_configuration_calls_what_the_operator_serves(tmp_path: pathlib.Path) -> None:
    """The chart's MutatingWebhookConfiguration against operator/webhook.py: the operator's settings
    read from the rendered environment serve the handler at the configured path and port, with the
    certificate the configuration's CA bundle trusts, and kopf is told not to manage a configuration."""
    objects = webhook_objects()
    (hook,) = chart.find(objects, "MutatingWebhookConfiguration")["webhooks"]
    pod = chart.find(objects, "Deployment", "-operator")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    served = settings.from_env({e["name"]: e["value"] for e in container["env"] if "value" in e}).webhook
    assert served.enabled
    assert not served.manage
    registry = kopf.OperatorRegistry()
    webhook.register(registry, served, workdir=str(tmp_path))
    (handler,) = registry._webhooks.get_all_handlers()

    service = chart.find(objects, "Service", "-operator-webhook")
    (port,) = service["spec"]["ports"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert hook["clientConfig"]["service"] == {
        "name": service["metadata"]["name"],
        "namespace": chart.NAMESPACE,
        "path": f"/{handler.id}",
        "port": port["port"],
    }
    assert ports[port["targetPort"]] == served.port
    assert hook["failurePolicy"] == "Fail"
    assert handler.operations is not None
    assert handler.labels is not None
    (rule,) = hook["rules"]
    assert (rule["apiGroups"], rule["resources"], rule["operations"]) == (
        [""],
        ["pods"],
        list(handler.operations),
    )
    # Only the executors the handler gates; the operator's own (labelled) executors never call it.
    assert hook["objectSelector"]["matchLabels"] == dict(handler.labels)
    assert hook["objectSelector"]["matchExpressions"] == [
        {"key": spark_pods.JOB_LABEL, "operator": "DoesNotExist"}
    ]

    # The certificate the operator serves, from the mounted Secret, names the Service and is signed
    # by the CA the configuration gives the API server.
    mount = next(m for m in container["volumeMounts"] if served.certfile.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    secret = chart.find(objects, "Secret", volume["secret"]["secretName"])
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"][served.certfile.rsplit("/", 1)[1]]))
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{service['metadata']['name']}.{chart.NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    cert.verify_directly_issued_by(ca)


def test_webhook_certificate_comes_from_cert_manager_like_the_extenders() -> None:
    objects = webhook_objects(
        {"extender": {"tls": {"source": "certManager", "certManager": {"issuerName": "ca"}}}}
    )
    certificate = chart.find(objects, "Certificate", "-operator-webhook")
    config = chart.find(objects, "MutatingWebhookConfiguration")
    assert certificate["spec"]["issuerRef"]["name"] == "ca"
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{chart.NAMESPACE}/{certificate['metadata']['name']}"
    )
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]


def test_no_webhook_objects_by_default(default_objects: Objects) -> None:
    kinds = {o["kind"] for o in default_objects}
    assert "MutatingWebhookConfiguration" not in kinds
    env = chart.find(default_objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0][
        "env"
    ]
    assert not [e for e in env if e["name"].startswith("FAIRPACK_WEBHOOK_")]
