"""The extender's fragmentation gauges: stranded GPUs and unusable MIG slots, read at scrape time."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fairpack_dev import inventory
from prometheus_client.parser import text_string_to_metric_families

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from fairpack.extender import app as app_
from fairpack.extender import settings as settings_
from fairpack.extender import verbs
from fairpack.extender import view as cv
from fairpack.solver import kube, labels, model, stranding

SMALL = inventory.load(inventory.SMALL)


def pod(name: str, node_name: str, *, gpus: str = "", mig: str = "") -> dict[str, Any]:
    """A running pod holding whole GPUs ``gpus`` ("0,1") or the MIG instance ``mig`` ("0:4g.40gb@0")."""
    limits: dict[str, str] = {"cpu": "1"}
    annotations: dict[str, str] = {}
    if gpus:
        limits[labels.GPU_RESOURCE] = str(len(gpus.split(",")))
        annotations[labels.GPU_INDICES_ANNOTATION] = gpus
    if mig:
        limits[labels.MIG_RESOURCE_PREFIX + mig.split(":")[1].split("@")[0]] = "1"
        annotations[labels.MIG_INSTANCE_ANNOTATION] = mig
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": annotations},
        "spec": {
            "schedulerName": labels.SCHEDULER_NAME,
            "nodeName": node_name,
            "containers": [{"name": "c", "image": "x", "resources": {"limits": limits, "requests": limits}}],
        },
        "status": {"phase": "Running"},
    }


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def view() -> cv.ClusterView:
    """a100-40 with GPUs 0,1 held; an empty h100; the MIG A100 with its 4g.40gb instance held."""
    the_view = cv.ClusterView()
    the_view.replace(
        [
            SMALL.pool("a100-40").node("partly"),
            SMALL.pool("h100").node("empty"),
            SMALL.pool("a100-80-mig").node("mig"),
        ],
        [pod("p1", "partly", gpus="0,1"), pod("m1", "mig", mig="0:4g.40gb@0")],
    )
    return the_view


def test_stranded_gpus_are_the_free_ones_on_partly_used_nodes(view: cv.ClusterView) -> None:
    with TestClient(app_.create_app(settings_.load(environ={}), view=view)) as client:
        samples = scrape(client)
    assert samples[("fairpack_extender_gpus_stranded", ())] == 6  # the empty h100's 8 are not stranded
    # 6 + 8 + the MIG A100's 5 whole-mode GPUs, plus its 19 free MIG slots over 8
    assert samples[("fairpack_extender_gpus_free", ())] == 19 + 19 / 8
    assert samples[("fairpack_extender_mig_slots_free", ())] == 19


def test_unusable_mig_slots_per_profile_are_the_free_slots_of_other_profiles(view: cv.ClusterView) -> None:
    with TestClient(app_.create_app(settings_.load(environ={}), view=view)) as client:
        samples = scrape(client)
        unusable = {
            dict(key[1])["profile"]: value
            for key, value in samples.items()
            if key[0] == "fairpack_extender_mig_slots_unusable"
        }
        # Free: 3g@4 on GPU 0 (4 slots); 2g@0, 2g@2, 3g@4 on GPU 1 (8); seven 1g on GPU 2 (7).
        assert unusable == {"4g.40gb": 19, "3g.40gb": 11, "2g.20gb": 15, "1g.10gb": 12}
        view.upsert_pod(pod("m2", "mig", mig="2:1g.10gb@0"))  # the next scrape sees the change
        after = scrape(client)
    assert after[("fairpack_extender_mig_slots_unusable", (("profile", "1g.10gb"),))] == 12
    assert after[("fairpack_extender_mig_slots_unusable", (("profile", "3g.40gb"),))] == 10
    assert after[("fairpack_extender_mig_slots_free", ())] == 18


def test_fragmented_gpus_are_the_fgd_measure_prioritize_uses(view: cv.ClusterView) -> None:
    with TestClient(app_.create_app(settings_.load(environ={}), view=view)) as client:
        samples = scrape(client)
    expected = sum(verbs.fragmented(verbs.node_key(state)) for state in view.nodes.values())
    assert expected > 0
    assert samples[("fairpack_extender_gpus_fragmented", ())] == pytest.approx(expected)


def test_an_empty_view_exports_zero_and_no_profile_series() -> None:
    with TestClient(app_.create_app(settings_.load(environ={}), view=cv.ClusterView())) as client:
        samples = scrape(client)
    assert samples[("fairpack_extender_gpus_stranded", ())] == 0
    assert not [key for key in samples if key[0] == "fairpack_extender_mig_slots_unusable"]


def key(pool: str, *, free_gpus: tuple[int, ...] = (), taken: tuple[model.MigInstance, ...] = ()) -> Any:
    """The GPU state of a node of ``pool`` with ``free_gpus`` free and ``taken`` MIG instances held."""
    state = cv.NodeState(kube.node_from_dict(SMALL.pool(pool).node("n")))
    free = set(free_gpus) if free_gpus != ALL else {g.index for g in state.node.whole_gpus}
    return verbs._node_key(state.node, free, set(taken))


ALL = (-1,)


def test_a_fully_used_or_an_empty_node_strands_nothing() -> None:
    assert stranding.node_fragments(key("h100")).stranded == 0
    assert stranding.node_fragments(key("h100", free_gpus=ALL)).stranded == 0
    assert stranding.node_fragments(key("h100", free_gpus=(3,))).stranded == 1


def test_a_profile_configured_on_one_node_finds_every_other_nodes_free_slots_unusable() -> None:
    a100 = stranding.node_fragments(key("a100-80-mig"))
    h200 = stranding.node_fragments(key("h200-mig", taken=(model.MigInstance(7, "7g.141gb", 0),)))
    total = stranding.totals([a100, h200])
    assert total.mig_free_slots == 23 + 8  # the A100's 23 slots, the H200's two free 3g.71gb
    assert total.mig_unusable["7g.141gb"] == 31  # listed although its only instance is taken
    assert total.mig_unusable["3g.71gb"] == 23
