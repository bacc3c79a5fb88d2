"""Operating the operator: its liveness endpoint answers and its Prometheus metrics count work."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from fairpack_dev.operator_fixtures import FAIRPACK, Kube, kube, ns, run_operator
from fairpack_dev.testkit import wait_for

pytestmark = pytest.mark.cluster
__all__ = ["kube", "ns", "run_operator"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def test_liveness_answers_and_metrics_count_reconciles(
    kube: Kube, ns: str, run_operator: Callable[..., Any]
) -> None:
    liveness, metrics = free_port(), free_port()
    run_operator(FAIRPACK_LIVENESS_PORT=str(liveness), FAIRPACK_METRICS_PORT=str(metrics))
    wait_for(lambda: fetch(f"http://127.0.0.1:{liveness}/healthz"), 60, what="the liveness endpoint")
    kube.create(
        {
            "apiVersion": FAIRPACK,
            "kind": "LLMService",
            "metadata": {"name": "llm", "namespace": ns},
            "spec": {"model": {"name": "m", "image": "i"}, "gpu": {"count": 1}},
        }
    )

    def reconciled() -> bool:
        text = fetch(f"http://127.0.0.1:{metrics}/metrics") or ""
        return 'fairpack_operator_reconciles_total{kind="LLMService",result="ok"}' in text

    wait_for(reconciled, 60, what="a counted LLMService reconcile")
    text = fetch(f"http://127.0.0.1:{metrics}/metrics") or ""
    assert "fairpack_operator_cycle_seconds" in text


def test_with_peering_the_standby_replica_takes_over_when_the_active_one_stops(
    kube: Kube, ns: str, run_operator: Callable[..., Any]
) -> None:
    peering = f"fairpack-{ns}"
    kube.create({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}})
    try:
        active = run_operator(FAIRPACK_PEERING=peering, FAIRPACK_PEERING_PRIORITY="100")
        standby = run_operator(FAIRPACK_PEERING=peering, FAIRPACK_PEERING_PRIORITY="10")

        def standby_paused() -> bool:
            peers = (kube.get("kopf.dev/v1", "ClusterKopfPeering", peering) or {}).get("status") or {}
            log = standby.log.read_text()
            # kopf starts a peered operator paused and logs only changes: a standby that sees the
            # active replica in its first peering event stays paused silently; one that saw the
            # peering object before the active touched it logs "Resuming", then "Pausing".
            return len(peers) >= 2 and log.rfind("Pausing operations") >= log.rfind("Resuming operations")

        wait_for(standby_paused, 60, what="both replicas in the peering object and the standby paused")

        def service(name: str) -> None:
            kube.create(
                {
                    "apiVersion": FAIRPACK,
                    "kind": "LLMService",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"model": {"name": "m", "image": "i"}, "gpu": {"count": 1}},
                }
            )
            wait_for(
                lambda: kube.get("apps/v1", "Deployment", f"{name}-serve", ns),
                60,
                what=f"{name}'s Deployment",
            )

        service("first")
        assert "first" not in standby.log.read_text()  # only the active replica handled it
        active.stop()
        wait_for(lambda: "Resuming operations" in standby.log.read_text(), 90, what="the standby to resume")
        service("second")
    finally:
        kube.delete("kopf.dev/v1", "ClusterKopfPeering", peering)


def test_a_tenant_created_without_a_spec_is_handled_with_its_defaults(
    kube: Kube, ns: str, run_operator: Callable[..., Any]
) -> None:
    name = f"bare-{ns}"
    run_operator()
    kube.create({"apiVersion": FAIRPACK, "kind": "Tenant", "metadata": {"name": name}})
    try:

        def changed() -> list[Any]:
            events = kube.list("v1", "Event", namespace="default")
            return [
                e
                for e in events
                if e["involvedObject"].get("name") == name and e.get("reason") == "TenantChanged"
            ]

        seen = wait_for(changed, 60, what="the TenantChanged event of a Tenant without a spec")
        assert seen[0]["message"] == "weight 1"
    finally:
        kube.delete(FAIRPACK, "Tenant", name)
