"""The extender's Prometheus metrics, in a registry of their own (one per app, so tests can build many)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, *, staleness: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_duration = Histogram(
            "fairpack_extender_request_duration_seconds",
            "Time to answer one kube-scheduler call, per verb.",
            ["verb"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.filtered_out = Counter(
            "fairpack_extender_nodes_filtered_out_total",
            "Nodes filter rejected, by reason kind "
            "(unresolvable: can never fit; not_now: full, planned elsewhere or unknown).",
            ["reason"],
            registry=self.registry,
        )
        self.binds = Counter(
            "fairpack_extender_binds_total", "Bind calls, by result.", ["result"], registry=self.registry
        )
        self.errors = Counter(
            "fairpack_extender_errors_total",
            "Calls answered with an error, per verb and kind (bad_request, internal).",
            ["verb", "kind"],
            registry=self.registry,
        )
        self.staleness = Gauge(
            "fairpack_extender_cluster_view_staleness_seconds",
            "Seconds since the cluster view last heard from the API server (+Inf before the first list).",
            registry=self.registry,
        )
        self.staleness.set_function(staleness)
