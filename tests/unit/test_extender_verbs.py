"""The extender's verbs through its HTTP app, on plain data (a view filled from dicts, no cluster)."""

from __future__ import annotations

import datetime
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fairpack_dev import inventory

with warnings.catch_warnings():
    # Starlette asks for its httpx fork (httpx2); plain httpx works, fairpack does not add the fork.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from fairpack.extender import app as app_
from fairpack.extender import settings as settings_
from fairpack.extender import verbs
from fairpack.extender import view as cv
from fairpack.solver import labels

SMALL = inventory.load(inventory.SMALL)


def node(pool: str, name: str) -> dict[str, Any]:
    return SMALL.pool(pool).node(name)


def pod(
    name: str,
    *,
    gpus: int = 0,
    mig: str | None = None,
    node_name: str | None = None,
    priority: int = 0,
    annotations: dict[str, str] | None = None,
    cpu: str = "1",
) -> dict[str, Any]:
    limits = {"cpu": cpu}
    if gpus:
        limits[labels.GPU_RESOURCE] = str(gpus)
    if mig:
        limits[labels.MIG_RESOURCE_PREFIX + mig] = "1"
    spec: dict[str, Any] = {
        "schedulerName": labels.SCHEDULER_NAME,
        "priority": priority,
        "containers": [{"name": "c", "image": "x", "resources": {"limits": limits, "requests": limits}}],
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": annotations or {}},
        "spec": spec,
        "status": {"phase": "Running" if node_name else "Pending"},
    }


def held(
    name: str, node_name: str, gpus: str, *, annotations: dict[str, str] | None = None, **more: Any
) -> dict[str, Any]:
    """A running pod holding the GPU indices ``gpus`` ("0,1")."""
    count = len(gpus.split(","))
    notes = {labels.GPU_INDICES_ANNOTATION: gpus, **(annotations or {})}
    return pod(name, gpus=count, node_name=node_name, annotations=notes, **more)


def client_for(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], **settings: Any) -> TestClient:
    view = cv.ClusterView()
    view.replace(nodes, pods)
    return TestClient(app_.create_app(settings_.load(environ={}, **settings), view=view))


@pytest.fixture
def islands() -> Iterator[TestClient]:
    """spread: 4 free GPUs, 2 in each island; packed: island 4-7 wholly free."""
    nodes = [node("a100-40", "spread"), node("a100-40", "packed")]
    pods = [held("s1", "spread", "0,1"), held("s2", "spread", "4,5"), held("p1", "packed", "0,1,2,3")]
    with client_for(nodes, pods) as client:
        yield client


