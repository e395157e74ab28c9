"""DeliveryService: deliver each recipient's copy once (Maildir or relay), record it, retry, release, bounce."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailmoat import metrics
from mailmoat.blobstore import PG_PREFIX, read_blob
from mailmoat.classify.store_learning import remember_verdicts
from mailmoat.config import Settings
from mailmoat.deliver import dsn as dsn_mod
from mailmoat.deliver import queue, relay
from mailmoat.deliver.arc_seal import Sealer
from mailmoat.deliver.banner import add_banner, banner_lines
from mailmoat.deliver.headers import prepare_base, stamp
from mailmoat.deliver.maildir import MaildirStore, bad_name
from mailmoat.model import Action, Address, Direction, Envelope, Message, Verdict
from mailmoat.store.db import (
    DEFERRED,
    DELIVERED,
    FAILED,
    HELD,
    PENDING,
    SENDING,
    WITHHELD,
    Claim,
    Store,
    envelope_from_row,
    verdict_from_row,
)

log = logging.getLogger("mailmoat.deliver")

_LOCAL_LEASE = 60.0


class ReleaseError(ValueError):
    """A message that cannot be released (unknown, not quarantined, raw message gone)."""


@dataclass
class DeliveryOutcome:
    """What happened to one recipient's copy."""

    recipient: str
    mailbox: str
    tracking_id: str
    status: str  # delivered, deferred, failed, held, rejected, in_progress, duplicate
    reply: str = ""
    location: str = ""
    attempts: int = 0


def _mailbox(rcpt: str) -> str:
    return rcpt.strip().lower()


