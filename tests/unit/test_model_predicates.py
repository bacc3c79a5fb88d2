"""Tolerations, node selector operators and resource arithmetic behave as Kubernetes' do."""

from __future__ import annotations

import pytest

from fairpack.solver import model

GPU_TAINT = model.Taint("nvidia.com/gpu", "present", "NoSchedule")


@pytest.mark.parametrize(
    ("toleration", "tolerates"),
    [
        pytest.param(model.Toleration("nvidia.com/gpu", "Exists"), True, id="exists-any-value"),
        pytest.param(model.Toleration("nvidia.com/gpu", "Equal", "present"), True, id="equal-value"),
        pytest.param(model.Toleration("nvidia.com/gpu", "Equal", "absent"), False, id="other-value"),
        pytest.param(model.Toleration("", "Exists"), True, id="empty-key-exists-tolerates-all"),
        pytest.param(
            model.Toleration("nvidia.com/gpu", "Exists", effect="NoExecute"), False, id="other-effect"
        ),
        pytest.param(model.Toleration("other", "Exists"), False, id="other-key"),
    ],
)
def test_tolerations_match_taints_as_kubernetes_does(toleration: model.Toleration, tolerates: bool) -> None:
    assert toleration.tolerates(GPU_TAINT) is tolerates


@pytest.mark.parametrize(
    ("requirement", "matches"),
    [
        pytest.param(model.NodeSelectorRequirement("zone", "In", ("a", "b")), True, id="in"),
        pytest.param(model.NodeSelectorRequirement("zone", "NotIn", ("a",)), False, id="not-in"),
        pytest.param(model.NodeSelectorRequirement("rack", "NotIn", ("a",)), True, id="not-in-absent-label"),
        pytest.param(model.NodeSelectorRequirement("zone", "Exists"), True, id="exists"),
        pytest.param(model.NodeSelectorRequirement("rack", "DoesNotExist"), True, id="does-not-exist"),
        pytest.param(model.NodeSelectorRequirement("gpus", "Gt", ("4",)), True, id="gt"),
        pytest.param(model.NodeSelectorRequirement("gpus", "Lt", ("8",)), False, id="lt-equal"),
        pytest.param(model.NodeSelectorRequirement("zone", "Gt", ("1",)), False, id="gt-not-a-number"),
    ],
)
def test_node_selector_operators(requirement: model.NodeSelectorRequirement, matches: bool) -> None:
    assert requirement.matches({"zone": "a", "gpus": "8"}) is matches


def test_an_empty_affinity_term_matches_no_node_and_match_fields_see_the_name() -> None:
    node = model.Node("n1", labels={"zone": "a"})
    assert not model.NodeSelectorTerm().matches(node)
    by_name = model.NodeSelectorTerm(
        match_fields=(model.NodeSelectorRequirement("metadata.name", "In", ("n1",)),)
    )
    assert by_name.matches(node)


def test_resources_add_subtract_and_fit_with_absent_names_as_zero() -> None:
    pod = model.Resources.of(cpu=500, memory=2**30)
    free = model.Resources.of(cpu=1000, memory=2**31, pods=110) - pod
    assert free == {"cpu": 500, "memory": 2**30, "pods": 110}
    assert pod.fits(free)
    assert not (pod + {"nvidia.com/gpu": 1}).fits(free)
    assert (pod + pod).shortfall(free) == {"cpu": 500, "memory": 2**30}
    assert model.Resources.of(cpu=0) == model.NO_RESOURCES
    assert hash(model.Resources.of(cpu=1)) == hash(model.Resources.of({"cpu": 1}))


def test_a_cordoned_node_refuses_every_pod_with_a_reason() -> None:
    pod = model.Pod("d", "p", requests=model.Resources.of(cpu=1))
    node = model.Node("n", allocatable=model.Resources.of(cpu=10), unschedulable=True)
    assert model.resources_misfit(pod, node, model.NO_RESOURCES) == "node is cordoned (unschedulable)"
