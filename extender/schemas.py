"""The wire format of ``k8s.io/kube-scheduler/extender/v1``.

The Go structs carry no json tags, so kube-scheduler writes the Go field names (``Pod``,
``NodeNames``, ``FailedAndUnresolvableNodes``) and Go's decoder matches keys in any letter case.
The models here accept any case on input (keys are matched case-insensitively) and emit the Go
field names. Pods and nodes inside are ordinary Kubernetes objects (json-tagged, camelCase):
they are kept as plain dicts and read by :mod:`fairpack.solver.kube`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

KubeObject = dict[str, Any]


class WireModel(BaseModel):
    """Go-field-named keys, matched case-insensitively on input; unknown keys are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _fold_case(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # Go writes nil slices and maps as null: treat them as absent, so defaults apply.
        names = {name.lower(): name for name in cls.model_fields}
        return {names.get(str(key).lower(), key): value for key, value in data.items() if value is not None}


class NodeList(WireModel):
    items: list[KubeObject] = Field(default_factory=list)


class ExtenderArgs(WireModel):
    """Filter and prioritize: the pod, and the nodes (full objects, or names when nodeCacheCapable)."""

    Pod: KubeObject
    Nodes: NodeList | None = None
    NodeNames: list[str] | None = None

    def node_names(self) -> list[str]:
        if self.NodeNames is not None:
            return self.NodeNames
        if self.Nodes is not None:
            return [str((n.get("metadata") or {}).get("name", "")) for n in self.Nodes.items]
        return []


class ExtenderFilterResult(WireModel):
    Nodes: NodeList | None = None
    NodeNames: list[str] | None = None
    FailedNodes: dict[str, str] = Field(default_factory=dict)
    """Nodes that do not fit now but might after preemption."""
    FailedAndUnresolvableNodes: dict[str, str] = Field(default_factory=dict)
    """Nodes that can never fit the pod: preemption does not try them."""
    Error: str = ""


class HostPriority(WireModel):
    Host: str
    Score: int


class MetaPod(WireModel):
    UID: str


class MetaVictims(WireModel):
    Pods: list[MetaPod] = Field(default_factory=list)
    NumPDBViolations: int = 0


class Victims(WireModel):
    Pods: list[KubeObject] = Field(default_factory=list)
    NumPDBViolations: int = 0


class ExtenderPreemptionArgs(WireModel):
    Pod: KubeObject
    NodeNameToVictims: dict[str, Victims] | None = None
    """Sent when the extender is not nodeCacheCapable: whole victim pods."""
    NodeNameToMetaVictims: dict[str, MetaVictims] | None = None
    """Sent when it is: victim UIDs only."""


class ExtenderPreemptionResult(WireModel):
    NodeNameToMetaVictims: dict[str, MetaVictims] = Field(default_factory=dict)


class ExtenderBindingArgs(WireModel):
    PodName: str
    PodNamespace: str
    PodUID: str
    Node: str


class ExtenderBindingResult(WireModel):
    Error: str = ""
