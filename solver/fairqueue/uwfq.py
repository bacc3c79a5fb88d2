"""User-weighted fair queueing (UWFQ), and CFQ, its job-level sibling.

From "Balancing Fairness and Performance in Multi-User Spark Workloads with Dynamic Scheduling"
(Kažemaks, Versluis, Kulahcioglu Ozkan, Decouchant, arXiv 2510.15485), moved from Spark stages
to cluster admission and extended with user weights.

The model. The queue simulates, alongside the real cluster, an ideal fluid one in which capacity
C is shared among the *active* users in proportion to their weights. A global virtual time V
runs at ``dV/dt = C / sum(weights of active users)``, so a user of weight w is served at w units
of capacity per unit of V and a job of estimated work R (capacity x seconds) spans R / w of V.

Inside a user, jobs are laid end to end in the user's share: each job gets a per-user tag
``u_arrival + R``, where u is the user's processor-sharing clock (it advances by ``w dV / k``
with k the user's unfinished jobs in the fluid model), so tag order is the order in which the
jobs would finish if they shared the user's slice equally. In tag order,

    D1 = S + R1 / w,   Di = D(i-1) + Ri / w,   S = max(V, the user's previous finish),

so the last job ends exactly when the user's whole backlog would under user-level fair sharing,
and each earlier job ends no later than it would under processor sharing inside the user. A job
whose virtual finish D <= V is done in the fluid model (its D is then frozen); a user whose last
job is done is inactive, which speeds V up for the others (V is advanced piecewise, one user
departure at a time). A user returning within ``grace_s`` of going inactive resumes from its
previous finish instead of V, so a short pause between dependent jobs costs it nothing; idle
time beyond that earns no credit.

Order: the waiting job with the smallest virtual finish D first, among those whose demand fits
the free units, so the cluster never idles while work fits. Ties go to the user handed less work
since it last became active, then to the job handed fewer tasks (so identical users, and a
user's equally urgent jobs, take turns instead of one always winning), then arrival, then id.

Bounded fairness (what is promised, and what the tests check). Let F_j be job j's finish time
under per-user weighted fair sharing (the fluid model above with exact sizes, jobs inside a user
sharing its slice equally, no limit on a job's parallelism), tau_max the longest task in the
workload and C the capacity. With exact estimates, tasks of one unit each and ``grace_s = 0``
(the default), every job finishes by

    F_j + tau_max + (ceil(tasks_j / C) * task_j - tasks_j * task_j / C)

(``lateness_bound``): the issue's "configured bound plus one task's length", with the configured
part zero. The tau_max is the classic WFQ lag: a task cannot be preempted, so when j becomes the
most urgent it may wait for a running task to end. The last term is the job's own critical
path: the fluid model lets a job use the whole cluster, its tasks cannot all run at once. Why it
holds: laying a user's jobs end to end in tag order gives each job a virtual finish no later
than processor sharing inside the user would (tag order is processor-sharing order), and a
re-laid chain always starts at V (``_rebase``), so no virtual finish is ever set behind V. (An
earlier version let a job put ahead of a partly served head inherit the head's past service; its
virtual finish then lay behind V and the real schedule owed it that work ahead of the user's
later jobs, which is why the bound used to read 2 tau_max and could still be exceeded.) It is
checked, not proven: ``tests/unit/test_fairness_properties.py`` runs random workloads in the
discrete-event simulator; the worst seen over 6 000 was exactly the bound.

Nothing else configures the bound: it follows from the order (smallest virtual finish first), so
a setting could only loosen it. ``grace_s`` is the one setting that does: a returning user
resumes from its previous finish, credit the fluid model does not give, and others may be late by
more (measured over 3 000 random workloads: up to 1.0 / 2.75 / 7.75 s beyond the bound with a
grace of 1 / 2 / 5 s). With under-estimates the queue corrects the estimate as the job runs
(``update_estimate``); jobs of users who declare exactly then finish within the bound plus
3 tau_max (measured; ``tests/unit/test_fairness_properties.py``).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from fairpack.solver.fairqueue import estimator as estimator_mod
from fairpack.solver.fairqueue import policy
from fairpack.solver.fairqueue.policy import JobId, QueuedJob, UserName

_REL_EPS = 1e-9


@dataclass(frozen=True)
class UwfqSettings:
    """Tunables of the virtual-time model."""

    grace_s: float = 0.0
    """Seconds after going inactive during which a returning user keeps its previous finish as
    its start, so dependent jobs submitted back to back are not treated as new arrivals. Off by
    default: the reference implementation's 5 s did not shorten small jobs' response in our
    simulations (``bench/bench_fairness.py``) and it loosens the fairness bound (module
    docstring)."""
    default_weight: float = 1.0
    """Weight of a user the tenant configuration does not name."""


def lateness_bound(*, tasks: int, task_s: float, capacity: int, longest_task_s: float) -> float:
    """Seconds a job may finish after its fair-sharing finish (module docstring, grace_s = 0)."""
    critical_path = math.ceil(tasks / capacity) * task_s - tasks * task_s / capacity
    return longest_task_s + critical_path


@dataclass
class _Job:
    job: QueuedJob
    waiting: int
    """Admissions not handed out yet."""
    running: int = 0
    work_s: float = 0.0
    """Current size estimate."""
    charge: float = 0.0
    """Work this job holds in its user's chain (its estimate, or an overrun added later)."""
    tag: float = 0.0
    in_chain: bool = False
    deadline: float = 0.0
    """Frozen virtual finish, once the fluid model has finished the job."""
    finished: bool = False

    def chain_key(self) -> tuple[float, float, str]:
        return (self.tag, self.job.arrival_s, self.job.id)


