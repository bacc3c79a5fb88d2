"""Could any node ever hold one replica of an LLMService role? The check behind Degraded=NoNodeFits.

What the schema can check alone (a MIG profile fairpack does not know, tensorParallel not dividing
gpu.count) it rejects; what depends on the cluster is checked here, against every node as it is
built, whatever runs on it now: a replica that no empty node could take will never run, so the
service is Degraded rather than forever "not ready". Nodes are not filtered by taints or cordons,
which come and go; a cluster with no nodes at all is not judged (it is still being set up).

Pure: the role and the nodes (``solver.model.Node``, as ``solver.kube`` builds them) in, the reason
out, naming the spec field to change.
"""

from __future__ import annotations

from collections.abc import Sequence

from fairpack.operator import llm_objects
from fairpack.solver import labels, model, quantity, topology


def _field(role: llm_objects.Role) -> str:
    return "spec.prefill" if role.name == llm_objects.PREFILL else "spec"


def whole_gpus(node: model.Node) -> list[int]:
    """Indices of the node's GPUs that serve whole-GPU requests (not in MIG mode)."""
    # The device plugin's count is what the scheduler hands out; the GPUs list says which indices.
    return [gpu.index for gpu in node.whole_gpus][: node.allocatable.amount(labels.GPU_RESOURCE)]


def offers_mig(node: model.Node, profile: str) -> bool:
    """Whether the node has (or advertises) MIG instances of ``profile``."""
    resource = labels.MIG_RESOURCE_PREFIX + profile
    return node.allocatable.amount(resource) > 0 or any(i.profile == profile for i in node.mig)


def unfit(role: llm_objects.Role, nodes: Sequence[model.Node]) -> str | None:
    """Why no node could ever hold one replica of ``role`` (None when some node could)."""
    if not nodes:
        return None
    where = _field(role)
    gpu = role.spec["gpu"]
    product = gpu.get("product")
    candidates = list(nodes)
    if product:
        candidates = [n for n in nodes if n.labels.get(labels.GPU_PRODUCT_LABEL) == product]
        if not candidates:
            present = sorted({p for n in nodes if (p := n.labels.get(labels.GPU_PRODUCT_LABEL))})
            return (
                f"{where}.gpu.product {product!r}: no node has this GPU product "
                f"(present: {', '.join(present) or 'none'}); pick one of those or leave it unset"
            )
    on = f" of product {product}" if product else ""
    if "migProfile" in gpu:
        profile = str(gpu["migProfile"])
        candidates = [n for n in candidates if offers_mig(n, profile)]
        if not candidates:
            return (
                f"{where}.gpu.migProfile {profile!r}: no node{on} offers MIG instances of this profile; "
                "pick a profile the nodes are partitioned into, or whole GPUs (gpu.count)"
            )
    else:
        count = int(gpu["count"])
        most = max((len(whole_gpus(n)) for n in candidates), default=0)
        candidates = [n for n in candidates if len(whole_gpus(n)) >= count]
        if not candidates:
            return (
                f"{where}.gpu.count {count}: more GPUs than any node{on} has (the most is {most}); "
                "ask fewer GPUs per replica"
            )
        if int(role.spec.get("tensorParallel", 1)) > 1:
            largest = max(len(i) for n in candidates for i in topology.free_islands(n, whole_gpus(n)))
            candidates = [
                n for n in candidates if any(len(i) >= count for i in topology.free_islands(n, whole_gpus(n)))
            ]
            if not candidates:
                return (
                    f"{where}.tensorParallel {role.spec['tensorParallel']}: a replica's {count} GPUs must "
                    f"share one NVLink island, and no node{on} has an island that large (the largest has "
                    f"{largest}); ask fewer GPUs per replica"
                )
    asked = llm_objects.replica_requests(role)
    cpu = quantity.amount(model.CPU, asked["cpu"], where=f"{where}.resources.cpu")
    memory = quantity.amount(model.MEMORY, asked["memory"], where=f"{where}.resources.memory")
    roomy = [n for n in candidates if n.allocatable.amount(model.CPU) >= cpu]
    if not any(n.allocatable.amount(model.MEMORY) >= memory for n in roomy):
        return (
            f"{where}.resources: no node with the GPUs also has {asked['cpu']} CPU and "
            f"{asked['memory']} memory; ask less"
        )
    return None
