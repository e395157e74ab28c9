"""The retry queue lives in the deliveries table: deferred copies wait there (across restarts) until due."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger("mailmoat.deliver.queue")

MAX_SLEEP = 30.0  # look again at least this often (other processes may have deferred copies)


def next_delay(attempts: int, schedule: Sequence[int]) -> float:
    """Seconds until the next try after `attempts` failed ones (the last step repeats)."""
    if not schedule:
        return 300.0
    return float(schedule[min(max(attempts, 1), len(schedule)) - 1])


def expired(received_at: float, max_age: float, now: float | None = None) -> bool:
    """True once a message has waited longer than `max_queue_age` for delivery."""
    return ((time.time() if now is None else now) - received_at) >= max_age


async def run_retry_queue(
    retry_due: Callable[[], Awaitable[int]],
    next_due: Callable[[], Awaitable[float | None]],
    stop: asyncio.Event,
    wake: asyncio.Event,
) -> None:
    """Retry due copies until `stop` is set; sleep until the next one is due or `wake` is set."""
    while not stop.is_set():
        try:
            await retry_due()
            due = await next_due()
        except Exception:
            log.exception("retry queue pass failed")
            due = None
        delay = MAX_SLEEP if due is None else min(MAX_SLEEP, max(0.05, due - time.time()))
        wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await w
