"""The Grafana dashboard: generated from code, and querying only metrics fairpack defines."""

from __future__ import annotations

import json
import re

from fairpack_dev import chart, dashboard


def defined_metric_names() -> set[str]:
    """Every fairpack_* metric name a Counter, Gauge or Histogram of the operator or extender declares."""
    names: set[str] = set()
    for folder in ("operator", "extender"):
        for source in (chart.REPO / folder).rglob("*.py"):
            names |= set(re.findall(r'"(fairpack_[a-z_]+)"', source.read_text()))
    return names


def queried_metric_names() -> set[str]:
    """Every fairpack_* series the dashboard queries, with histogram and counter suffixes removed."""
    found = {name for expr in dashboard.expressions() for name in re.findall(r"fairpack_[a-z_]+", expr)}
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in found}


def test_dashboard_file_is_generated_from_the_current_code() -> None:
    assert dashboard.DASHBOARD.read_text() == dashboard.text(), "run `python -P -m fairpack_dev.dashboard`"


def test_dashboard_queries_only_metrics_fairpack_defines() -> None:
    queried = queried_metric_names()
    assert queried, "the dashboard queries no fairpack metric"
    assert queried <= defined_metric_names()


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
