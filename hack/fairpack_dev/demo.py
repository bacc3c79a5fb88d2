"""``make demo``: a sequence of small, named steps on the local control plane.

Bring the cluster up in the default state directory (or reuse the one running there) with the
100-node GPU inventory and show its nodes as the API reports them; then install fairpack with Helm,
run it against the cluster with sample workloads and show it at work (``fairpack_dev.fairpack_up``).
The cluster stays up (``make cluster-down`` stops it) unless ``--once`` is given; either way its
components' logs are kept (``cluster.LOGS_ROOT``) when it is taken down.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from kubernetes import client
from rich.console import Console
from rich.table import Table

from fairpack.solver import gpumodels, labels
from fairpack_dev import cluster, fairpack_up, inventory, processes


def step_cluster_up(console: Console, *, state_dir: pathlib.Path) -> cluster.LocalCluster:
    """Start the control plane, or attach to the one already running in ``state_dir``."""
    console.rule("Local control plane")
    local = cluster.LocalCluster(cluster.Settings(state_dir=state_dir, inventory=None))
    reused = local.running()
    with console.status("starting etcd, kube-apiserver, controller-manager, 2 kube-schedulers, KWOK"):
        local.up()
    console.print(
        f"  {'reused' if reused else 'started'}: {local.server}, state and logs in {local.state_dir}"
    )
    return local


def step_gpu_nodes(console: Console, local: cluster.LocalCluster, inventory_file: pathlib.Path) -> None:
    """Create the inventory's nodes that the cluster does not have yet."""
    with local.api_client() as api:
        found: Any = client.CoreV1Api(api).list_node()
    existing = {str(n.metadata.name) for n in found.items}
    missing = [n for n in inventory.load(inventory_file).nodes() if n["metadata"]["name"] not in existing]
    with console.status(f"creating {len(missing)} GPU nodes (KWOK makes them Ready)"):
        local.create_nodes(missing, timeout_s=120)
    console.print(f"  {len(missing)} nodes created from {inventory_file.name}, {len(existing)} already there")


def node_row(node: Any) -> tuple[str, str, int, dict[str, int], list[list[int]]]:
    """(name, GPU model, whole GPUs, MIG instances per profile, NVLink islands) of a GPU node."""
    node_labels = node.metadata.labels or {}
    model = gpumodels.by_product(node_labels.get(labels.GPU_PRODUCT_LABEL, ""))
    allocatable = node.status.allocatable or {}
    mig = {
        name.removeprefix(labels.MIG_RESOURCE_PREFIX): int(n)
        for name, n in allocatable.items()
        if name.startswith(labels.MIG_RESOURCE_PREFIX)
    }
    islands = json.loads((node.metadata.annotations or {}).get(labels.NVLINK_ISLANDS_ANNOTATION, "[]"))
    whole = int(allocatable.get(labels.GPU_RESOURCE, 0))
    return str(node.metadata.name), model.name if model else "?", whole, mig, islands


def _span(gpus: list[int]) -> str:
    """``0-3`` for a run of consecutive GPU indices, else ``0,2,5``."""
    if len(gpus) > 1 and gpus == list(range(gpus[0], gpus[-1] + 1)):
        return f"{gpus[0]}-{gpus[-1]}"
    return ",".join(map(str, gpus))


def _natural(name: str) -> tuple[str, int]:
    """Sort key: ``h100-2`` before ``h100-10``."""
    stem, _, index = name.rpartition("-")
    return (stem, int(index)) if index.isdigit() else (name, -1)


def step_show_nodes(console: Console, local: cluster.LocalCluster) -> None:
    """A table of the GPU nodes and their capacity, then totals."""
    with local.api_client() as api:
        nodes = client.CoreV1Api(api).list_node(label_selector=labels.GPU_PRODUCT_LABEL).items
    rows = sorted((node_row(n) for n in nodes), key=lambda row: _natural(row[0]))
    table = Table(title=f"{len(rows)} GPU nodes", title_justify="left")
    for column in ("node", "GPU model", "GPUs (whole)", "MIG instances", "NVLink islands"):
        table.add_column(column, justify="right" if column.startswith("GPUs") else "left")
    totals: collections.Counter[str] = collections.Counter()
    per_model: collections.Counter[str] = collections.Counter()
    for name, model, whole, mig, islands in rows:
        per_model[model] += 1
        totals[labels.GPU_RESOURCE] += whole
        totals.update({labels.MIG_RESOURCE_PREFIX + p: n for p, n in mig.items()})
        table.add_row(
            name,
            model,
            str(whole),
            " ".join(f"{p}×{n}" for p, n in sorted(mig.items())) or "-",
            " ".join(_span(island) for island in islands),
        )
    console.print(table)
    summary = Table(title="Totals", title_justify="left")
    summary.add_column("what")
    summary.add_column("count", justify="right")
    for model, n in sorted(per_model.items()):
        summary.add_row(f"{model} nodes", str(n))
    for resource, n in sorted(totals.items()):
        summary.add_row(resource, str(n))
    console.print(summary)


def step_fairpack(console: Console, local: cluster.LocalCluster, *, seconds: float) -> None:
    """Install fairpack with Helm and run it with sample workloads (fairpack_dev.fairpack_up). The
    cluster's own fairpack-scheduler steps aside meanwhile: the chart's scheduler takes its profile."""
    local.component("fairpack-scheduler").stop(grace_s=local.settings.stop_grace_s)
    try:
        fairpack_up.run(local.kubeconfig, local.state_dir / "fairpack", console, seconds=seconds)
    finally:
        local.restart_fairpack_scheduler(local.extender)


def step_cluster_down(console: Console, local: cluster.LocalCluster) -> None:
    """Stop the control plane and remove its state (``--once``), keeping the components' logs:
    a failed demo still leaves them to read."""
    kept = local.down_keeping_logs()
    console.print("cluster stopped and its state removed (--once)")
    if kept is not None:
        console.print(f"  its logs are kept in {kept}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -P -m fairpack_dev.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--once", action="store_true", help="tear the cluster down at the end")
    parser.add_argument("--state-dir", type=pathlib.Path, default=cluster.DEFAULT_STATE_DIR)
    parser.add_argument("--inventory", type=pathlib.Path, default=inventory.GPU_100)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to show fairpack at work")
    args = parser.parse_args(argv)
    # Piped output (CI logs) gets a width that fits the table instead of rich's default 80.
    console = Console(width=None if sys.stdout.isatty() else 120)
    try:
        local = step_cluster_up(console, state_dir=args.state_dir)
    except (cluster.BinariesMissingError, processes.StartError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    try:
        step_gpu_nodes(console, local, args.inventory)
        step_show_nodes(console, local)
        step_fairpack(console, local, seconds=args.seconds)
    finally:
        if args.once:
            step_cluster_down(console, local)
    if not args.once:
        console.print(
            f"\nThe cluster stays up: export KUBECONFIG={local.kubeconfig}; stop it with `make cluster-down`."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
