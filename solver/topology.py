"""NVLink topology: which GPUs of a node a multi-GPU pod gets.

A node declares its NVLink islands (``fairpack.io/nvlink-islands``); GPUs in no island, and
every GPU of a node that declares none, are islands of their own. A multi-GPU pod prefers one
island: the one with the fewest free GPUs that still hold it (best fit), ties to the smaller
island, so big islands stay whole for the pods that need them. A pod that requires one island
(``fairpack.io/require-nvlink-island``) gets one or nothing, with a reason saying why.
"""

from __future__ import annotations

from collections.abc import Collection

from fairpack.solver import model


def free_islands(node: model.Node, free: Collection[int]) -> list[tuple[int, ...]]:
    """Free GPU indices grouped by island, each group sorted; islands without free GPUs left out."""
    islands = [tuple(sorted(i for i in island if i in free)) for island in node.islands]
    grouped = {i for island in node.islands for i in island}
    islands += [(i,) for i in sorted(free) if i not in grouped]
    return [island for island in islands if island]


def choose_gpus(
    node: model.Node, free: Collection[int], count: int, *, require_island: bool = False
) -> tuple[int, ...] | None:
    """``count`` of the ``free`` GPU indices for one pod, or None if they cannot be had."""
    if count <= 0:
        return ()
    groups = free_islands(node, free)
    size = {i: len(island) for island in node.islands for i in island}
    holding = [g for g in groups if len(g) >= count]
    if holding:
        best = min(holding, key=lambda g: (len(g), size.get(g[0], 1), g[0]))
        return best[:count]
    if require_island or sum(len(g) for g in groups) < count:
        return None
    # Spread over as few islands as possible: the fullest first.
    chosen: list[int] = []
    for group in sorted(groups, key=lambda g: (-len(g), g[0])):
        chosen.extend(group[: count - len(chosen)])
        if len(chosen) == count:
            break
    return tuple(sorted(chosen))


def shortfall(
    node: model.Node, free: Collection[int], count: int, *, require_island: bool = False
) -> str | None:
    """Why :func:`choose_gpus` finds nothing (None when it finds GPUs)."""
    if choose_gpus(node, free, count, require_island=require_island) is not None:
        return None
    if not require_island or len(free) < count:
        return f"needs {count} GPUs; {len(free)} free"
    largest = max((len(g) for g in free_islands(node, free)), default=0)
    return f"needs {count} GPUs in one NVLink island; largest free island has {largest}"