@dataclass
class _User:
    name: UserName
    weight: float
    start: float = 0.0
    """S: virtual time at which the first job still in the chain starts."""
    clock: float = 0.0
    """u: the user's processor-sharing clock (work each unfinished job has received), as of V =
    ``clock_v``."""
    clock_v: float = 0.0
    pending: list[float] = field(default_factory=list)
    """Sorted tags of the user's jobs processor sharing has not finished yet (u < tag): their
    count is the k that divides the user's service. A job leaves the chain (at D) no later than
    it leaves this list (at u = tag), so the list holds at least the chain's jobs."""
    chain: list[tuple[float, float, str]] = field(default_factory=list)
    """Jobs not yet finished by the fluid model, in tag order: (tag, arrival, id)."""
    inactive_since: tuple[float, float] | None = None
    """(real time, virtual time) at which the chain last emptied."""
    handed_s: float = 0.0
    """Estimated work (units x seconds) handed out to the user since it last became active: the
    tie-break between equally urgent jobs of different users."""
    frozen: policy.LazyHeap[JobId] = field(default_factory=policy.LazyHeap)
    """Jobs the fluid model finished that still wait for admissions, keyed by frozen D."""


@dataclass(frozen=True)
class JobFact:
    """What an operator persists about a job, enough to rebuild the queue after a restart."""

    job: QueuedJob
    """As submitted: ``work_s`` is the latest estimate."""
    admitted_s: float | None = None
    finished_s: float | None = None
    actual_work_s: float | None = None


@dataclass(frozen=True)
class Tenants:
    """Flows grouped into tenants: a tenant's weight is split equally among its flows that have
    unfinished jobs (submitted, not finished), so a flow's weight changes whenever another flow of
    its tenant starts or stops having some. With no flow open a flow has the whole weight."""

    weights: Mapping[str, float]
    """Each tenant's weight."""
    members: Mapping[UserName, str]
    """The tenant of each flow it groups (every tenant named must be in ``weights``)."""

    def weight(self, tenant: str, *, open_flows: int) -> float:
        """Each flow's weight in ``tenant`` while ``open_flows`` of its flows have unfinished jobs."""
        return self.weights[tenant] / max(open_flows, 1)


