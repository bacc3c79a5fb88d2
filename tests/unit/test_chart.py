"""The Helm chart, rendered offline with the pinned helm: lint, values schema, the scheduler's
configuration (also checked by the pinned kube-scheduler binary itself), security and RBAC."""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from fairpack_dev import chart

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


def test_extender_may_bind_and_annotate_pods_but_not_delete_them_nor_read_secrets(
    default_objects: Objects,
) -> None:
    granted = rules(default_objects, "ClusterRole", "-extender")
    assert allows(granted, "create", "pods/binding")
    assert allows(granted, "patch", "pods")
    assert allows(granted, "watch", "nodes")
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
    assert allows(role["rules"], "create", "configmaps")


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
