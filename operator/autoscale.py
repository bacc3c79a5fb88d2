"""Autoscaling an LLMService on a metric its pods export in Prometheus format.

The decision is pure (``Recommender``, with HPA's stabilisation windows); where the numbers come
from is a ``MetricSource``, so tests and other deployments can plug in their own.
"""

from __future__ import annotations

import math
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import parser

DEFAULT_METRICS = {"queueLength": "vllm:num_requests_waiting", "kvCacheUsage": "vllm:gpu_cache_usage_perc"}
"""vLLM's metric for each ``spec.autoscaling.metric``."""


class MetricSource(Protocol):
    """Reads one metric of one pod; None when the pod does not report it (yet)."""

    def read(self, pod: Mapping[str, Any], *, metric: str, port: int, path: str) -> float | None: ...


@dataclass(frozen=True)
class ScrapeSource:
    """Scrapes the pod's Prometheus endpoint over HTTP and sums the metric's samples."""

    url_template: str
    """See ``LLMServiceSettings.metrics_url_template``."""
    timeout_s: float

    def read(self, pod: Mapping[str, Any], *, metric: str, port: int, path: str) -> float | None:
        meta = pod.get("metadata", {})
        url = self.url_template.format(
            pod_ip=(pod.get("status") or {}).get("podIP", ""),
            pod_name=meta.get("name", ""),
            namespace=meta.get("namespace", ""),
            port=port,
            path=path,
        )
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                text = response.read().decode()
        except OSError:
            return None
        return metric_value(text, metric)


def metric_value(text: str, metric: str) -> float | None:
    """The sum of ``metric``'s samples (over label sets) in Prometheus text; None when absent."""
    samples = [
        s.value
        for family in parser.text_string_to_metric_families(text)
        for s in family.samples
        if s.name == metric
    ]
    return float(sum(samples)) if samples else None


@dataclass(frozen=True)
class Decision:
    """One autoscaling evaluation."""

    current: int
    desired: int
    """After clamping and stabilisation; equal to ``current`` when nothing changes."""
    value: float | None
    """Mean metric value per reporting pod (None when no pod reported)."""
    reason: str


def raw_desired(*, current: int, value: float, target: float, low: int, high: int) -> int:
    """HPA's rule: replicas so that the mean per replica meets the target, within bounds."""
    wanted = math.ceil(max(current, 1) * value / target) if value > 0 else low
    return max(low, min(high, wanted))


class Recommender:
    """Keeps recent raw recommendations of one service and applies the stabilisation windows:
    scale up only to the lowest recommendation of the up-window, down only to the highest of
    the down-window (as the HorizontalPodAutoscaler's behaviour does)."""

    def __init__(self) -> None:
        self._history: deque[tuple[float, int, bool]] = deque()
        """(time, recommendation, observed): the unobserved entry is the seed after a (re)start."""

    def decide(
        self,
        *,
        now: float,
        current: int,
        values: Sequence[float],
        autoscaling: Mapping[str, Any],
    ) -> Decision:
        low, high = int(autoscaling["minReplicas"]), int(autoscaling["maxReplicas"])
        if not values:
            return Decision(current, max(low, min(high, current)), None, "NoMetrics")
        value = sum(values) / len(values)
        raw = raw_desired(
            current=current, value=value, target=float(autoscaling["target"]), low=low, high=high
        )
        if not self._history:
            # After a (re)start: pretend the current size was recommended just now, so a scale-down
            # waits a full window rather than acting on one sample.
            self._history.append((now, current, False))
        self._history.append((now, raw, True))
        up_s = float(autoscaling.get("scaleUpStabilizationSeconds", 0))
        down_s = float(autoscaling.get("scaleDownStabilizationSeconds", 300))
        while self._history and self._history[0][0] < now - max(up_s, down_s):
            self._history.popleft()
        if raw > current:
            desired = max(current, min(r for t, r, seen in self._history if seen and t >= now - up_s))
            reason = "MetricAboveTarget"
        elif raw < current:
            desired = min(current, max(r for t, r, _ in self._history if t >= now - down_s))
            reason = "MetricBelowTarget"
        else:
            desired, reason = current, "AtTarget"
        if desired == current and raw != current:
            reason = "Stabilising"
        return Decision(current, desired, value, reason)
