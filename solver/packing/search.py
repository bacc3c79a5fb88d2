"""Solve a packing instance inside a time window: repaired greedy hint, CP-SAT by stages, validated plan.

Why stages and not one weighted objective: weights that provably let no lower tier outweigh a
higher one grow as the product of the tiers' sizes (10 000 pods in 4 tiers needs about 10^16 per
unit of the top tier), past what CP-SAT's linear relaxation handles well. Solving tier by tier,
each stage fixing what the previous ones achieved (``placed >= value``) and warm-started with the
previous stage's complete solution, keeps every objective small and makes "a higher tier is never
traded for a lower one" hold by construction. Each stage gets an equal share of the time left,
so a stage proven quickly hands its time on; stages the hint already fills to their trivial
bound are skipped. The hint is greedy's placement after :mod:`repair`'s one-move improvements
(milliseconds, and on the paper's 32-node cells it alone beats greedy in every kept seed), so a
stage starts from them and a plan is never worse than they are.

Large instances are cut down to a neighbourhood before modelling: when the classes times their
candidate nodes exceed ``Settings.pairs_per_second`` times the window left, only the nodes with
the most room left in the hint (and the pods on them, and the pods still pending) stay free;
everything else is fixed where the hint put it. The result is then never claimed optimal.

The window is a deadline. Every step before CP-SAT is array work over all pods and Python work only
over the model's own (at 5 000 nodes x 50 000 pods a Python loop per pod costs a tenth of a 1 s
window); if greedy, the repair and the model building leave too little, no stage starts and the
repaired plan (greedy's, if the repair placed nothing) is returned, validated like any other.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from fairpack.solver.packing import greedy, objectives, repair, validate
from fairpack.solver.packing import instance as inst
from fairpack.solver.packing import plan as plans
from fairpack.solver.packing.model import PackingModel, set_hint

logger = logging.getLogger(__name__)

WRAP_UP_SHARE = 0.15
"""Share of the window kept for the work after the last stage's time limit, at most ``WRAP_UP_S``:
CP-SAT stops 10-70 ms after its limit (measured at 8 000 variables on the loaded 2-core machine),
then the solution is decoded (20-50 ms), validated and named. At 0.10 of a 1 s window a 1 000-node
run still overran to 1.02-1.06 s; at 0.12 and 0.15 the same runs found the same improvements
(+3 to +10 pods)..."""
WRAP_UP_S = 0.15
"""... since that work does not grow with the window (a 5 s window would otherwise keep 0.75 s)..."""
WRAP_UP_PER_POD_S = 3e-6
"""... plus this per pod of the instance: validating and naming the plan are array work over every
pod (measured 0.07-0.12 s at 50 000 pods)."""

MIN_STAGE_SHARE = 0.05
"""Share of the window that must be left for the stages after greedy, the repair and model building,
else the hint is returned at once (a stage with less rarely beats it)."""

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage name, stage number from 1, stage count)`` when a stage starts."""


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and how hard the packer works. Defaults suit the fallback controller's 1 s window."""

    window_s: float = 1.0
    """Wall-clock budget in seconds for everything: greedy, model building and every stage."""
    max_evictions: int | None = None
    """Most running pods a plan may leave unplaced (None: no limit). Moves are not counted."""
    num_workers: int = 2
    """CP-SAT search workers. Fixed, so that runs on the 2-core CI machine are comparable."""
    random_seed: int = 0
    """CP-SAT's seed, for reproducible runs."""
    pairs_per_second: int = 8_000
    """Model size (class x candidate node variables) per second of window left after greedy before
    the instance is cut down to a neighbourhood. Measured at 1 000 nodes x 10 000 pods in a 1 s
    window: 8 000 found +10 pods twice, 4 000 and 5 000 found +7 and +0 (building costs 20-100 us
    per variable, so larger neighbourhoods leave CP-SAT no time). It also models the paper's
    largest instances (32 nodes, about 100 classes) whole. Since the budget follows the time left
    (0.96 s there, greedy takes 0.03 s), a 1 000-node run now models 22 nodes instead of 23; in
    alternating runs it found +10 pods in 4 of 5 runs, as before (docs/benchmarks.md)."""
    presolve: bool = False
    """Run CP-SAT's presolve in every stage. Off: on the paper's 32-node instances presolve takes
    most of a stage's share of a 1 s window and the stage then rarely beats the hint (measured
    with bench/bench_packing_paper.py: improvements in 8 of 9 cells without, 1 of 9 with)."""
    keep_in_place: bool = False
    """Tier stages break ties by running pods left in place, below lower tiers (see
    :func:`objectives.goals`). Measured at 1 s on the paper's grid: about half the moves and
    evictions at 16 nodes, 20-35 % fewer moves at 32, tiers as often better as worse there; but
    fewer plans proven at 4 nodes (the tie-breaker loosens the bound that proves a tier) and fewer
    tier pods in a fifth of the runs at 8, which is why it is off by default (docs/benchmarks.md)."""
    log_search: bool = False
    """Send CP-SAT's search log to this module's logger at DEBUG level."""
    greedy: greedy.Settings = field(default_factory=greedy.Settings)
    """The default scheduler's model used for the hint (its max_evictions is taken from here)."""