def args(the_pod: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {"Pod": the_pod, "NodeNames": names}


def island_pod(name: str = "big") -> dict[str, Any]:
    return pod(name, gpus=4, annotations={labels.REQUIRE_NVLINK_ANNOTATION: "true"})


def test_filter_passes_only_the_node_with_a_whole_free_island(islands: TestClient) -> None:
    result = islands.post("/filter", json=args(island_pod(), ["spread", "packed"])).json()
    assert result["NodeNames"] == ["packed"]
    assert result["FailedNodes"] == {"spread": "needs 4 GPUs in one NVLink island; largest free island has 2"}
    assert result.get("Error", "") == ""


def test_filter_marks_a_node_whose_islands_are_too_small_as_unresolvable() -> None:
    nodes = [node("a100-40", "a")]
    with client_for(nodes, []) as client:
        the_pod = pod("p", gpus=6, annotations={labels.REQUIRE_NVLINK_ANNOTATION: "true"})
        result = client.post("/filter", json=args(the_pod, ["a"])).json()
    assert result["NodeNames"] == []
    assert result["FailedAndUnresolvableNodes"] == {
        "a": "needs 6 GPUs in one NVLink island; the node's largest island has 4"
    }


def test_filter_accepts_keys_in_any_letter_case(islands: TestClient) -> None:
    result = islands.post("/filter", json={"pod": island_pod(), "nodenames": ["packed"]}).json()
    assert result["NodeNames"] == ["packed"]


def test_filter_with_full_node_objects_answers_with_node_objects(islands: TestClient) -> None:
    body = {"Pod": island_pod(), "Nodes": {"items": [node("a100-40", "spread"), node("a100-40", "packed")]}}
    result = islands.post("/filter", json=body).json()
    assert [n["metadata"]["name"] for n in result["Nodes"]["items"]] == ["packed"]


@pytest.mark.parametrize(
    ("profile", "taken", "expected"),
    [
        pytest.param("3g.40gb", [], ["mig"], id="free-3g-instance"),
        pytest.param("3g.40gb", ["0:3g.40gb@4", "1:3g.40gb@4"], [], id="every-3g-taken"),
        pytest.param("1g.10gb", ["2:1g.10gb@0"], ["mig"], id="another-1g-free"),
    ],
)
def test_mig_pod_passes_only_where_an_instance_of_its_profile_is_free(
    profile: str, taken: list[str], expected: list[str]
) -> None:
    pods = [
        pod(
            f"t{i}",
            mig=t.split(":")[1].split("@")[0],
            node_name="mig",
            annotations={labels.MIG_INSTANCE_ANNOTATION: t},
        )
        for i, t in enumerate(taken)
    ]
    with client_for([node("a100-80-mig", "mig"), node("h100", "plain")], pods) as client:
        result = client.post("/filter", json=args(pod("m", mig=profile), ["mig", "plain"])).json()
    assert result["NodeNames"] == expected
    assert "plain" in result["FailedAndUnresolvableNodes"]
    if not expected:
        assert result["FailedNodes"]["mig"] == f"every MIG {profile} instance of the node is taken"


def scores_of(client: TestClient, the_pod: dict[str, Any], names: list[str]) -> dict[str, int]:
    """Every node's score; a node the HostPriorityList leaves out scores 0, as in kube-scheduler."""
    result = client.post("/prioritize", json=args(the_pod, names)).json()
    listed = {h["Host"]: h["Score"] for h in result}
    assert len(listed) == len(result), "a node is listed twice"
    assert set(listed) <= set(names)
    assert all(1 <= score <= 10 for score in listed.values())
    return {name: listed.get(name, 0) for name in names}


def test_prioritize_scores_lie_between_1_and_10_and_leave_out_nodes_that_score_0(islands: TestClient) -> None:
    result = islands.post("/prioritize", json=args(pod("one", gpus=1), ["spread", "packed", "ghost"])).json()
    assert {h["Host"] for h in result} <= {"spread", "packed"}
    assert all(1 <= h["Score"] <= 10 for h in result)
    assert max(h["Score"] for h in result) == 10


def test_prioritize_answers_nothing_when_every_node_scores_the_same() -> None:
    # A constant added to every node changes no ranking: the list may as well be empty.
    with client_for([node("a100-40", "a"), node("a100-40", "b")], []) as client:
        assert client.post("/prioritize", json=args(pod("p", gpus=1), ["a", "b"])).json() == []
        # ... but a node the pod does not fit still scores below the ones it fits.
        assert scores_of(client, pod("p", gpus=1), ["a", "b", "ghost"]) == {"a": 10, "b": 10, "ghost": 0}


def test_fgd_prefers_a_node_where_the_pod_leaves_whole_islands_intact() -> None:
    # half: 4 free GPUs in one island; empty: 8 free. A 4-GPU pod fills "half" exactly (no new fragments).
    nodes = [node("a100-40", "half"), node("a100-40", "empty")]
    with client_for(nodes, [held("h", "half", "0,1,2,3")]) as client:
        scores = scores_of(client, pod("p", gpus=4), ["half", "empty"])
    assert scores["half"] > scores["empty"]


def test_spread_strategy_prefers_the_emptier_node() -> None:
    nodes = [node("a100-40", "half"), node("a100-40", "empty")]
    with client_for(nodes, [held("h", "half", "0,1,2,3")], strategy="spread") as client:
        assert scores_of(client, pod("p", gpus=1), ["half", "empty"]) == {"half": 0, "empty": 10}


def planned(at: datetime.datetime, node_name: str) -> dict[str, Any]:
    return pod(
        "planned",
        gpus=1,
        annotations={labels.PLANNED_NODE_ANNOTATION: node_name, labels.PLANNED_AT_ANNOTATION: at.isoformat()},
    )


def test_a_fresh_plan_lets_only_the_planned_node_pass(islands: TestClient) -> None:
    now = datetime.datetime.now(datetime.UTC)
    result = islands.post("/filter", json=args(planned(now, "spread"), ["spread", "packed"])).json()
    assert result["NodeNames"] == ["spread"]
    assert result["FailedNodes"] == {"packed": "the fairpack fallback plan puts this pod on spread"}


@pytest.mark.parametrize(
    ("age_s", "target"),
    [pytest.param(3600, "spread", id="stale"), pytest.param(0, "nowhere", id="impossible")],
)
def test_a_stale_or_impossible_plan_is_ignored(islands: TestClient, age_s: int, target: str) -> None:
    at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=age_s)
    result = islands.post("/filter", json=args(planned(at, target), ["spread", "packed"])).json()
    assert result["NodeNames"] == ["spread", "packed"]


