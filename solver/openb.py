"""The openb GPU trace (Alibaba, ``cluster-trace-gpu-v2023``) as the cluster model.

Rows are the CSV files' rows as dicts (``csv.DictReader``); reading the files is the caller's.

- Nodes (``sn, cpu_milli, memory_mib, gpu, model``): ``gpu`` GPUs of one catalogue model, no
  NVLink islands declared. openb's model names are not NVIDIA products fairpack knows, and the
  replay treats every GPU as MIG-capable, so each maps to the catalogue model nearest in memory
  and generation: P100, T4, V100M16, V100M32 and A10 (16-32 GB) to ``A100-40GB``; G2 and G3,
  Alibaba's unpublished newer generations, and anything unknown to ``A100-80GB``. The MIG
  geometry is the same on both, so the mapping changes only profile names.
- Tasks (``name, cpu_milli, memory_mib, num_gpu, gpu_milli[, ..., creation_time,
  deletion_time]``): multi-GPU and whole single-GPU tasks ask for ``num_gpu`` whole GPUs; a
  single-GPU task with ``gpu_milli`` < 1000 asks for the smallest MIG profile that covers that
  share of a 7-slice GPU (``ceil(gpu_milli * 7 / 1000)`` slices: 470 -> 4 slices -> ``4g``),
  named by its compute part so it resolves on whichever model the node has.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Final

from fairpack.solver import gpumodels, labels, model
from fairpack.solver import occupancy as occ

MODELS: Final = {
    "P100": "A100-40GB",
    "T4": "A100-40GB",
    "V100M16": "A100-40GB",
    "V100M32": "A100-40GB",
    "A10": "A100-40GB",
    "G2": "A100-80GB",
    "G3": "A100-80GB",
}
DEFAULT_MODEL: Final = "A100-80GB"
NAMESPACE: Final = "openb"
MIB: Final = 2**20


def catalogue_model(openb_model: str) -> gpumodels.GpuModel:
    """The catalogue model an openb model name stands for (see the module docstring)."""
    return gpumodels.by_name(MODELS.get(openb_model, DEFAULT_MODEL))


def node_from_row(row: Mapping[str, str]) -> model.Node:
    gpu_model = catalogue_model(row["model"])
    count = int(row["gpu"])
    return model.Node(
        name=row["sn"],
        allocatable=model.Resources.of(cpu=int(row["cpu_milli"]), memory=int(row["memory_mib"]) * MIB),
        labels={labels.GPU_PRODUCT_LABEL: gpu_model.product, "openb.io/model": row["model"]},
        gpus=tuple(model.Gpu(i, gpu_model, gpu_model.product, gpu_model.memory_mib) for i in range(count)),
    )


def pod_from_row(row: Mapping[str, str]) -> model.Pod:
    count, milli = int(row["num_gpu"]), int(row.get("gpu_milli") or 0)
    gpu: model.GpuRequest | None = None
    if count > 1 or (count == 1 and milli >= 1000):
        gpu = model.GpuRequest(count)
    elif count == 1:
        slices = max(1, math.ceil(milli * 7 / 1000))
        profile = next(p for p in gpumodels.MODELS[0].mig_profiles if p.compute_slices >= slices)
        gpu = model.GpuRequest(mig_profile=profile.name.split(".")[0])
    deleted = row.get("deletion_time")
    return model.Pod(
        namespace=NAMESPACE,
        name=row["name"],
        requests=model.Resources.of(cpu=int(row["cpu_milli"]), memory=int(row["memory_mib"]) * MIB),
        gpu=gpu,
        created=float(row.get("creation_time") or 0),
        deleted=float(deleted) if deleted else None,
    )


def nodes_from_rows(rows: Iterable[Mapping[str, str]]) -> list[model.Node]:
    return [node_from_row(r) for r in rows]


def pods_from_rows(rows: Iterable[Mapping[str, str]]) -> list[model.Pod]:
    return [pod_from_row(r) for r in rows]


def gpu_demand(pod: model.Pod) -> float:
    """GPUs a pod holds once placed: whole GPUs, or its MIG profile's share of the memory slots."""
    if pod.gpu is None:
        return 0.0
    if pod.gpu.mig_profile is not None:
        # Its size on the first catalogue model with the profile: openb names profiles by compute
        # part, the same geometry on every model; a full name is model-specific, and inflation
        # only needs an estimate.
        name = pod.gpu.mig_profile
        occ.known_profile(name)
        gpu_model = next(m for m in gpumodels.MODELS if occ.profile_class(m, name) >= 0)
        return gpu_model.mig_profiles[occ.profile_class(gpu_model, name)].size / gpumodels.MIG_SLOTS
    return float(pod.gpu.count)


def inflate(pods: Sequence[model.Pod], *, gpus: float, target: float, seed: int) -> list[model.Pod]:
    """FGD's workload inflation: tasks drawn with replacement until they ask for ``target`` x ``gpus``.

    The draws arrive in the order drawn and never leave, as in the paper's experiment.
    """
    rng = random.Random(seed)
    drawn: list[model.Pod] = []
    demand = 0.0
    while demand < target * gpus:
        pod = rng.choice(pods)
        drawn.append(replace(pod, name=f"{pod.name}-{len(drawn)}", created=float(len(drawn)), deleted=None))
        demand += gpu_demand(pod)
    return drawn