def solve(
    instance: inst.Instance, *, settings: Settings = Settings(), progress: Progress | None = None
) -> plans.Plan:
    """The best plan found for ``instance`` within ``settings.window_s``; never worse than greedy.

    The window is a deadline for everything but greedy itself: when greedy (or the steps after it
    but before CP-SAT) leave less than ``MIN_STAGE_SHARE`` of the window, the stages are skipped
    and the repaired plan (greedy's, if the repair placed nothing), validated, is returned at once.
    """
    started = time.monotonic()
    end = started + settings.window_s
    # The stages stop short of the window: choosing, validating and naming the plan follow them.
    naming = len(instance.pods) * WRAP_UP_PER_POD_S  # validating and naming whichever plan is chosen
    deadline = end - min(settings.window_s * WRAP_UP_SHARE, WRAP_UP_S) - naming
    steps = _Steps(started)
    default = greedy.schedule(instance, settings=_greedy_settings(settings))
    steps.done("greedy")
    # The repair may take the whole window but what validating and naming its plan need: while it
    # still has pods to place it places far more per second than CP-SAT's neighbourhood
    # (docs/benchmarks.md, Scale), and it takes milliseconds where CP-SAT's whole model fits. The
    # stages start only if it leaves them enough before their own deadline.
    hint = repair.improve(instance, default, deadline=end - naming)
    steps.done("repair")
    best: inst.Assignment | None = None
    model: PackingModel | None = None
    stages: list[plans.Stage] = []
    complete = True
    if _enough(settings, deadline):
        # The model's size follows the time actually left, not the whole window.
        budget = int(settings.pairs_per_second * (end - time.monotonic()))
        free, nodes = _neighbourhood(instance, hint, budget=budget)
        complete = nodes is None
        steps.done("neighbourhood")
        model = PackingModel(
            instance, free=free, rest=hint, nodes=nodes, max_evictions=settings.max_evictions
        )
        steps.done("model")
        if _enough(settings, deadline):
            model.hint(hint)
            best, stages = _stages(model, hint, settings=settings, deadline=deadline, progress=progress)
            steps.done("stages")
    if not stages:
        # Normal on large clusters, where the repair places pods until the window's end.
        logger.info(
            "no CP-SAT stage: greedy and the repair took the window (%.3fs)", time.monotonic() - started
        )
    status, chosen, rejected = _choose(
        instance, model, best, hint, default, stages, settings=settings, complete=complete
    )
    steps.done("choose")
    plan = plans.build(
        instance,
        chosen,
        status=status,
        stages=tuple(stages),
        gap=_gap(stages),
        window_s=settings.window_s,
        solve_s=0.0,
        complete=complete,
        rejected=rejected,
    )
    steps.done("build")
    logger.debug("solve steps: %s", steps)
    return dataclasses.replace(plan, solve_s=time.monotonic() - started)


