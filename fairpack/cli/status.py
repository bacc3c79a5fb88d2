"""``fairpack status``: jobs by tenant, tenants' shares vs weights and their waits, GPU/MIG
occupancy and fragmentation, and the CP-SAT fallback's plans with their outcomes, from the cluster
the kubeconfig names; once, or refreshed with --watch. The views are fairpack.cli.views, the same
the demo shows."""

from __future__ import annotations

import argparse
import time
from typing import Any

from kubernetes import config
from rich.console import Console
from rich.live import Live

from fairpack.cli import views


def register(subparsers: Any) -> None:
    """Add the ``status`` sub-command."""
    parser = subparsers.add_parser(
        "status",
        help="jobs by tenant, shares vs weights, waits, GPU/MIG occupancy and fragmentation, fallback plans",
        description=__doc__,
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--namespace",
        default=views.DEFAULT_NAMESPACE,
        help="namespace of the operator, which records fallback plans there (default: %(default)s)",
    )
    parser.add_argument("--watch", action="store_true", help="refresh until interrupted")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (--watch)")
    parser.add_argument("--columns", type=int, default=0, help="nodes per line of the grid (default: fit)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the status once, or keep it live with --watch; exit 0, or 1 when the API is unreachable."""
    console = Console()
    columns = args.columns or views.grid_columns(console.width)
    try:
        api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig, context=args.context
        )
    except (config.ConfigException, OSError) as exc:
        console.print(f"[red]cannot load the kubeconfig:[/red] {exc}")
        return 1
    with api:
        if not args.watch:
            return show_once(console, api, columns=columns, namespace=args.namespace)
        with Live(console=console, auto_refresh=False, screen=False) as live:
            try:
                while True:
                    snapshot = views.collect(api, namespace=args.namespace)
                    live.update(views.status_view(snapshot, columns=columns), refresh=True)
                    time.sleep(args.interval)
            except KeyboardInterrupt:
                return 0


def show_once(console: Console, api: Any, *, columns: int, namespace: str = views.DEFAULT_NAMESPACE) -> int:
    """Print one snapshot; an unreachable API is reported in one line."""
    try:
        snapshot = views.collect(api, namespace=namespace)
    except Exception as exc:  # the client raises urllib3 and ApiException alike; say which
        console.print(f"[red]cannot read the cluster:[/red] {type(exc).__name__}: {exc}")
        return 1
    console.print(views.status_view(snapshot, columns=columns))
    return 0
