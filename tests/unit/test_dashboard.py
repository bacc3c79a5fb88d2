"""The Grafana dashboard: generated from code, and querying only metrics fairpack defines."""

from __future__ import annotations

import json
import re

import pytest
from fairpack_dev import chart, dashboard
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from fairpack.extender import metrics as extender_metrics
from fairpack.operator import metrics as operator_metrics
from fairpack.solver import stranding


def defined_series() -> dict[str, set[str]]:
    """Every fairpack_* series the operator's and the extender's registries export, with its label
    names (counters with ``_total``, histograms with ``_bucket``, ``_count`` and ``_sum``)."""
    extender = extender_metrics.Metrics(
        staleness=lambda: 0.0,
        fragments=lambda: (stranding.Totals(mig_unusable={"3g.40gb": 4}), 1.0),
    )
    wrappers = [m for m in vars(extender).values() if isinstance(m, MetricWrapperBase)]
    wrappers += [m for m in vars(operator_metrics).values() if isinstance(m, MetricWrapperBase)]
    labels = {w._name: set(w._labelnames) for w in wrappers}
    found: dict[str, set[str]] = {}
    for registry in (extender.registry, REGISTRY):
        for family in registry.collect():
            if not family.name.startswith("fairpack_"):
                continue
            names = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
            sampled = {key for s in family.samples for key in s.labels} - {"le"}
            for suffix in names:
                found[family.name + suffix] = labels.get(family.name, set()) | sampled
    return found


def queried_metric_names() -> set[str]:
    """Every fairpack_* series the dashboard queries."""
    return {name for expr in dashboard.expressions() for name in re.findall(r"fairpack_[a-z_]+", expr)}


def test_dashboard_file_is_generated_from_the_current_code() -> None:
    assert dashboard.DASHBOARD.read_text() == dashboard.text(), "run `python -P -m fairpack_dev.dashboard`"


def test_dashboard_queries_only_series_the_registries_export() -> None:
    queried = queried_metric_names()
    assert queried, "the dashboard queries no fairpack metric"
    assert queried <= set(defined_series())


def test_dashboard_groups_series_only_by_labels_they_have() -> None:
    series = defined_series()
    for expr in dashboard.expressions():
        grouped = {
            label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")
        }
        offered = set().union(
            *(series[name] for name in re.findall(r"fairpack_[a-z_]+", expr) if name in series)
        )
        assert grouped - {"le", "node", "namespace", "pod", "resource", ""} <= offered, expr


def emitted(path: str, *patterns: str) -> set[str]:
    """Label values written as literals in the code at ``path`` (each pattern's first group)."""
    source = (chart.REPO / path).read_text()
    return {value for pattern in patterns for value in re.findall(pattern, source)}


def panel(title: str) -> dashboard.Panel:
    return next(p for _, row in dashboard.ROWS for p in row if p.title == title)


@pytest.mark.parametrize(
    ("title", "values"),
    [
        pytest.param(
            "Extender calls and errors per verb",
            emitted("extender/app.py", r'errors\.labels\([^,()]+, "(\w+)"\)'),
            id="error-kinds",
        ),
        pytest.param(
            "Nodes filtered out by reason",
            emitted("extender/app.py", r'filtered_out\.labels\("(\w+)"\)'),
            id="filtered-out-reasons",
        ),
        pytest.param(
            "Binds by result, and cluster-view staleness",
            emitted(
                "extender/app.py",
                r'binds\.labels\("(\w+)" if \w+ else "(?:\w+)"\)',
                r'binds\.labels\("\w+" if \w+ else "(\w+)"\)',
            ),
            id="bind-results",
        ),
        pytest.param(
            "Fallback plans by outcome",
            emitted("operator/fallback.py", r'outcome = "(\w+)"', r'Execution\("(\w+)"'),
            id="fallback-outcomes",
        ),
        pytest.param(
            "Reconciles by kind and result",
            emitted("operator/llmservice.py", r'RECONCILES\.labels\("\w+", "(\w+)"\)')
            | emitted("operator/sparkjob.py", r'RECONCILES\.labels\("\w+", "(\w+)"\)'),
            id="reconcile-results",
        ),
    ],
)
def test_panel_descriptions_name_exactly_the_label_values_the_code_emits(
    title: str, values: set[str]
) -> None:
    assert values, "the pattern no longer finds the label values in the code: update it"
    assert set(panel(title).values) == values
    for value in values:
        assert f"{value}: " in json.dumps(dashboard.dashboard())


def test_dashboard_shows_fragmentation_from_the_extender() -> None:
    queried = queried_metric_names()
    assert {"fairpack_extender_gpus_stranded", "fairpack_extender_mig_slots_unusable"} <= queried


def test_dashboard_panels_do_not_overlap_and_have_unique_ids() -> None:
    panels = json.loads(dashboard.text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))


def test_dashboard_shows_queues_shares_occupancy_and_fallback() -> None:
    titles = " ".join(p["title"] for p in json.loads(dashboard.text())["panels"])
    for topic in ("Queue length per tenant", "GPU share vs weight share", "MIG instances", "Fragmentation"):
        assert topic in titles
    assert "Fallback plans by outcome" in titles
