"""The status views (fairpack status and the demo) on hand-made cluster objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fairpack_dev import inventory
from rich.console import Console

from fairpack.cli import views
from fairpack.solver import labels

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def node(name: str, gpus: int, *, mig: dict[str, list[str]] | None = None) -> dict[str, Any]:
    annotations = {}
    if mig:
        layout = {gpu: [{"profile": p, "start": 0} for p in profiles] for gpu, profiles in mig.items()}
        annotations[labels.MIG_LAYOUT_ANNOTATION] = json.dumps(layout)
    return {
        "metadata": {
            "name": name,
            "labels": {labels.GPU_COUNT_LABEL: str(gpus), labels.GPU_PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"},
            "annotations": annotations,
        },
        "status": {"allocatable": {labels.GPU_RESOURCE: str(gpus - len(mig or {}))}},
    }


def pod(
    name: str, tenant: str, *, node_name: str = "", gpus: int = 0, mig: str = "", phase: str = "Running"
) -> dict[str, Any]:
    limits = {labels.GPU_RESOURCE: str(gpus)} if gpus else {}
    if mig:
        limits[f"{labels.MIG_RESOURCE_PREFIX}{mig}"] = "1"
    return {
        "metadata": {"name": name, "labels": {labels.TENANT_LABEL: tenant}},
        "spec": {
            "schedulerName": labels.SCHEDULER_NAME,
            "nodeName": node_name or None,
            "containers": [{"name": "main", "resources": {"limits": limits}}],
        },
        "status": {"phase": phase},
    }


def tenant(name: str, weight: float) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"weight": weight}}


def sparkjob(name: str, tenant_name: str, phase: str, position: int | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "submittedAt": "2026-01-01T11:55:00Z"}
    if position is not None:
        status["queuePosition"] = position
    return {
        "metadata": {"name": name},
        "spec": {"tenant": tenant_name, "user": "u", "executor": {"instances": 2, "gpus": 1}},
        "status": status,
    }


@pytest.fixture
def snapshot() -> views.Snapshot:
    return views.Snapshot(
        tenants=[tenant("research", 2), tenant("analytics", 1), tenant("idle", 5)],
        sparkjobs=[
            sparkjob("etl-1", "analytics", "Running"),
            sparkjob("etl-2", "analytics", "Queued", position=1),
            sparkjob("train", "research", "Queued", position=0),
        ],
        llmservices=[
            {
                "metadata": {"name": "phi"},
                "spec": {"tenant": "research", "replicas": 2, "gpu": {"migProfile": "3g.40gb"}},
                "status": {"readyReplicas": 2, "conditions": [{"type": "Ready", "status": "True"}]},
            }
        ],
        nodes=[node("gpu-a", 8), node("gpu-b", 8, mig={"0": ["3g.40gb", "3g.40gb"]})],
        pods=[
            pod("etl-1-exec-1", "analytics", node_name="gpu-a", gpus=2),
            pod("etl-1-exec-2", "analytics", node_name="gpu-a", gpus=1),
            pod("phi-0", "research", node_name="gpu-b", mig="3g.40gb"),
            pod("old", "research", node_name="gpu-a", gpus=4, phase="Succeeded"),
            pod("waiting", "research", gpus=1, phase="Pending"),
        ],
        taken=NOW,
    )


def test_occupancy_counts_live_pods_whole_gpus_and_mig_instances_per_node(snapshot: views.Snapshot) -> None:
    uses = {u.name: u for u in views.node_use(snapshot)}
    assert (uses["gpu-a"].gpus_used, uses["gpu-a"].gpus, uses["gpu-a"].mig_slices) == (3, 8, 0)
    assert (uses["gpu-b"].gpus_used, uses["gpu-b"].mig_gpus) == (0, 1)
    assert (uses["gpu-b"].mig_used, uses["gpu-b"].mig_slices) == (1, 2)


def test_finished_and_unbound_pods_hold_no_devices(snapshot: views.Snapshot) -> None:
    assert sum(u.gpus_used for u in views.node_use(snapshot)) == 3


def test_weight_shares_count_only_tenants_with_work(snapshot: views.Snapshot) -> None:
    shares = {s.tenant: s for s in views.shares(snapshot)}
    assert shares["idle"].weight_share == 0.0
    assert shares["research"].weight_share == pytest.approx(2 / 3)
    assert shares["analytics"].weight_share == pytest.approx(1 / 3)
    assert shares["analytics"].gpu_share == pytest.approx(3 / 4)
    assert (shares["analytics"].queued, shares["analytics"].running) == (1, 1)


def test_device_requests_read_limits_of_gpu_and_mig_resources_only() -> None:
    p = pod("p", "t", gpus=2, mig="1g.10gb")
    p["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "4"
    assert dict(views.device_requests(p)) == {
        labels.GPU_RESOURCE: 2,
        f"{labels.MIG_RESOURCE_PREFIX}1g.10gb": 1,
    }


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        pytest.param({"gpu": {"count": 4}, "tensorParallel": 4}, "4 GPU (TP 4)", id="tensor-parallel"),
        pytest.param({"gpu": {"count": 1}}, "1 GPU", id="whole"),
        pytest.param({"gpu": {"migProfile": "3g.40gb"}}, "MIG 3g.40gb", id="mig"),
    ],
)
def test_service_devices_read_as_a_person_says_them(spec: dict[str, Any], text: str) -> None:
    assert views.service_gpus(spec) == text


def test_status_view_lists_jobs_by_tenant_in_queue_order(snapshot: views.Snapshot) -> None:
    console = Console(width=200, record=True, color_system=None)
    console.print(views.status_view(snapshot))
    out = console.export_text()
    assert out.index("etl-1") < out.index("etl-2") < out.index("train")
    assert "MIG 3g.40gb" in out
    assert "1 fairpack pod(s) waiting for the scheduler" in out
    assert "3/15 whole GPUs, 1/2 MIG instances on 2 nodes" in out


def test_missing_crds_are_named(snapshot: views.Snapshot) -> None:
    console = Console(width=200, record=True, color_system=None)
    console.print(views.status_view(views.Snapshot(missing=["sparkjobs.fairpack.io"], taken=NOW)))
    assert "sparkjobs.fairpack.io is not served" in console.export_text()


def test_summary_names_phases_services_and_shares(snapshot: views.Snapshot) -> None:
    lines = views.summary_lines(snapshot)
    assert lines[0] == "SparkJobs: 2 Queued, 1 Running"
    assert "LLMServices: 1/1 ready" in lines
    assert "Tenant analytics: GPU share 75% vs weight share 33%" in lines


def test_nodes_are_listed_in_natural_order() -> None:
    snapshot = views.Snapshot(nodes=[node("h100-10", 8), node("h100-2", 8), node("a100-1", 8)], taken=NOW)
    assert [u.name for u in views.node_use(snapshot)] == ["a100-1", "h100-2", "h100-10"]


def test_an_admitted_job_shows_how_long_it_waited() -> None:
    job = sparkjob("j", "t", "Running")
    job["status"]["admittedAt"] = "2026-01-01T11:57:30Z"
    console = Console(width=200, record=True, color_system=None)
    console.print(views.jobs_table(views.Snapshot(sparkjobs=[job], taken=NOW)))
    assert "2m" in console.export_text()


# --- Fragmentation, waits and fallback plans ---------------------------------------------


def bound(name: str, node_name: str, annotation: tuple[str, str], limits: dict[str, str]) -> dict[str, Any]:
    """A running pod with the device annotation the extender's bind writes."""
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "annotations": dict([annotation]),
        },
        "spec": {
            "schedulerName": labels.SCHEDULER_NAME,
            "nodeName": node_name,
            "containers": [{"name": "c", "resources": {"limits": limits, "requests": limits}}],
        },
        "status": {"phase": "Running"},
    }


