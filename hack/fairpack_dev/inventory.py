"""Simulated GPU nodes from a declarative inventory (hack/inventories/*.yaml).

An inventory is a list of pools; every node of a pool is alike. A node carries what NVIDIA's GPU
operator would put on a real one (device-plugin resources, GPU feature discovery labels) plus
fairpack's NVLink and MIG annotations (formats in fairpack.solver.labels) and KWOK's annotation,
so KWOK fakes its kubelet::

    pools:
      - name: a100-80-mig           # node names: <prefix><name>-<index>
        count: 2
        model: A100-80GB            # a fairpack.solver.gpumodels name
        gpus: 8
        nvlinkIslands: [[0, 1, 2, 3], [4, 5, 6, 7]]   # default: one island of all GPUs
        cpu: "128"                  # default 64
        memory: 1Ti                 # default 512Gi
        pods: 110                   # default 110
        mig:                        # default: strategy none (whole GPUs only)
          strategy: mixed
          layout:                   # GPU index -> its instances (profile, start slot)
            "0": [{profile: 4g.40gb, start: 0}, {profile: 3g.40gb, start: 4}]
            "1": [{profile: 1g.10gb, start: 0}, {profile: 1g.10gb, start: 1}]

GPUs in the layout are in MIG mode and are not counted in ``nvidia.com/gpu``.
"""

from __future__ import annotations

import collections
import json
import pathlib
import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self

import pydantic
import yaml
from kubernetes import client

from fairpack.solver import gpumodels, labels

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
"""KWOK manages (fakes the kubelet of) nodes with this annotation set to ``fake``."""
KWOK_NODE_VALUE = "fake"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MigInstance(_Model):
    """One MIG instance on a GPU: which profile, at which memory slot it starts."""

    profile: str
    start: Annotated[int, pydantic.Field(ge=0, lt=gpumodels.MIG_SLOTS)]


class Mig(_Model):
    """A pool's MIG strategy and, with ``mixed``, the instances on each GPU in MIG mode."""

    strategy: Literal["none", "mixed"] = "none"
    layout: dict[int, tuple[MigInstance, ...]] = {}

    @pydantic.model_validator(mode="after")
    def _layout_only_when_mixed(self) -> Self:
        if self.strategy == "none" and self.layout:
            raise ValueError("a layout needs strategy: mixed")
        return self


class Pool(_Model):
    """Identical nodes: the GPU model, how many GPUs, how they are linked and partitioned."""

    name: Annotated[str, pydantic.Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)]
    count: Annotated[int, pydantic.Field(ge=1, le=5000)] = 1
    model: str
    gpus: Annotated[int, pydantic.Field(ge=1, le=16)] = 8
    nvlink_islands: tuple[tuple[int, ...], ...] | None = pydantic.Field(default=None, alias="nvlinkIslands")
    """GPU indices sharing an NVLink domain; None: one island holding every GPU."""
    cpu: str = "64"
    memory: str = "512Gi"
    pods: Annotated[int, pydantic.Field(ge=1)] = 110
    mig: Mig = Mig()

    @pydantic.field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        try:
            gpumodels.by_name(model)
        except KeyError as e:
            raise ValueError(e.args[0]) from None
        return model

    @pydantic.model_validator(mode="after")
    def _islands_partition_the_gpus(self) -> Self:
        seen: set[int] = set()
        for island in self.nvlink_islands or ():
            for gpu in island:
                if not 0 <= gpu < self.gpus:
                    raise ValueError(f"nvlinkIslands: GPU {gpu} is out of range 0..{self.gpus - 1}")
                if gpu in seen:
                    raise ValueError(f"nvlinkIslands: GPU {gpu} is in more than one island")
                seen.add(gpu)
        return self

    @pydantic.model_validator(mode="after")
    def _mig_fits_the_geometry(self) -> Self:
        model = gpumodels.by_name(self.model)
        if self.mig.layout and not model.mig_profiles:
            raise ValueError(f"mig.layout: {model.name} has no MIG")
        for gpu, instances in self.mig.layout.items():
            where = f"mig.layout.{gpu}"
            if not 0 <= gpu < self.gpus:
                raise ValueError(f"{where}: GPU {gpu} is out of range 0..{self.gpus - 1}")
            used: set[int] = set()
            for i, instance in enumerate(instances):
                try:
                    profile = model.profile(instance.profile)
                except KeyError as e:
                    raise ValueError(f"{where}.{i}.profile: {e.args[0]}") from None
                if instance.start not in profile.starts:
                    raise ValueError(
                        f"{where}.{i}.start: {profile.name} may start at slots {list(profile.starts)}, "
                        f"not {instance.start}"
                    )
                slots = set(range(instance.start, instance.start + profile.size))
                if slots & used:
                    raise ValueError(
                        f"{where}.{i}: {profile.name}@{instance.start} overlaps another instance"
                    )
                used |= slots
        return self

    def islands(self) -> list[list[int]]:
        if self.nvlink_islands is None:
            return [list(range(self.gpus))]
        return [list(island) for island in self.nvlink_islands]

    def resources(self) -> dict[str, str]:
        """Capacity (= allocatable) of one node: CPU, memory, pods and the GPU resources."""
        amounts = {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": str(self.pods),
            labels.GPU_RESOURCE: str(self.gpus - len(self.mig.layout)),
        }
        per_profile = collections.Counter(
            i.profile for instances in self.mig.layout.values() for i in instances
        )
        for profile, n in sorted(per_profile.items()):
            amounts[labels.MIG_RESOURCE_PREFIX + profile] = str(n)
        return amounts

    def node(self, name: str) -> dict[str, Any]:
        """The Node object for one node of this pool, as a plain dict for the API."""
        model = gpumodels.by_name(self.model)
        layout = {
            str(gpu): [{"profile": i.profile, "start": i.start} for i in instances]
            for gpu, instances in sorted(self.mig.layout.items())
        }
        amounts = self.resources()
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "type": "kwok",
                    labels.NODE_POOL_LABEL: self.name,
                    labels.GPU_PRODUCT_LABEL: model.product,
                    labels.GPU_COUNT_LABEL: str(self.gpus),
                    labels.GPU_MEMORY_LABEL: str(model.memory_mib),
                    labels.MIG_STRATEGY_LABEL: self.mig.strategy,
                },
                "annotations": {
                    KWOK_NODE_ANNOTATION: KWOK_NODE_VALUE,
                    labels.NVLINK_ISLANDS_ANNOTATION: json.dumps(self.islands(), separators=(",", ":")),
                    labels.MIG_LAYOUT_ANNOTATION: json.dumps(layout, separators=(",", ":")),
                },
            },
            "status": {"capacity": amounts, "allocatable": dict(amounts)},
        }


