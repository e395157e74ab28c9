"""Processing workers: take spool entries and run the pipeline, in the listener's process or in N processes.

Each worker process builds its own Scanner, Store and DeliveryService once, then processes
many messages concurrently. Exactly one place (the in-process engine, or worker 0) also runs the
delivery retry queue and the raw-message retention purge.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import multiprocessing
import multiprocessing.process
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailmoat import metrics
from mailmoat.config import Settings
from mailmoat.ingest.spool import Spool, SpoolRef
from mailmoat.model import Action, Envelope, Verdict
from mailmoat.pipeline import Loaded, Outcome, Pipeline, VerdictHook

log = logging.getLogger(__name__)

CONCURRENCY = 8  # messages in flight per process (analyzers and deliveries wait on I/O)
SWEEP_INTERVAL = 1.0  # seconds between looks at the spool for due (deferred/recovered) entries
RENOTIFY_AFTER = 30.0  # an entry still waiting this long after its notification is offered again
CONFIRM_TIMEOUT = 60.0
_REFUSALS = (Action.REJECT, Action.TEMPFAIL)


class Engine:
    """Everything one process needs to process messages: spool, scanner, store, delivery, pipeline."""

    def __init__(self, settings: Settings, spool: Spool, owner: str) -> None:
        from mailmoat.deliver import DeliveryService
        from mailmoat.scanner import Scanner
        from mailmoat.store.db import Store

        self.settings = settings
        self.spool = spool
        self.owner = owner
        self.store = Store(settings.db_url, raw_dir=settings.raw_dir)
        self.scanner = Scanner(settings, self.store)
        self.delivery = DeliveryService(settings, self.store)
        retain: Callable[[Envelope, bytes], str] = self.store.retain_raw
        keep_in: Callable[[Envelope], Path] | None = self.store.raw_folder  # the entry itself, linked
        if settings.blobs.backend != "file" or settings.blobs.path:  # a blob store all nodes reach
            from mailmoat.blobstore import open_blobstore

            retain, keep_in = open_blobstore(settings, self.store.engine).put, None
        self.pipeline = Pipeline(
            settings, spool, self.scanner, self.store, self.delivery, retain_raw=retain, keep_in=keep_in
        )

    async def handle(self, name: str, hook: VerdictHook | None = None) -> Outcome | None:
        """Claim one entry and process it; None when another worker had claimed it."""
        claimed = await asyncio.to_thread(self.claim, name)
        if claimed is None:
            return None
        ref, loaded = claimed
        return await self.pipeline.process(ref, hook, loaded)

    def claim(self, name: str) -> tuple[SpoolRef, Loaded | None] | None:
        """Blocking: claim, read and retain an entry at once (each thread hand-off costs more CPU than
        the read); None when another worker had claimed it."""
        ref = self.spool.claim(name, self.owner)
        if ref is None:
            return None
        try:
            return ref, self.pipeline.load(ref)
        except Exception:  # the pipeline tries again and handles the error (defer, never drop)
            return ref, None

    async def housekeeping(self, stop: asyncio.Event) -> None:
        """The delivery retry queue, the retention purge, the classifier's learning from the store,
        the quarantine digests and the notices to reporters (run in exactly one process)."""
        from mailmoat.classify.autolearn import run_autolearn
        from mailmoat.digest import run_digests
        from mailmoat.reports.feedback import run_feedback
        from mailmoat.store.retention import run_retention

        await asyncio.gather(
            self.delivery.run_retry_queue(stop),
            run_retention(self.store, self.settings, stop),
            run_autolearn(self.settings, stop),
            run_digests(self.settings, self.store, stop),
            run_feedback(self.settings, self.store, stop),
        )

    async def close(self) -> None:
        await self.pipeline.drain()
        self.delivery.close()
        self.store.close()


class _Feeder:
    """Bookkeeping shared by both pools: which spool names were offered to workers and when."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.offered: dict[str, float] = {}

    def due(self) -> list[str]:
        """Names in new/ that are due and were not offered recently."""
        now = time.monotonic()
        names = self.spool.pending()
        present = set(names)
        for stale in [n for n in self.offered if n not in present]:
            del self.offered[stale]
        out = [n for n in names if now - self.offered.get(n, -RENOTIFY_AFTER) >= RENOTIFY_AFTER]
        for n in out:
            self.offered[n] = now
        return out

    def mark(self, name: str) -> None:
        self.offered[name] = time.monotonic()


