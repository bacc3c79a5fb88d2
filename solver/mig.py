"""MIG geometry: where a profile can go on a GPU and which start is best.

A GPU's occupancy is a bit mask of its ``MIG_SLOTS`` memory slots (bit ``s`` set: slot ``s`` is
held). Two ways to use MIG, both here:

- static: the node's ``fairpack.io/mig-layout`` configures instances; a pod takes a free one of
  its profile (:func:`free_instance`);
- dynamic: instances are created on demand in free slots (:func:`choose`, the packer's and the
  replay's model of a MIG-capable GPU that can be repartitioned).

A profile may be named in full (``3g.40gb``) or by its compute part (``3g``: the single-memory
profile with 3 compute slices of whatever model the GPU is), for model-independent workloads.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from typing import Final

from fairpack.solver import gpumodels, model

FULL: Final = (1 << gpumodels.MIG_SLOTS) - 1
"""Every slot held: a whole-GPU pod, or a 7g instance."""


def resolve(gpu_model: gpumodels.GpuModel, name: str) -> gpumodels.MigProfile | None:
    """The profile ``name`` (full or compute-part) on ``gpu_model``; None if it has no such profile."""
    exact = next((p for p in gpu_model.mig_profiles if p.name == name), None)
    if exact is not None or "." in name:
        return exact
    return next((p for p in gpu_model.mig_profiles if p.name.split(".")[0] == name), None)


def smallest_covering(gpu_model: gpumodels.GpuModel, compute_slices: int) -> gpumodels.MigProfile | None:
    """The smallest profile with at least ``compute_slices`` of 7 (None if the model has no MIG)."""
    return next((p for p in gpu_model.mig_profiles if p.compute_slices >= compute_slices), None)


def mask(profile: gpumodels.MigProfile, start: int) -> int:
    """The slots an instance of ``profile`` starting at ``start`` holds."""
    return ((1 << profile.size) - 1) << start


def used_mask(gpu_model: gpumodels.GpuModel, instances: Iterable[model.MigInstance]) -> int:
    """The slots ``instances`` (all on one GPU of ``gpu_model``) hold."""
    held = 0
    for instance in instances:
        held |= mask(gpu_model.profile(instance.profile), instance.start)
    return held


@functools.cache
def free_starts(profile: gpumodels.MigProfile, used: int) -> tuple[int, ...]:
    """Starts at which ``profile`` fits in a GPU whose held slots are ``used``."""
    return tuple(s for s in profile.starts if not mask(profile, s) & used)


def fits(profile: gpumodels.MigProfile, used: int) -> bool:
    return any(not mask(profile, s) & used for s in profile.starts)


def capability(gpu_model: gpumodels.GpuModel, used: int) -> tuple[int, ...]:
    """Free placements per profile, largest profile first: what a GPU can still take."""
    return tuple(len(free_starts(p, used)) for p in reversed(gpu_model.mig_profiles))


@functools.cache
def best_start(gpu_model: gpumodels.GpuModel, profile: gpumodels.MigProfile, used: int) -> int | None:
    """The free start that keeps the largest profiles placeable (None if none is free).

    Compares what the GPU can take afterwards, largest profile first, so a 1g lands where it
    blocks neither a 4g nor a 3g if it can; ties go to the highest start, which is how
    ``nvidia-smi`` fills a GPU from the end and leaves the low, large starts free.
    """
    starts = free_starts(profile, used)
    if not starts:
        return None
    return max(starts, key=lambda s: (capability(gpu_model, used | mask(profile, s)), s))


def unusable_slots(gpu_model: gpumodels.GpuModel, used: int, profiles: Collection[str]) -> int:
    """Free slots no placement of any of ``profiles`` could use: MIG fragmentation of one GPU."""
    usable = 0
    for name in profiles:
        profile = resolve(gpu_model, name)
        if profile is not None:
            for start in free_starts(profile, used):
                usable |= mask(profile, start)
    return bin(FULL & ~used & ~usable).count("1")


def choose(gpus: Iterable[model.Gpu], used: Mapping[int, int], profile_name: str) -> model.MigInstance | None:
    """Dynamic MIG: the GPU and start for a new instance of ``profile_name`` (None if nowhere).

    ``used`` maps GPU index to held slots (``FULL`` for a GPU taken whole; absent means empty).
    Prefers a GPU already partly used, so empty GPUs stay whole for whole-GPU and 7g requests,
    then the best start on it, then the lowest index.
    """
    best: tuple[tuple[int, tuple[int, ...], int], model.MigInstance] | None = None
    for gpu in gpus:
        if gpu.model is None:
            continue
        profile = resolve(gpu.model, profile_name)
        held = used.get(gpu.index, 0)
        start = best_start(gpu.model, profile, held) if profile is not None else None
        if profile is None or start is None:
            continue
        rank = (bin(held).count("1"), capability(gpu.model, held | mask(profile, start)), -gpu.index)
        if best is None or rank > best[0]:
            best = (rank, model.MigInstance(gpu.index, profile.name, start))
    return best[1] if best is not None else None


def free_instance(
    node: model.Node, profile_name: str, taken: Collection[model.MigInstance]
) -> model.MigInstance | None:
    """Static MIG: a configured, untaken instance of ``profile_name`` on ``node`` (None if none).

    Prefers the GPU with the most instances already taken, so other GPUs stay free for
    repartitioning, then the lowest GPU index and start.
    """
    busy = {g: sum(1 for t in taken if t.gpu == g) for g in node.mig_gpus}
    free = [
        i
        for i in node.mig
        if i not in taken and (i.profile == profile_name or i.profile.split(".")[0] == profile_name)
    ]
    return min(free, key=lambda i: (-busy[i.gpu], i.gpu, i.start), default=None)
