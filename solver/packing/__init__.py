"""CP-SAT pod packing: the fallback that re-plans a cluster when pods are left pending.

Public API (the operator's fallback controller and ``fairpack plan`` use only these)::

    from fairpack.solver import packing
    from fairpack.solver.packing import adapter
    instance = adapter.instance_from_dicts(node_dicts, pod_dicts)      # or instance_from_snapshot
    plan = packing.solve(instance, settings=packing.Settings(window_s=1.0, max_evictions=5))
    plan.status, plan.placements, plan.moves, plan.evictions, plan.started, plan.to_json()

Modules: ``instance`` (typed input), ``greedy`` (kube-scheduler's default placement: hint and
baseline), ``model``/``constraints``/``objectives`` (the CP-SAT model), ``search`` (the staged
solve inside a window), ``validate`` (the solver-free checker), ``plan`` (the output),
``adapter`` (from the cluster model, and who may be moved), ``workloads`` (the paper's generator).
Purely computational, like the rest of ``fairpack.solver``.
"""

from fairpack.solver.packing.plan import Plan, Status
from fairpack.solver.packing.search import Settings, solve

__all__ = ["Plan", "Settings", "Status", "solve"]