class UwfqQueue:
    """The UWFQ ordering policy (see the module docstring). Implements ``policy.OrderingPolicy``.

    ``flow_of`` maps a job to the entity that shares the cluster: its user for UWFQ, the job
    itself for CFQ.
    """

    def __init__(
        self,
        *,
        capacity: float,
        weights: Mapping[UserName, float] | None = None,
        settings: UwfqSettings | None = None,
        estimator: estimator_mod.Estimator | None = None,
        flow_of: Callable[[QueuedJob], UserName] | None = None,
    ) -> None:
        self.capacity = capacity
        self.settings = settings or UwfqSettings()
        self._weights = dict(weights or {})
        self._estimator = estimator
        self._flow_of = flow_of or (lambda job: job.user)
        self.virtual_time = 0.0
        self._now = 0.0
        self._users: dict[UserName, _User] = {}
        self._active: dict[UserName, _User] = {}
        """Users with work left in the fluid model, in activation order."""
        self._active_weight = 0.0
        self._heads: policy.LazyHeap[UserName] = policy.LazyHeap()
        """Active users by the virtual finish of their chain's first job: V's next breakpoint."""
        self._dirty = False
        """A chain changed since V last moved: some head may already be done."""
        self._jobs: dict[JobId, _Job] = {}
        self._candidates: policy.LazyHeap[UserName] = policy.LazyHeap()

    # --- the OrderingPolicy interface ---------------------------------------------------------

    def submit(self, job: QueuedJob, *, now: float) -> None:
        """Queue ``job``, charging its estimated work to its user's chain."""
        self.advance(now=now)
        entry = _Job(job=job, waiting=job.tasks, work_s=job.work_s)
        self._jobs[job.id] = entry
        self._charge(entry, job.work_s)

    def next(self, *, now: float, free: int) -> JobId | None:
        """The waiting job with the smallest virtual finish among those whose demand fits."""
        self.advance(now=now)
        top = self._candidates.first(lambda _: True)
        if top is None:
            return None  # nothing waits
        job_id = self._user_first(self._users[top], lambda _: True)
        if job_id is not None and self._jobs[job_id].job.demand <= free:
            return job_id
        # The most urgent job does not fit: the most urgent of those that do (work conservation).
        best: tuple[tuple[float, float, int, float, str], JobId] | None = None
        for name in self._candidates:
            job_id = self._user_first(self._users[name], lambda j: self._jobs[j].job.demand <= free)
            if job_id is not None:
                key = self._order_key(job_id)
                if best is None or key < best[0]:
                    best = (key, job_id)
        return best[1] if best else None

    def pop(self, *, now: float, free: int) -> JobId | None:
        """``next``, and one admission of that job is handed out."""
        job_id = self.next(now=now, free=free)
        if job_id is not None:
            self.admit(job_id, now=now)
        return job_id

    def task_done(self, job_id: JobId, *, now: float) -> None:
        """An admitted task gave its capacity back (no effect on the order)."""
        self.advance(now=now)
        self._jobs[job_id].running -= 1

    def finish(self, job_id: JobId, *, now: float, actual_work_s: float | None = None) -> None:
        """The job is over (done, failed or cancelled, admitted or not). With ``actual_work_s``, its
        user is charged what it really used and the estimator (if any) learns it."""
        self.advance(now=now)
        entry = self._jobs[job_id]
        entry.finished = True
        entry.waiting = 0
        entry.running = 0
        if actual_work_s is not None:
            if self._estimator is not None:
                self._estimator.observe(user=entry.job.user, name=entry.job.name, actual_s=actual_work_s)
            self.update_estimate(job_id, work_s=actual_work_s, now=now)
        user = self._users[self._flow_of(entry.job)]
        user.frozen.remove(job_id)  # a job can end before all its admissions (cancelled, failed)
        if not entry.in_chain:
            del self._jobs[job_id]
        self._refresh(user)

    # --- operator-facing extras -----------------------------------------------------------------

    def admit(self, job_id: JobId, *, now: float) -> None:
        """Record one admission of a specific job (the caller chose it, e.g. when rebuilding)."""
        self.advance(now=now)
        entry = self._jobs[job_id]
        entry.waiting -= 1
        entry.running += 1
        user = self._users[self._flow_of(entry.job)]
        user.handed_s += entry.work_s / entry.job.tasks
        self._refresh(user)

    def update_estimate(self, job_id: JobId, *, work_s: float, now: float) -> None:
        """Change a job's size estimate (an overrun correction, or the actual size at the end).

        A job still in its user's chain is re-tagged and the chain re-laid. A job the fluid model
        has already finished keeps its frozen finish; only extra work is charged, as a new piece
        at the end of its user's chain (the job used more than it declared, so it waits its turn).
        """
        self.advance(now=now)
        entry = self._jobs[job_id]
        delta = work_s - entry.work_s
        entry.work_s = work_s
        user = self._users[self._flow_of(entry.job)]
        if entry.in_chain:
            self._unchain(user, entry)
            self._unpend(user, entry.tag)
            entry.tag += delta
            self._pend(user, entry.tag)
            self._chain(user, entry, max(entry.charge + delta, 0.0))
        elif delta > 0:
            # Processor sharing still serving the job: its tag moves by the extra work. Already
            # finished there: the extra work is like a new arrival of that size.
            self._sync_clock(user)
            still_pending = bool(user.chain) and self._unpend(user, entry.tag)
            self._charge(entry, delta, tag=entry.tag + delta if still_pending else None)
        self._refresh(user)

    def set_weight(self, user: UserName, weight: float, *, now: float) -> None:
        """Change a user's weight (the tenant configuration changed): the service the user already
        had is kept, the work left in its chain is laid out again at the new weight."""
        if weight <= 0:
            raise ValueError(f"weight must be positive, got {weight}")
        self.advance(now=now)
        self._weights[user] = weight
        found = self._users.get(user)
        if found is None:
            return
        self._sync_clock(found)
        if user in self._active:
            self._active_weight += weight - found.weight
            # The chain's first job is partly served: keep that service, lay the rest at the new
            # weight (S moves so that S + R / w_new = V + (R - served) / w_new).
            served = max(0.0, self.virtual_time - found.start) * found.weight
            found.start = self.virtual_time - served / weight
        found.weight = weight
        self._chain_changed(found)
        self._dirty = True
        self._refresh(found)

    def virtual_finish(self, job_id: JobId) -> float:
        """The job's virtual finish D: what the operator writes as fairpack.io/virtual-finish."""
        entry = self._jobs[job_id]
        if not entry.in_chain:
            return entry.deadline
        user = self._users[self._flow_of(entry.job)]
        finish = user.start
        for key in user.chain:
            item = self._jobs[JobId(key[2])]
            finish += item.charge / user.weight
            if item is entry:
                break
        return finish

    def position(self, job_id: JobId) -> int | None:
        """0-based place of a waiting job in admission order (None if it waits for nothing)."""
        if self._jobs[job_id].waiting <= 0:
            return None
        waiting = [j for j, e in self._jobs.items() if e.waiting > 0]
        waiting.sort(key=self._order_key)
        return waiting.index(job_id)

    def waiting(self) -> list[JobId]:
        """Jobs with admissions left, in admission order."""
        jobs = [j for j, e in self._jobs.items() if e.waiting > 0]
        return sorted(jobs, key=self._order_key)

    def is_active(self, user: UserName) -> bool:
        """Whether the user has work left in the fluid model (it holds a share of V's rate)."""
        found = self._users.get(user)
        return bool(found and found.chain)

    # --- virtual time -------------------------------------------------------------------------

    def advance(self, *, now: float) -> None:
        """Move V to real time ``now``: piecewise, speeding up each time a user goes inactive."""
        if now < self._now:
            raise ValueError(f"time went backwards: {now} < {self._now}")
        if now == self._now and not self._dirty:
            return  # the admission loop calls many times per instant: nothing can have moved
        self._dirty = False
        while True:
            self._retire_done(self._now)
            head = self._heads.first(lambda _: True)
            if head is None or now == self._now:
                break
            rate = self.capacity / self._active_weight
            head_finish = self._head_finish(self._users[head])
            step = (head_finish - self.virtual_time) / rate
            if self._now + step <= now:
                self.virtual_time = head_finish
                self._now += step
            else:
                self.virtual_time += (now - self._now) * rate
                self._now = now
        self._now = now

    def _head_finish(self, user: _User) -> float:
        return user.start + self._jobs[JobId(user.chain[0][2])].charge / user.weight

    def _retire_done(self, now: float) -> None:
        """Take every chain head the fluid model has finished (D <= V) out of its chain."""
        eps = _REL_EPS * max(1.0, abs(self.virtual_time))
        while (name := self._heads.first(lambda _: True)) is not None:
            user = self._users[name]
            if self._head_finish(user) > self.virtual_time + eps:
                break
            self._sync_clock(user)
            entry = self._jobs[JobId(user.chain.pop(0)[2])]
            user.start += entry.charge / user.weight
            entry.in_chain = False
            entry.deadline = user.start
            if entry.finished:
                del self._jobs[entry.job.id]
            elif entry.waiting > 0:
                user.frozen.push(entry.job.id, (entry.deadline, *entry.job.order_key()))
            if not user.chain:
                user.inactive_since = (now, user.start)
                user.pending.clear()  # processor sharing ends with the chain (same total work)
            self._chain_changed(user)
            self._refresh(user)

    # --- chains -------------------------------------------------------------------------------

    def _user(self, job: QueuedJob) -> _User:
        name = self._flow_of(job)
        if name not in self._users:
            weight = self._weights.get(name, self.settings.default_weight)
            self._users[name] = _User(name=name, weight=weight)
        return self._users[name]

    def _sync_clock(self, user: _User) -> float:
        """Bring the user's processor-sharing clock u up to V.

        Between two instants the user receives ``w * dV`` of service, split equally among its k
        jobs processor sharing has not finished, so u runs at ``w / k`` per unit of V; k drops
        each time u passes a pending tag, so u is advanced piecewise, tag by tag. It is only
        brought up to date when it is read or k is about to change, so moving V costs nothing
        per user.
        """
        service = (self.virtual_time - user.clock_v) * user.weight
        user.clock_v = self.virtual_time
        pending = user.pending
        while service > 0 and pending:
            need = (pending[0] - user.clock) * len(pending)
            if need > service:
                user.clock += service / len(pending)
                break
            service -= max(need, 0.0)
            user.clock = max(user.clock, pending[0])
            del pending[: bisect.bisect_right(pending, user.clock * (1 + _REL_EPS) + _REL_EPS)]
        return user.clock

    def _pend(self, user: _User, tag: float) -> None:
        """Count a tag among the user's jobs processor sharing has still to finish."""
        if tag > user.clock:
            bisect.insort(user.pending, tag)

    def _unpend(self, user: _User, tag: float) -> bool:
        """Forget one pending tag; False if processor sharing had already finished it."""
        i = bisect.bisect_left(user.pending, tag)
        if i < len(user.pending) and user.pending[i] == tag:
            del user.pending[i]
            return True
        return False

    def _charge(self, entry: _Job, work: float, *, tag: float | None = None) -> None:
        """Append ``work`` for ``entry`` to its user's chain, (re)activating the user if idle.

        The tag is ``u + work`` (a new arrival under processor sharing) unless given."""
        user = self._user(entry.job)
        if not user.chain:
            user.start = self._restart_point(user)
            user.clock = 0.0
            user.clock_v = self.virtual_time
            user.pending.clear()
            user.handed_s = 0.0
            tag = None  # an idle user starts afresh: nothing of its own is pending
        entry.tag = self._sync_clock(user) + work if tag is None else tag
        self._pend(user, entry.tag)
        self._chain(user, entry, work)
        self._refresh(user)

    def _restart_point(self, user: _User) -> float:
        """S for a user whose chain is empty: its previous finish inside the grace period, else V."""
        if user.inactive_since is not None:
            since_s, previous_finish = user.inactive_since
            if self._now - since_s <= self.settings.grace_s:
                return max(previous_finish, 0.0)
        return self.virtual_time

    def _rebase(self, user: _User) -> None:
        """Restart the user's chain at V: its head, the only job the fluid model is serving, keeps
        just the work not served yet. Called before the chain is re-laid, so a job put ahead of
        the head starts at V and never inherits the head's past service (it would then get a
        virtual finish already behind V, and the real schedule would owe it all that work ahead
        of the user's later jobs)."""
        if user.chain and self.virtual_time > user.start:
            head = self._jobs[JobId(user.chain[0][2])]
            head.charge = max(head.charge - (self.virtual_time - user.start) * user.weight, 0.0)
            user.start = self.virtual_time

    def _chain(self, user: _User, entry: _Job, work: float) -> None:
        self._sync_clock(user)
        self._rebase(user)
        entry.charge = work
        entry.in_chain = True
        bisect.insort(user.chain, entry.chain_key())
        self._chain_changed(user)
        self._dirty = True

    def _unchain(self, user: _User, entry: _Job) -> None:
        self._sync_clock(user)
        self._rebase(user)
        user.chain.remove(entry.chain_key())
        entry.in_chain = False
        self._chain_changed(user)

    def _chain_changed(self, user: _User) -> None:
        """Keep the active set, its total weight and the heads heap in step with the chain."""
        if user.chain:
            self._heads.push(user.name, (self._head_finish(user), user.name))
            if user.name not in self._active:
                self._active[user.name] = user
                self._active_weight += user.weight
        else:
            self._heads.remove(user.name)
            if self._active.pop(user.name, None) is not None:
                # Kept by increments (CFQ has a flow per job); reset when empty so that rounding
                # cannot accumulate across busy periods.
                self._active_weight = self._active_weight - user.weight if self._active else 0.0

    # --- ordering -----------------------------------------------------------------------------

    def _order_key(self, job_id: JobId) -> tuple[float, float, int, float, str]:
        """Virtual finish; on a tie, the user handed less work in its busy period, then the job
        handed fewer tasks (so equally urgent users and jobs take turns), then arrival, then id.
        Every part depends on the job's own user only, so a user's key changes only when that
        user's jobs do."""
        entry = self._jobs[job_id]
        user = self._users[self._flow_of(entry.job)]
        started = entry.job.tasks - entry.waiting
        return (self.virtual_finish(job_id), user.handed_s, started, entry.job.arrival_s, entry.job.id)

    def _user_first(self, user: _User, accept: Callable[[JobId], bool]) -> JobId | None:
        """The user's most urgent waiting job ``accept`` takes: frozen ones (D <= V) first."""
        frozen = user.frozen.first(lambda j: self._jobs[j].waiting > 0 and accept(j))
        if frozen is not None:
            return frozen
        for key in user.chain:
            job_id = JobId(key[2])
            if self._jobs[job_id].waiting > 0 and accept(job_id):
                return job_id
        return None

    def _refresh(self, user: _User) -> None:
        """Re-key the user's entry in the candidates heap after any change to its jobs."""
        # Frozen jobs with nothing left to admit are dropped here, so the heap stays small.
        while (top := user.frozen.first(lambda _: True)) is not None and self._jobs[top].waiting <= 0:
            user.frozen.remove(top)
        job_id = self._user_first(user, lambda _: True)
        if job_id is None:
            self._candidates.remove(user.name)
        else:
            self._candidates.push(user.name, self._order_key(job_id))


