"""Every ordering policy by name, built behind the one ``OrderingPolicy`` interface."""

from __future__ import annotations

from collections.abc import Mapping

from fairpack.solver.fairqueue import baselines, uwfq
from fairpack.solver.fairqueue.policy import OrderingPolicy, UserName

NAMES: tuple[str, ...] = ("fifo", "fair", "ujf", "drf", "cfq", "uwfq")
"""Baselines first, in the order tables show them; UWFQ last."""


def create(
    name: str,
    *,
    capacity: int,
    weights: Mapping[UserName, float],
    uwfq_settings: uwfq.UwfqSettings | None = None,
) -> OrderingPolicy:
    """A fresh policy of the given name for a cluster of ``capacity`` units."""
    match name:
        case "fifo":
            return baselines.fifo()
        case "fair":
            return baselines.fair()
        case "ujf":
            return baselines.ujf(weights=weights)
        case "drf":
            return baselines.drf(weights=weights)
        case "cfq":
            return uwfq.cfq(capacity=capacity)
        case "uwfq":
            return uwfq.UwfqQueue(capacity=capacity, weights=weights, settings=uwfq_settings)
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(NAMES)}")