class Inventory(_Model):
    """The pools of a cluster; node names are unique across them."""

    pools: Annotated[tuple[Pool, ...], pydantic.Field(min_length=1)]

    @pydantic.model_validator(mode="after")
    def _unique_pool_names(self) -> Self:
        names = [p.name for p in self.pools]
        if len(names) != len(set(names)):
            raise ValueError(f"pool names must be unique: {names}")
        return self

    def pool(self, name: str) -> Pool:
        for p in self.pools:
            if p.name == name:
                return p
        raise KeyError(f"no pool {name!r}; pools: {', '.join(p.name for p in self.pools)}")

    def nodes(self, *, prefix: str = "") -> list[dict[str, Any]]:
        """Every node of every pool, named ``<prefix><pool>-<index>``."""
        return [pool.node(f"{prefix}{pool.name}-{i}") for pool in self.pools for i in range(pool.count)]


class InventoryError(ValueError):
    """An inventory file that does not validate; the message names the file and the fields."""


def load(path: pathlib.Path) -> Inventory:
    """Read and validate an inventory file."""
    raw = yaml.safe_load(path.read_text())
    try:
        return Inventory.model_validate(raw)
    except pydantic.ValidationError as e:
        problems = "\n".join(f"  {_where(raw, err['loc'])}: {err['msg']}" for err in e.errors())
        raise InventoryError(f"{path}: invalid inventory\n{problems}") from None


def _where(raw: Any, loc: tuple[int | str, ...]) -> str:
    """``pools.1 (a100-mig).gpus``: the field's path, with the pool's name when there is one."""
    where = ".".join(str(p) for p in loc) or "(top)"
    if len(loc) >= 2 and loc[0] == "pools" and isinstance(loc[1], int):
        try:
            name = raw["pools"][loc[1]]["name"]
        except (KeyError, IndexError, TypeError):
            return where
        where = ".".join([f"pools.{loc[1]} ({name})", *(str(p) for p in loc[2:])])
    return where


def create(api: client.ApiClient, nodes: Sequence[dict[str, Any]], *, timeout_s: float = 60.0) -> None:
    """Create ``nodes`` (``Pool.node`` dicts) and wait until KWOK reports every one Ready."""
    core = client.CoreV1Api(api)
    for node in nodes:
        # The API drops status on create; KWOK would then fill in its own defaults.
        body: Any = {k: v for k, v in node.items() if k != "status"}
        core.create_node(body)
        core.patch_node_status(node["metadata"]["name"], {"status": node.get("status", {})})
    wanted = {n["metadata"]["name"] for n in nodes}
    deadline = time.monotonic() + timeout_s
    while True:
        ready = {_name(n) for n in core.list_node().items if _ready(n)}
        if wanted <= ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"nodes not Ready after {timeout_s} s (is KWOK running?): {sorted(wanted - ready)}"
            )
        time.sleep(0.3)


def _name(obj: Any) -> str:
    return str(obj.metadata.name)


def _ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or ()))


INVENTORIES = pathlib.Path(__file__).resolve().parent.parent / "inventories"
SMALL = INVENTORIES / "small.yaml"
GPU_100 = INVENTORIES / "gpu-100.yaml"
