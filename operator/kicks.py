"""A loop that runs a blocking pass whenever kicked, for the operator's cluster-wide controllers.

kopf's handlers are per object; the admission cycle and the fallback are per cluster. They run
here, in the operator's event loop, and only when a kopf handler kicks them (never on their own at
start). kopf stops handlers, timers and daemons while a peer of higher priority is active, but a
kick can outlive that: a pass re-kicks itself while work waits, and a kick sent just before the
pause lands after it. So every pass first asks ``active`` (``leads``: this replica leads its
kopf peering), and a replica that does not lead skips the pass: a standby never acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from fairpack.operator import k8s

logger = logging.getLogger(__name__)

PEERING_API_VERSION, PEERING_KIND = "kopf.dev/v1", "ClusterKopfPeering"

Active = Callable[[], bool]
"""Whether this replica may act now (read in the worker thread before each pass)."""


def always() -> bool:
    """The gate of a standalone operator (no peering): it always acts."""
    return True


def leads(peers: Mapping[str, Mapping[str, Any]], *, identity: str, priority: int, now: float) -> bool:
    """kopf's rule on a peering object's ``status`` (identity -> priority, lifetime, lastseen): we
    lead when we are listed and no other live peer has our priority or a higher one (kopf pauses
    every replica of a tie). Not yet listed means kopf has not touched the object yet: it starts
    paused until then, and so do we."""
    if identity not in peers:
        return False
    for other, info in peers.items():
        if other == identity:
            continue
        seen = info.get("lastseen")
        lastseen = datetime.datetime.fromisoformat(seen).timestamp() if seen else now
        alive = lastseen + float(info.get("lifetime", 60)) > now
        if alive and int(info.get("priority", 0)) >= priority:
            return False
    return True


def peering_leader(*, peering: str, identity: str, priority: int) -> Active:
    """The gate of a peered replica: reads the ClusterKopfPeering object kopf keeps (one GET a pass)."""

    def active() -> bool:
        obj = k8s.get(PEERING_API_VERSION, PEERING_KIND, peering)
        peers = (obj or {}).get("status") or {}
        return leads(peers, identity=identity, priority=priority, now=time.time())

    return active


class KickedLoop:
    """Runs ``step(now)`` in a worker thread after each kick when ``active()`` holds, coalescing
    kicks that arrive while it runs, at most once per ``min_gap_s``. Create it inside the running
    event loop."""

    def __init__(
        self,
        name: str,
        step: Callable[[float], Any],
        *,
        active: Active | None = None,
        min_gap_s: float = 0.2,
    ) -> None:
        self.name = name
        self._step = step
        self._active = active or always
        self._min_gap_s = min_gap_s
        self._kicked = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"fairpack-{name}")

    def kick(self, *, delay_s: float = 0.0) -> None:
        """Ask for a pass (after ``delay_s``); safe from any thread (kopf runs sync handlers in threads)."""
        if delay_s > 0:
            self._loop.call_soon_threadsafe(self._loop.call_later, delay_s, self._kicked.set)
        else:
            self._loop.call_soon_threadsafe(self._kicked.set)

    def _pass(self) -> None:
        if not self._active():
            logger.debug("%s pass skipped: this replica does not lead its peering", self.name)
            return
        self._step(time.time())

    async def _run(self) -> None:
        while True:
            await self._kicked.wait()
            self._kicked.clear()
            try:
                await asyncio.to_thread(self._pass)
            except Exception:
                # The next kick retries from the cluster's state; nothing is held in memory.
                logger.exception("%s pass failed", self.name)
            await asyncio.sleep(self._min_gap_s)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
