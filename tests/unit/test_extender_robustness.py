"""No body makes the extender answer 500 or stop serving; a failing verb answers with Error."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fairpack_dev import inventory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairpack.extender import app as app_
from fairpack.extender import settings as settings_
from fairpack.extender import verbs
from fairpack.extender import view as cv

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

VERBS = ["filter", "prioritize", "preempt", "bind"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "Pod",
        "pod",
        "NODENAMES",
        "NodeNames",
        "Nodes",
        "NodeNameToMetaVictims",
        "NodeNameToVictims",
        "PodName",
        "PodNamespace",
        "PodUID",
        "Node",
        "metadata",
        "spec",
        "containers",
        "resources",
        "limits",
        "items",
    ]
)
near_valid = st.recursive(
    st.none()
    | st.integers()
    | st.text(max_size=10)
    | st.sampled_from(["nvidia.com/gpu", "1", "-3", "1e400", "n"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    view = cv.ClusterView()
    small = inventory.load(inventory.SMALL)
    view.replace(small.nodes(), [])
    with TestClient(app_.create_app(settings_.load(environ={}), view=view)) as test_client:
        yield test_client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(verb=st.sampled_from(VERBS), body=json_values | near_valid)
def test_no_json_body_gets_a_server_error(client: TestClient, verb: str, body: Any) -> None:
    response = client.post(f"/{verb}", content=json.dumps(body))
    assert response.status_code < 500, response.text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(verb=st.sampled_from(VERBS), body=st.binary(max_size=200))
def test_no_byte_string_gets_a_server_error(client: TestClient, verb: str, body: bytes) -> None:
    response = client.post(f"/{verb}", content=body)
    assert response.status_code < 500


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    verb=st.sampled_from(["filter", "prioritize"]),
    spec=st.dictionaries(keys, near_valid, max_size=4),
    names=st.lists(
        st.text(max_size=8) | st.sampled_from(["a100-40-0", "h100-1", "a100-80-mig-0"]), max_size=4
    ),
)
def test_pods_of_any_shape_get_an_answer_not_a_server_error(
    client: TestClient, verb: str, spec: dict[str, Any], names: list[str]
) -> None:
    body = {"Pod": {"metadata": {"name": "p", "namespace": "n"}, "spec": spec}, "NodeNames": names}
    response = client.post(f"/{verb}", content=json.dumps(body))
    assert response.status_code < 500, response.text


def test_a_verb_that_fails_inside_answers_with_error_and_the_service_keeps_serving(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> verbs.FilterResult:
        raise RuntimeError("boom")

    monkeypatch.setattr(verbs, "filter_nodes", broken)
    body = {"Pod": {"metadata": {"name": "p"}, "spec": {"containers": []}}, "NodeNames": ["h100-0"]}
    response = client.post("/filter", json=body)
    assert response.status_code == 200
    assert "filter of default/p failed" in response.json()["Error"]
    monkeypatch.undo()
    assert client.post("/filter", json=body).json()["NodeNames"] == ["h100-0"]
    assert 'fairpack_extender_errors_total{kind="internal",verb="filter"} 1.0' in client.get("/metrics").text
