"""Housekeeping on a schedule: a job run every so often until the gateway stops, and never allowed to end the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


async def run_every(
    stop: asyncio.Event, first_after: float, period: float, job: Callable[[], Awaitable[object]], log: logging.Logger, what: str
) -> None:
    """Run `job` after `first_after` seconds and then every `period` seconds until `stop` is set;
    a job that raises is logged and run again at its next time (a broken store or model must not
    end the gateway's housekeeping)."""
    delay = first_after
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return
        delay = period
        try:
            await job()
        except Exception:
            log.exception("%s failed", what)
