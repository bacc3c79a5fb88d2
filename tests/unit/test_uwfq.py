"""UWFQ's virtual-time model, its order, and what the operator relies on (rebuild, estimates)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairpack.solver.fairqueue import estimator, uwfq
from fairpack.solver.fairqueue.policy import JobId, QueuedJob, UserName
from fairpack.solver.sim import metrics
from fairpack.solver.sim.workloads import SimJob, Workload


def job(
    job_id: str, user: str, *, at: float = 0.0, work: float = 1.0, tasks: int = 1, demand: int = 1
) -> QueuedJob:
    return QueuedJob(
        id=JobId(job_id),
        user=UserName(user),
        arrival_s=at,
        work_s=work,
        tasks=tasks,
        demand=demand,
        name="etl",
    )


def queue(capacity: float = 1.0, grace_s: float = 0.0, **weights: float) -> uwfq.UwfqQueue:
    return uwfq.UwfqQueue(
        capacity=capacity,
        weights={UserName(u): w for u, w in weights.items()},
        settings=uwfq.UwfqSettings(grace_s=grace_s),
    )


def test_promised_defaults() -> None:
    assert uwfq.UwfqSettings().grace_s == 0.0
    assert uwfq.UwfqSettings().default_weight == 1.0


def test_virtual_time_runs_at_capacity_over_the_active_users_weights() -> None:
    q = queue(capacity=10.0, a=1.0, b=4.0)
    q.submit(job("a1", "a", work=1000.0), now=0.0)
    q.submit(job("b1", "b", work=1000.0), now=0.0)
    q.advance(now=1.0)
    assert q.virtual_time == pytest.approx(10.0 / 5.0)


def test_a_users_jobs_are_laid_end_to_end_in_its_share_in_tag_order() -> None:
    q = queue(capacity=1.0, a=2.0)
    q.submit(job("big", "a", work=6.0), now=0.0)
    q.submit(job("small", "a", work=4.0), now=0.0)
    # Smaller tag (u + R) first: D1 = S + 4/2, D2 = D1 + 6/2.
    assert q.virtual_finish(JobId("small")) == pytest.approx(2.0)
    assert q.virtual_finish(JobId("big")) == pytest.approx(5.0)


def test_a_tag_counts_only_the_jobs_processor_sharing_has_not_finished() -> None:
    # A (1) and C (10) at 0; A finishes under processor sharing at u = 1 (t = 2), so at t = 1.5
    # u = 0.75 and B's tag is 0.75 + 9.2 = 9.95 < C's 10: B before C, as the fluid model finishes
    # them (B at 20.15, C at 20.2). Counting k as the jobs left in the end-to-end chain (A leaves
    # it at t = 1) ran u too fast and put C first.
    q = queue(capacity=1.0)
    q.submit(job("A", "a", work=1.0), now=0.0)
    q.submit(job("C", "a", work=10.0), now=0.0)
    q.submit(job("B", "a", at=1.5, work=9.2), now=1.5)
    assert q.waiting() == ["A", "B", "C"]
    fluid = metrics.fair_finish_times(
        Workload(
            capacity=1,
            users={"a": 1.0},
            jobs=(
                SimJob("A", "a", "c", 0.0, 1, 1.0),
                SimJob("C", "a", "c", 0.0, 1, 10.0),
                SimJob("B", "a", "c", 1.5, 1, 9.2),
            ),
        )
    )
    assert fluid["B"] < fluid["C"]


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    arrivals=st.lists(
        st.tuples(st.integers(0, 12).map(lambda t: t / 2), st.integers(1, 40).map(lambda w: w / 4)),
        min_size=2,
        max_size=8,
    ),
    weight=st.sampled_from([1.0, 2.0]),
)
def test_a_users_unfinished_jobs_are_laid_out_in_processor_sharing_finish_order(
    arrivals: list[tuple[float, float]], weight: float
) -> None:
    # The jobs still in the user's chain (D > V) are ordered as processor sharing inside the
    # user would finish them.
    jobs = [SimJob(f"j{k}", "a", "c", at, 1, work) for k, (at, work) in enumerate(sorted(arrivals))]
    q = queue(capacity=1.0, a=weight)
    for j in jobs:
        q.submit(job(j.id, "a", at=j.arrival_s, work=j.task_s), now=j.arrival_s)
    fluid = metrics.fair_finish_times(Workload(capacity=1, users={"a": weight}, jobs=tuple(jobs)))
    chained = [j.id for j in jobs if q.virtual_finish(JobId(j.id)) > q.virtual_time + 1e-9]
    by_d = sorted(chained, key=lambda i: q.virtual_finish(JobId(i)))
    finishes = [fluid[i] for i in by_d]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(finishes)), finishes


def test_virtual_time_speeds_up_when_a_user_goes_inactive() -> None:
    q = queue(capacity=2.0)
    q.submit(job("a1", "a", work=2.0), now=0.0)
    q.submit(job("b1", "b", work=100.0), now=0.0)
    # Two users: V runs at 1 until a's job ends at V = 2 (t = 2), then at 2.
    q.advance(now=3.0)
    assert q.virtual_time == pytest.approx(4.0)
    assert not q.is_active(UserName("a"))
    assert q.is_active(UserName("b"))


def test_idle_time_earns_no_credit() -> None:
    q = queue(capacity=1.0)
    q.submit(job("b1", "b", work=100.0), now=0.0)
    q.submit(job("a1", "a", work=1.0), now=0.0)
    q.advance(now=50.0)
    q.submit(job("a2", "a", work=1.0), now=50.0)
    # a was idle from V = 1 on: its new job starts at V now, not at its old finish.
    assert q.virtual_finish(JobId("a2")) == pytest.approx(q.virtual_time + 1.0)


def test_a_user_returning_within_the_grace_period_keeps_its_place() -> None:
    q = queue(capacity=1.0, grace_s=5.0)
    q.submit(job("b1", "b", work=100.0), now=0.0)
    q.submit(job("a1", "a", work=1.0), now=0.0)  # a's chain ends at V = 1, at t = 2
    q.submit(job("a2", "a", work=1.0), now=4.0)
    assert q.virtual_finish(JobId("a2")) == pytest.approx(2.0)
    assert q.virtual_time > 2.0


def test_the_smallest_virtual_finish_goes_first() -> None:
    q = queue(capacity=4.0)
    q.submit(job("heavy", "a", work=400.0), now=0.0)
    q.submit(job("light", "b", work=4.0), now=1.0)
    assert q.pop(now=1.0, free=4) == JobId("light")
    assert q.pop(now=1.0, free=4) == JobId("heavy")
    assert q.pop(now=1.0, free=4) is None


def test_equal_virtual_finishes_break_by_arrival_then_id() -> None:
    q = queue(capacity=1.0)
    for name in ("c", "a", "b"):
        q.submit(job(f"{name}1", name, work=1.0), now=0.0)
    assert q.waiting() == [JobId("a1"), JobId("b1"), JobId("c1")]
    assert [q.position(JobId(j)) for j in ("a1", "b1", "c1")] == [0, 1, 2]


def test_the_most_urgent_job_that_fits_goes_when_the_head_does_not_fit() -> None:
    q = queue(capacity=8.0)
    q.submit(job("wide", "a", work=8.0, demand=8), now=0.0)
    q.submit(job("narrow", "b", work=80.0, demand=1), now=0.0)
    assert q.next(now=0.0, free=8) == JobId("wide")
    assert q.next(now=0.0, free=2) == JobId("narrow")


def test_an_admitted_job_leaves_the_waiting_list_but_keeps_its_virtual_finish() -> None:
    q = queue(capacity=1.0)
    q.submit(job("a1", "a", work=3.0), now=0.0)
    before = q.virtual_finish(JobId("a1"))
    assert q.pop(now=0.0, free=1) == JobId("a1")
    assert q.position(JobId("a1")) is None
    assert q.virtual_finish(JobId("a1")) == before


def test_extra_work_of_an_underestimated_job_waits_behind_the_users_chain() -> None:
    q = queue(capacity=1.0)
    q.submit(job("b1", "b", work=100.0), now=0.0)
    q.submit(job("a1", "a", work=1.0, tasks=2), now=0.0)
    q.admit(JobId("a1"), now=0.0)
    q.advance(now=3.0)  # the fluid model finished a1 at V = 1
    assert q.virtual_finish(JobId("a1")) == pytest.approx(1.0)
    q.update_estimate(JobId("a1"), work_s=5.0, now=3.0)
    assert q.virtual_finish(JobId("a1")) == pytest.approx(q.virtual_time + 4.0)


@pytest.mark.parametrize(
    "advance_to", [pytest.param(0.5, id="still-in-chain"), pytest.param(50.0, id="frozen")]
)
def test_a_job_cancelled_while_waiting_leaves_the_queue(advance_to: float) -> None:
    q = queue(capacity=1.0)
    q.submit(job("b1", "b", work=100.0), now=0.0)
    q.submit(job("a1", "a", work=1.0), now=0.0)
    q.advance(now=advance_to)
    q.finish(JobId("a1"), now=advance_to)
    assert q.waiting() == [JobId("b1")]
    assert q.pop(now=advance_to, free=1) == JobId("b1")
    assert q.pop(now=advance_to, free=1) is None


def test_finishing_with_the_actual_size_feeds_the_estimator() -> None:
    sizes = estimator.Estimator()
    q = uwfq.UwfqQueue(capacity=1.0, estimator=sizes)
    q.submit(job("a1", "a", work=10.0), now=0.0)
    q.pop(now=0.0, free=1)
    q.finish(JobId("a1"), now=4.0, actual_work_s=4.0)
    assert sizes.estimate(user="a", name="etl", declared_s=10.0) == 4.0


def test_a_new_weight_applies_to_the_work_a_user_has_left() -> None:
    q = queue(capacity=2.0)
    q.submit(job("a1", "a", work=100.0), now=0.0)
    q.submit(job("b1", "b", work=100.0), now=0.0)
    q.advance(now=10.0)  # V = 10: both users got 10 units of work
    q.set_weight(UserName("a"), 4.0, now=10.0)
    assert q.virtual_finish(JobId("a1")) == pytest.approx(10.0 + 90.0 / 4.0)
    q.advance(now=11.0)
    assert q.virtual_time == pytest.approx(10.0 + 2.0 / 5.0)


def test_time_going_backwards_is_refused() -> None:
    q = queue()
    q.advance(now=5.0)
    with pytest.raises(ValueError, match="backwards"):
        q.advance(now=4.0)


def test_cfq_shares_by_job_so_a_user_with_more_jobs_gets_more() -> None:
    q = uwfq.cfq(capacity=2.0)
    for k in range(3):
        q.submit(job(f"a{k}", "a", work=100.0), now=0.0)
    q.submit(job("b0", "b", work=100.0), now=0.0)
    # Four flows of weight 1: every job spans 100 of virtual time, whoever sent it.
    assert [q.virtual_finish(JobId(j)) for j in ("a0", "a1", "a2", "b0")] == pytest.approx([100.0] * 4)


def test_a_job_submitted_admitted_and_finished_in_one_instant_replays() -> None:
    fact = uwfq.JobFact(
        job=job("a1", "a", at=5.0, work=2.0), admitted_s=5.0, finished_s=5.0, actual_work_s=0.0
    )
    rebuilt = uwfq.rebuild([fact], capacity=1.0, now=6.0)
    assert rebuilt.waiting() == []
    assert not rebuilt.is_active(UserName("a"))


def _live_and_facts(seed: int) -> tuple[uwfq.UwfqQueue, list[uwfq.JobFact], float]:
    """A live queue driven by a random admission loop, and the facts an operator would persist."""
    rng = random.Random(seed)
    weights = {UserName("a"): 1.0, UserName("b"): 2.0, UserName("c"): 1.0}
    live = uwfq.UwfqQueue(capacity=4.0, weights=weights)
    facts: dict[str, uwfq.JobFact] = {}
    running: list[tuple[float, JobId]] = []
    now = 0.0
    for k in range(40):
        now += rng.choice([0.0, 0.5, 1.0, 2.5])
        for end, job_id in sorted(running):
            if end <= now:
                running.remove((end, job_id))
                live.finish(job_id, now=now)
                facts[job_id] = uwfq.JobFact(
                    job=facts[job_id].job, admitted_s=facts[job_id].admitted_s, finished_s=now
                )
        new = job(f"j{k:02d}", rng.choice("abc"), at=now, work=rng.choice([1.0, 4.0, 20.0]))
        live.submit(new, now=now)
        facts[new.id] = uwfq.JobFact(job=new)
        while len(running) < 4 and (picked := live.pop(now=now, free=1)) is not None:
            facts[picked] = uwfq.JobFact(job=facts[picked].job, admitted_s=now)
            running.append((now + facts[picked].job.work_s, picked))
    return live, list(facts.values()), now


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in range(5)])
def test_a_queue_rebuilt_from_persisted_facts_orders_like_the_live_one(seed: int) -> None:
    live, facts, now = _live_and_facts(seed)
    rebuilt = uwfq.rebuild(reversed(facts), capacity=4.0, now=now, weights={UserName("b"): 2.0})
    assert rebuilt.waiting() == live.waiting()
    assert rebuilt.virtual_time == pytest.approx(live.virtual_time)
    for job_id in live.waiting():
        assert rebuilt.virtual_finish(job_id) == pytest.approx(live.virtual_finish(job_id))


def test_a_rebuild_keeps_the_split_a_tenants_flow_had_before_another_flow_joined() -> None:
    # Tenant t (weight 2): a alone in it, beside x (weight 1), on one unit. By 3 s V = 1 and a had
    # 2 units at weight 2. Then b of t joins: a and b have 1 each from then on, so a's 8 units
    # left end at V = 1 + 8 = 9 (a weight of 1 from the start, today's split, would say 10).
    tenants = uwfq.Tenants(weights={"t": 2.0}, members={UserName("t/a"): "t", UserName("t/b"): "t"})
    a1, x1 = job("a1", "t/a", work=10.0), job("x1", "x", work=10.0)
    b1 = job("b1", "t/b", at=3.0, work=1.0)
    live = queue(capacity=1.0, **{"t/a": 2.0})
    live.submit(a1, now=0.0)
    live.submit(x1, now=0.0)
    live.advance(now=2.0)
    before = uwfq.rebuild(
        [uwfq.JobFact(job=a1), uwfq.JobFact(job=x1)], capacity=1.0, now=2.0, tenants=tenants
    )
    assert before.virtual_finish(JobId("a1")) == pytest.approx(live.virtual_finish(JobId("a1")))
    assert before.virtual_finish(JobId("a1")) == pytest.approx(5.0)
    for flow in ("t/a", "t/b"):
        live.set_weight(UserName(flow), 1.0, now=3.0)
    live.submit(b1, now=3.0)
    live.advance(now=4.0)
    after = uwfq.rebuild([uwfq.JobFact(job=j) for j in (a1, x1, b1)], capacity=1.0, now=4.0, tenants=tenants)
    assert after.waiting() == live.waiting() == [JobId("b1"), JobId("a1"), JobId("x1")]
    assert after.virtual_time == pytest.approx(live.virtual_time)
    for job_id in live.waiting():
        assert after.virtual_finish(job_id) == pytest.approx(live.virtual_finish(job_id))
    assert after.virtual_finish(JobId("a1")) == pytest.approx(9.0)


SPLIT = uwfq.Tenants(
    weights={"t": 3.0, "s": 1.0},
    members={UserName("t/a"): "t", UserName("t/b"): "t", UserName("t/c"): "t", UserName("s/d"): "s"},
)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.5, 2.0]),
            st.sampled_from(["t/a", "t/b", "t/c", "s/d", "x"]),
            st.sampled_from([1.0, 4.0]),
            st.sampled_from([0.5, 1.0, 2.0]),
        ),
        max_size=30,
    )
)
def test_a_rebuild_equals_a_live_queue_told_of_each_change_of_the_split(
    steps: list[tuple[float, str, float, float]],
) -> None:
    # Each step is an instant: a job is submitted, the queue fills two units, and jobs whose run
    # (work x factor: sizes are misestimated) is over finish, in the order the replay takes one
    # instant's events (within an instant the order of calls matters: ``rebuild``). The live
    # queue is told of each change of a tenant's split when it happens; the rebuild only sees the
    # facts.
    applied = {flow: SPLIT.weights[tenant] for flow, tenant in SPLIT.members.items()}
    live = uwfq.UwfqQueue(capacity=2.0, weights={UserName("x"): 1.5, **applied})
    open_jobs: Counter[str] = Counter()
    facts: dict[JobId, uwfq.JobFact] = {}
    running: list[tuple[float, JobId, float]] = []
    now = 0.0

    def resplit(tenant: str | None) -> None:
        if tenant is None:
            return
        members = sorted(f for f, t in SPLIT.members.items() if t == tenant)
        active = sum(1 for f in members if open_jobs[f] > 0)
        for member in members:
            weight = SPLIT.weights[tenant] / max(active, 1)
            if applied[member] != weight:
                live.set_weight(member, weight, now=now)
                applied[member] = weight

    for k, (dt, flow, work, factor) in enumerate(steps):
        now += dt
        new = job(f"j{k:02d}", flow, at=now, work=work)
        open_jobs[flow] += 1
        resplit(SPLIT.members.get(UserName(flow)))
        live.submit(new, now=now)
        facts[new.id] = uwfq.JobFact(job=new)
        while len(running) < 2 and (picked := live.pop(now=now, free=1)) is not None:
            facts[picked] = replace(facts[picked], admitted_s=now)
            actual = facts[picked].job.work_s * factor
            running.append((now + actual, picked, actual))
        for end, job_id, actual in sorted(running, key=lambda r: r[1]):
            if end <= now:
                running.remove((end, job_id, actual))
                live.finish(job_id, now=now, actual_work_s=actual)
                facts[job_id] = replace(facts[job_id], finished_s=now, actual_work_s=actual)
                open_jobs[facts[job_id].job.user] -= 1
                resplit(SPLIT.members.get(facts[job_id].job.user))
    rebuilt = uwfq.rebuild(
        reversed(facts.values()), capacity=2.0, now=now, weights={UserName("x"): 1.5}, tenants=SPLIT
    )
    assert rebuilt.virtual_time == pytest.approx(live.virtual_time)
    assert rebuilt.waiting() == live.waiting()
    for job_id in live.waiting():
        assert rebuilt.virtual_finish(job_id) == pytest.approx(live.virtual_finish(job_id))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["submit", "pop", "finish", "cancel", "estimate", "weight", "wait"]),
            st.sampled_from("abc"),
            st.sampled_from([0.5, 2.0, 8.0]),
        ),
        max_size=60,
    )
)
def test_any_sequence_of_calls_keeps_the_queue_consistent(ops: list[tuple[str, str, float]]) -> None:
    q = queue(capacity=2.0, grace_s=1.0, b=2.0)
    now, last_v, submitted, admitted = 0.0, 0.0, [], []
    for k, (op, user, size) in enumerate(ops):
        if op == "submit":
            q.submit(job(f"j{k:02d}", user, at=now, work=size, tasks=2), now=now)
            submitted.append(JobId(f"j{k:02d}"))
        elif op == "pop" and (picked := q.pop(now=now, free=1)) is not None:
            admitted.append(picked)
        elif op == "finish" and admitted:
            done = admitted.pop(0)
            q.finish(done, now=now, actual_work_s=size)
            submitted = [j for j in submitted if j != done]
            admitted = [j for j in admitted if j != done]
        elif op == "cancel" and submitted:
            gone = submitted.pop()
            q.finish(gone, now=now)
            admitted = [j for j in admitted if j != gone]
        elif op == "estimate" and submitted:
            q.update_estimate(submitted[0], work_s=size * 3, now=now)
        elif op == "weight":
            q.set_weight(UserName(user), size, now=now)
        elif op == "wait":
            now += size
            q.advance(now=now)
        assert q.virtual_time >= last_v
        last_v = q.virtual_time
        finishes = [q.virtual_finish(j) for j in q.waiting()]
        assert finishes == sorted(finishes)
        assert set(q.waiting()) <= set(submitted)
