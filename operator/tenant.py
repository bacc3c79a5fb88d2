"""Tenants: their weights, quotas and users as the queue needs them, and their kopf handlers.

The admission cycle writes each Tenant's status (queued and running jobs, usage); the Tenant
timer is what keeps the cycle ticking while the operator is active (kopf stops timers while a
peer of higher priority runs, so a paused replica never admits anything).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from fairpack.solver import quantity

GROUP, VERSION, PLURAL = "fairpack.io", "v1alpha1", "tenants"


@dataclass(frozen=True)
class Tenant:
    """A Tenant's spec, parsed."""

    name: str
    weight: float
    users: frozenset[str]
    """Empty: any user."""
    quota_gpus: int | None
    quota_cores: float | None

    def admits_user(self, user: str) -> bool:
        return not self.users or user in self.users


def from_object(obj: Mapping[str, Any]) -> Tenant:
    """Parse a Tenant object (defaults are filled in by the API server)."""
    spec = obj.get("spec") or {}
    quota = spec.get("quota") or {}
    cores = quota.get("cores")
    return Tenant(
        name=obj["metadata"]["name"],
        weight=float(spec.get("weight", 1.0)),
        users=frozenset(spec.get("users") or ()),
        quota_gpus=int(quota["gpus"]) if "gpus" in quota else None,
        quota_cores=_cores(cores, tenant=obj["metadata"]["name"]) if cores is not None else None,
    )


def _cores(value: str | int | float, *, tenant: str) -> float:
    return quantity.milli(value, where=f"tenant {tenant}: spec.quota.cores") / 1000


def register(registry: kopf.OperatorRegistry, *, interval_s: float) -> None:
    """Register the Tenant timer that ticks the admission cycle."""

    @kopf.timer(GROUP, VERSION, PLURAL, id="tick", interval=interval_s, registry=registry)
    def tick(memo: kopf.Memo, **_: Any) -> None:
        if cycle := memo.get("cycle"):
            cycle.kick()

    @kopf.on.create(GROUP, VERSION, PLURAL, id="changed", registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", id="changed", registry=registry)
    def on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # A new weight reorders the queue at once (the cycle rebuilds it from the Tenants).
        # A Tenant may be created without a spec (every field has a default); the API server then
        # stores none, so read it as from_object does.
        kopf.info(body, reason="TenantChanged", message=f"weight {from_object(body).weight:g}")
        if cycle := memo.get("cycle"):
            cycle.kick()
