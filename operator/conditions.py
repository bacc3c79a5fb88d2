"""Status conditions as Kubernetes API conventions have them (type, status, reason, message, time).

Pure: the caller passes the time, so the same inputs always give the same conditions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Condition:
    """One condition as the operator computes it (without its transition time)."""

    type: str
    status: bool
    reason: str
    message: str = ""


def merge(
    old: Sequence[Mapping[str, Any]] | None,
    new: Iterable[Condition],
    *,
    now: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """The conditions to write: ``new``, keeping each one's ``lastTransitionTime`` while its status
    stays the same (so the time says when it last flipped, not when it was last computed)."""
    previous = {c.get("type"): c for c in old or ()}
    merged = []
    for cond in new:
        status = "True" if cond.status else "False"
        before = previous.get(cond.type)
        since = before.get("lastTransitionTime") if before and before.get("status") == status else None
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": since or now,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        merged.append(entry)
    return merged


def find(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of ``type_``, if present."""
    return next((c for c in conditions or () if c.get("type") == type_), None)