def test_fragmentation_counts_stranded_gpus_and_mig_slots_a_profile_cannot_use() -> None:
    small = inventory.load(inventory.SMALL)
    snapshot = views.Snapshot(
        nodes=[small.pool("a100-40").node("a100"), small.pool("a100-80-mig").node("mig")],
        pods=[
            bound("p", "a100", (labels.GPU_INDICES_ANNOTATION, "0,1"), {labels.GPU_RESOURCE: "2"}),
            bound(
                "m",
                "mig",
                (labels.MIG_INSTANCE_ANNOTATION, "0:4g.40gb@0"),
                {f"{labels.MIG_RESOURCE_PREFIX}4g.40gb": "1"},
            ),
        ],
        taken=NOW,
    )
    console = Console(width=300, record=True, color_system=None)
    console.print(views.occupancy_view(snapshot))
    out = console.export_text()
    # The A100's 6 free GPUs are stranded beside the held two; the MIG node's 5 whole-mode GPUs are not.
    assert "Fragmentation: 6 of 11 free whole GPUs stranded on partly used nodes; 19 free MIG slots" in out
    assert "unusable per profile: 1g.10gb 12, 2g.20gb 15, 3g.40gb 11, 4g.40gb 19" in out


def test_tenant_waits_are_the_median_of_admitted_jobs_and_the_oldest_queued_so_far() -> None:
    jobs = [sparkjob(f"a{i}", "t", "Running") for i in range(3)] + [sparkjob("q", "t", "Queued", 0)]
    for job, admitted in zip(jobs, ("11:55:30", "11:56:00", "11:59:00"), strict=False):
        job["status"]["admittedAt"] = f"2026-01-01T{admitted}Z"
    snapshot = views.Snapshot(tenants=[tenant("t", 1)], sparkjobs=jobs, taken=NOW)
    share = views.shares(snapshot)[0]
    assert (share.median_wait_s, share.oldest_queued_s) == (60.0, 300.0)
    console = Console(width=200, record=True, color_system=None)
    console.print(views.shares_table(snapshot))
    row = next(line for line in console.export_text().splitlines() if line.strip().startswith("t "))
    assert row.split()[-2:] == ["1m", "5m"]


