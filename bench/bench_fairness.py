"""Fairness benchmark: every ordering policy side by side on the paper's workloads.

Runs FIFO and FAIR (Spark's built-ins), UJF, DRF, CFQ and UWFQ on the four synthetic workloads
and the stored Google-like trace, each without and with runtime partitioning (0.5 s tasks, the
paper's "-P" variants), in the discrete-event simulator. Prints, per workload, the small jobs'
mean response time and its ratio to Spark's FIFO and FAIR (without partitioning, as the paper
compares), the p90, DVR and Jain's index; then a summary of UWFQ's best variant.

"Small jobs" are the workload's short classes: ``small`` where the workload has them, the only
class otherwise, and ``tiny`` + ``small`` (standalone < 60 s) in the Google-like trace.

    .venv/bin/python bench/bench_fairness.py [--quick]
    .venv/bin/python bench/bench_fairness.py --scale 10000

``--quick`` skips the partitioned Google-like runs (most of the run time). ``--scale N`` only
times the simulator: a Google-like trace of N jobs (``workloads.google_like(jobs=N)``) under
every policy, the CPU seconds to simulate and to compute the figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fairpack.solver.fairqueue import policies
from fairpack.solver.sim import metrics, simulator, workloads

PARTITION_S = 0.5
GOOGLE_LIKE = Path(__file__).resolve().parent / "workloads" / "google_like.json"


@dataclass(frozen=True)
class Case:
    name: str
    load: Callable[[], workloads.Workload]
    small_classes: frozenset[str]


CASES: tuple[Case, ...] = (
    Case("2 large + 2 small", lambda: workloads.two_large_two_small(0), frozenset({"small"})),
    Case("2 power + 2 small", lambda: workloads.power_users(0), frozenset({"small"})),
    Case("4 large", lambda: workloads.four_large(0), frozenset({"large"})),
    Case("4 super-small", lambda: workloads.four_super_small(0), frozenset({"super-small"})),
    Case("Google-like (27 users)", lambda: workloads.load(GOOGLE_LIKE), frozenset({"tiny", "small"})),
)


@dataclass(frozen=True)
class Row:
    variant: str
    small_mean_s: float
    small_p90_s: float
    dvr: float
    jain: float


def run_case(case: Case, *, partitions: Sequence[float | None]) -> list[Row]:
    """Every policy on the case's workload, for each partitioning setting."""
    rows = []
    base = case.load()
    for partition in partitions:
        workload = base if partition is None else simulator.partitioned(base, target_task_s=partition)
        fair = metrics.fair_finish_times(workload)
        for name in policies.NAMES:
            result = simulator.run(workload, name)
            figures = metrics.figures(result, fair=fair)
            small = [o.response_s for o in result.outcomes.values() if o.job.job_class in case.small_classes]
            rows.append(
                Row(
                    variant=name.upper() + ("" if partition is None else "-P"),
                    small_mean_s=statistics.fmean(small),
                    small_p90_s=metrics.p90(small),
                    dvr=figures.dvr,
                    jain=figures.jain,
                )
            )
    return rows


def case_table(case: Case, rows: Sequence[Row], *, seconds: float) -> Table:
    fifo = next(r for r in rows if r.variant == "FIFO")
    fair = next(r for r in rows if r.variant == "FAIR")
    table = Table(title=f"{case.name}: small-job response ({seconds:.1f} s to simulate)")
    for column in ("policy", "mean (s)", "vs FIFO", "vs FAIR", "p90 (s)", "DVR", "Jain"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in rows:
        style = "bold green" if row.variant.startswith("UWFQ") else None
        table.add_row(
            row.variant,
            f"{row.small_mean_s:.2f}",
            f"{row.small_mean_s / fifo.small_mean_s:.2f}",
            f"{row.small_mean_s / fair.small_mean_s:.2f}",
            f"{row.small_p90_s:.2f}",
            f"{row.dvr:.3f}",
            f"{row.jain:.3f}",
            style=style,
            end_section=row.variant == "UWFQ",
        )
    return table


def summary_table(results: Sequence[tuple[Case, list[Row]]]) -> Table:
    table = Table(title="UWFQ's best variant: small-job response change vs Spark's FIFO / FAIR")
    for column in ("workload", "variant", "vs FIFO", "vs FAIR", "UWFQ DVR", "lowest other DVR"):
        table.add_column(column, justify="left" if column in ("workload", "variant") else "right")
    for case, rows in results:
        fifo = next(r for r in rows if r.variant == "FIFO")
        fair = next(r for r in rows if r.variant == "FAIR")
        best = min((r for r in rows if r.variant.startswith("UWFQ")), key=lambda r: r.small_mean_s)
        suffix = best.variant.removeprefix("UWFQ")
        partitioned = suffix == "-P"
        others = [
            r.dvr
            for r in rows
            if r.variant.endswith("-P") == partitioned and not r.variant.startswith("UWFQ")
        ]
        table.add_row(
            case.name,
            best.variant,
            f"{(best.small_mean_s / fifo.small_mean_s - 1) * 100:+.0f}%",
            f"{(best.small_mean_s / fair.small_mean_s - 1) * 100:+.0f}%",
            f"{best.dvr:.3f}",
            f"{min(others):.3f}",
        )
    return table


def scale_table(jobs: int) -> Table:
    """CPU seconds to simulate a Google-like trace of ``jobs`` jobs under each policy (CPU time,
    not wall time: the benchmark machine is shared)."""
    workload = workloads.google_like(jobs=jobs)
    started = time.process_time()
    fair = metrics.fair_finish_times(workload)
    fluid_s = time.process_time() - started
    tasks = sum(j.tasks for j in workload.jobs)
    table = Table(title=f"{len(workload.jobs)} jobs, {tasks} tasks; fluid model {fluid_s:.2f} CPU s")
    for column in ("policy", "simulate (CPU s)", "figures (CPU s)"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name in policies.NAMES:
        started = time.process_time()
        result = simulator.run(workload, name)
        ran = time.process_time()
        metrics.figures(result, fair=fair)
        table.add_row(name, f"{ran - started:.2f}", f"{time.process_time() - ran:.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="skip the partitioned Google-like runs")
    parser.add_argument("--scale", type=int, metavar="JOBS", help="only time the simulator on JOBS jobs")
    args = parser.parse_args()
    console = Console()
    if args.scale is not None:
        console.print(scale_table(args.scale))
        return
    results = []
    for case in CASES:
        partitions: list[float | None] = [None, PARTITION_S]
        if args.quick and case.name.startswith("Google"):
            partitions = [None]
        started = time.perf_counter()
        rows = run_case(case, partitions=partitions)
        console.print(case_table(case, rows, seconds=time.perf_counter() - started))
        results.append((case, rows))
    console.print(summary_table(results))


if __name__ == "__main__":
    main()