class _Steps:
    """How long each step of a solve took, for the debug log."""

    def __init__(self, started: float) -> None:
        self.last = started
        self.seconds: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name], self.last = now - self.last, now

    def __str__(self) -> str:
        return ", ".join(f"{name} {s:.3f}s" for name, s in self.seconds.items())


def _enough(settings: Settings, deadline: float) -> bool:
    """Whether enough of the window is left before ``deadline`` for the stages to be worth starting."""
    return deadline - time.monotonic() > settings.window_s * MIN_STAGE_SHARE


def _greedy_settings(settings: Settings) -> greedy.Settings:
    g = settings.greedy
    return greedy.Settings(seed=g.seed, preemption=g.preemption, max_evictions=settings.max_evictions)


def _stages(
    model: PackingModel,
    hint: inst.Assignment,
    *,
    settings: Settings,
    deadline: float,
    progress: Progress | None,
) -> tuple[inst.Assignment | None, list[plans.Stage]]:
    """Run the lexicographic stages; return the last solution (None if no stage found one)."""
    goals = objectives.goals(model, stays=settings.keep_in_place)
    best: inst.Assignment | None = None
    hinted = _evaluate(model, hint)
    stages: list[plans.Stage] = []
    for number, goal in enumerate(goals, start=1):
        if progress is not None:
            progress(goal.name, number, len(goals))
        value = hinted[number - 1]
        if _met(goal, value):
            model.cp.add(goal.primary >= value)  # the hint places every pod of this priority it could
            stages.append(plans.Stage(goal.name, "BOUND", value, value, 0.0, goal.ranked))
            continue
        later = zip(goals[number - 1 :], hinted[number - 1 :], strict=True)
        weights = sum(g.weight for g, v in later if not _met(g, v))
        budget = (deadline - time.monotonic()) * goal.weight / weights
        stage, solution = _run(model, goal, budget=budget, settings=settings)
        stages.append(stage)
        if solution is not None:
            best, value = solution, stage.value
            hinted = _evaluate(model, solution)
        model.cp.add(goal.primary >= value if goal.maximise else goal.primary <= value)
    return best, stages


class _Watch(cp_model.CpSolverSolutionCallback):
    """Stops the search once the goal's primary part is settled, whatever its tie-breaker does."""

    def __init__(self, solver: cp_model.CpSolver, goal: objectives.Goal) -> None:
        super().__init__()
        self.solver, self.goal = solver, goal
        self.best: float | None = None

    def on_solution_callback(self) -> None:
        self.best = self.objective_value
        self.on_bound(self.best_objective_bound)

    def on_bound(self, bound: float) -> None:
        if self.best is not None and self.settled(self.best, bound):
            self.solver.stop_search()

    def settled(self, value: float, bound: float) -> bool:
        scale = self.goal.scale
        if self.goal.maximise:
            return round(bound) // scale <= round(value) // scale
        return round(bound) // scale >= round(value) // scale


def _met(goal: objectives.Goal, value: int) -> bool:
    """The goal's trivial bound is reached: no stage needed."""
    return goal.trivial is not None and value >= goal.trivial


def _run(
    model: PackingModel, goal: objectives.Goal, *, budget: float, settings: Settings
) -> tuple[plans.Stage, inst.Assignment | None]:
    if budget <= 0.005:
        return plans.Stage(goal.name, "NO_TIME", 0, 0, 0.0, goal.ranked), None
    objective = goal.scale * goal.primary + goal.secondary
    if goal.maximise:
        model.cp.maximize(objective)
    else:
        model.cp.minimize(objective)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = budget
    solver.parameters.num_workers = settings.num_workers
    solver.parameters.random_seed = settings.random_seed
    solver.parameters.cp_model_presolve = settings.presolve
    solver.parameters.log_search_progress = settings.log_search
    solver.log_callback = logger.debug
    watch = _Watch(solver, goal)
    solver.best_bound_callback = watch.on_bound
    status = solver.solve(model.cp, watch)
    logger.debug("stage %s: %s in %.3fs", goal.name, solver.status_name(status), solver.wall_time)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return plans.Stage(goal.name, solver.status_name(status), 0, 0, solver.wall_time, goal.ranked), None
    value, bound = (
        round(solver.objective_value) // goal.scale,
        round(solver.best_objective_bound) // goal.scale,
    )
    proven = status == cp_model.OPTIMAL or watch.settled(solver.objective_value, solver.best_objective_bound)
    variables = model.variables()
    values = dict(zip(variables, solver.values(variables).tolist(), strict=True))
    solution = model.decode(values.__getitem__)
    set_hint(model.cp, values)
    return plans.Stage(
        goal.name, "OPTIMAL" if proven else "FEASIBLE", value, bound, solver.wall_time, goal.ranked
    ), solution


