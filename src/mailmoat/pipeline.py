"""The one ordered data flow: spool entry → scan → act (deliver/tag/quarantine/reject) → record → spool done."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mailmoat import accounts, metrics, reports
from mailmoat.config import Settings
from mailmoat.digest import safe_senders
from mailmoat.ingest.spool import KEPT_SUFFIX, Spool, SpoolRef
from mailmoat.model import Action, Direction, Envelope, Message, Verdict
from mailmoat.policy.decide import STAFF_REPORT
from mailmoat.store.db import Store

if TYPE_CHECKING:
    from mailmoat.recall.waves import WaveFollowUp

log = logging.getLogger(__name__)

# After a TEMPFAIL verdict (e.g. the virus scanner is down) a message accepted with 250 is
# scanned again later; after this many tries it is quarantined so it never waits forever.
TEMPFAIL_RETRIES = 8
# An exception in the pipeline leaves the entry in the spool; it is retried with this backoff.
ERROR_BACKOFF = (5.0, 15.0, 60.0, 300.0, 600.0)

NO_BACKSCATTER = "rejected after acceptance: quarantined instead of bounced (no backscatter)"

# In-session hook: told the verdict before the 250; returns True when the SMTP session will
# answer with the refusal (550/451) itself, False when the message was already acknowledged.
VerdictHook = Callable[[Verdict], Awaitable[bool]]


class ScannerPort(Protocol):
    async def scan(self, raw: bytes, envelope: Envelope) -> ScanResultLike: ...


class ScanResultLike(Protocol):
    @property
    def message(self) -> Message: ...
    @property
    def verdict(self) -> Verdict: ...


class StorePort(Protocol):
    def record_message(self, envelope: Envelope, message: Message, verdict: Verdict, raw_path: str) -> None: ...


class DeliveryPort(Protocol):
    async def deliver(self, envelope: Envelope, raw: bytes, verdict: Verdict, message: Message) -> Sequence[object]: ...


@runtime_checkable
class RecordingDeliveryPort(Protocol):
    """A delivery that also writes the message record, in the same transaction as its claims."""

    async def record_and_deliver(
        self, envelope: Envelope, raw: bytes, verdict: Verdict, message: Message, raw_path: str, *, first: bool | None = None
    ) -> Sequence[object]: ...


@dataclass(frozen=True)
class Loaded:
    """A claimed spool entry read into memory, its raw copy already retained: where processing starts."""

    envelope: Envelope
    raw: bytes
    raw_path: str
    # True: no earlier attempt of this entry got as far as delivering (its raw copy was linked by
    # this one); False: one may have; None: not known (the raw copy was written, not linked).
    first: bool | None = None


@dataclass
class Outcome:
    """What the pipeline did with one spool entry."""

    envelope_id: str
    action: Action | None  # the action carried out; None when deferred for another try
    verdict: Verdict | None = None
    rejected_in_session: bool = False
    deliveries: Sequence[object] = field(default_factory=list)
    error: str = ""  # set when processing failed and the entry was kept for a retry


def retain_raw_file(raw_dir: Path, envelope: Envelope, raw: bytes) -> str:
    """Keep the raw message for re-scan, release and restore (idempotent: same id, same path)."""
    day = envelope.id[:6]  # ULID time prefix keeps directories small and sorted by age
    d = raw_dir / day
    path = d / f"{envelope.id}.eml"
    if path.exists() and path.stat().st_size == len(raw):
        return str(path)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{envelope.id}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, path)
    return str(path)


class Pipeline:
    """Processes spool entries in one fixed order; any exception leaves the entry for a retry."""

    def __init__(
        self,
        settings: Settings,
        spool: Spool,
        scanner: ScannerPort,
        store: StorePort,
        delivery: DeliveryPort,
        retain_raw: Callable[[Envelope, bytes], str] | None = None,
        keep_in: Callable[[Envelope], Path] | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.scanner = scanner
        self.store = store
        self.delivery = delivery
        self._retain_raw = retain_raw or (lambda env, raw: retain_raw_file(settings.raw_dir, env, raw))
        self._keep_in = keep_in
        self._waves: WaveFollowUp | None = None
        if isinstance(store, Store) and settings.waves.enabled:
            from mailmoat.recall.waves import WaveFollowUp

            self._waves = WaveFollowUp(settings, store, scanner)
        self._background: set[asyncio.Task[object]] = set()  # follow-ups that must not hold up the mail flow

    async def drain(self, timeout: float = 30.0) -> None:
        """Let running follow-ups finish (at most `timeout` seconds, then cancel them) before the store closes."""
        if not self._background:
            return
        _, pending = await asyncio.wait(set(self._background), timeout=timeout)
        for task in pending:
            task.cancel()

    def _beside(self, work: Coroutine[Any, Any, object]) -> None:
        """Run `work` (which never raises) beside the mail flow; `drain` waits for it at shutdown."""
        task: asyncio.Task[object] = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def load(self, ref: SpoolRef) -> Loaded:
        """Blocking: read a claimed entry and retain its raw copy (whatever the verdict, it is kept).

        With `keep_in` (the local raw store) the retained copy is the spool entry itself, hard-linked
        into the folder it names; otherwise, or where linking fails, a copy is written.
        Called in a thread, where the worker claims the entry: one hand-off for all three.
        """
        envelope, raw = self.spool.load(ref)
        if self._keep_in is not None:
            try:
                kept, made = self.spool.keep(ref, self._keep_in(envelope), f"{envelope.id}{KEPT_SUFFIX}")
                return Loaded(envelope, raw, str(kept), first=made)
            except OSError as exc:
                log.debug("cannot link %s into the raw store (%s); writing a copy", ref.name, exc)
        return Loaded(envelope, raw, self._retain_raw(envelope, raw))

    async def process(self, ref: SpoolRef, on_verdict: VerdictHook | None = None, loaded: Loaded | None = None) -> Outcome:
        """Scan, act and record one claimed entry; on error the entry is deferred, never dropped."""
        try:
            return await self._process(ref, on_verdict, loaded)
        except Exception as exc:
            log.exception("processing %s failed; kept in the spool for a retry", ref.name)
            delay = ERROR_BACKOFF[min(ref.attempts, len(ERROR_BACKOFF) - 1)]
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.spool.defer, ref, delay)
            return Outcome(ref.id, None, error=f"{type(exc).__name__}: {exc}")

    async def _process(self, ref: SpoolRef, on_verdict: VerdictHook | None, loaded: Loaded | None) -> Outcome:
        if loaded is None:
            loaded = await asyncio.to_thread(self.load, ref)
        envelope, raw, raw_path = loaded.envelope, loaded.raw, loaded.raw_path
        t0 = time.perf_counter()
        result = await self.scanner.scan(raw, envelope)
        message, verdict = result.message, result.verdict

        if on_verdict is not None:
            refused_in_session = await on_verdict(verdict)
            if refused_in_session and verdict.action in (Action.REJECT, Action.TEMPFAIL):
                # The client got 550/451 and keeps responsibility for the message: no bounce.
                if verdict.action is Action.REJECT:
                    await asyncio.to_thread(self.store.record_message, envelope, message, verdict, raw_path)
                self.spool.done(ref)  # one unlink, no fsync: cheaper than a thread hop
                return Outcome(envelope.id, verdict.action, verdict, rejected_in_session=True)

        if verdict.action is Action.TEMPFAIL:
            if ref.attempts < TEMPFAIL_RETRIES:
                delay = min(60.0 * 2**ref.attempts, 3600.0)
                log.warning("%s: verdict tempfail (%s); scanning again in %.0fs", envelope.id, "; ".join(verdict.reasons), delay)
                await asyncio.to_thread(self.spool.defer, ref, delay)
                return Outcome(envelope.id, None, verdict)
            verdict = as_quarantine(verdict, f"analysis still failing after {ref.attempts} tries: held in quarantine")
        elif verdict.action is Action.REJECT:
            # After the 250 the sender is often forged: a bounce would hit an innocent party.
            verdict = as_quarantine(verdict, NO_BACKSCATTER)

        metrics.record_verdict(envelope.direction, verdict, time.perf_counter() - t0)
        # Record first: deliveries (and deferred retries) hang off the message row. The delivery
        # service delivers (deliver/tag) or holds each recipient's copy (quarantine), so a
        # quarantined message can later be released to exactly its recipients.
        t1 = time.perf_counter()
        if isinstance(self.delivery, RecordingDeliveryPort):
            # One transaction (one commit) records the message and claims its copies.
            deliveries = await self.delivery.record_and_deliver(
                envelope, raw, verdict, message, raw_path, first=loaded.first
            )
        else:
            await asyncio.to_thread(self.store.record_message, envelope, message, verdict, raw_path)
            t1 = time.perf_counter()
            deliveries = await self.delivery.deliver(envelope, raw, verdict, message)
        metrics.record_delivery(deliveries, time.perf_counter() - t1)
        self.spool.done(ref)  # one unlink, no fsync: cheaper than a thread hop
        if verdict.action is Action.QUARANTINE and isinstance(self.store, Store) and hasattr(self.delivery, "release"):
            # Held as spam for someone who keeps this sender as safe: their copy goes now (never raises).
            await safe_senders.release_to_safe(self.settings, self.store, self.delivery, envelope, message, verdict)
        if envelope.direction is not Direction.INBOUND and isinstance(self.store, Store):
            # After spool.done: a slow recall or webhook must never hold the spool entry.
            await accounts.observe(self.store, self.settings, envelope, message, verdict)  # never raises
            if any(f.symbol == STAFF_REPORT.name for f in verdict.findings):
                due = await reports.on_report(self.store, self.settings, envelope, message)  # never raises
                if due:  # a recall, and the rest of its campaign judged again: beside the mail flow
                    self._beside(reports.condemn_reported(self.store, self.settings, due))
        if self._waves is not None and self._waves.due(envelope, verdict) is not None:
            # The earlier copies of a wave just recognised are judged again beside the mail flow
            # (there may be hundreds); after() never raises.
            self._beside(self._waves.after(envelope, verdict))
        return Outcome(envelope.id, verdict.action, verdict, deliveries=deliveries)


def as_quarantine(verdict: Verdict, reason: str) -> Verdict:
    """The verdict turned into a hold, with why (a reject after acceptance, analysis that kept failing)."""
    return Verdict(
        action=Action.QUARANTINE,
        score=verdict.score,
        findings=list(verdict.findings),
        reasons=[*verdict.reasons, reason],
    )
