"""The GPU models fairpack knows: product label, memory and MIG profiles with slot geometry.

MIG geometry follows NVIDIA's MIG user guide (``nvidia-smi mig -lgipp``): a GPU has 8
memory slots; each profile occupies ``size`` consecutive slots and may start only at the
listed slots. The 7g profile takes the whole GPU. Profile names differ per model by the
memory they carry (``3g.20gb`` on A100-40GB, ``3g.40gb`` on A100-80GB and H100-80GB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MIG_SLOTS: Final = 8
"""Memory slots per MIG-capable GPU; every profile's placement is a run of these."""


@dataclass(frozen=True, slots=True)
class MigProfile:
    """One MIG GPU-instance profile of a GPU model."""

    name: str
    """Profile name as the device plugin uses it, e.g. ``3g.40gb`` (resource ``nvidia.com/mig-3g.40gb``)."""
    compute_slices: int
    """The ``g`` count: streaming-multiprocessor slices of 7."""
    size: int
    """Consecutive memory slots (of MIG_SLOTS) the instance occupies."""
    starts: tuple[int, ...]
    """Slots at which an instance of this profile may start."""


@dataclass(frozen=True, slots=True)
class GpuModel:
    """A GPU model as nodes advertise it."""

    name: str
    """fairpack's short name, e.g. ``A100-80GB``."""
    product: str
    """The ``nvidia.com/gpu.product`` label value GPU feature discovery sets."""
    memory_mib: int
    """The ``nvidia.com/gpu.memory`` label value."""
    mig_profiles: tuple[MigProfile, ...]
    """Profiles from smallest to largest; empty when the model has no MIG."""

    def profile(self, name: str) -> MigProfile:
        """The MIG profile called ``name``; raises KeyError naming the valid ones."""
        for p in self.mig_profiles:
            if p.name == name:
                return p
        valid = ", ".join(p.name for p in self.mig_profiles)
        raise KeyError(f"{self.name} has no MIG profile {name!r}; valid profiles: {valid}")


def _profiles(
    one: str, one_double: str, two: str, three: str, four: str, seven: str
) -> tuple[MigProfile, ...]:
    # The geometry is the same on every MIG-capable model; only the memory in the name differs.
    return (
        MigProfile(one, 1, 1, (0, 1, 2, 3, 4, 5, 6)),
        MigProfile(one_double, 1, 2, (0, 2, 4, 6)),
        MigProfile(two, 2, 2, (0, 2, 4)),
        MigProfile(three, 3, 4, (0, 4)),
        MigProfile(four, 4, 4, (0,)),
        MigProfile(seven, 7, 8, (0,)),
    )


MODELS: Final[tuple[GpuModel, ...]] = (
    GpuModel(
        "A100-40GB",
        "NVIDIA-A100-SXM4-40GB",
        40960,
        _profiles("1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
    ),
    GpuModel(
        "A100-80GB",
        "NVIDIA-A100-SXM4-80GB",
        81920,
        _profiles("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    ),
    GpuModel(
        "H100-80GB",
        "NVIDIA-H100-80GB-HBM3",
        81559,
        _profiles("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    ),
    GpuModel(
        "H200-141GB",
        "NVIDIA-H200",
        143771,
        _profiles("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"),
    ),
)


def by_name(name: str) -> GpuModel:
    """The model with short name ``name`` (e.g. ``H100-80GB``); KeyError lists the known ones."""
    for m in MODELS:
        if m.name == name:
            return m
    raise KeyError(f"unknown GPU model {name!r}; known: {', '.join(m.name for m in MODELS)}")


def by_product(product: str) -> GpuModel | None:
    """The model whose ``nvidia.com/gpu.product`` label is ``product``, or None if fairpack lacks it."""
    return next((m for m in MODELS if m.product == product), None)
