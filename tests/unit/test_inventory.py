"""GPU node inventories: what a node advertises, and inventories that must be rejected naming the field."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
import yaml
from fairpack_dev import inventory, scheduler_config

from fairpack.solver import gpumodels, labels


def pool(**fields: Any) -> dict[str, Any]:
    return {"name": "p", "model": "A100-80GB", "gpus": 8, **fields}


def load(tmp_path: pathlib.Path, pools: list[dict[str, Any]]) -> inventory.Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({"pools": pools}))
    return inventory.load(path)


@pytest.mark.parametrize("path", [inventory.SMALL, inventory.GPU_100], ids=lambda p: p.name)
def test_shipped_inventories_are_valid(path: pathlib.Path) -> None:
    inventory.load(path)


def test_gpu_100_has_a_hundred_nodes_of_the_four_models_some_with_mig() -> None:
    nodes = inventory.load(inventory.GPU_100).nodes()

    products = {n["metadata"]["labels"][labels.GPU_PRODUCT_LABEL] for n in nodes}
    assert len(nodes) == 100
    assert products == {m.product for m in gpumodels.MODELS}
    assert any(n["metadata"]["labels"][labels.MIG_STRATEGY_LABEL] == "mixed" for n in nodes)


def test_mig_gpus_leave_whole_gpu_capacity_and_become_instance_counts(tmp_path: pathlib.Path) -> None:
    layout = {
        0: [{"profile": "4g.40gb", "start": 0}, {"profile": "3g.40gb", "start": 4}],
        1: [{"profile": "1g.10gb", "start": s} for s in range(7)],
    }
    node = load(tmp_path, [pool(mig={"strategy": "mixed", "layout": layout})]).nodes(prefix="x-")[0]

    assert node["metadata"]["name"] == "x-p-0"
    assert node["status"]["capacity"] == node["status"]["allocatable"]
    gpu_resources = {k: v for k, v in node["status"]["capacity"].items() if k.startswith("nvidia.com/")}
    assert gpu_resources == {
        "nvidia.com/gpu": "6",
        "nvidia.com/mig-4g.40gb": "1",
        "nvidia.com/mig-3g.40gb": "1",
        "nvidia.com/mig-1g.10gb": "7",
    }
    annotations = node["metadata"]["annotations"]
    assert json.loads(annotations[labels.MIG_LAYOUT_ANNOTATION])["0"] == layout[0]
    assert json.loads(annotations[labels.NVLINK_ISLANDS_ANNOTATION]) == [list(range(8))]
    assert annotations[inventory.KWOK_NODE_ANNOTATION] == "fake"
    assert node["metadata"]["labels"][labels.GPU_MEMORY_LABEL] == "81920"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"model": "V100"}, "pools.0 (p).model", id="unknown-model"),
        pytest.param({"gpus": 0}, "pools.0 (p).gpus", id="no-gpus"),
        pytest.param(
            {"nvlinkIslands": [[0, 1], [1, 2]]}, "GPU 1 is in more than one island", id="island-twice"
        ),
        pytest.param({"nvlinkIslands": [[0, 8]]}, "GPU 8 is out of range", id="island-range"),
        pytest.param(
            {"mig": {"strategy": "mixed", "layout": {0: [{"profile": "3g.40gb", "start": 2}]}}},
            "mig.layout.0.0.start: 3g.40gb may start at slots [0, 4], not 2",
            id="bad-start",
        ),
        pytest.param(
            {
                "mig": {
                    "strategy": "mixed",
                    "layout": {0: [{"profile": "4g.40gb", "start": 0}, {"profile": "2g.20gb", "start": 2}]},
                }
            },
            "mig.layout.0.1: 2g.20gb@2 overlaps another instance",
            id="overlap",
        ),
        pytest.param(
            {"mig": {"strategy": "mixed", "layout": {0: [{"profile": "3g.71gb", "start": 0}]}}},
            "A100-80GB has no MIG profile '3g.71gb'",
            id="profile-of-another-model",
        ),
        pytest.param(
            {"mig": {"layout": {0: [{"profile": "7g.80gb", "start": 0}]}}},
            "a layout needs strategy: mixed",
            id="layout-without-mixed",
        ),
        pytest.param({"cores": 4}, "pools.0 (p).cores: Extra inputs are not permitted", id="unknown-field"),
    ],
)
def test_invalid_inventory_is_rejected_naming_the_field(
    tmp_path: pathlib.Path, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(inventory.InventoryError) as rejected:
        load(tmp_path, [pool(**fields)])

    assert message in str(rejected.value)
    assert str(tmp_path / "inventory.yaml") in str(rejected.value)


def test_extender_entry_manages_whole_gpus_and_every_mig_profile() -> None:
    entry = scheduler_config.ExtenderConfig(url_prefix="http://127.0.0.1:1").entry()

    managed = {r["name"] for r in entry["managedResources"]}
    profiles = {p.name for m in gpumodels.MODELS for p in m.mig_profiles}
    assert managed == {labels.GPU_RESOURCE} | {labels.MIG_RESOURCE_PREFIX + p for p in profiles}
    assert not any(r["ignoredByScheduler"] for r in entry["managedResources"])
    assert (entry["filterVerb"], entry["prioritizeVerb"], entry["preemptVerb"], entry["bindVerb"]) == (
        "filter",
        "prioritize",
        "preempt",
        "bind",
    )
    assert entry["ignorable"] is True
    assert entry["enableHTTPS"] is False
    assert "tlsConfig" not in entry


def test_fairpack_scheduler_has_one_profile_and_the_extender_when_given(tmp_path: pathlib.Path) -> None:
    extender = scheduler_config.ExtenderConfig(
        url_prefix="https://127.0.0.1:1", https=True, ca_file=tmp_path / "ca.crt", bind_verb=""
    )

    config = scheduler_config.fairpack_scheduler(kubeconfig=tmp_path / "k", extender=extender)
    bare = scheduler_config.fairpack_scheduler(kubeconfig=tmp_path / "k", extender=None)

    assert [p["schedulerName"] for p in config["profiles"]] == [labels.SCHEDULER_NAME]
    (entry,) = config["extenders"]
    assert entry["tlsConfig"] == {"insecure": False, "caFile": str(tmp_path / "ca.crt")}
    assert "bindVerb" not in entry
    assert "extenders" not in bare
