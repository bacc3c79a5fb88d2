"""The cluster-wide loops act only when kicked and only on the replica that leads its peering."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from fairpack.operator import kicks

NOW = datetime.datetime(2027, 1, 15, 8, 0, 0, tzinfo=datetime.UTC)


def peer(priority: int, *, seen_s_ago: float = 1.0, lifetime: int = 60) -> dict[str, Any]:
    seen = NOW - datetime.timedelta(seconds=seen_s_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


@pytest.mark.parametrize(
    ("peers", "leads"),
    [
        pytest.param({"me": peer(100)}, True, id="alone"),
        pytest.param({"me": peer(100), "other": peer(10)}, True, id="highest"),
        pytest.param({"me": peer(10), "other": peer(100)}, False, id="a-higher-peer"),
        pytest.param(
            {"me": peer(10), "other": peer(100, seen_s_ago=120)}, True, id="the-higher-peer-is-dead"
        ),
        pytest.param({"me": peer(50), "other": peer(50)}, False, id="a-tie-pauses-both"),
        pytest.param({"other": peer(10)}, False, id="not-listed-yet"),
        pytest.param({}, False, id="no-peering-object"),
    ],
)
def test_a_replica_leads_when_no_live_peer_has_its_priority_or_more(
    peers: dict[str, dict[str, Any]], leads: bool
) -> None:
    mine = int(peers.get("me", {"priority": 10})["priority"])
    assert kicks.leads(peers, identity="me", priority=mine, now=NOW.timestamp()) is leads


def run_loop(*, active: bool, kick: bool) -> list[float]:
    """Start a loop, kick it (or not), let it run a moment; the passes it ran."""
    passes: list[float] = []

    async def scenario() -> None:
        loop = kicks.KickedLoop("test", passes.append, active=lambda: active, min_gap_s=0.0)
        if kick:
            loop.kick()
        await asyncio.sleep(0.3)
        await loop.stop()

    asyncio.run(scenario())
    return passes


@pytest.mark.parametrize(
    ("active", "kick", "runs"),
    [
        pytest.param(True, False, 0, id="no-pass-at-start-without-a-kick"),
        pytest.param(True, True, 1, id="a-kick-runs-one-pass"),
        pytest.param(False, True, 0, id="a-replica-that-does-not-lead-skips-the-pass"),
    ],
)
def test_a_loop_passes_only_when_kicked_and_leading(active: bool, kick: bool, runs: int) -> None:
    assert len(run_loop(active=active, kick=kick)) == runs
