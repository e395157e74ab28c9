"""The recall job lifecycle: plan → (approval) → execute → verify → done, and restore; resumable and idempotent."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from mailmoat import metrics
from mailmoat.classify.store_learning import remember_stored
from mailmoat.config import Settings
from mailmoat.model.envelope import new_id
from mailmoat.recall import triggers
from mailmoat.recall.backends import CopyRef, CopyResult, MailboxBackend, get_backend
from mailmoat.recall.selection import SelectionError, Selector, select_copies
from mailmoat.recall.withheld import requeue
from mailmoat.store.audit import audit
from mailmoat.store.models import DeliveryRow, MessageRow
from mailmoat.store.quarantine import unmark_condemned
from mailmoat.store.recall_models import RESUMABLE_STATES, RecallCopyRow, RecallJobRow
from mailmoat.tasks.claims import claim_copies, release, todo_ids

FINAL = {"recalled", "not_found", "already_gone", "restored"}
BATCH = 200
LEASE_SECONDS = 120.0
# Runs a coroutine in the background (the web console's task keeper) instead of awaiting it.
Defer = Callable[[Coroutine[Any, Any, None]], object]


class HasSession(Protocol):
    def session(self) -> AbstractContextManager[Session]: ...


class RecallError(RuntimeError):
    """A recall request that cannot be carried out (unknown job, wrong state ...)."""


@dataclass
class PlanPreview:
    messages: int
    copies: int
    recipients: list[str]
    mailboxes: list[str]
    subjects: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "copies": self.copies,
            "recipients": self.recipients,
            "mailboxes": self.mailboxes,
            "subjects": self.subjects,
        }


ProgressFn = Callable[[int, int], None]


def mailbox_for(settings: Settings, recipient: str, recorded_mailbox: str = "") -> str:
    """The backend login for a recipient: the mailbox the copy landed in, a mapping, or a format."""
    r = recipient.strip().lower()
    if r in settings.recall.mailbox_map:
        return settings.recall.mailbox_map[r]
    if recorded_mailbox and recorded_mailbox.lower() != r:
        return recorded_mailbox
    local = r.rpartition("@")[0] or r
    return settings.recall.login_format.format(address=r, local=local)


def _loads(location: str) -> dict[str, Any]:
    try:
        loc = json.loads(location) if location else {}
    except ValueError:
        return {}
    return loc if isinstance(loc, dict) else {}


def _earlier_places(c: RecallCopyRow) -> list[dict[str, Any]]:
    """Where a copy recalled before in this job was put, and what came before that."""
    if not c.location or c.state == "restored":
        return []
    loc = _loads(c.location)
    earlier = [e for e in loc.pop("earlier", []) if isinstance(e, dict)]
    return [*earlier, {"folder": c.folder, "flags": list(c.flags or []), "internal_date": c.internal_date,
                       "location": json.dumps(loc)}]


def places(ref: CopyRef) -> list[CopyRef]:
    """Every place a copy was hidden: its last recall first, then those before it (restore puts back each)."""
    loc = _loads(ref.location)
    out = [ref]
    for e in loc.get("earlier", []):
        if isinstance(e, dict):
            out.append(CopyRef(ref.tracking_id, ref.mailbox, ref.header_message_id, str(e.get("folder", "")),
                               [str(f) for f in e.get("flags", [])], float(e.get("internal_date") or 0.0),
                               str(e.get("location", ""))))
    return out


class RecallEngine:
    def __init__(self, settings: Settings, store: HasSession, backend: MailboxBackend | None = None) -> None:
        self.settings = settings
        self.store = store
        self.backend = backend or get_backend(settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._stale_before = 0.0

    # -- plan ---------------------------------------------------------------------------
    def _rows(self, s: Session, selector: Selector | list[Selector]) -> list[tuple[MessageRow, DeliveryRow]]:
        """Copies matched by one selector, or by any of several (a union without repeats). The
        report mailbox's copies are the security team's evidence (a colleague's report carries the
        phish's links and sender): left out unless a selector names that mailbox as recipient."""
        sels = selector if isinstance(selector, list) else [selector]
        reports = {a.strip().lower() for a in self.settings.policy.report_addresses}
        seen: set[str] = set()
        out: list[tuple[MessageRow, DeliveryRow]] = []
        for sel in sels:
            named = sel.recipient.strip().lower()
            for m, d in select_copies(s, sel):
                if d.recipient.lower() in reports and d.recipient.lower() != named:
                    continue
                if d.tracking_id not in seen:
                    seen.add(d.tracking_id)
                    out.append((m, d))
        return out

    def preview(self, selector: Selector | list[Selector]) -> PlanPreview:
        with self.store.session() as s:
            rows = self._rows(s, selector)
            return PlanPreview(
                messages=len({m.id for m, _ in rows}),
                copies=len(rows),
                recipients=sorted({d.recipient for _, d in rows}),
                mailboxes=sorted({mailbox_for(self.settings, d.recipient, d.mailbox) for _, d in rows}),
                subjects=sorted({m.subject for m, _ in rows})[:20],
            )

    def plan(
        self,
        selector: Selector | list[Selector],
        actor: str,
        reason: str = "",
        *,
        trigger: str = triggers.MANUAL,
        source: str = "",
        require_approval: bool | None = None,
    ) -> str:
        """Create a job over every delivered copy the selector matches; returns its id."""
        now = time.time()
        sels = selector if isinstance(selector, list) else [selector]
        with self.store.session() as s:
            rows = self._rows(s, sels)
            if not rows:  # a job over nothing would only read "done" and say nothing was found
                raise SelectionError("nothing to recall: no delivered copy matches")
            need = require_approval
            if need is None:
                limit = self.settings.recall.approval_above
                need = bool(limit) and len(rows) > limit
            job = RecallJobRow(
                id=new_id(),
                created_at=now,
                updated_at=now,
                created_by=actor,
                reason=reason,
                trigger=trigger,
                selection=sels[0].to_dict() if len(sels) == 1 else {"any": [x.to_dict() for x in sels]},
                backend=self.backend.name,
                mode=self.settings.recall.mode,
                state="awaiting_approval" if need else "planned",
            )
            s.add(job)
            for m, d in rows:
                s.add(
                    RecallCopyRow(
                        job_id=job.id,
                        message_id=m.id,
                        header_message_id=m.message_id,
                        tracking_id=d.tracking_id,
                        recipient=d.recipient,
                        mailbox=mailbox_for(self.settings, d.recipient, d.mailbox),
                        state="pending",
                        updated_at=now,
                    )
                )
            audit(
                s, actor, "recall.plan", job.id, source=source,
                detail={"selection": [x.to_dict() for x in sels], "copies": len(rows), "trigger": trigger}, note=reason,
            )
            s.commit()
            return job.id

    def approve(self, job_id: str, actor: str, source: str = "") -> None:
        with self.store.session() as s:
            job = self._job(s, job_id)
            if job.state != "awaiting_approval":
                raise RecallError(f"job {job_id} is {job.state}, not awaiting approval")
            job.state = "approved"
            job.approved_by = actor
            job.updated_at = time.time()
            audit(s, actor, "recall.approve", job_id, source=source)
            s.commit()

    # -- execute ------------------------------------------------------------------------
    def _job(self, s: Session, job_id: str) -> RecallJobRow:
        job = s.get(RecallJobRow, job_id)
        if job is None:
            raise RecallError(f"no recall job {job_id}")
        return job

    def _take_lease(self, job_id: str, owner: str = "") -> bool:
        owner = owner or self.owner
        now = time.time()
        with self.store.session() as s:
            res = s.execute(
                update(RecallJobRow)
                .where(
                    RecallJobRow.id == job_id,
                    or_(RecallJobRow.lease_until < now, RecallJobRow.lease_owner == owner),
                )
                .values(lease_owner=owner, lease_until=now + LEASE_SECONDS)
            )
            s.commit()
            return bool(res.rowcount)  # type: ignore[attr-defined]

    def _release_lease(self, job_id: str, owner: str = "") -> None:
        with self.store.session() as s:
            s.execute(
                update(RecallJobRow)
                .where(RecallJobRow.id == job_id, RecallJobRow.lease_owner == (owner or self.owner))
                .values(lease_owner="", lease_until=0.0)
            )
            s.commit()

    @staticmethod
    def _ref(c: RecallCopyRow) -> CopyRef:
        return CopyRef(
            tracking_id=c.tracking_id,
            mailbox=c.mailbox,
            header_message_id=c.header_message_id,
            folder=c.folder,
            flags=list(c.flags or []),
            internal_date=c.internal_date,
            location=c.location,
        )

    def _apply(
        self, s: Session, job_id: str, results: list[CopyResult], *, restoring: bool = False, claim: float | None = None
    ) -> None:
        by_tid = {r.tracking_id: r for r in results}
        q = select(RecallCopyRow).where(RecallCopyRow.job_id == job_id, RecallCopyRow.tracking_id.in_(list(by_tid)))
        if claim is not None:  # only copies this claim still holds (see mailmoat.tasks.claims)
            q = q.where(RecallCopyRow.state == "working", RecallCopyRow.updated_at == claim)
        rows = s.scalars(q).all()
        now = time.time()
        for c in rows:
            r = by_tid[c.tracking_id]
            c.updated_at = now
            if r.state == "failed":
                c.attempts += 1
                c.state = "failed"
                c.reason = r.reason
                continue
            c.state = r.state
            c.reason = r.reason
            if not restoring and r.state == "already_gone" and c.location:
                pass  # found hidden again: where this job put it is already recorded
            elif not restoring and r.state in ("recalled", "already_gone"):
                earlier = _earlier_places(c) if r.state == "recalled" else []
                if r.folder:
                    c.folder = r.folder
                    c.flags = list(r.flags)
                    c.internal_date = r.internal_date
                if r.location:
                    c.location = r.location
                if earlier:
                    # Recalled again (from a second folder): restore must put back every file it hid.
                    c.location = json.dumps({**_loads(c.location), "earlier": earlier})
            if restoring and r.state == "restored":
                c.verified = False
            elif r.state in ("recalled", "already_gone"):
                c.verified = r.verified

    def _batch(self) -> int:
        """Copies per backend call: a backend that batches across users (doveadm) wants whole jobs."""
        return int(getattr(self.backend, "batch_size", BATCH))

    async def dispatch(self, job_id: str, actor: str, source: str = "") -> dict[str, Any]:
        """Run a job: here and now (embedded, SQLite), or on the task workers (PostgreSQL, several nodes)."""
        from mailmoat.tasks.app import submit_recall, uses_queue

        if not uses_queue(self.settings):
            return await self.run(job_id, actor, source=source)
        with self.store.session() as s:
            job = self._job(s, job_id)
            if job.state == "awaiting_approval":
                raise RecallError(f"job {job_id} is waiting for approval")
            audit(s, actor, "recall.queue", job_id, source=source)
            s.commit()
        await submit_recall(self.settings, job_id, actor)
        return self.status(job_id)

    async def run(self, job_id: str, actor: str, progress: ProgressFn | None = None, source: str = "") -> dict[str, Any]:
        """Execute (or resume) a job: every pending or retryable copy, then verify. Safe to call twice."""
        with self.store.session() as s:
            job = self._job(s, job_id)
            if job.state == "awaiting_approval":
                raise RecallError(f"job {job_id} is waiting for approval")
            if job.state in ("restoring", "restored"):
                raise RecallError(f"job {job_id} was restored; plan a new recall")
            mode = job.mode
        if not self._take_lease(job_id):
            raise RecallError(f"job {job_id} is being run or restored by another process")
        # Holding the job lease, copies claimed before now belong to a run that died.
        self._stale_before = time.time()
        try:
            with self.store.session() as s:
                job = self._job(s, job_id)
                job.state = "running"
                job.updated_at = time.time()
                audit(s, actor, "recall.run", job_id, source=source)
                s.commit()
            # A copy still visible after its recall (the user had filed it in a second folder too)
            # is recalled again, from there, while it has tries left.
            for _ in range(max(1, self.settings.recall.max_retries)):
                await self._execute(job_id, mode, progress)
                if not await self._verify(job_id):
                    break
            with self.store.session() as s:
                job = self._job(s, job_id)
                counts = self._counts(s, job_id)
                job.state = "failed" if counts.get("failed") else "done"
                job.finished_at = job.updated_at = time.time()
                audit(s, actor, "recall.finish", job_id, source=source, detail={"copies": counts, "state": job.state})
                s.commit()
                recalled = self.message_ids(s, job_id, ("recalled",))
            # Near copies of what was recalled are held from the next message on (the model
            # learns it at its next scheduled run), and those already delivered are looked for.
            await asyncio.to_thread(remember_stored, self.settings, self.store, recalled, "phish")
            from mailmoat.recall.siblings import follow_up

            await follow_up(self.settings, self.store, job_id, recalled)
            return self.status(job_id)
        finally:
            self._release_lease(job_id)

    async def _execute(self, job_id: str, mode: str, progress: ProgressFn | None) -> None:
        max_tries = self.settings.recall.max_retries
        for attempt in range(max_tries):
            with self.store.session() as s:
                ids = todo_ids(s, job_id, max_tries, self._stale_before)
                total = self._total(s, job_id)
            if not ids:
                return
            if attempt:
                await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
            done_before = total - len(ids)
            size = self._batch()
            for i in range(0, len(ids), size):
                batch = ids[i : i + size]
                await self.execute_batch(job_id, batch, mode, stale_before=self._stale_before)
                if progress:
                    progress(done_before + i + len(batch), total)

    async def execute_batch(
        self, job_id: str, copy_ids: list[int], mode: str, *, stale_before: float | None = None
    ) -> list[CopyResult]:
        """Act on those of the copies nobody else holds; safe with other workers on the same job.

        Each copy is claimed by a conditional UPDATE and its result written back only while the
        claim holds, so no copy is acted on by two workers and no outcome is overwritten.
        """
        with self.store.session() as s:
            token, rows = claim_copies(
                s, job_id, copy_ids, max_tries=self.settings.recall.max_retries,
                stale_before=time.time() - self.settings.tasks.copy_lease if stale_before is None else stale_before,
                owner=self.owner,
            )
            refs = [self._ref(c) for c in rows]
        if not refs:
            return []
        try:
            results = await self.backend.recall(refs, mode)
            metrics.record_recall(results)
        except Exception as exc:
            with self.store.session() as s:
                release(s, job_id, token, f"{type(exc).__name__}: {exc}")
            raise
        with self.store.session() as s:
            self._apply(s, job_id, results, claim=token)
            s.execute(
                update(RecallJobRow)
                .where(RecallJobRow.id == job_id, RecallJobRow.lease_owner == self.owner)
                .values(updated_at=time.time(), lease_until=time.time() + LEASE_SECONDS)
            )
            s.commit()
        return results

    async def _verify(self, job_id: str) -> int:
        """Look for every recalled copy in the visible folders; returns how many are still there."""
        seen = 0
        with self.store.session() as s:
            copies = s.scalars(
                select(RecallCopyRow).where(
                    RecallCopyRow.job_id == job_id,
                    RecallCopyRow.state.in_(["recalled", "already_gone"]),
                    RecallCopyRow.verified.is_(False),
                )
            ).all()
            refs = [self._ref(c) for c in copies]
        size = self._batch()
        for i in range(0, len(refs), size):
            results = await self.backend.verify(refs[i : i + size])
            with self.store.session() as s:
                rows = {
                    c.tracking_id: c
                    for c in s.scalars(
                        select(RecallCopyRow).where(
                            RecallCopyRow.job_id == job_id,
                            RecallCopyRow.tracking_id.in_([r.tracking_id for r in results]),
                        )
                    )
                }
                for r in results:
                    c = rows[r.tracking_id]
                    if r.state == "absent":
                        c.verified = True
                    else:
                        c.verified = False
                        c.state = "failed"
                        c.reason = f"still visible in {r.folder or 'a folder'} after recall"
                        c.attempts += 1
                        seen += 1
                s.commit()
        return seen

    async def restore(
        self, job_id: str, actor: str, tracking_ids: list[str] | None = None, source: str = "",
        defer: Defer | None = None,
    ) -> dict[str, Any]:
        """Put recalled copies (all, or the named ones) back where they were, with flags and dates;
        a job restored whole also puts back what its campaign follow-up recalled because of it,
        whose messages are then judged again (handed to `defer` to run in the background, if given)."""
        restored = await self.put_back(job_id, actor, tracking_ids, source)
        follow_ups: list[str] = []
        if restored:
            from mailmoat.recall.siblings import undo_follow_up

            follow_ups = await undo_follow_up(self, job_id, actor, source, defer=defer)
        return {**self.status(job_id), "follow_up_restored": follow_ups}

    async def put_back(self, job_id: str, actor: str, tracking_ids: list[str] | None = None, source: str = "") -> list[str]:
        """`restore` without the follow-up and the job's status: the messages of a job restored
        whole (an administrator's word that they were no threat), [] otherwise. Refused while the
        job runs, or another restore of it does, anywhere: the two would undo each other."""
        with self.store.session() as s:
            state = self._job(s, job_id).state
            if tracking_ids:
                known = set(s.scalars(select(RecallCopyRow.tracking_id).where(
                    RecallCopyRow.job_id == job_id, RecallCopyRow.tracking_id.in_(tracking_ids))))
                unknown = sorted(set(tracking_ids) - known)
                if unknown:
                    raise RecallError(f"job {job_id} has no copy {', '.join(unknown)}")
        if state in ("planned", "awaiting_approval"):
            # Nothing was recalled; "restored" would mark it settled and shut out its approval.
            raise RecallError(f"job {job_id} never ran ({state}): there is nothing to restore")
        # A lease of its own, not the process's: a second restore in this process is refused too.
        owner = f"{self.owner}:restore:{new_id()}"
        if not self._take_lease(job_id, owner):
            raise RecallError(f"job {job_id} is being run or restored elsewhere; try again when that is done")
        try:
            return await self._put_back(job_id, actor, tracking_ids, source, owner)
        finally:
            self._release_lease(job_id, owner)

    async def _put_back(self, job_id: str, actor: str, tracking_ids: list[str] | None, source: str, owner: str) -> list[str]:
        with self.store.session() as s:
            q = select(RecallCopyRow).where(RecallCopyRow.job_id == job_id, RecallCopyRow.state.in_(["recalled", "already_gone"]))
            if tracking_ids:
                q = q.where(RecallCopyRow.tracking_id.in_(tracking_ids))
            rows = list(s.scalars(q))
            # A copy this job found already hidden that another job recalled, and still holds, is
            # that job's to restore: putting it back would undo a recall nobody restored.
            others = self._held_elsewhere(s, job_id, [c.tracking_id for c in rows if c.state == "already_gone"])
            now = time.time()
            for c in rows:
                if c.tracking_id in others:
                    c.state, c.reason, c.updated_at = "left_recalled", f"still recalled by job {others[c.tracking_id]}", now
            refs = [self._ref(c) for c in rows if c.tracking_id not in others]
            job = self._job(s, job_id)
            if not tracking_ids:
                job.state = "restoring"
            audit(s, actor, "recall.restore", job_id, source=source, detail={"copies": [r.tracking_id for r in refs] if tracking_ids else "all"})
            s.commit()
        size = self._batch()
        for i in range(0, len(refs), size):
            results = await self._restore_places(refs[i : i + size])
            metrics.record_recall(results)
            with self.store.session() as s:
                self._apply(s, job_id, results, restoring=True)
                s.commit()
            self._take_lease(job_id, owner)  # renewed: a big job takes longer than one lease
        with self.store.session() as s:
            job = self._job(s, job_id)
            counts = self._counts(s, job_id)
            if not tracking_ids:
                job.state = "restored" if not counts.get("recalled") and not counts.get("already_gone") else "failed"
            job.updated_at = time.time()
            restored = self.message_ids(s, job_id, ("restored",)) if job.state == "restored" else []
            # A message another job still holds copies of stays judged as that job judged it.
            left = set(self.message_ids(s, job_id, ("left_recalled",)))
            restored = [m for m in restored if m not in left]
            for start in range(0, len(restored), 500):  # a big job names more messages than one query may
                for row in s.scalars(select(MessageRow).where(
                        MessageRow.id.in_(restored[start:start + 500]), MessageRow.status == "condemned")):
                    # No longer marked a threat, so its link destinations no longer condemn other mail.
                    unmark_condemned(s, row, actor, source=source, detail={"job": job_id})
            if restored:
                from mailmoat.reports.triage import judged_safe

                # Colleagues who reported them are answered: no threat (told again if told otherwise).
                for mail_id in judged_safe(s, restored, actor):
                    audit(s, actor, "report.dismiss", mail_id, source=source, detail={"job": job_id})
            s.commit()
        # The whole job undone: the recall was a mistake, so its near copies are no longer held,
        # and copies that were still queued when it ran go out after all.
        await asyncio.to_thread(remember_stored, self.settings, self.store, restored, "ham")
        await asyncio.to_thread(requeue, self.store, restored)
        return restored

    @staticmethod
    def _held_elsewhere(s: Session, job_id: str, tracking_ids: list[str]) -> dict[str, str]:
        """Of these copies, those another job recalled and has not restored: tracking id → that job."""
        out: dict[str, str] = {}
        for start in range(0, len(tracking_ids), 500):
            rows = s.execute(
                select(RecallCopyRow.tracking_id, RecallCopyRow.job_id)
                .join(RecallJobRow, RecallJobRow.id == RecallCopyRow.job_id)
                .where(RecallCopyRow.tracking_id.in_(tracking_ids[start:start + 500]), RecallCopyRow.job_id != job_id,
                       RecallCopyRow.state == "recalled", RecallJobRow.state.notin_(("restoring", "restored")))
            )
            out.update({str(tid): str(other) for tid, other in rows})
        return out

    async def _restore_places(self, refs: list[CopyRef]) -> list[CopyResult]:
        """Restore each copy from every place it was hidden; a copy is restored when all of them are.
        One backend call per place, so that no call names a copy twice."""
        spread = [places(r) for r in refs]
        results = await self.backend.restore([p[0] for p in spread])
        deeper = max((len(p) for p in spread), default=1)
        for depth in range(1, deeper):
            more = {r.tracking_id: r for r in await self.backend.restore([p[depth] for p in spread if len(p) > depth])}
            for n, r in enumerate(results):
                extra = more.get(r.tracking_id)
                if extra is not None and extra.state == "failed" and r.state != "failed":
                    results[n] = CopyResult(r.tracking_id, "failed", folder=extra.folder,
                                            reason=f"{extra.folder or 'a folder'}: {extra.reason}")
        return results

    # -- reading ------------------------------------------------------------------------
    @staticmethod
    def message_ids(s: Session, job_id: str, states: tuple[str, ...]) -> list[str]:
        """The messages whose copies in this job are in one of these states."""
        q = select(RecallCopyRow.message_id).where(RecallCopyRow.job_id == job_id, RecallCopyRow.state.in_(states))
        return sorted(set(s.scalars(q)))

    @staticmethod
    def _counts(s: Session, job_id: str) -> dict[str, int]:
        rows = s.execute(
            select(RecallCopyRow.state, func.count()).where(RecallCopyRow.job_id == job_id).group_by(RecallCopyRow.state)
        )
        return {state: int(n) for state, n in rows}

    @staticmethod
    def _total(s: Session, job_id: str) -> int:
        return int(s.scalar(select(func.count()).where(RecallCopyRow.job_id == job_id)) or 0)

    def status(self, job_id: str, with_copies: bool = True) -> dict[str, Any]:
        with self.store.session() as s:
            job = self._job(s, job_id)
            out: dict[str, Any] = {
                "id": job.id,
                "state": job.state,
                "created_at": job.created_at,
                "finished_at": job.finished_at,
                "created_by": job.created_by,
                "approved_by": job.approved_by,
                "reason": job.reason,
                "trigger": job.trigger,
                "selection": job.selection,
                "backend": job.backend,
                "mode": job.mode,
                "counts": self._counts(s, job_id),
            }
            if with_copies:
                out["copies"] = [
                    {
                        "tracking_id": c.tracking_id,
                        "recipient": c.recipient,
                        "mailbox": c.mailbox,
                        "state": c.state,
                        "folder": c.folder,
                        "flags": c.flags,
                        "attempts": c.attempts,
                        "verified": c.verified,
                        "reason": c.reason,
                    }
                    for c in sorted(job.copies, key=lambda c: c.id)
                ]
                from mailmoat.recall.siblings import TRIGGER, follow_up_actor

                # The rest of its campaign that its follow-up recalled, one job per message.
                out["follow_ups"] = [
                    {"id": jid, "state": state}
                    for jid, state in s.execute(
                        select(RecallJobRow.id, RecallJobRow.state)
                        .where(RecallJobRow.trigger == TRIGGER, RecallJobRow.created_by == follow_up_actor(job_id))
                        .order_by(RecallJobRow.created_at)
                    )
                ]
            return out

    def list_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.store.session() as s:
            ids = s.scalars(select(RecallJobRow.id).order_by(RecallJobRow.created_at.desc()).limit(limit)).all()
        return [self.status(i, with_copies=False) for i in ids]

    def resumable(self) -> Iterator[str]:
        """Jobs a restarted process should carry on with."""
        with self.store.session() as s:
            ids = s.scalars(
                select(RecallJobRow.id).where(RecallJobRow.state.in_(RESUMABLE_STATES))
            ).all()
        yield from ids

    async def close(self) -> None:
        await self.backend.close()
