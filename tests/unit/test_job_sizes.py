"""Job-size estimation and runtime partitioning."""

from __future__ import annotations

import pytest

from fairpack.solver.fairqueue import estimator, partitioning


def test_promised_defaults() -> None:
    assert estimator.EstimatorSettings().overrun_factor == 2.0
    assert estimator.EstimatorSettings().default_s == 600.0
    assert partitioning.PartitionSettings().target_task_s == 0.5


@pytest.mark.parametrize(
    ("declared", "job_class", "expected"),
    [
        pytest.param(42.0, "small", 42.0, id="declared-size-first"),
        pytest.param(None, "small", 60.0, id="class-default-without-declaration"),
        pytest.param(None, "unheard-of", 600.0, id="global-default-for-unknown-class"),
    ],
)
def test_a_job_never_seen_before_is_estimated_from_what_it_declares(
    declared: float | None, job_class: str, expected: float
) -> None:
    sizes = estimator.Estimator()
    assert sizes.estimate(user="ann", name="etl", job_class=job_class, declared_s=declared) == expected


def test_the_estimate_learns_the_mean_of_finished_sizes_per_user_and_name() -> None:
    sizes = estimator.Estimator()
    for actual in (10.0, 20.0, 30.0):
        sizes.observe(user="ann", name="etl", actual_s=actual)
    assert sizes.estimate(user="ann", name="etl", declared_s=500.0) == 20.0
    assert sizes.estimate(user="bob", name="etl", declared_s=500.0) == 500.0
    assert sizes.estimate(user="ann", name="train", declared_s=500.0) == 500.0


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        pytest.param(5.0, 10.0, id="within-estimate-unchanged"),
        pytest.param(10.0, 10.0, id="at-estimate-unchanged"),
        pytest.param(12.0, 24.0, id="overrun-raised-to-twice-the-elapsed"),
    ],
)
def test_an_underestimated_running_job_is_re_estimated(elapsed: float, expected: float) -> None:
    assert estimator.Estimator().corrected(estimate_s=10.0, elapsed_s=elapsed) == expected


@pytest.mark.parametrize(
    ("work", "current", "partitions", "executors"),
    [
        pytest.param(100.0, 8, 200, 32, id="long-job-cut-into-half-second-tasks"),
        pytest.param(2.0, 64, 64, 32, id="short-tasks-never-coarsened"),
        pytest.param(1e9, 1, 1024, 32, id="capped-at-max-partitions"),
        pytest.param(1.0, 1, 2, 2, id="executors-no-more-than-tasks"),
        pytest.param(0.0, 1, 1, 1, id="empty-job-one-task"),
    ],
)
def test_partitioning_recommends_tasks_of_the_target_length(
    work: float, current: int, partitions: int, executors: int
) -> None:
    plan = partitioning.recommend(estimated_work_s=work, current_partitions=current, capacity=32)
    assert (plan.partitions, plan.executors) == (partitions, executors)