def _evaluate(model: PackingModel, at: inst.Assignment) -> list[int]:
    """Each goal's primary value for ``at``, computed from the assignment (not the solver)."""
    score = validate.score(_free_only(model), _restricted(model, at))
    values = [score.placed_by_priority.get(p, 0) for p in model.priorities()]
    values.append(model.running_total() * score.evictions - _stays(model, at))
    if model.gpu_used:
        members = (i for cls in model.classes if cls.mig_profile for i in cls.members)
        values.append(len({(at.nodes[i], slot[0]) for i in members if (slot := at.mig_slots[i]) is not None}))
    return values


def _stays(model: PackingModel, at: inst.Assignment) -> int:
    """Free running pods ``at`` keeps where they are."""
    return sum(
        1
        for cls in model.classes
        for members in cls.running.values()
        for i in members
        if at.nodes[i] == model.instance.pods[i].node and at.mig_slots[i] == model.instance.pods[i].mig_slot
    )


def _free_only(model: PackingModel) -> inst.Instance:
    pods = tuple(model.instance.pods[i] for cls in model.classes for i in cls.members)
    return inst.Instance(model.instance.resources, model.instance.nodes, pods)


def _restricted(model: PackingModel, at: inst.Assignment) -> inst.Assignment:
    members = [i for cls in model.classes for i in cls.members]
    return inst.Assignment.of([at.nodes[i] for i in members], [at.mig_slots[i] for i in members])


def _choose(
    instance: inst.Instance,
    model: PackingModel | None,
    best: inst.Assignment | None,
    hint: inst.Assignment,
    default: inst.Assignment,
    stages: list[plans.Stage],
    *,
    settings: Settings,
    complete: bool,
) -> tuple[plans.Status, inst.Assignment, tuple[str, ...]]:
    """The plan to return: the solver's if valid and no worse than its hint, else the hint (greedy's
    placement after the one-move repair) if it beats greedy's, else greedy's.

    Returns its status, the assignment, and what the validator found wrong with the solver's plan.
    Whichever plan is returned is validated here (``validate.check``, the array-time equivalent of
    ``validate.problems``). The solver's plan and the hint are compared on the model's free pods
    only: every other pod is where the hint put it in both, so the whole instance's scores differ
    by exactly the free part's, and the lexicographic order of the keys is the same.
    """
    rejected: tuple[str, ...] = ()
    if best is not None and model is not None:
        rejected = tuple(validate.check(instance, best, max_evictions=settings.max_evictions))
        if rejected:
            logger.error("solver plan rejected by the validator, using its hint: %s", rejected[:5])
        else:
            ours, theirs = _free_key(model, best), _free_key(model, hint)
            proven = complete and all(s.status in ("OPTIMAL", "BOUND") for s in stages if s.ranked)
            if ours > theirs or (ours == theirs and proven):
                return (plans.Status.OPTIMAL if proven else plans.Status.FEASIBLE), best, rejected
    if hint is not default:
        wrong = validate.check(instance, hint, max_evictions=settings.max_evictions)
        if wrong:
            logger.error("repaired plan rejected by the validator, using greedy's: %s", wrong[:5])
        elif _key(instance, hint) > _key(instance, default):
            return plans.Status.FEASIBLE, hint, rejected
    wrong = validate.check(instance, default, max_evictions=settings.max_evictions)
    if wrong:
        # Greedy keeps what runs: a cluster that breaks a rule already is returned as it is.
        logger.error("greedy's plan breaks rules (the cluster's current state does): %s", wrong[:5])
    return plans.Status.GREEDY, default, rejected