def cfq(*, capacity: float, settings: UwfqSettings | None = None) -> UwfqQueue:
    """CFQ: the same virtual-time queue with every job its own flow of weight 1 (job-level WFQ,
    the paper's stage-level fair queue for single-stage jobs). It ignores who sent the jobs."""
    return UwfqQueue(
        capacity=capacity,
        settings=settings,
        flow_of=lambda job: UserName(f"job:{job.id}"),
    )


class _Split:
    """Replays the tenants' weight split: which flows have unfinished jobs at each event, and the
    weight that gives every flow of the tenant whose count changed."""

    def __init__(self, queue: UwfqQueue, tenants: Tenants) -> None:
        self._queue = queue
        self._tenants = tenants
        self._flows: dict[str, list[UserName]] = {}
        for flow, name in sorted(tenants.members.items()):
            self._flows.setdefault(name, []).append(flow)
        self._open_jobs: Counter[UserName] = Counter()
        self._open_flows: Counter[str] = Counter()

    def count(self, flow: UserName, delta: int, *, now: float) -> None:
        """A job of ``flow`` was submitted (+1) or finished (-1) at ``now``."""
        name = self._tenants.members.get(flow)
        if name is None:
            return  # a flow of fixed weight
        was_open = self._open_jobs[flow] > 0
        self._open_jobs[flow] += delta
        if was_open == (self._open_jobs[flow] > 0):
            return
        before = self._tenants.weight(name, open_flows=self._open_flows[name])
        self._open_flows[name] += delta
        weight = self._tenants.weight(name, open_flows=self._open_flows[name])
        if weight != before:
            for member in self._flows[name]:
                self._queue.set_weight(member, weight, now=now)


