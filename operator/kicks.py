"""A loop that runs a blocking pass whenever kicked, for the operator's cluster-wide controllers.

kopf's handlers are per object; the admission cycle and the fallback are per cluster. They run
here, in the operator's event loop, and only when a kopf handler kicks them: kopf stops handlers,
timers and daemons while a peer of higher priority is active, so a standby replica never acts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class KickedLoop:
    """Runs ``step(now)`` in a worker thread after each kick, coalescing kicks that arrive while it
    runs, at most once per ``min_gap_s``. Create it inside the running event loop."""

    def __init__(self, name: str, step: Callable[[float], Any], *, min_gap_s: float = 0.2) -> None:
        self.name = name
        self._step = step
        self._min_gap_s = min_gap_s
        self._kicked = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._kicked.set()  # the first pass runs at start, before any event
        self._task = asyncio.create_task(self._run(), name=f"fairpack-{name}")

    def kick(self, *, delay_s: float = 0.0) -> None:
        """Ask for a pass (after ``delay_s``); safe from any thread (kopf runs sync handlers in threads)."""
        if delay_s > 0:
            self._loop.call_soon_threadsafe(self._loop.call_later, delay_s, self._kicked.set)
        else:
            self._loop.call_soon_threadsafe(self._kicked.set)

    async def _run(self) -> None:
        while True:
            await self._kicked.wait()
            self._kicked.clear()
            try:
                await asyncio.to_thread(self._step, time.time())
            except Exception:
                # The next kick retries from the cluster's state; nothing is held in memory.
                logger.exception("%s pass failed", self.name)
            await asyncio.sleep(self._min_gap_s)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
