"""The extender's Prometheus metrics, in a registry of their own (one per app, so tests can build many)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fairpack.solver import stranding

Fragments = Callable[[], tuple[stranding.Totals, float]]
"""(free and stranded capacity, expected fragmented GPUs) of the cluster view, read at scrape."""


class Metrics:
    def __init__(self, *, staleness: Callable[[], float], fragments: Fragments | None = None) -> None:
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
            "Calls answered with an error, per verb and kind (bad_request: not the wire format; "
            "internal: the verb failed; refused: bind declined the pod or the API refused the Binding).",
            ["verb", "kind"],
            registry=self.registry,
        )
        self.staleness = Gauge(
            "fairpack_extender_cluster_view_staleness_seconds",
            "Seconds since the cluster view last heard from the API server (+Inf before the first list).",
            registry=self.registry,
        )
        self.staleness.set_function(staleness)
        if fragments is not None:
            self.registry.register(FragmentationCollector(fragments))


class FragmentationCollector(Collector):
    """The cluster view's free and stranded GPU capacity, computed when Prometheus scrapes.

    Computed per scrape rather than per request, so the verbs never pay for it; each node's part is
    kept in its memo until the node changes (:func:`fairpack.extender.verbs.node_fragments`).
    """

    def __init__(self, fragments: Fragments) -> None:
        self.fragments = fragments

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families(stranding.Totals(), 0.0))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        totals, expected = self.fragments()
        return iter(self._families(totals, expected))

    @staticmethod
    def _families(totals: stranding.Totals, expected: float) -> list[GaugeMetricFamily]:
        unusable = GaugeMetricFamily(
            "fairpack_extender_mig_slots_unusable",
            "Free MIG memory slots (of 8 per GPU) that a pod asking for this profile cannot take: "
            "they belong to free instances of other profiles. One series per profile configured on "
            "any node.",
            labels=["profile"],
        )
        for profile, slots in totals.mig_unusable.items():
            unusable.add_metric([profile], slots)
        return [
            GaugeMetricFamily(
                "fairpack_extender_gpus_free",
                "Free GPU capacity, in GPUs: free whole-mode GPUs plus free MIG slots over 8.",
                value=totals.free_gpus,
            ),
            GaugeMetricFamily(
                "fairpack_extender_gpus_stranded",
                "Free whole-mode GPUs on nodes where another whole-mode GPU is held "
                "(a job that needs a whole node cannot use them).",
                value=totals.stranded,
            ),
            GaugeMetricFamily(
                "fairpack_extender_gpus_fragmented",
                "Expected free GPU capacity that a task of the target workload (every whole-GPU size "
                "and MIG profile, equally likely) cannot use: the FGD measure prioritize keeps low.",
                value=expected,
            ),
            GaugeMetricFamily(
                "fairpack_extender_mig_slots_free",
                "Free MIG memory slots (of 8 per GPU): slots of configured, untaken MIG instances.",
                value=totals.mig_free_slots,
            ),
            unusable,
        ]