def _key(instance: inst.Instance, at: inst.Assignment) -> tuple[int, ...]:
    return validate.key(validate.tally(instance, at))


def _free_key(model: PackingModel, at: inst.Assignment) -> tuple[int, ...]:
    """``validate.key`` of ``at`` over the model's free pods."""
    return validate.key(validate.score(_free_only(model), _restricted(model, at)))


def _gap(stages: list[plans.Stage]) -> float:
    for s in stages:
        if s.ranked and s.status not in ("OPTIMAL", "BOUND"):
            return abs(s.bound - s.value) / max(1, abs(s.bound))
    return 0.0


def _neighbourhood(
    instance: inst.Instance, hint: inst.Assignment, *, budget: int
) -> tuple[set[int] | None, frozenset[int] | None]:
    """Pods and nodes left to the model (the rest stays where the hint put it); (None, None): all of them.

    Array work over all pods, Python work only over the nodes chosen: at 50 000 pods a loop per
    pod costs a tenth of the window.
    """
    columns = instance.columns
    loose = ~columns.pinned
    if _pairs(instance, loose) <= budget:
        return None, None
    where = inst.node_array(hint)
    unplaced = np.flatnonzero((where < 0) & loose)
    sets = {id(instance.pods[i].eligible): instance.pods[i].eligible for i in unplaced.tolist()}
    wanted: set[int] = set().union(*sets.values())
    # Placed free pods grouped by node: ``by_node[starts[n]:starts[n + 1]]`` are node n's.
    placed = np.flatnonzero((where >= 0) & loose)
    by_node = placed[np.argsort(where[placed], kind="stable")]
    starts = np.searchsorted(where[by_node], np.arange(len(instance.nodes) + 1))
    shape = instance.columns.shape  # the model's classes, but for movability
    room = _room(instance, where)
    shapes = set(shape[unplaced].tolist())
    chosen: list[int] = []
    for n in sorted(wanted, key=lambda n: -room[n]):
        more = set(shape[by_node[starts[n] : starts[n + 1]]].tolist())
        if (len(shapes | more)) * (len(chosen) + 1) > budget and chosen:
            break
        shapes |= more
        chosen.append(n)
    residents = [by_node[starts[n] : starts[n + 1]] for n in chosen]
    free = set(np.concatenate([unplaced, *residents]).tolist())
    logger.info(
        "instance cut to %d of %d nodes and %d of %d pods",
        len(chosen),
        len(instance.nodes),
        len(free),
        len(instance.pods),
    )
    return free, frozenset(chosen)


def _pairs(instance: inst.Instance, loose: npt.NDArray[np.bool_]) -> int:
    """Distinct shapes of the free pods times their eligible nodes: about the whole model's size."""
    columns = instance.columns
    pods = np.flatnonzero(loose)
    first = np.unique(columns.shape[pods], return_index=True)[1]
    sizes = np.array([len(s) for s in columns.eligible_sets], dtype=np.int64)
    return int(sizes[columns.eligible[pods[first]]].sum())


def _room(instance: inst.Instance, where: npt.NDArray[np.int64]) -> list[float]:
    """Share of each node's capacity left free with pod i on node ``where[i]``, averaged over
    the resources the node has."""
    placed = np.flatnonzero(where >= 0)
    used = np.zeros_like(instance.allocatable)
    np.add.at(used, where[placed], instance.requests[placed])
    allocatable = instance.allocatable.astype(np.float64)
    has = allocatable > 0
    shares = np.where(has, (allocatable - used) / np.where(has, allocatable, 1), 0.0)
    room: list[float] = (shares.sum(axis=1) / np.maximum(has.sum(axis=1), 1)).tolist()
    return room
