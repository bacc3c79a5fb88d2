"""Per pod shape, where pods of that shape fit: every node's verdict, kept current as nodes change.

kube-scheduler calls filter and prioritize with (nearly) every node for every pod. Judging each
node per call, or even visiting each one in a Python loop, is what made a 1,000-node call cost
milliseconds. A :class:`ShapeIndex` holds, for one pod shape, the nodes where it fits (with their
verdicts and raw scores) and the reasons of those where it does not. A change to a node marks it
dirty in every index (:meth:`fairpack.extender.view.NodeState.changed`), and the next call for a
shape re-judges only its dirty nodes: about one per scheduling cycle, the node of the last bind.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fairpack.solver import model

if TYPE_CHECKING:
    from fairpack.extender.view import NodeState

MAX_INDEXES: Final = 256
"""Shapes indexed at once; the least recently asked for is dropped first (rebuilt on demand)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether and how a pod shape fits one node now."""

    placement: model.Placement | None
    reason: str | None = None
    """Why not, in words (None when it fits)."""
    unresolvable: bool = False
    """Can never fit, whatever is evicted (static misfit, not enough GPUs or island or instances)."""
    fragmentation_growth: float = 0.0
    """Growth of the node's expected fragmented GPUs (FGD) if the pod goes there."""
    free_after: float = 0.0
    """Share of the node's GPUs still free after placing the pod."""


Judge = Callable[["NodeState"], Verdict]
Score = Callable[[Verdict], float]


class ShapeIndex:
    """Every node's verdict for one pod shape. Not thread-safe: use under the view's lock."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.fits: dict[str, Verdict] = {}
        """Nodes the shape fits now."""
        self.failed: dict[str, str] = {}
        """Nodes it does not fit now, with the reason."""
        self.unresolvable: dict[str, str] = {}
        """Nodes it can never fit, with the reason."""
        self.dirty: set[str] = set()
        """Nodes changed since they were last judged (filled by the view)."""
        self._scores: dict[str, tuple[Score, Scores]] = {}

    def refresh(self, nodes: Mapping[str, NodeState]) -> None:
        """Re-judge the dirty nodes (a node gone from ``nodes`` is dropped)."""
        for name in self.dirty:
            self.fits.pop(name, None)
            self.failed.pop(name, None)
            self.unresolvable.pop(name, None)
            for _, scores in self._scores.values():
                scores.drop(name)
            state = nodes.get(name)
            if state is None:
                continue
            verdict = self.judge(state)
            if verdict.placement is not None:
                self.fits[name] = verdict
                for score, scores in self._scores.values():
                    scores.add(name, score(verdict))
            elif verdict.unresolvable:
                self.unresolvable[name] = verdict.reason or "does not fit"
            else:
                self.failed[name] = verdict.reason or "does not fit"
        self.dirty.clear()

    def scores(self, strategy: str, score: Score) -> Scores:
        """``score`` of every node the shape fits, kept current from now on under ``strategy``."""
        found = self._scores.get(strategy)
        if found is None:
            scores = Scores()
            for name, verdict in self.fits.items():
                scores.add(name, score(verdict))
            found = self._scores[strategy] = (score, scores)
        return found[1]


class Scores:
    """Raw scores of nodes, also grouped by value: nodes in the same state score the same, so a
    thousand nodes make a few groups, and an answer is written per group, not per node."""

    def __init__(self) -> None:
        self.of: dict[str, float] = {}
        self.groups: dict[float, set[str]] = {}

    def add(self, name: str, value: float) -> None:
        self.of[name] = value
        self.groups.setdefault(value, set()).add(name)

    def drop(self, name: str) -> None:
        value = self.of.pop(name, None)
        if value is not None:
            group = self.groups[value]
            group.discard(name)
            if not group:
                del self.groups[value]


class Indexes:
    """The shape indexes of one cluster view, at most :data:`MAX_INDEXES` (least recently used
    dropped). ``sinks`` is the view's list of dirty sets: an index's set is in it while it lives."""

    def __init__(self, sinks: list[set[str]]) -> None:
        self._sinks = sinks
        self._by_shape: OrderedDict[Hashable, ShapeIndex] = OrderedDict()

    def get(self, shape: Hashable, nodes: Mapping[str, NodeState], judge: Judge) -> ShapeIndex:
        """The shape's index, current with ``nodes`` (built with ``judge`` the first time)."""
        index = self._by_shape.get(shape)
        if index is None:
            index = self._by_shape[shape] = ShapeIndex(judge)
            index.dirty.update(nodes)
            self._sinks.append(index.dirty)
            if len(self._by_shape) > MAX_INDEXES:
                _, dropped = self._by_shape.popitem(last=False)
                # By identity: two dirty sets with the same names compare equal.
                self._sinks[:] = [s for s in self._sinks if s is not dropped.dirty]
        else:
            self._by_shape.move_to_end(shape)
        index.refresh(nodes)
        return index