def preempt_args(the_pod: dict[str, Any], victims: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "Pod": the_pod,
        "NodeNameToMetaVictims": {
            n: {"Pods": [{"UID": f"uid-{v}"} for v in vs], "NumPDBViolations": 0} for n, vs in victims.items()
        },
    }


def test_preempt_picks_the_fewest_lowest_priority_victims_that_free_an_island() -> None:
    pods = [
        held("a", "n", "0,1", priority=10),
        held("b", "n", "2,3", priority=0),
        held("c", "n", "4", priority=0),
        held("d", "n", "5", priority=0),
        held("e", "n", "6,7", priority=0),
    ]
    with client_for([node("a100-40", "n")], pods) as client:
        body = preempt_args(island_pod("hi"), {"n": ["a", "b", "c", "d", "e"]})
        result = client.post("/preempt", json=body).json()
    # Island 0-3 frees with a (priority 10) and b; island 4-7 with c, d and e: the fewest win.
    uids = sorted(p["UID"] for p in result["NodeNameToMetaVictims"]["n"]["Pods"])
    assert uids == ["uid-a", "uid-b"]


def test_preempt_among_equal_priority_evicts_the_latest_virtual_finish() -> None:
    pods = [
        held("early", "n", "0,1,2,3", annotations={labels.VIRTUAL_FINISH_ANNOTATION: "5"}),
        held("late", "n", "4,5,6,7", annotations={labels.VIRTUAL_FINISH_ANNOTATION: "50"}),
    ]
    with client_for([node("a100-40", "n")], pods) as client:
        result = client.post("/preempt", json=preempt_args(island_pod("hi"), {"n": ["early", "late"]})).json()
    assert result["NodeNameToMetaVictims"]["n"]["Pods"] == [{"UID": "uid-late"}]


def test_preempt_leaves_out_a_node_where_no_victim_set_frees_a_placement() -> None:
    pods = [held("x", "n", "0,1,4,5"), held("keep", "n", "2,6")]
    with client_for([node("a100-40", "n")], pods) as client:
        result = client.post("/preempt", json=preempt_args(island_pod("hi"), {"n": ["x"]})).json()
    assert result["NodeNameToMetaVictims"] == {}


def bind_args(name: str, node_name: str) -> dict[str, Any]:
    return {"PodName": name, "PodNamespace": "ns", "PodUID": f"uid-{name}", "Node": node_name}


