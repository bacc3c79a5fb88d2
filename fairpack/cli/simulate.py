"""``fairpack simulate``: replay a workload under each ordering policy and compare the figures.

    fairpack simulate --workload FILE|synthetic:NAME --policies fifo,fair,ujf,drf,cfq,uwfq
                      [--output table|json] [--partition SECONDS] [--plot FILE.png] [--seed N]

``--workload`` takes a JSON or YAML workload file (format in ``fairpack.solver.sim.workloads``)
or a built-in generator: ``synthetic:two-large-two-small``, ``synthetic:power-users``,
``synthetic:four-large``, ``synthetic:four-super-small``, ``synthetic:google-like`` (``--seed``
picks the generator's random stream). ``--partition`` re-cuts every job into tasks of at most
that many seconds (runtime partitioning, from each job's true runtime, no cap on the task count)
before every policy runs. ``--output json`` prints only the JSON document on stdout (progress
goes to stderr). A workload that cannot be simulated (a zero or negative capacity, weight,
tasks, task_s or demand, a negative arrival, a repeated job id) exits with status 2 and a
message naming the job and field.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from fairpack.cli import options
from fairpack.solver.fairqueue import policies
from fairpack.solver.sim import metrics, simulator, workloads

SYNTHETIC_PREFIX = "synthetic:"


def register(subparsers: Any) -> None:
    """Add the ``simulate`` sub-command."""
    parser = subparsers.add_parser(
        "simulate",
        help="replay a workload under fair-queueing policies and compare response times and fairness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workload", required=True, help="workload file (JSON/YAML) or synthetic:NAME")
    parser.add_argument(
        "--policies",
        default=",".join(policies.NAMES),
        help=f"comma-separated, from {','.join(policies.NAMES)}",
    )
    parser.add_argument("--output", choices=("table", "json"), default="table")
    parser.add_argument("--partition", type=float, metavar="SECONDS", help="runtime partitioning target")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write a response-time chart")
    parser.add_argument("--seed", type=int, default=0, help="seed of a synthetic generator")
    parser.set_defaults(handler=run)


def load_workload(spec: str, *, seed: int) -> workloads.Workload:
    """A workload from a file path or ``synthetic:NAME``."""
    if spec.startswith(SYNTHETIC_PREFIX):
        name = spec.removeprefix(SYNTHETIC_PREFIX)
        if name not in workloads.GENERATORS:
            raise ValueError(f"unknown generator {name!r}; choose from {', '.join(workloads.GENERATORS)}")
        return workloads.GENERATORS[name](seed)
    return workloads.load(Path(spec))


def run(args: argparse.Namespace) -> int:
    """Handler of ``fairpack simulate``."""
    err = Console(stderr=True)
    try:
        names = options.choices(args.policies, known=policies.NAMES)
    except options.UnknownChoiceError as exc:
        err.print(f"[red]{exc}")
        return 2
    try:
        workload = load_workload(args.workload, seed=args.seed)
    except (OSError, ValueError) as exc:
        # markup off: the message quotes the user's file, which may hold brackets.
        err.print(f"cannot read workload {args.workload}: {exc}", style="red", highlight=False, markup=False)
        return 2
    if args.partition is not None:
        if not args.partition > 0:
            err.print(
                f"--partition is {args.partition:g}; give the longest task wanted in seconds (> 0, e.g. 0.5)",
                style="red",
            )
            return 2
        workload = simulator.partitioned(workload, target_task_s=args.partition)
    results = simulate(workload, names, console=err)
    if args.output == "json":
        sys.stdout.write(json.dumps(as_json(results), indent=2) + "\n")
    else:
        Console().print(table(results, title=f"{args.workload} ({len(workload.jobs)} jobs)"))
        Console().print(user_table(results, title="per user"))
    if args.plot is not None:
        plot(results, args.plot, title=args.workload)
        err.print(f"plot written to {args.plot}")
    return 0


def simulate(
    workload: workloads.Workload, names: Sequence[str], *, console: Console
) -> dict[str, metrics.Figures]:
    """Run every named policy on ``workload``, with a progress bar on ``console``."""
    fair = metrics.fair_finish_times(workload)
    results: dict[str, metrics.Figures] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("simulating", total=len(names))
        for name in names:
            progress.update(task, description=f"simulating {name}")
            results[name] = metrics.figures(simulator.run(workload, name), fair=fair)
            progress.advance(task)
    return results


def as_json(results: Mapping[str, metrics.Figures]) -> dict[str, Any]:
    """The ``--output json`` document: {"policies": {name: figures}}."""
    return {"policies": {name: dataclasses.asdict(figures) for name, figures in results.items()}}


def table(results: Mapping[str, metrics.Figures], *, title: str) -> Table:
    """One row per policy and job class, fairness columns on each policy's first row."""
    out = Table(title=title)
    for column in ("policy", "class", "mean resp (s)", "p90 resp (s)", "slowdown", "Jain", "DVR", "DSR"):
        out.add_column(column, justify="left" if column in ("policy", "class") else "right")
    for name, figures in results.items():
        for i, (job_class, c) in enumerate(figures.classes.items()):
            fairness = (
                (f"{figures.jain:.3f}", f"{figures.dvr:.3f}", f"{figures.dsr:.3f}") if i == 0 else ("",) * 3
            )
            out.add_row(
                name if i == 0 else "",
                job_class,
                f"{c.mean_response_s:.2f}",
                f"{c.p90_response_s:.2f}",
                f"{c.mean_slowdown:.2f}",
                *fairness,
                end_section=i == len(figures.classes) - 1,
            )
    return out


def user_table(results: Mapping[str, metrics.Figures], *, title: str) -> Table:
    """One row per policy and user: response, worst-10% response, slowdown and share."""
    out = Table(title=title)
    for column in ("policy", "user", "mean resp (s)", "p90 resp (s)", "slowdown", "share"):
        out.add_column(column, justify="left" if column in ("policy", "user") else "right")
    for name, figures in results.items():
        for i, (user, u) in enumerate(figures.users.items()):
            out.add_row(
                name if i == 0 else "",
                user,
                f"{u.mean_response_s:.2f}",
                f"{u.p90_response_s:.2f}",
                f"{u.mean_slowdown:.2f}",
                f"{u.share:.3f}",
                end_section=i == len(figures.users) - 1,
            )
    return out


def plot(results: Mapping[str, metrics.Figures], path: Path, *, title: str) -> None:
    """Grouped bars: mean response time per job class (groups) and policy (bars), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.ticker
    from matplotlib import pyplot

    classes = sorted({c for figures in results.values() for c in figures.classes})
    width = 0.8 / max(len(results), 1)
    fig, ax = pyplot.subplots(figsize=(max(6.0, 1.6 * len(classes) + 3), 4.5))
    for i, (name, figures) in enumerate(results.items()):
        xs = [k + i * width for k in range(len(classes))]
        ys = [figures.classes[c].mean_response_s if c in figures.classes else 0.0 for c in classes]
        ax.bar(xs, ys, width=width, label=name)
    ax.set_xticks([k + width * (len(results) - 1) / 2 for k in range(len(classes))], classes)
    ax.set_yscale("log")
    ax.set_ylabel("mean response time (s, log scale)")
    ax.set_xlabel("job class")
    ax.set_title(title)
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.legend(title="policy", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot.close(fig)
