"""The Grafana dashboard over fairpack's Prometheus metrics, written as code.

``python -P -m fairpack_dev.dashboard`` rewrites charts/fairpack/dashboards/fairpack.json (the chart
ships it as an optional ConfigMap); unit tests fail when the file is stale, when a panel queries a
``fairpack_*`` series or groups by a label that the operator's and the extender's registries do not
export, and when a panel's listed label values (reasons, kinds, outcomes) differ from those the
code emits. GPU and MIG occupancy come from kube-state-metrics (``kube_node_status_allocatable``,
``kube_pod_container_resource_requests``), which every Prometheus stack for Kubernetes runs;
fragmentation (stranded GPUs, MIG slots a profile cannot use) from the extender's cluster view.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fairpack_dev import chart

DASHBOARD = chart.CHART / "dashboards" / "fairpack.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GPU = 'resource="nvidia_com_gpu"'
MIG = 'resource=~"nvidia_com_mig_.*"'
# Requests of pods that hold or wait for devices (kube-state-metrics keeps finished pods' requests).
LIVE_REQUESTS = (
    "(kube_pod_container_resource_requests{{{sel}}} * on(namespace, pod) group_left() "
    'max by (namespace, pod) (kube_pod_status_phase{{phase=~"Pending|Running"}} == 1))'
)


def quantile(q: float, histogram: str, by: str, window: str) -> str:
    """PromQL for quantile ``q`` of a Prometheus histogram, summed over all but ``by`` labels."""
    return f"histogram_quantile({q}, sum by ({by}) (rate({histogram}_bucket[{window}])))"


@dataclass(frozen=True)
class Panel:
    """One time-series (or stat) panel: a title, what it shows, and its PromQL targets."""

    title: str
    description: str
    targets: Sequence[tuple[str, str]]
    """(PromQL expression, legend) pairs."""
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    stacked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict)
    """Label values the code emits for the panel's series, each with its meaning: written into the
    description, and a unit test holds them equal to what the code emits."""

    @property
    def text(self) -> str:
        """The description with the meaning of each label value."""
        meanings = "; ".join(f"{value}: {meaning}" for value, meaning in self.values.items())
        return f"{self.description} {meanings}." if meanings else self.description


FALLBACK_OUTCOMES: Mapping[str, str] = {
    "no_gain": "the plan places no more high-priority pods than now",
    "dry_run": "a gain, not carried out (dry-run mode)",
    "executed": "pods pinned and victims evicted",
    "blocked": "an eviction was refused (disruption budget); the pins were undone",
}

ROWS: Sequence[tuple[str, Sequence[Panel]]] = (
    (
        "Scheduling (extender)",
        (
            Panel(
                "Extender latency per verb (p50, p99)",
                "How long kube-scheduler waits on each extender verb (filter, prioritize, preempt, bind).",
                (
                    (
                        quantile(0.99, "fairpack_extender_request_duration_seconds", "verb, le", "5m"),
                        "p99 {{verb}}",
                    ),
                    (
                        quantile(0.5, "fairpack_extender_request_duration_seconds", "verb, le", "5m"),
                        "p50 {{verb}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Extender calls and errors per verb",
                "Calls per second, and those answered with an error, by kind.",
                (
                    (
                        "sum by (verb) (rate(fairpack_extender_request_duration_seconds_count[5m]))",
                        "{{verb}}",
                    ),
                    (
                        "sum by (verb, kind) (rate(fairpack_extender_errors_total[5m]))",
                        "errors {{verb}} {{kind}}",
                    ),
                ),
                unit="reqps",
                values={
                    "bad_request": "the body is not kube-scheduler's wire format",
                    "internal": "the verb failed (answered as kube-scheduler expects, and logged)",
                    "refused": "bind declined the pod or the API server refused its Binding",
                },
            ),
            Panel(
                "Nodes filtered out by reason",
                "Nodes filter rejected per second, by reason kind.",
                (("sum by (reason) (rate(fairpack_extender_nodes_filtered_out_total[5m]))", "{{reason}}"),),
                unit="ops",
                stacked=True,
                values={
                    "unresolvable": "the node can never hold the pod (preemption cannot help)",
                    "not_now": "its devices are taken, a fallback plan holds them for another pod, "
                    "or the node is unknown",
                },
            ),
            Panel(
                "Binds by result, and cluster-view staleness",
                "Binds per second by result; seconds since each extender's watch last heard from the API "
                "server.",
                (
                    ("sum by (result) (rate(fairpack_extender_binds_total[5m]))", "binds {{result}}"),
                    ("max(fairpack_extender_cluster_view_staleness_seconds)", "staleness (s)"),
                ),
                values={"ok": "bound", "error": "not bound (counted as refused above)"},
            ),
        ),
    ),
    (
        "Queue and fairness",
        (
            Panel(
                "Queue length per tenant",
                "SparkJobs waiting for UWFQ admission.",
                (("sum by (tenant) (fairpack_operator_queue_length)", "{{tenant}}"),),
                stacked=True,
            ),
            Panel(
                "Admission wait per tenant (p50, p90)",
                "Seconds from a job's submission to its admission.",
                (
                    (
                        quantile(0.9, "fairpack_operator_admission_wait_seconds", "tenant, le", "15m"),
                        "p90 {{tenant}}",
                    ),
                    (
                        quantile(0.5, "fairpack_operator_admission_wait_seconds", "tenant, le", "15m"),
                        "p50 {{tenant}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Tenants' GPU share vs weight share",
                "Solid: each tenant's share of the GPUs held by admitted work. Dashed: its weight over the "
                "weights of the tenants with work. Under contention UWFQ keeps the two close.",
                (
                    (
                        "sum by (tenant) (fairpack_operator_tenant_gpus) "
                        "/ scalar(sum(fairpack_operator_tenant_gpus) > 0)",
                        "GPU share {{tenant}}",
                    ),
                    (
                        "sum by (tenant) (fairpack_operator_tenant_weight and on(tenant) "
                        "(fairpack_operator_tenant_gpus > 0 or fairpack_operator_queue_length > 0)) "
                        "/ scalar(sum(fairpack_operator_tenant_weight and on(tenant) "
                        "(fairpack_operator_tenant_gpus > 0 or fairpack_operator_queue_length > 0)))",
                        "weight share {{tenant}}",
                    ),
                ),
                unit="percentunit",
                extra={
                    "overrides": [
                        {
                            "matcher": {"id": "byRegexp", "options": "weight share.*"},
                            "properties": [
                                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}
                            ],
                        }
                    ]
                },
            ),
            Panel(
                "Admission cycle step duration (p99)",
                "Each numbered step of the operator's queue cycle.",
                (
                    (
                        quantile(0.99, "fairpack_operator_cycle_seconds", "step, le", "5m"),
                        "{{step}}",
                    ),
                ),
                unit="s",
            ),
        ),
    ),
    (
        "GPU and MIG occupancy (kube-state-metrics)",
        (
            Panel(
                "Whole GPUs in use",
                "GPUs requested by pending or running pods over the GPUs the nodes offer.",
                (
                    (
                        f"sum({LIVE_REQUESTS.format(sel=GPU)}) / sum(kube_node_status_allocatable{{{GPU}}})",
                        "GPUs in use",
                    ),
                ),
                unit="percentunit",
                kind="stat",
                width=6,
            ),
            Panel(
                "MIG instances in use by profile",
                "MIG instances requested over those the nodes advertise, per profile.",
                (
                    (
                        f"sum by (resource) ({LIVE_REQUESTS.format(sel=MIG)}) "
                        f"/ sum by (resource) (kube_node_status_allocatable{{{MIG}}})",
                        "{{resource}}",
                    ),
                ),
                unit="percentunit",
                width=6,
            ),
            Panel(
                "Fragmentation: free GPUs stranded on partly used nodes",
                "Free GPUs on nodes that also run GPU pods: a job needing a whole node cannot use them.",
                (
                    (
                        f"sum((sum by (node) (kube_node_status_allocatable{{{GPU}}}) "
                        f"- sum by (node) ({LIVE_REQUESTS.format(sel=GPU)})) "
                        f"and on(node) (sum by (node) ({LIVE_REQUESTS.format(sel=GPU)}) > 0))",
                        "stranded GPUs",
                    ),
                    (
                        f"sum(kube_node_status_allocatable{{{GPU}}}) - sum({LIVE_REQUESTS.format(sel=GPU)})",
                        "all free GPUs",
                    ),
                ),
            ),
        ),
    ),
    (
        "Fragmentation (the extender's cluster view)",
        (
            Panel(
                "Stranded and fragmented GPUs",
                "From the extender's view (max over its replicas, which watch the same cluster). "
                "Free: whole-mode GPUs plus free MIG slots over 8. Stranded: free whole-mode GPUs on "
                "nodes where another is held. Fragmented: the expected free capacity a task of any "
                "whole-GPU size or MIG profile could not use (FGD, what prioritize keeps low).",
                (
                    ("max(fairpack_extender_gpus_free)", "free GPUs"),
                    ("max(fairpack_extender_gpus_stranded)", "stranded GPUs"),
                    ("max(fairpack_extender_gpus_fragmented)", "fragmented GPUs (FGD)"),
                ),
            ),
            Panel(
                "MIG slots a profile cannot use",
                "Per MIG profile configured on some node: free memory slots (8 per GPU) that a pod "
                "asking for that profile cannot take, because the free instances there are of other "
                "profiles. Dashed: all free MIG slots.",
                (
                    ("max by (profile) (fairpack_extender_mig_slots_unusable)", "{{profile}}"),
                    ("max(fairpack_extender_mig_slots_free)", "free MIG slots"),
                ),
                extra={
                    "overrides": [
                        {
                            "matcher": {"id": "byName", "options": "free MIG slots"},
                            "properties": [
                                {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}
                            ],
                        }
                    ]
                },
            ),
        ),
    ),
    (
        "CP-SAT fallback",
        (
            Panel(
                "Fallback plans by outcome",
                "Plans the CP-SAT fallback made in the last hour, by outcome.",
                (("sum by (outcome) (increase(fairpack_operator_fallback_plans_total[1h]))", "{{outcome}}"),),
                stacked=True,
                values=FALLBACK_OUTCOMES,
            ),
            Panel(
                "Solver time per plan (p50, p99)",
                "Wall time of each CP-SAT solve (bounded by the solver window).",
                (
                    (
                        quantile(0.99, "fairpack_operator_solver_seconds", "le", "1h"),
                        "p99",
                    ),
                    (
                        quantile(0.5, "fairpack_operator_solver_seconds", "le", "1h"),
                        "p50",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Reconciles by kind and result",
                "Operator reconciliations per second, by resource kind and result.",
                (
                    (
                        "sum by (kind, result) (rate(fairpack_operator_reconciles_total[5m]))",
                        "{{kind}} {{result}}",
                    ),
                ),
                unit="ops",
                values={
                    "ok": "reconciled",
                    "error": "the API server refused the objects (a warning event says why)",
                },
            ),
        ),
    ),
)


def panel_json(panel: Panel, *, panel_id: int, x: int, y: int) -> dict[str, Any]:
    """Grafana's JSON for one panel at grid position (x, y)."""
    custom: dict[str, Any] = {"lineWidth": 2, "fillOpacity": 10}
    if panel.stacked:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.text,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, **({"custom": custom} if panel.kind == "timeseries" else {})},
            "overrides": panel.extra.get("overrides", []),
        },
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    """The whole dashboard: one collapsible row per concern, panels laid out left to right."""
    panels: list[dict[str, Any]] = []
    y, panel_id = 0, 1
    for title, row in ROWS:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(panel_json(panel, panel_id=panel_id, x=x, y=y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    return {
        "title": "fairpack",
        "uid": "fairpack",
        "description": "Extender latency, UWFQ queues and fairness, GPU/MIG occupancy and fragmentation, "
        "CP-SAT fallback.",
        "tags": ["fairpack", "gpu", "scheduling"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                }
            ]
        },
        "panels": panels,
    }


def text() -> str:
    """The dashboard file's content."""
    return json.dumps(dashboard(), indent=2) + "\n"


def expressions() -> list[str]:
    """Every PromQL expression the dashboard runs."""
    return [expr for _, row in ROWS for panel in row for expr, _ in panel.targets]


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the dashboard file (``--check``: exit 1 if it is stale)."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = pathlib.Path(DASHBOARD)
    if "--check" in args:
        return 0 if path.read_text() == text() else 1
    path.write_text(text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
