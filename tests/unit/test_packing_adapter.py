"""From kubectl JSON to a packing instance, and the ``fairpack plan`` command on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fairpack.cli import main
from fairpack.solver import kube, labels, packing
from fairpack.solver.packing import adapter

H100 = "NVIDIA-H100-80GB-HBM3"


def node(
    name: str, cpu: str = "2", *, taint: bool = False, mig: bool = False, **node_labels: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(node_labels)}
    allocatable = {"cpu": cpu, "memory": "4Gi", "pods": "110"}
    if mig:
        meta["labels"][labels.GPU_PRODUCT_LABEL] = H100
        meta["annotations"] = {
            labels.MIG_LAYOUT_ANNOTATION: json.dumps({"0": [{"profile": "3g.40gb", "start": 4}]})
        }
        allocatable["nvidia.com/gpu"] = "1"
    spec = {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]} if taint else {}
    return {"kind": "Node", "metadata": meta, "spec": spec, "status": {"allocatable": allocatable}}


def pod(
    name: str,
    cpu: str = "500m",
    *,
    on: str | None = None,
    priority: int = 0,
    namespace: str = "team",
    controller: bool = True,
    selector: dict[str, str] | None = None,
    mig: str | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "creationTimestamp": "2026-01-01T00:00:00Z"}
    if controller:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": True}]
    if instance:
        meta["annotations"] = {labels.MIG_INSTANCE_ANNOTATION: instance}
    resources: dict[str, Any] = {"requests": {"cpu": cpu, "memory": "100Mi"}}
    if mig:
        resources["limits"] = {f"{labels.MIG_RESOURCE_PREFIX}{mig}": "1"}
    spec: dict[str, Any] = {"priority": priority, "containers": [{"name": "c", "resources": resources}]}
    if on:
        spec["nodeName"] = on
    if selector:
        spec["nodeSelector"] = selector
    return {
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": "Running" if on else "Pending"},
    }


def snapshot(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


@pytest.mark.parametrize(
    ("running", "movable"),
    [
        pytest.param(pod("web", on="n0"), True, id="replicaset-pod"),
        pytest.param(pod("bare", on="n0", controller=False), False, id="no-controller"),
        pytest.param(pod("dns", on="n0", namespace="kube-system"), False, id="kube-system"),
        pytest.param(pod("crit", on="n0", priority=2_000_000_000), False, id="system-critical"),
        pytest.param(pod("gone", on="n0", selector={"pool": "other"}), False, id="node-no-longer-admits-it"),
    ],
)
def test_who_may_be_moved_or_evicted(running: dict[str, Any], movable: bool) -> None:
    instance = adapter.instance_from_snapshot(kube.snapshot_from_list(snapshot(node("n0"), running)))
    assert (instance.pods[0].movable, instance.pods[0].evictable) == (movable, movable)


def test_listed_dicts_build_the_same_instance_as_a_list_document() -> None:
    items = [node("n0"), pod("a", on="n0"), pod("b")]
    from_list = adapter.instance_from_snapshot(kube.snapshot_from_list(snapshot(*items)))
    from_dicts = adapter.instance_from_dicts(items[:1], items[1:])
    assert from_dicts.pods == from_list.pods
    assert from_dicts.nodes == from_list.nodes


def test_selector_and_taints_decide_the_eligible_nodes() -> None:
    doc = snapshot(
        node("n0", pool="a"),
        node("n1", pool="b"),
        node("n2", taint=True, pool="a"),
        pod("p", selector={"pool": "a"}),
    )
    instance = adapter.instance_from_snapshot(kube.snapshot_from_list(doc))
    assert instance.pods[0].eligible == frozenset({0})


def test_mig_pods_take_slots_not_scalar_resources() -> None:
    doc = snapshot(
        node("n0", mig=True),
        pod("old", on="n0", mig="3g.40gb", instance="0:3g.40gb@4"),
        pod("new", mig="4g.40gb"),
    )
    instance = adapter.instance_from_snapshot(kube.snapshot_from_list(doc))
    assert not any(r.startswith(labels.MIG_RESOURCE_PREFIX) for r in instance.resources)
    found = {p.key: (p.mig_profile, p.mig_slot) for p in instance.pods}
    assert found == {"team/old": ("3g.40gb", (0, 4)), "team/new": ("4g.40gb", None)}
    assert instance.nodes[0].mig_gpus[0].index == 0


def test_plan_json_follows_the_cli_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(
        json.dumps(
            snapshot(node("n0"), pod("low", "1500m", on="n0", priority=1), pod("high", "1500m", priority=9))
        )
    )
    assert main.main(["plan", str(path), "--window", "1", "--output", "json", "--workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "OPTIMAL"
    assert out["placements"] == [{"pod": "team/high", "node": "n0"}]
    assert out["evictions"] == ["team/low"]
    assert out["moves"] == []
    assert out["placed_by_priority"] == {"9": {"before": 0, "after": 1}, "1": {"before": 1, "after": 0}}
    assert out["window_s"] == 1.0
    assert isinstance(out["solve_s"], float)


def test_plan_honours_max_evictions_and_prints_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(
        json.dumps(
            snapshot(node("n0"), pod("low", "1500m", on="n0", priority=1), pod("high", "1500m", priority=9))
        )
    )
    assert main.main(["plan", str(path), "--max-evictions", "0", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "Pods placed per priority" in out
    assert "Evictions" not in out


def test_an_unreadable_snapshot_exits_2_and_names_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot(node("n0", cpu="lots"))))
    assert main.main(["plan", str(path)]) == 2
    assert "n0" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [False, True])
def test_plan_passes_keep_in_place_to_the_packer(
    flag: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot(node("n0"), pod("high", "1500m", priority=9))))
    seen: list[packing.Settings] = []
    solve = packing.solve

    def spy(instance: Any, *, settings: packing.Settings, **kwargs: Any) -> Any:
        seen.append(settings)
        return solve(instance, settings=settings, **kwargs)

    monkeypatch.setattr(packing, "solve", spy)
    args = ["plan", str(path), "--output", "json", "--workers", "1"] + (["--keep-in-place"] if flag else [])
    assert main.main(args) == 0
    assert json.loads(capsys.readouterr().out)["placements"] == [{"pod": "team/high", "node": "n0"}]
    assert [s.keep_in_place for s in seen] == [flag]