def plan(time: str, outcome: str, **more: Any) -> dict[str, Any]:
    return {
        "time": time,
        "time_ns": 0,
        "outcome": outcome,
        "high_priority_placed": {"before": 1, "after": 3},
        "pending": ["ns/hi-1", "ns/hi-2"],
        "pins": {"ns/hi-1": "n1", "ns/hi-2": "n2"},
        "evictions": ["ns/lo-1"],
        "solve_s": 0.25,
        **more,
    }


def test_plans_are_read_newest_first_and_unreadable_records_are_skipped() -> None:
    data = {
        "plan-1": json.dumps(plan("2026-01-01T11:50:00Z", "no_gain")),
        "plan-3": json.dumps([plan("2026-01-01T11:58:00Z", "executed")]),
        "plan-2": json.dumps(plan("2026-01-01T11:55:00Z", "blocked")),
        "plan-4": "{not json",
        "plan-5": json.dumps("a string"),
    }
    assert [p["outcome"] for p in views.read_plans(data)] == ["executed", "blocked", "no_gain"]


def test_plans_view_shows_outcomes_and_whole_counts_of_capped_lists() -> None:
    capped = plan(
        "2026-01-01T11:58:00Z",
        "blocked",
        pending_count=5,
        evictions_count=40,
        refusal="ns/lo-1: Cannot evict pod as it would violate the pod's disruption budget.",
    )
    snapshot = views.Snapshot(plans=[capped, plan("2026-01-01T11:50:00Z", "executed")], taken=NOW)
    console = Console(width=250, record=True, color_system=None)
    console.print(views.status_view(snapshot))
    out = console.export_text()
    assert "Fallback plans: 2 kept, 1 blocked, 1 executed" in out
    row = next(line for line in out.splitlines() if "blocked" in line and "ago" in line)
    assert row.split()[:9] == ["2m", "ago", "blocked", "1", "->", "3", "5:", "ns/hi-1,", "ns/hi-2"]
    assert "+3" in row
    assert " 40 " in row
    assert "disruption budget" in row


def test_without_plans_the_view_says_why() -> None:
    console = Console(width=200, record=True, color_system=None)
    note = "no fallback plans recorded yet (no ConfigMap fairpack-system/fairpack-fallback-plans)"
    console.print(views.plans_view(views.Snapshot(plans_note=note, taken=NOW)))
    assert f"Fallback plans: {note}" in console.export_text()


def test_the_plans_config_map_is_the_one_the_operator_writes() -> None:
    from fairpack.operator import fallback, settings

    assert views.PLANS_CONFIGMAP == fallback.PLANS_CONFIGMAP
    assert settings.OperatorSettings().namespace == views.DEFAULT_NAMESPACE


def test_status_reads_the_record_the_operators_fallback_writes() -> None:
    from fairpack.operator import fallback

    solved: Any = SimpleNamespace(status="OPTIMAL", solve_s=0.5)
    pending = [f"ns/hi-{i:02}" for i in range(30)]  # more than the record lists
    found = fallback.entry(
        now=NOW.timestamp() - 60,
        outcome="blocked",
        plan=solved,
        counts=(0, 30),
        pending=pending,
        targets=dict.fromkeys(pending, "n1"),
        victims=["ns/lo-1"],
        execution=fallback.Execution("blocked", "ns/lo-1: disruption budget", ()),
    )
    data = {f"plan-{found['time_ns']}": json.dumps(found, sort_keys=True)}
    kept = fallback.trimmed(data, history=5, max_bytes=fallback.RECORD_MAX_BYTES)
    snapshot = views.Snapshot(plans=views.read_plans(kept), taken=NOW)
    console = Console(width=250, record=True, color_system=None)
    console.print(views.plans_view(snapshot))
    row = next(line for line in console.export_text().splitlines() if "ago" in line)
    assert row.split()[:11] == [
        "1m",
        "ago",
        "blocked",
        "0",
        "->",
        "30",
        "30:",
        "ns/hi-00,",
        "ns/hi-01",
        "+28",
        "30",
    ]
    assert "ns/lo-1: disruption budget" in row
