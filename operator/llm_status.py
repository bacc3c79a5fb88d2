"""An LLMService's status from its Deployments: replicas per role and Ready/Progressing/Degraded.

Pure: the spec and the Deployments as dicts (None for a role whose Deployment is missing) in,
the status patch out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fairpack.operator import conditions, llm_objects
from fairpack.operator.conditions import Condition


def role_status(deployment: Mapping[str, Any] | None, desired: int) -> dict[str, Any]:
    """A role's replica counts: the desired ones from the spec, the others as its Deployment
    reports them (``replicas``: the pods it has now, which the scale subresource shows)."""
    status = (deployment or {}).get("status") or {}
    return {
        "deployment": (deployment or {}).get("metadata", {}).get("name", ""),
        "desiredReplicas": desired,
        "replicas": int(status.get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
        "updatedReplicas": int(status.get("updatedReplicas") or 0),
    }


def _deployment_failure(deployment: Mapping[str, Any]) -> str | None:
    """Why a Deployment cannot make progress (quota, admission, deadline), if it says so."""
    for cond in (deployment.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return str(cond.get("message") or cond.get("reason"))
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return str(cond.get("message"))
    return None


def compute(
    spec: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any] | None],
    *,
    name: str,
    error: str | None = None,
    unfit: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[Condition]]:
    """Status fields (without conditions) and the conditions, from the role Deployments.

    ``error`` is why the operator could not realise the spec (the API refused an object): the
    service is then Degraded with that reason and nothing else is claimed. ``unfit`` says, per
    role, why no node could ever hold one of its replicas (``llm_fit``): Degraded, NoNodeFits.
    """
    roles = llm_objects.roles(spec)
    main = llm_objects.main_role(spec)
    per_role = {r.name: role_status(deployments.get(r.name), r.replicas) for r in roles}
    missing = [r.name for r in roles if deployments.get(r.name) is None]
    not_ready = [
        f"{r}: {s['readyReplicas']}/{s['desiredReplicas']} ready"
        for r, s in per_role.items()
        if s["readyReplicas"] < s["desiredReplicas"]
    ]
    rolling = [r for r, s in per_role.items() if s["updatedReplicas"] < s["desiredReplicas"]]
    failures = [
        f"{r}: {f}" for r, d in deployments.items() if d is not None and (f := _deployment_failure(d))
    ]
    fields = {
        "replicas": per_role[main]["replicas"],
        "desiredReplicas": per_role[main]["desiredReplicas"],
        "readyReplicas": per_role[main]["readyReplicas"],
        "selector": llm_objects.selector_string(name, main),
        "roles": per_role,
    }
    if error is not None:
        degraded = Condition("Degraded", True, "CannotRealise", error)
    elif unfit:
        degraded = Condition("Degraded", True, "NoNodeFits", "; ".join(f"{r}: {m}" for r, m in unfit.items()))
    elif failures:
        degraded = Condition("Degraded", True, "DeploymentFailing", "; ".join(failures))
    else:
        degraded = Condition("Degraded", False, "AsExpected")
    if missing:
        ready = Condition("Ready", False, "DeploymentMissing", f"no Deployment yet for {', '.join(missing)}")
    elif not_ready:
        ready = Condition("Ready", False, "ReplicasNotReady", "; ".join(not_ready))
    else:
        ready = Condition("Ready", True, "AllReplicasReady", f"{len(roles)} role(s) ready")
    if missing or rolling or not_ready:
        progressing = Condition("Progressing", True, "RollingOut", "; ".join(not_ready) or "updating pods")
    else:
        progressing = Condition("Progressing", False, "Stable")
    return fields, [ready, progressing, degraded]


def status_patch(
    spec: Mapping[str, Any],
    deployments: Mapping[str, Mapping[str, Any] | None],
    *,
    name: str,
    generation: int,
    old_conditions: Sequence[Mapping[str, Any]] | None,
    now: str,
    error: str | None = None,
    unfit: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The full status patch, conditions merged with their previous transition times."""
    fields, conds = compute(spec, deployments, name=name, error=error, unfit=unfit)
    fields["conditions"] = conditions.merge(old_conditions, conds, now=now, generation=generation)
    fields["observedGeneration"] = generation
    return fields
