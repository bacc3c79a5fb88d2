"""The operator's settings: one dataclass per concern, every field with its default and why.

``from_env`` reads ``FAIRPACK_<FIELD>`` variables (upper-case field names) so the Helm chart
and the tests configure the operator without code; nothing else reads the environment.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar


@dataclass(frozen=True)
class AdmissionSettings:
    """The UWFQ queue cycle for SparkJobs."""

    cycle_interval_s: float = 2.0
    """Seconds between queue cycles when nothing kicks one earlier: finished pods and new jobs
    kick a cycle at once, the period only catches what no event announced."""
    capacity_units: float = 1000.0
    """UWFQ's capacity in demand units: a job's demand is its dominant share of the cluster's
    allocatable resources in thousandths, so 1000 is the whole cluster."""
    default_job_seconds: float = 600.0
    """Run time assumed for a job that declares none and whose user has no finished history."""
    pool: str = ""
    """Node label selector (``key=value,...``) of the nodes SparkJobs run on: their allocatable is
    the queue's capacity and the jobs' pods get it as nodeSelector. Empty: the whole cluster."""


@dataclass(frozen=True)
class LLMServiceSettings:
    """Reconciling LLMServices and autoscaling them."""

    status_interval_s: float = 5.0
    """Seconds between status refreshes and autoscaling decisions of each LLMService."""
    metrics_url_template: str = "http://{pod_ip}:{port}{path}"
    """Where a serving pod's Prometheus metrics are read: ``{pod_ip}``, ``{pod_name}``,
    ``{namespace}``, ``{port}`` and ``{path}`` are filled in. Tests point it at a server they control."""
    metrics_timeout_s: float = 2.0
    """Seconds to wait for one pod's metrics before counting it as not reporting."""


@dataclass(frozen=True)
class FallbackSettings:
    """The CP-SAT fallback controller."""

    enabled: bool = True
    """Run the fallback at all."""
    dry_run: bool = False
    """Record plans (event and ConfigMap) without evicting or pinning anything."""
    pending_delay_s: float = 30.0
    """Seconds a fairpack pod must be Unschedulable before the fallback plans for it: long enough
    for the scheduler's own retries and preemption to have had their chance."""
    interval_s: float = 10.0
    """Seconds between fallback checks."""
    plan_freshness_s: float = 120.0
    """Seconds a plan's pins stand before the fallback plans again for the same pod: the time the
    scheduler needs to realise it (120 s: the extender honours pins as long, by default)."""
    solver_window_s: float = 5.0
    """CP-SAT time limit per plan."""
    max_evictions: int = 4
    """Most pods one plan may evict."""
    keep_in_place: bool = False
    """Pass ``keep_in_place`` to the packer: far fewer moves (each one an eviction and a
    reschedule here), at the price of a pod or a few fewer per tier in some plans
    (docs/benchmarks.md, "Moves and evictions at 1 s")."""
    high_priority: int = 1000
    """Pods of at least this priority count as high-priority (the ones a plan must place more of)."""
    plan_history: int = 20
    """Plans kept in the fairpack-fallback-plans ConfigMap (oldest dropped first)."""


@dataclass(frozen=True)
class WebhookSettings:
    """The mutating webhook that gates executor pods a Spark driver creates (kopf's server)."""

    enabled: bool = False
    """Serve it (the chart's ``operator.webhook.enabled`` turns it on with its certificate)."""
    manage: bool = True
    """Let kopf create and keep the MutatingWebhookConfiguration ``fairpack.io`` (needs write access
    to webhook configurations cluster-wide). The Helm chart renders its own configuration and turns
    this off, so the operator's ServiceAccount has no such access."""
    addr: str = "0.0.0.0"
    """Address to listen on."""
    port: int = 9443
    """Port to listen on (HTTPS)."""
    host: str = ""
    """Host name (or IP) the API server calls; empty: ``addr``."""
    certfile: str = ""
    """PEM certificate of the server; empty: a self-signed one is made at start (development)."""
    keyfile: str = ""
    """PEM private key of ``certfile``."""


@dataclass(frozen=True)
class OperatorSettings:
    """How the operator process runs."""

    namespace: str = "fairpack-system"
    """Namespace of the operator's own objects (the fallback plans ConfigMap)."""
    peering: str = ""
    """kopf peering name for HA (two replicas, one active); empty runs standalone. The
    ClusterKopfPeering object of this name must exist (the Helm chart creates it)."""
    peering_priority: int = 0
    """This replica's peering priority; the highest live one acts. Replicas of equal priority would
    all pause, so 0 means "pick a random one at start"."""
    liveness_port: int = 8080
    """Port of kopf's liveness endpoint (/healthz); 0 turns it off."""
    metrics_port: int = 9090
    """Port of the Prometheus metrics endpoint; 0 turns it off."""
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    llmservice: LLMServiceSettings = field(default_factory=LLMServiceSettings)
    fallback: FallbackSettings = field(default_factory=FallbackSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)


T = TypeVar("T")


def _parse(value: str, kind: type) -> Any:
    if kind is bool:
        return value.strip().lower() in ("1", "true", "yes", "on")
    return kind(value)


def _from_env(cls: type[T], env: Mapping[str, str], prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            values[f.name] = _from_env(kind, env, f"{prefix}{f.name.upper()}_")
        elif (raw := env.get(f"{prefix}{f.name.upper()}")) is not None:
            values[f.name] = _parse(raw, kind)
    return cls(**values)


def from_env(env: Mapping[str, str] | None = None) -> OperatorSettings:
    """Settings from ``FAIRPACK_*`` variables, e.g. ``FAIRPACK_ADMISSION_CYCLE_INTERVAL_S=1`` or
    ``FAIRPACK_FALLBACK_DRY_RUN=true``; unset variables keep the defaults."""
    return _from_env(OperatorSettings, os.environ if env is None else env, "FAIRPACK_")