_SUBMIT, _ADMIT, _FINISH = 0, 1, 2


def rebuild(
    facts: Iterable[JobFact],
    *,
    capacity: float,
    now: float,
    weights: Mapping[UserName, float] | None = None,
    tenants: Tenants | None = None,
    settings: UwfqSettings | None = None,
    estimator: estimator_mod.Estimator | None = None,
) -> UwfqQueue:
    """The queue as it stands at ``now``, replayed from persisted facts.

    Events are replayed in time order; at equal times submissions go first, then admissions, then
    finishes (so a job submitted, admitted and finished within one instant still replays), then
    by job id. The same facts always give the same queue, and the queue a live operator built
    when it made its calls in that order (the order of calls within one instant only matters
    when a finish corrects an estimate).

    ``weights`` are fixed. The flows ``tenants`` groups instead get, at each event, the weight
    their tenant's split gave them at that moment (``set_weight`` just before a submission that
    opens a flow, just after a finish that closes one), as a live queue told of each change would
    have: replaying the past at today's split would re-lay service already given and move waiting
    jobs' virtual finishes each time a tenant's number of active flows changed.
    """
    tenants = tenants or Tenants(weights={}, members={})
    # Before any job, no flow is open: each member starts with its tenant's whole weight.
    start = {flow: tenants.weight(name, open_flows=0) for flow, name in tenants.members.items()}
    queue = UwfqQueue(
        capacity=capacity, weights={**(weights or {}), **start}, settings=settings, estimator=estimator
    )
    split = _Split(queue, tenants)
    events: list[tuple[float, int, str, JobFact]] = []
    for fact in facts:
        events.append((fact.job.arrival_s, _SUBMIT, fact.job.id, fact))
        if fact.admitted_s is not None:
            events.append((max(fact.admitted_s, fact.job.arrival_s), _ADMIT, fact.job.id, fact))
        if fact.finished_s is not None:
            events.append((max(fact.finished_s, fact.job.arrival_s), _FINISH, fact.job.id, fact))
    for time, kind, _, fact in sorted(events, key=lambda e: (e[0], e[1], e[2])):
        if kind == _SUBMIT:
            split.count(fact.job.user, +1, now=time)
            queue.submit(fact.job, now=time)
        elif kind == _ADMIT:
            for _ in range(fact.job.tasks):
                queue.admit(fact.job.id, now=time)
        else:
            queue.finish(fact.job.id, now=time, actual_work_s=fact.actual_work_s)
            split.count(fact.job.user, -1, now=time)
    queue.advance(now=now)
    return queue
