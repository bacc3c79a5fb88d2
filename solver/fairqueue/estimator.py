"""Job sizes: start from what the user declared, learn from what finished, fix under-estimates.

Sizes are in whatever unit the caller uses consistently (UWFQ uses capacity x seconds). A job
is identified for learning by (user, name): the same user re-running the same job template is
the best predictor of its size (the paper's historic estimator works per job, too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class EstimatorSettings:
    """How sizes are guessed before anything was learned, and how overruns are corrected."""

    class_defaults: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"small": 60.0, "medium": 600.0, "large": 3600.0})
    )
    """Size assumed for a job of a class when it declares none (seconds of capacity)."""
    default_s: float = 600.0
    """Size assumed for a job with neither a declaration nor a known class: ten minutes of capacity."""
    overrun_factor: float = 2.0
    """A job that outlives its estimate is re-estimated at this multiple of its size so far:
    doubling bounds the number of corrections to log2(actual / first estimate)."""


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0


class Estimator:
    """Per-(user, name) mean of finished sizes, falling back to declared, class or global default."""

    def __init__(self, settings: EstimatorSettings | None = None) -> None:
        self.settings = settings or EstimatorSettings()
        self._history: dict[tuple[str, str], _Mean] = {}

    def estimate(
        self, *, user: str, name: str, job_class: str = "", declared_s: float | None = None
    ) -> float:
        """The size to queue a new job with.

        Learned history wins over a declaration: users are known to round their declarations
        (and the paper's evaluation shows the scheduler is only as good as its estimates).
        """
        learned = self._history.get((user, name))
        if learned is not None and learned.count > 0:
            return learned.total / learned.count
        if declared_s is not None:
            return declared_s
        return self.settings.class_defaults.get(job_class, self.settings.default_s)

    def observe(self, *, user: str, name: str, actual_s: float) -> None:
        """Learn from a finished job's real size."""
        mean = self._history.setdefault((user, name), _Mean())
        mean.total += actual_s
        mean.count += 1

    def corrected(self, *, estimate_s: float, elapsed_s: float) -> float:
        """The estimate to use for a job that has used ``elapsed_s`` so far.

        Unchanged while the job is within its estimate; once it is over, ``overrun_factor``
        times what it has used, so a job that keeps running is re-estimated a few times, not on
        every tick.
        """
        if elapsed_s <= estimate_s:
            return estimate_s
        return elapsed_s * self.settings.overrun_factor