def test_binds_never_give_two_pods_the_same_gpu_and_retries_are_idempotent(islands: TestClient) -> None:
    names = [f"b{i}" for i in range(4)]
    view: cv.ClusterView = islands.app.state.view  # type: ignore[attr-defined]
    for name in names:
        view.upsert_pod(pod(name, gpus=1))
    for name in names:
        assert islands.post("/bind", json=bind_args(name, "packed")).json() == {"Error": ""}
    assert islands.post("/bind", json=bind_args("b0", "packed")).json() == {"Error": ""}
    placements = [view.nodes["packed"].placement_of(f"uid-{n}") for n in names]
    gpus = [g for p in placements if p is not None for g in p.gpus]
    assert sorted(gpus) == [4, 5, 6, 7]
    fifth = "b4"
    view.upsert_pod(pod(fifth, gpus=1))
    assert "does not fit" in islands.post("/bind", json=bind_args(fifth, "packed")).json()["Error"]


def test_bind_of_an_unknown_pod_answers_with_an_error(islands: TestClient) -> None:
    assert "not known" in islands.post("/bind", json=bind_args("ghost", "packed")).json()["Error"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="a-list"),
        pytest.param(b'{"NodeNames": ["a"]}', id="no-pod"),
        pytest.param(
            json.dumps(
                {"Pod": {"spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}}}
            ).encode(),
            id="bad-quantity",
        ),
    ],
)
@pytest.mark.parametrize("verb", ["filter", "prioritize", "preempt", "bind"])
def test_malformed_bodies_get_a_400_with_the_reason(islands: TestClient, verb: str, body: bytes) -> None:
    response = islands.post(f"/{verb}", content=body)
    assert response.status_code == 400
    assert response.json()["Error"]


def test_an_oversized_body_gets_a_413() -> None:
    with client_for([], [], max_body_bytes=1000) as client:
        response = client.post("/filter", content=b"x" * 2000)
    assert response.status_code == 413


def test_health_readiness_and_metrics_are_served_under_the_path_prefix(islands: TestClient) -> None:
    with client_for([node("h100", "n")], [], path_prefix="/fairpack") as client:
        client.post("/fairpack/filter", json=args(pod("p", gpus=1), ["n"]))
        assert client.get("/fairpack/healthz").status_code == 200
        assert client.get("/fairpack/readyz").status_code == 200
        text = client.get("/fairpack/metrics").text
    assert 'fairpack_extender_request_duration_seconds_count{verb="filter"} 1.0' in text
    assert "fairpack_extender_cluster_view_staleness_seconds" in text


def test_preempt_may_choose_lower_priority_pods_the_scheduler_did_not_offer() -> None:
    # The scheduler offers a and b (2 GPUs each, in different islands); c and d free island 4-7.
    pods = [
        held("a", "n", "0,1"),
        held("b", "n", "4,5"),
        held("c", "n", "6,7"),
        held("keep", "n", "2,3", priority=50),
    ]
    with client_for([node("a100-40", "n")], pods) as client:
        the_pod = island_pod("hi")
        the_pod["spec"]["priority"] = 100
        result = client.post("/preempt", json=preempt_args(the_pod, {"n": ["a", "b"]})).json()
    uids = sorted(p["UID"] for p in result["NodeNameToMetaVictims"]["n"]["Pods"])
    assert uids == ["uid-b", "uid-c"]


def test_a_mig_profile_is_measured_with_the_geometry_of_the_nodes_own_gpu_model() -> None:
    # 1g.10gb is one slot on an A100-80GB (two on an A100-40GB, which the name also fits).
    view = cv.ClusterView()
    held_pod = pod(
        "m", mig="1g.10gb", node_name="mig", annotations={labels.MIG_INSTANCE_ANNOTATION: "2:1g.10gb@1"}
    )
    view.replace([node("a100-80-mig", "mig")], [held_pod])
    key = verbs.node_key(view.nodes["mig"])
    seven_ones = next(g for g in key[1] if len(g[2]) == 7)
    assert {cls for cls, _ in seven_ones[2]} == {0}
    assert seven_ones[1] == 0b10  # the instance at slot 1 holds slot 1 only
