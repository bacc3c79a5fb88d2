"""Names fairpack shares with Kubernetes objects: labels, annotations, resources, gates.

One place for every key that more than one layer reads or writes (the node inventory, the
solver's adapters, the extender and the operator), so they cannot drift apart. Values are
documented where their format is not obvious.
"""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "fairpack.io"

# --- Resources, as the NVIDIA device plugin advertises them -------------------------------
GPU_RESOURCE: Final = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX: Final = "nvidia.com/mig-"
"""A MIG instance of profile P is the extended resource ``nvidia.com/mig-P`` (mixed strategy)."""

# --- Node labels, as NVIDIA's GPU feature discovery sets them -----------------------------
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
GPU_COUNT_LABEL: Final = "nvidia.com/gpu.count"
GPU_MEMORY_LABEL: Final = "nvidia.com/gpu.memory"
"""GPU memory in MiB, as a decimal string."""
MIG_STRATEGY_LABEL: Final = "nvidia.com/mig.strategy"
"""``none`` or ``mixed``: with ``mixed`` each MIG profile is its own extended resource."""
NODE_POOL_LABEL: Final = "fairpack.io/pool"
"""The inventory pool a simulated node was made from (hack/inventories), e.g. ``h100``."""

# --- Node annotations written by fairpack's inventory (or a site's node labeller) ---------
NVLINK_ISLANDS_ANNOTATION: Final = f"{DOMAIN}/nvlink-islands"
"""JSON list of lists of GPU indices that share an NVLink domain, e.g. ``[[0,1,2,3],[4,5,6,7]]``."""
MIG_LAYOUT_ANNOTATION: Final = f"{DOMAIN}/mig-layout"
"""JSON object from GPU index to its MIG instances, e.g.
``{"0": [{"profile": "4g.40gb", "start": 0}, {"profile": "3g.40gb", "start": 4}]}``.
A GPU listed here is in MIG mode; the others serve whole-GPU requests."""

# --- Pod labels and annotations -----------------------------------------------------------
TENANT_LABEL: Final = f"{DOMAIN}/tenant"
USER_LABEL: Final = f"{DOMAIN}/user"
REQUIRE_NVLINK_ANNOTATION: Final = f"{DOMAIN}/require-nvlink-island"
"""``"true"``: all of the pod's GPUs must lie in one NVLink island."""
PLANNED_NODE_ANNOTATION: Final = f"{DOMAIN}/planned-node"
"""Written by the CP-SAT fallback on a pending pod: the node its plan puts the pod on."""
PLANNED_AT_ANNOTATION: Final = f"{DOMAIN}/planned-at"
"""RFC 3339 time the plan was made; the extender ignores plans older than its freshness window."""
VIRTUAL_FINISH_ANNOTATION: Final = f"{DOMAIN}/virtual-finish"
"""The UWFQ virtual finish time the operator gave the pod's job when it admitted it (float)."""
GPU_INDICES_ANNOTATION: Final = f"{DOMAIN}/gpu-indices"
"""Written at bind: the node's GPU indices assigned to the pod, comma-separated, e.g. ``"0,1"``."""
MIG_INSTANCE_ANNOTATION: Final = f"{DOMAIN}/mig-instance"
"""Written at bind: the MIG instance assigned, ``<gpu index>:<profile>@<start slot>``."""
SIMULATED_RUN_TIME_ANNOTATION: Final = "pod-complete.stage.kwok.x-k8s.io/delay"
"""On KWOK nodes only: a Running pod with this annotation (a Go duration, e.g. ``"30s"``) is marked
Succeeded that long after it started (KWOK's own pod-complete annotation; hack/fairpack_dev/kwok)."""

# --- Scheduling ---------------------------------------------------------------------------
SCHEDULER_NAME: Final = "fairpack-scheduler"
"""The kube-scheduler profile whose pods fairpack's extender serves."""
ADMISSION_GATE: Final = f"{DOMAIN}/admission"
"""Scheduling gate on pods of queued work, lifted by the operator when UWFQ admits the job."""

# --- Queueing of other kinds' work --------------------------------------------------------
QUEUE_LABEL: Final = f"{DOMAIN}/queue"
"""``"true"`` on a kubeflow spark-operator SparkApplication: fairpack's UWFQ queue admits it (the
application should be created with ``spec.suspend: true``; the operator unsuspends it when admitted)."""
ADMISSION_ANNOTATION: Final = f"{DOMAIN}/admission"
"""On a queued SparkApplication: the queue's record of it as JSON, the fields a SparkJob keeps in its
status (``phase``, ``submittedAt``, ``estimatedSeconds``, ``demand``, ``admittedAt``, ``finishedAt``,
``queuePosition``, ``virtualFinish``, ``message``); its status belongs to spark-operator."""
