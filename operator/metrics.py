"""The operator's Prometheus metrics (served on ``OperatorSettings.metrics_port``)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

RECONCILES: Final = Counter(
    "fairpack_operator_reconciles_total",
    "Reconciliations by resource kind and result (ok, error).",
    ["kind", "result"],
)
QUEUE_LENGTH: Final = Gauge(
    "fairpack_operator_queue_length",
    "SparkJobs waiting for admission, per tenant.",
    ["tenant"],
)
ADMISSION_WAIT: Final = Histogram(
    "fairpack_operator_admission_wait_seconds",
    "Seconds from a job's submission to its admission, per tenant.",
    ["tenant"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf")),
)
TENANT_WEIGHT: Final = Gauge(
    "fairpack_operator_tenant_weight",
    "Each Tenant's UWFQ weight (the dashboard sets shares against it).",
    ["tenant"],
)
TENANT_GPUS: Final = Gauge(
    "fairpack_operator_tenant_gpus",
    "Whole GPUs requested by each tenant's admitted, unfinished work.",
    ["tenant"],
)
CYCLE_SECONDS: Final = Histogram(
    "fairpack_operator_cycle_seconds",
    "Duration of each step of the admission cycle.",
    ["step"],
)
PLANS: Final = Counter(
    "fairpack_operator_fallback_plans_total",
    "CP-SAT fallback plans by outcome (no_gain, dry_run, executed, blocked).",
    ["outcome"],
)
SOLVER_SECONDS: Final = Histogram(
    "fairpack_operator_solver_seconds",
    "Wall time of each CP-SAT fallback solve.",
    buckets=(0.05, 0.1, 0.5, 1, 2, 5, 10, 30, float("inf")),
)