class InProcessPool:
    """workers = 0: the pipeline runs as tasks in the listener's event loop."""

    def __init__(self, settings: Settings, spool: Spool, concurrency: int = CONCURRENCY) -> None:
        self.settings = settings
        self.spool = spool
        self.concurrency = concurrency
        self.engine: Engine | None = None
        self._queue: asyncio.Queue[tuple[str, VerdictHook | None] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self._urgent: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._feeder = _Feeder(spool)
        self.failed = asyncio.Event()  # never set: start() raises instead
        self.fatal = ""

    async def start(self) -> None:
        self.engine = await asyncio.to_thread(Engine, self.settings, self.spool, "main")
        self._tasks = [asyncio.create_task(self._consume()) for _ in range(self.concurrency)]
        self._tasks.append(asyncio.create_task(self._sweep()))
        self._tasks.append(asyncio.create_task(self.engine.housekeeping(self._stop)))

    def submit(self, ref: SpoolRef) -> None:
        if self._stop.is_set():
            return  # stays in spool/new/ and is processed at the next start
        self._feeder.mark(ref.name)
        self._queue.put_nowait((ref.name, None))

    async def submit_in_session(self, ref: SpoolRef, timeout: float) -> Action | None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Action | None] = loop.create_future()

        async def hook(verdict: Verdict) -> bool:
            if fut.done():  # the session gave up waiting and answered 250
                return False
            fut.set_result(verdict.action)
            return verdict.action in _REFUSALS

        if self._stop.is_set():
            return None
        self._feeder.mark(ref.name)
        # The client is waiting: process now rather than behind a backlog in the queue.
        task = asyncio.create_task(self._handle(ref.name, hook))
        self._urgent.add(task)
        task.add_done_callback(self._urgent.discard)
        return await _wait_verdict(fut, timeout)

    async def _handle(self, name: str, hook: VerdictHook | None) -> None:
        assert self.engine is not None
        try:
            await self.engine.handle(name, hook)
        except Exception:
            log.exception("worker failed on %s", name)
        finally:
            if hook is not None:
                # Not decided (error, or claimed elsewhere): the message is safe in the spool.
                await hook(Verdict(action=Action.DELIVER, score=0.0))

    async def _consume(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            await self._handle(*item)

    async def _sweep(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SWEEP_INTERVAL)
            if self._stop.is_set():
                return
            try:
                for name in await asyncio.to_thread(self._feeder.due):
                    self._queue.put_nowait((name, None))
            except OSError:
                log.exception("spool sweep failed")

    async def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for _ in range(self.concurrency):
            self._queue.put_nowait(None)
        _done, pending = await asyncio.wait([*self._tasks, *self._urgent], timeout=timeout)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.engine is not None:
            await self.engine.close()


async def _wait_verdict(fut: asyncio.Future[Action | None], timeout: float) -> Action | None:
    """The in-session verdict, or None (answer 250) when it does not come in time."""
    await asyncio.wait({fut}, timeout=timeout)
    if fut.done() and not fut.cancelled():
        return fut.result()
    fut.cancel()  # from now on the worker is told the message was already accepted
    return None


# -- worker processes ------------------------------------------------------------------------


def tune_gc() -> None:
    """Fewer cyclic garbage collections for a process that handles a stream of messages.

    Each message allocates thousands of short-lived objects, so with Python's default threshold
    (700) the young generation is collected every few messages and now and then the whole heap
    (rules, models, lexicons: ~170,000 objects, tens of milliseconds) is walked. At 10,000 the
    collector does about a third of the work and full collections become rare; what a message
    leaves in cycles is still collected within a few messages.
    """
    gc.set_threshold(10_000, 20, 20)


def _die_with_parent(parent_pid: int) -> None:
    """A worker must not outlive the gateway (a SIGKILLed gateway would leave it processing)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _worker_main(
    index: int,
    settings: Settings,
    work_q: Any,
    urgent_q: Any,
    result_q: Any,
    confirm_q: Any,
    housekeeping: bool,
    parent_pid: int,
    log_level: int,
) -> None:
    _die_with_parent(parent_pid)
    tune_gc()
    # Ctrl-C, and systemd's or timeout's SIGTERM, reach the whole process group; the gateway decides
    # how workers stop (a worker dead of SIGTERM before the gateway knew it was stopping was restarted).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the gateway until now (_spawn)
    logging.basicConfig(level=log_level, format=f"%(asctime)s w{index} %(levelname)s %(name)s: %(message)s")
    asyncio.run(_worker_async(index, settings, work_q, urgent_q, result_q, confirm_q, housekeeping))


async def _worker_async(
    index: int, settings: Settings, work_q: Any, urgent_q: Any, result_q: Any, confirm_q: Any, housekeeping: bool
) -> None:
    loop = asyncio.get_running_loop()
    spool = Spool(settings.spool_dir)
    try:
        engine = Engine(settings, spool, f"w{index}")
    except Exception as exc:
        # Bad rules, policy or models: restarting would fail the same way; the gateway stops.
        log.exception("worker %d cannot start", index)
        result_q.put(("fatal", index, "", f"{type(exc).__name__}: {exc}"))
        return
    # A slot per message in flight, taken before reading the shared queue: the backlog stays
    # there, where an idle worker can take it.
    slots = threading.Semaphore(CONCURRENCY)
    running: set[asyncio.Task[None]] = set()
    confirms: dict[str, asyncio.Future[bool]] = {}
    no_more_work = asyncio.Event()
    stop = asyncio.Event()

    def take(item: tuple[str, bool], slot: bool) -> None:
        """In a reader thread: claim, read and retain the entry there, then hand it to the loop once."""
        name, in_session = item
        try:
            claimed = engine.claim(name)
        except Exception:
            log.exception("worker cannot claim %s", name)
            claimed = None
        if claimed is None:  # claimed by another worker (or unreadable: it stays in the spool)
            if in_session:
                result_q.put(("verdict", index, name.partition(".")[0], None))
            if slot:
                slots.release()
            return
        loop.call_soon_threadsafe(start, claimed, in_session, slot)

    def start(claimed: tuple[SpoolRef, Loaded | None], in_session: bool, slot: bool) -> None:
        task = asyncio.create_task(handle(*claimed, in_session))
        running.add(task)
        task.add_done_callback(lambda t: finished(t, slot))

    def finished(task: asyncio.Task[None], slot: bool) -> None:
        running.discard(task)
        if slot:
            slots.release()

    def read_work() -> None:
        while True:
            slots.acquire()
            item = work_q.get()
            if item is None:
                loop.call_soon_threadsafe(no_more_work.set)
                return
            take(item, True)

    def read_urgent() -> None:
        while True:
            item = urgent_q.get()
            if item is None:
                return
            take(item, False)

    def read_confirms() -> None:
        while True:
            item = confirm_q.get()
            if item is None:
                return
            loop.call_soon_threadsafe(_resolve, item)

    def _resolve(item: tuple[str, bool]) -> None:
        fut = confirms.pop(item[0], None)
        if fut is not None and not fut.done():
            fut.set_result(item[1])

    async def handle(ref: SpoolRef, loaded: Loaded | None, in_session: bool) -> None:
        eid = ref.id
        told = False

        async def hook(verdict: Verdict) -> bool:
            nonlocal told
            told = True
            if verdict.action not in _REFUSALS:
                result_q.put(("verdict", index, eid, verdict.action.value))
                return False
            fut: asyncio.Future[bool] = loop.create_future()
            confirms[eid] = fut
            result_q.put(("verdict", index, eid, verdict.action.value))
            try:
                return await asyncio.wait_for(fut, CONFIRM_TIMEOUT)
            except TimeoutError:
                return False
            finally:
                confirms.pop(eid, None)

        try:
            await engine.pipeline.process(ref, hook if in_session else None, loaded)
        except Exception:
            log.exception("worker failed on %s", ref.name)
        finally:
            if in_session and not told:
                # Not decided (error): the message is safe in the spool.
                result_q.put(("verdict", index, eid, None))

    threading.Thread(target=read_work, daemon=True, name="work-queue").start()
    threading.Thread(target=read_urgent, daemon=True, name="urgent-queue").start()
    threading.Thread(target=read_confirms, daemon=True, name="confirm-queue").start()
    hk = asyncio.create_task(engine.housekeeping(stop)) if housekeeping else None
    result_q.put(("ready", index, "", None))
    await no_more_work.wait()
    # Everything already claimed runs to its end (in-session scans for at most 30 s more).
    deadline = time.monotonic() + 30.0
    while running:
        await asyncio.wait(list(running), timeout=max(0.1, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            break
    stop.set()
    if hk is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(hk, 10.0)
    await engine.close()


def _create_schema(settings: Settings) -> None:
    from mailmoat.store.db import Store

    Store(settings.db_url, raw_dir=settings.raw_dir).close()


class ProcessPool:
    """workers ≥ 1: N spawned processes fed spool names through a queue; restarted if one dies."""

    def __init__(self, settings: Settings, spool: Spool, workers: int) -> None:
        self.settings = settings
        self.spool = spool
        self.workers = workers
        self._ctx = multiprocessing.get_context("spawn")
        self._work_q: Any = self._ctx.Queue()
        self._urgent_q: Any = self._ctx.Queue()  # in-session scans: a client is waiting
        self._result_q: Any = self._ctx.Queue()
        self._confirm_qs: list[Any] = [self._ctx.Queue() for _ in range(workers)]
        self._procs: list[multiprocessing.process.BaseProcess | None] = [None] * workers
        self._waiting: dict[str, asyncio.Future[Action | None]] = {}
        self._feeder = _Feeder(spool)
        self._stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ready = 0
        # Set when a worker cannot even start (bad configuration): the gateway should stop.
        self.failed = asyncio.Event()
        self.fatal = ""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Create the tables once here: workers starting together would race to create them.
        await asyncio.to_thread(_create_schema, self.settings)
        # Spawned workers write their counters to files that /metrics adds up.
        metrics.prepare_multiprocess(self.settings)
        self._reader = threading.Thread(target=self._read_results, daemon=True, name="worker-results")
        self._reader.start()
        for i in range(self.workers):
            self._spawn(i)
        self._tasks = [asyncio.create_task(self._monitor()), asyncio.create_task(self._sweep())]

    def _spawn(self, index: int) -> None:
        p = self._ctx.Process(
            target=_worker_main,
            name=f"mailmoat-worker-{index}",
            args=(
                index, self.settings, self._work_q, self._urgent_q, self._result_q, self._confirm_qs[index],
                index == 0, os.getpid(), logging.getLogger().getEffectiveLevel(),
            ),
            daemon=True,
        )
        # Started with SIGTERM and SIGINT blocked (the mask survives exec): a signal to the process
        # group while the new worker is still starting would otherwise kill it before it ignores them.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            p.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        self._procs[index] = p

    def submit(self, ref: SpoolRef) -> None:
        if self._stopping:
            return  # stays in spool/new/ and is processed at the next start
        self._feeder.mark(ref.name)
        self._work_q.put((ref.name, False))

    async def submit_in_session(self, ref: SpoolRef, timeout: float) -> Action | None:
        assert self._loop is not None
        if self._stopping:
            return None
        fut: asyncio.Future[Action | None] = self._loop.create_future()
        self._waiting[ref.id] = fut
        self._feeder.mark(ref.name)
        self._urgent_q.put((ref.name, True))
        try:
            return await _wait_verdict(fut, timeout)
        finally:
            self._waiting.pop(ref.id, None)

    def _read_results(self) -> None:
        while True:
            try:
                item = self._result_q.get()
            except (EOFError, OSError):
                return
            if item is None:
                return
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self._loop.call_soon_threadsafe(self._on_result, item)

    def _on_result(self, item: tuple[str, int, str, str | None]) -> None:
        kind, index, eid, value = item
        if kind == "ready":
            self.ready += 1
            return
        if kind == "fatal":
            self.fatal = f"worker {index} cannot start: {value}"
            self.failed.set()
            return
        action = Action(value) if value else None
        fut = self._waiting.pop(eid, None)
        accepted = fut is not None and not fut.done()
        if fut is not None and accepted:
            fut.set_result(action)
        if action in _REFUSALS:
            # Tell the worker whether the session will send the refusal (else it already sent 250).
            self._confirm_qs[index].put((eid, accepted))

    async def _monitor(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            for i, p in enumerate(self._procs):
                if self._stopping or self.failed.is_set() or p is None or p.is_alive():
                    continue
                log.error("worker %d exited with %s; restarting it", i, p.exitcode)
                p.join()
                if p.pid is not None:
                    metrics.worker_exited(p.pid)
                names = await asyncio.to_thread(self.spool.recover, f"w{i}")
                self._spawn(i)
                if names:
                    log.info("returned %d entries of worker %d to the spool", names, i)

    async def _sweep(self) -> None:
        while not self._stopping:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                for name in await asyncio.to_thread(self._feeder.due):
                    self._work_q.put((name, False))
            except OSError:
                log.exception("spool sweep failed")

    async def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Drop notifications not yet taken: the entries stay in new/ for the next start.
        with contextlib.suppress(queue.Empty, OSError):
            while True:
                self._work_q.get_nowait()
        for _ in self._procs:
            self._work_q.put(None)
            self._urgent_q.put(None)
        deadline = time.monotonic() + timeout
        for p in self._procs:
            if p is not None:
                await asyncio.to_thread(p.join, max(0.1, deadline - time.monotonic()))
        for p in self._procs:
            if p is not None and p.is_alive():
                log.warning("worker %s did not stop in time; killing it", p.name)
                p.kill()  # it ignores SIGTERM (above); its spool entries return at the next start
                await asyncio.to_thread(p.join, 5.0)
        for q in self._confirm_qs:
            q.put(None)
        self._result_q.put(None)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5.0)


Pool = InProcessPool | ProcessPool


def make_pool(settings: Settings, spool: Spool) -> Pool:
    n = settings.server.workers
    return InProcessPool(settings, spool) if n <= 0 else ProcessPool(settings, spool, n)


__all__ = ["CONCURRENCY", "Engine", "InProcessPool", "Pool", "ProcessPool", "make_pool", "tune_gc"]