class DeliveryService:
    """Delivery to the mail system (relay_to) or the embedded Maildir store, with the retry queue in the store."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        d = settings.delivery
        self.target = relay.RelayTarget.parse(d.relay_to) if d.relay_to.strip() else None
        self.hostname = settings.server.hostname
        self.maildir = MaildirStore(settings.mail_dir, self.hostname)
        # How long a claim ("sending") protects a copy; after that a crashed worker's copy is retried.
        self.lease = _LOCAL_LEASE if self.target is None else max(300.0, 4 * d.connect_timeout + 120.0)
        self.timeout = max(60.0, 2 * d.connect_timeout)
        self._wake = asyncio.Event()
        self._closed = False
        # A key that does not load is a configuration error, found when the service starts.
        self.sealer = Sealer(settings.arc_seal, self.hostname) if settings.arc_seal.enabled else None

    @property
    def local(self) -> bool:
        return self.target is None

    def _base(self, envelope: Envelope, raw: bytes, verdict: Verdict) -> bytes:
        """The copy every recipient shares: the banner, if any, then the header edits, then the ARC
        seal over the result (each copy's X-Mailmoat-Id goes on top afterwards, outside the seal)."""
        if shown := banner_lines(self.settings, envelope, verdict):
            with_banner = add_banner(raw, *shown)
            metrics.BANNERS.labels(kind=shown[0], result="added" if with_banner != raw else "left_out").inc()
            raw = with_banner
        base = prepare_base(raw, verdict, authserv_id=self.hostname, subject_prefix=self.settings.policy.subject_prefix)
        if self.sealer is not None and self.sealer.applies(envelope.direction.value):
            base = self.sealer.seal(base)
        return base

    # -- public API ------------------------------------------------------------------------
    async def deliver(
        self, envelope: Envelope, raw: bytes, verdict: Verdict, message: Message | None = None
    ) -> list[DeliveryOutcome]:
        """Act on the verdict for every recipient: deliver, or hold (quarantine/tempfail), or nothing (reject).

        Copies already delivered (or being delivered by another worker) are not sent again, so
        calling this again after a crash is safe.
        """
        return await self._deliver(envelope, raw, verdict, None)

    async def record_and_deliver(
        self,
        envelope: Envelope,
        raw: bytes,
        verdict: Verdict,
        message: Message,
        raw_path: str,
        *,
        first: bool | None = None,
    ) -> list[DeliveryOutcome]:
        """`Store.record_message` then `deliver`, with the record and the claims in one transaction.

        `first` is what the caller knows of earlier attempts of this message. True: none reached
        delivery (its spool entry was linked into the raw store just now), so a local copy is
        written before anything is recorded and the record, claim and outcome take one commit.
        False: an earlier attempt may have written a copy it did not record (the path just
        described), so the mailbox is searched before writing. None: nothing known; a copy is only
        ever written after its claim was committed, so the claim tells.
        """
        return await self._deliver(envelope, raw, verdict, (message, raw_path), first=first)

    async def _deliver(
        self, envelope: Envelope, raw: bytes, verdict: Verdict, record: tuple[Message, str] | None, *, first: bool | None = None
    ) -> list[DeliveryOutcome]:
        copies, dupes = self._copies(envelope)
        if verdict.action == Action.REJECT:
            if record is not None:
                await asyncio.to_thread(self.store.record_message, envelope, record[0], verdict, record[1])
            return [DeliveryOutcome(r, m, t, "rejected") for _, r, m, t in copies] + dupes
        if verdict.action in (Action.QUARANTINE, Action.TEMPFAIL):
            hold: dict[str, Any] = {"lease_until": 0.0, "claimable": (), "initial": HELD}
            claims = await self._claim(envelope, verdict, copies, record, hold)
            return [self._outcome_of(c) for c in claims] + dupes
        now = time.time()
        # Local writes are idempotent (fixed name, no-clobber link), so any claim may be taken over.
        stale = float("inf") if self.local else now
        send: dict[str, Any] = {"lease_until": now + self.lease, "claimable": (PENDING,), "stale_before": stale}
        if self.local and len(copies) == 1:
            # The common case, one copy into the local store, in one thread hop: on a first attempt
            # write, then record+claim+finish in one commit; otherwise claim (commit), write, finish.
            if first and record is not None:
                done = await asyncio.to_thread(self._store_record_finish, envelope, raw, verdict, copies, record, send)
            else:
                done = await asyncio.to_thread(
                    self._claim_store_finish, envelope, raw, verdict, copies, record, send, first is False
                )
            if done is not None:
                return done + dupes
        claims = await self._claim(envelope, verdict, copies, record, send)
        return await self._send_claims(envelope, raw, verdict, claims) + dupes

    def _claim_store_finish(
        self,
        envelope: Envelope,
        raw: bytes,
        verdict: Verdict,
        copies: list[tuple[int, str, str, str]],
        record: tuple[Message, str] | None,
        how: dict[str, Any],
        search: bool = False,
    ) -> list[DeliveryOutcome] | None:
        """Blocking: deliver one local copy; None when the outcome needs the async path (retry, DSN).

        `search`: look for the copy in the mailbox even when its claim is new (see `record_and_deliver`)."""
        if record is None:
            claims = self.store.claim(envelope.id, copies, ensure=(envelope, verdict), **how)
        else:
            claims = self.store.record_and_claim(envelope, record[0], verdict, record[1], copies, **how)
        (c,) = claims
        if not c.claimed:
            return [self._outcome_of(c)]
        if search:
            c = dataclasses.replace(c, fresh=False)
        base = self._base(envelope, raw, verdict)
        attempt = self._store_one(envelope, base, c)
        if not attempt[0].ok:
            return None  # the claim stands ("sending"); the async path records a retry or failure
        results, outcomes, _failures, _deferred = self._plan(envelope, [c], [attempt])
        self.store.finish(results)
        self._log(outcomes.values(), retried=False)
        return [outcomes[c.tracking_id]]

    def _store_record_finish(
        self,
        envelope: Envelope,
        raw: bytes,
        verdict: Verdict,
        copies: list[tuple[int, str, str, str]],
        record: tuple[Message, str],
        how: dict[str, Any],
    ) -> list[DeliveryOutcome] | None:
        """Blocking, first attempt only: write the local copy, then record it with one commit; None
        when the write failed (the claim path then records a retry)."""
        ((idx, rcpt, mailbox, tid),) = copies
        # Nothing was delivered before (first attempt): the copy needs no search of the mailbox.
        c = Claim(idx, rcpt, mailbox, tid, claimed=True, fresh=True, status=SENDING, attempts=0)
        base = self._base(envelope, raw, verdict)
        attempt = self._store_one(envelope, base, c)
        if not attempt[0].ok:
            return None
        results, outcomes, _failures, _deferred = self._plan(envelope, [c], [attempt])
        message, raw_path = record
        (got,) = self.store.record_and_claim(
            envelope, message, verdict, raw_path, copies, lease_until=how["lease_until"], results=results
        )
        if not got.claimed:  # a row from elsewhere (not expected on a first attempt): it stands
            log.warning("message %s: copy %s was already %s; kept as recorded", envelope.id, tid, got.status)
            return [self._outcome_of(got)]
        self._log(outcomes.values(), retried=False)
        return [outcomes[tid]]

    async def _claim(
        self,
        envelope: Envelope,
        verdict: Verdict,
        copies: list[tuple[int, str, str, str]],
        record: tuple[Message, str] | None,
        how: dict[str, Any],
    ) -> list[Claim]:
        if record is None:
            return await asyncio.to_thread(
                lambda: self.store.claim(envelope.id, copies, ensure=(envelope, verdict), **how)
            )
        message, raw_path = record
        return await asyncio.to_thread(
            lambda: self.store.record_and_claim(envelope, message, verdict, raw_path, copies, **how)
        )

    async def release(self, message_id: str, recipients: Sequence[str] = (), *, judged: bool = True) -> list[DeliveryOutcome]:
        """Deliver a quarantined message to all its recipients, or only to `recipients` (each copy
        once). The message counts as released, and is learnt as legitimate, once no copy is held:
        sending one person their copy (the security team, or someone who vouches for it) says less
        than releasing it to everyone. `judged=False` (a recipient's safe-sender list, a personal
        preference): once no copy is held it counts as delivered, and nothing is learnt from it."""
        row = await asyncio.to_thread(self.store.get_message, message_id)
        if row is None:
            raise ReleaseError(f"no message {message_id}")
        if row.status in ("released", "deleted"):
            raise ReleaseError(f"message {message_id} was already {row.status}")
        if row.status == "condemned":  # a person's verdict: releasing it would deliver a known threat
            raise ReleaseError(f"message {message_id} is marked as a threat; take the mark back first (recall uncondemn)")
        recalled = await asyncio.to_thread(self._withheld_because, message_id, row.status)
        if recalled:  # its delivered copies were recalled: releasing the rest would deliver what was recalled
            raise ReleaseError(f"message {message_id} cannot be released: {recalled}; restore that recall first")
        if row.status != "quarantined" and row.action not in (Action.QUARANTINE.value, Action.TEMPFAIL.value):
            raise ReleaseError(f"message {message_id} is not quarantined (status {row.status})")
        raw = await self._read_raw(row.raw_path)
        if raw is None:
            raise ReleaseError(f"the raw message of {message_id} is no longer retained")
        envelope = envelope_from_row(row)
        old = verdict_from_row(row)
        verdict = Verdict(Action.DELIVER, old.score, old.findings, [*old.reasons, "released from quarantine"])
        copies, dupes = self._copies(envelope)
        if recipients:
            wanted = {_mailbox(r): r for r in recipients}
            if unknown := sorted(r for m, r in wanted.items() if m not in {c[2] for c in copies}):
                raise ReleaseError(f"{', '.join(unknown)}: not a recipient of message {message_id}")
            copies, dupes = [c for c in copies if c[2] in wanted], []
        now = time.time()
        stale = float("inf") if self.local else now
        claims = await asyncio.to_thread(
            self.store.claim, envelope.id, copies, lease_until=now + self.lease, claimable=(HELD, PENDING), stale_before=stale
        )
        started = time.perf_counter()
        outcomes = await self._send_claims(envelope, raw, verdict, claims, dsn_ok=False)
        metrics.record_delivery(outcomes, time.perf_counter() - started)
        if recipients and any(d.status == HELD for d in await asyncio.to_thread(self.store.deliveries, message_id)):
            return outcomes  # still held for the others
        if not judged:
            await asyncio.to_thread(self.store.set_message_fields, message_id, status="processed")
            return outcomes + dupes
        await asyncio.to_thread(self.store.set_message_fields, message_id, status="released")
        # Judged legitimate by a person: its look-alikes are no longer held as near copies.
        await asyncio.to_thread(remember_verdicts, self.settings, self.store, [(message_id, raw, "ham")])
        return outcomes + dupes

    async def retry_due(self, now: float | None = None) -> int:
        """One pass over the queue: retry every due copy; returns how many copies were tried."""
        now = time.time() if now is None else now
        rows = await asyncio.to_thread(self.store.due_deliveries, now, stale_before=now)
        by_msg: dict[str, list[Any]] = {}
        for r in rows:
            by_msg.setdefault(r.message_id, []).append(r)
        tried = 0
        for message_id, drows in by_msg.items():
            if self._closed:
                break
            mrow = await asyncio.to_thread(self.store.get_message, message_id)
            if mrow is None:
                continue
            envelope = envelope_from_row(mrow)
            verdict = verdict_from_row(mrow)
            index = {envelope.tracking_id(i): i for i in range(len(envelope.rcpt_tos))}
            copies = [(index.get(d.tracking_id, 0), d.recipient, d.mailbox, d.tracking_id) for d in drows]
            raw = await self._read_raw(mrow.raw_path)
            claims = await asyncio.to_thread(
                self.store.claim, message_id, copies, lease_until=time.time() + self.lease,
                claimable=(DEFERRED,), stale_before=now,
            )
            claims = [c for c in claims if c.claimed]
            if not claims:
                continue
            tried += len(claims)
            if raw is None:
                log.error("message %s: raw message missing, %d queued copies cannot be retried", message_id, len(claims))
                await asyncio.to_thread(
                    self.store.finish,
                    [{"tracking_id": c.tracking_id, "status": FAILED, "reply": "raw message missing"} for c in claims],
                )
                continue
            why = await asyncio.to_thread(self._withheld_because, message_id, mrow.status)
            if why:
                # Recalled or condemned while this copy waited: delivering it now would put the
                # threat back in a mailbox the recall emptied. Restoring the recall requeues it.
                log.warning("message %s: %d queued copies withheld: %s", message_id, len(claims), why)
                await asyncio.to_thread(
                    self.store.finish,
                    [{"tracking_id": c.tracking_id, "status": WITHHELD, "reply": f"withheld: {why}"} for c in claims],
                )
                continue
            started = time.perf_counter()
            outcomes = await self._send_claims(envelope, raw, verdict, claims, retried=True)
            # Counted as the first attempt is (pipeline): a retried copy that arrives is a delivery too.
            metrics.record_delivery(outcomes, time.perf_counter() - started)
        return tried

    def _withheld_because(self, message_id: str, status: str) -> str:
        from mailmoat.recall.withheld import withheld_because

        with self.store.session() as s:
            return withheld_because(s, message_id, status)

    async def run_retry_queue(self, stop: asyncio.Event) -> None:
        """Retry deferred copies until `stop` is set (run one per process next to the workers)."""

        async def next_due() -> float | None:
            return await asyncio.to_thread(self.store.next_due)

        await queue.run_retry_queue(self.retry_due, next_due, stop, self._wake)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    # -- internals -------------------------------------------------------------------------
    def _copies(self, envelope: Envelope) -> tuple[list[tuple[int, str, str, str]], list[DeliveryOutcome]]:
        """(rcpt index, recipient, mailbox, tracking id) per distinct mailbox; repeats are reported, not sent."""
        seen: dict[str, str] = {}
        copies: list[tuple[int, str, str, str]] = []
        dupes: list[DeliveryOutcome] = []
        for i, rcpt in enumerate(envelope.rcpt_tos):
            mbox = _mailbox(rcpt)
            tid = envelope.tracking_id(i)
            if mbox in seen:
                dupes.append(DeliveryOutcome(rcpt, mbox, tid, "duplicate", f"same mailbox as {seen[mbox]}"))
                continue
            seen[mbox] = tid
            copies.append((i, rcpt, mbox, tid))
        return copies, dupes

    @staticmethod
    def _outcome_of(c: Claim) -> DeliveryOutcome:
        status = "in_progress" if c.status in (SENDING, PENDING) else c.status
        return DeliveryOutcome(c.recipient, c.mailbox, c.tracking_id, status, c.reply, c.location, c.attempts)

    async def _read_raw(self, ref: str) -> bytes | None:
        """The retained message behind `messages.raw_path`, whichever blob store holds it."""
        if not ref:
            return None
        return await asyncio.to_thread(read_blob, ref, self.store.engine)

    async def _send_claims(
        self,
        envelope: Envelope,
        raw: bytes,
        verdict: Verdict,
        claims: list[Claim],
        *,
        dsn_ok: bool = True,
        retried: bool = False,
    ) -> list[DeliveryOutcome]:
        outcomes: dict[str, DeliveryOutcome] = {}
        todo = [c for c in claims if c.claimed]
        for c in claims:
            if not c.claimed:
                outcomes[c.tracking_id] = self._outcome_of(c)
        if todo:
            # Rewriting a large body, or signing it, is work for a thread, not the event loop.
            if self.settings.banner.enabled or self.sealer is not None:
                base = await asyncio.to_thread(self._base, envelope, raw, verdict)
            else:
                base = self._base(envelope, raw, verdict)
            if self.local:
                attempts = await self._store_local(envelope, base, todo)
            else:
                assert self.target is not None
                sent = await relay.send(
                    self.target,
                    envelope.mail_from.strip().strip("<>"),
                    [relay.Copy(c.recipient, stamp(base, c.tracking_id)) for c in todo],
                    helo=self.hostname,
                    timeout=self.timeout,
                    connect_timeout=self.settings.delivery.connect_timeout,
                )
                location = str(self.target)
                attempts = [(a, location) for a in sent]
            outcomes.update(await self._record(envelope, raw, verdict, todo, attempts, dsn_ok=dsn_ok, retried=retried))
        return [outcomes[c.tracking_id] for c in claims]

    async def _store_local(self, envelope: Envelope, base: bytes, todo: list[Claim]) -> list[tuple[relay.Attempt, str]]:
        # Each copy costs two fsyncs; overlapping them (the GIL is released) keeps large fan-outs fast.
        sem = asyncio.Semaphore(8)

        async def one(c: Claim) -> tuple[relay.Attempt, str]:
            async with sem:
                return await asyncio.to_thread(self._store_one, envelope, base, c)

        if len(todo) == 1:
            return [await asyncio.to_thread(self._store_one, envelope, base, todo[0])]
        return list(await asyncio.gather(*(one(c) for c in todo)))

    def _store_one(self, envelope: Envelope, base: bytes, c: Claim) -> tuple[relay.Attempt, str]:
        try:
            stored = self.maildir.deliver(
                c.mailbox, c.tracking_id, stamp(base, c.tracking_id), envelope.received_at, check_existing=not c.fresh
            )
        except OSError as exc:
            # The reply is recorded and, should the copy fail, sent to the sender in a DSN: the
            # error without the file's path, which only the log shows.
            log.warning("local delivery to mailbox %s: %s", c.mailbox, exc)
            why = exc.strerror or type(exc).__name__
            if bad_name(exc):
                reply = f"550 5.1.3 local delivery failed: {why} (the mailbox name cannot be stored)"
                return relay.Attempt(c.recipient, 550, reply), ""
            return relay.Attempt(c.recipient, 0, f"local delivery failed: {why}"), ""
        reply = "250 2.0.0 already in mailbox" if stored.already else "250 2.0.0 stored"
        return relay.Attempt(c.recipient, 250, reply), str(stored.path)

    async def _record(
        self,
        envelope: Envelope,
        raw: bytes,
        verdict: Verdict,
        todo: list[Claim],
        attempts: list[tuple[relay.Attempt, str]],
        *,
        dsn_ok: bool,
        retried: bool,
    ) -> dict[str, DeliveryOutcome]:
        results, outcomes, failures, deferred = self._plan(envelope, todo, attempts)
        if deferred:
            await self._ensure_raw(envelope, raw)
        await asyncio.to_thread(self.store.finish, results)
        self._log(outcomes.values(), retried=retried)
        if deferred:
            self._wake.set()
        if failures and dsn_ok:
            await self._bounce(envelope, raw, verdict, failures)
        return outcomes

    def _plan(
        self, envelope: Envelope, todo: list[Claim], attempts: list[tuple[relay.Attempt, str]]
    ) -> tuple[list[dict[str, Any]], dict[str, DeliveryOutcome], list[dsn_mod.Failure], bool]:
        """What to write for each attempted copy: delivered, failed (with its DSN entry) or deferred."""
        d = self.settings.delivery
        now = time.time()
        results: list[dict[str, Any]] = []
        outcomes: dict[str, DeliveryOutcome] = {}
        failures: list[dsn_mod.Failure] = []
        deferred = False
        for c, (a, location) in zip(todo, attempts, strict=True):
            n = c.attempts + 1
            rec: dict[str, Any] = {"tracking_id": c.tracking_id, "attempts": n, "reply": a.reply[:4000]}
            if a.ok:
                rec.update(status=DELIVERED, location=location, delivered_at=now, next_attempt=0.0)
            elif a.permanent or queue.expired(envelope.received_at, d.max_queue_age, now):
                reply = a.reply if a.permanent else f"gave up after {n} attempts: {a.reply}"
                rec.update(status=FAILED, reply=reply[:4000], next_attempt=0.0)
                status = a.enhanced_status if a.permanent else "4.4.7"
                if status.startswith("4"):
                    status = "4.4.7"
                failures.append(dsn_mod.Failure(c.recipient, status, reply, self.target.host if self.target else ""))
            else:
                deferred = True
                rec.update(status=DEFERRED, next_attempt=now + queue.next_delay(n, d.retry_schedule))
            results.append(rec)
            outcomes[c.tracking_id] = DeliveryOutcome(
                c.recipient, c.mailbox, c.tracking_id, rec["status"], rec["reply"], rec.get("location", ""), n
            )
        return results, outcomes, failures, deferred

    @staticmethod
    def _log(outcomes: Iterable[DeliveryOutcome], *, retried: bool) -> None:
        for o in outcomes:
            level = logging.INFO if o.status == DELIVERED else logging.WARNING
            log.log(level, "%s %s -> %s: %s %s", "retry" if retried else "deliver", o.tracking_id, o.recipient, o.status, o.reply)

    async def _ensure_raw(self, envelope: Envelope, raw: bytes) -> None:
        """A deferred copy needs the raw message after the spool entry is gone: keep it if nobody did."""
        row = await asyncio.to_thread(self.store.get_message, envelope.id)
        if row is not None and row.raw_path and (row.raw_path.startswith(PG_PREFIX) or Path(row.raw_path).is_file()):
            return
        path = await asyncio.to_thread(self.store.retain_raw, envelope, raw, self.settings.raw_dir)
        await asyncio.to_thread(self.store.set_message_fields, envelope.id, raw_path=path)

    async def _bounce(self, envelope: Envelope, raw: bytes, verdict: Verdict, failures: list[dsn_mod.Failure]) -> None:
        if not dsn_mod.dsn_allowed(envelope, verdict, self.settings):
            log.info("message %s: no DSN (null/forged sender or not clean mail)", envelope.id)
            return
        try:
            body, subject, msg_id = dsn_mod.build_dsn(
                reporting_mta=self.hostname, envelope=envelope, raw=raw, failures=failures
            )
            sender = envelope.mail_from.strip().strip("<>")
            denv = Envelope(
                mail_from="", rcpt_tos=[sender], direction=Direction.OUTBOUND, listener="dsn",
                helo=self.hostname, peer_ip="127.0.0.1", size=len(body),
            )
            dmsg = Message(
                raw=body, subject=subject, message_id=msg_id,
                from_=Address("Mail Delivery System", f"MAILER-DAEMON@{self.hostname}"), to=[Address("", sender)],
                headers=[("Subject", subject), ("Message-ID", msg_id)],
            )
            dverdict = Verdict(Action.DELIVER, 0.0, [], [f"delivery status notification for {envelope.id}"])
            path = await asyncio.to_thread(self.store.retain_raw, denv, body, self.settings.raw_dir)
            await asyncio.to_thread(self.store.record_message, denv, dmsg, dverdict, path)
            await self.deliver(denv, body, dverdict, dmsg)
            log.info("message %s: DSN %s sent to %s for %d recipient(s)", envelope.id, denv.id, sender, len(failures))
        except Exception:
            log.exception("message %s: could not create the DSN", envelope.id)
