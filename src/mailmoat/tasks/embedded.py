"""The task worker `mailmoat serve` runs beside the gateway on PostgreSQL, as a supervised child process.

With PostgreSQL, recall, re-scan and automatic-recall tasks wait on the queue until a worker takes
them. A single node should not need a second command for that, so `serve` starts one worker
process of its own (`[tasks] serve_worker`, on by default). It is a separate process, not a task
in the listener's event loop, because recall does blocking database and mailbox work that would
stall SMTP sessions. Dedicated `mailmoat worker` processes on other machines share the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import multiprocessing
import os
import socket
from multiprocessing.process import BaseProcess

from mailmoat.config import Settings

log = logging.getLogger("mailmoat.serve")

RESTART_DELAY = 5.0  # seconds before a worker that died is started again
STOP_TIMEOUT = 60.0  # running tasks get this long to finish on shutdown


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when `serve` dies, even by SIGKILL, so no worker is left orphaned."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the worker outlives a killed parent; it stops on its own SIGTERM


def _child(settings: Settings, concurrency: int, level: int) -> None:
    from mailmoat.cli.worker import run_worker

    _die_with_parent()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Named like a dedicated worker (host:pid): audit entries and the queue show which process it was.
    asyncio.run(run_worker(settings, concurrency, f"{socket.gethostname()}:{os.getpid()}"))


class EmbeddedWorker:
    """Start, watch (restart after a crash) and stop one task-worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = copy.deepcopy(settings)
        # The health listener belongs to dedicated workers; serve has its own /healthz.
        self.settings.tasks.health_listen = ""
        self.proc: BaseProcess | None = None
        self.restarts = 0

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no inherited event loop, sockets or locks
        level = logging.getLogger().getEffectiveLevel()
        self.proc = ctx.Process(
            target=_child,
            args=(self.settings, self.settings.tasks.concurrency, level),
            name="mailmoat-task-worker",
            daemon=False,
        )
        self.proc.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart the worker whenever it exits while the gateway is running."""
        while not stop.is_set():
            proc = self.proc
            if proc is not None and not proc.is_alive():
                log.error(
                    "task worker exited with code %s; starting it again in %.0f s", proc.exitcode, RESTART_DELAY
                )
                try:
                    await asyncio.wait_for(stop.wait(), RESTART_DELAY)
                except TimeoutError:
                    self.restarts += 1
                    self.start()
                    log.warning("task worker started again (pid %s)", self.pid)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def stop(self) -> None:
        """SIGTERM: the worker finishes its running tasks, then exits (killed after STOP_TIMEOUT)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.is_alive():
            proc.terminate()
            proc.join(STOP_TIMEOUT)
            if proc.is_alive():
                log.error("task worker did not stop within %.0f s; killing it", STOP_TIMEOUT)
                proc.kill()
                proc.join(5.0)
        proc.close()


__all__ = ["EmbeddedWorker"]
