"""After a person's recall, the rest of the campaign: recent delivered mail that shares a sender, a link destination or a subject with what was recalled is judged again, now seeing the recall; what that condemns is recalled too."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from mailmoat.config import Settings
from mailmoat.model import Action, Direction
from mailmoat.parse.subjects import bare_subject
from mailmoat.recall import triggers
from mailmoat.recall.rescan import CONDEMNED, RescanReport, Scans, rescan
from mailmoat.store.models import IndicatorRow, MessageRow
from mailmoat.store.recall_models import RecallJobRow

if TYPE_CHECKING:
    from mailmoat.recall.engine import Defer, HasSession, RecallEngine

log = logging.getLogger("mailmoat.recall")

# The verdicts of a person (or of threat intelligence) teach the near-copy memory and the condemned
# link destinations (docs/recall.md), so their campaigns are followed up. The gateway's own later
# verdicts are not: no mistake of the engine's spreads that way.
PERSON_TRIGGERS = frozenset(triggers.PERSON)
TRIGGER = triggers.SIBLINGS
MAX_SIBLINGS = 1000
MAX_RECALLED = 2000
_PASSED = (Action.DELIVER.value, Action.TAG.value)


def follow_up_actor(job_id: str) -> str:
    """Who the follow-up of a job is in the audit log and in its recall jobs' `created_by`."""
    return f"auto:siblings:{job_id}"


def siblings(store: HasSession, recalled: list[str], since: float, until: float) -> list[str]:
    """Inbound mail received in [since, until], delivered or tagged, not recalled with the job, that
    shares a From address, a link domain or a subject (without "FW:"/tags) with the recalled mail."""
    if not recalled:
        return []
    recalled = recalled[:MAX_RECALLED]  # a very large job: its first messages stand for it (bound SQL parameters)
    with store.session() as s:
        gone = s.scalars(select(MessageRow).where(MessageRow.id.in_(recalled))).all()
        senders = sorted({m.from_addr.lower() for m in gone if m.from_addr})
        subjects = {bare_subject(m.subject) for m in gone} - {""}
        domains = sorted(set(s.scalars(select(IndicatorRow.value).where(
            IndicatorRow.message_id.in_(recalled), IndicatorRow.kind == "url_domain"))))
        linked = select(IndicatorRow.message_id).where(IndicatorRow.kind == "url_domain", IndicatorRow.value.in_(domains))
        recent = (MessageRow.direction == Direction.INBOUND.value, MessageRow.received_at >= since, MessageRow.received_at <= until,
                  MessageRow.action.in_(_PASSED), MessageRow.status != "condemned", MessageRow.id.not_in(recalled))
        by_link_or_sender = s.scalars(
            select(MessageRow.id).where(*recent, or_(MessageRow.from_addr.in_(senders), MessageRow.id.in_(linked)))
            .order_by(MessageRow.received_at.desc()).limit(MAX_SIBLINGS)
        ).all()
        out = list(dict.fromkeys(by_link_or_sender))
        if subjects and len(out) < MAX_SIBLINGS:
            # Subjects are compared without prefixes, which SQL cannot do across databases: read them.
            for mail_id, subject in s.execute(select(MessageRow.id, MessageRow.subject).where(*recent)
                                              .order_by(MessageRow.received_at.desc()).limit(20_000)):
                if mail_id not in out and bare_subject(subject) in subjects:
                    out.append(mail_id)
                    if len(out) >= MAX_SIBLINGS:
                        break
    return out


async def follow_up(settings: Settings, store: HasSession, job_id: str, recalled: list[str],
                    scanner: Scans | None = None) -> RescanReport | None:
    # `scanner`: for tests; by default a new one, whose memory of condemned mail includes this recall.
    """After a recall job a person (or an indicator) started finished: judge its campaign's other
    recent mail again (`recall.follow_up_hours`) and recall what that now condemns, as `recall.auto`
    says (trigger "auto:siblings"). Never raises: `mailmoat rescan` remains."""
    from mailmoat.recall.engine import RecallEngine

    hours = settings.recall.follow_up_hours
    if hours <= 0 or not recalled:
        return None
    try:
        with store.session() as s:
            job = s.get(RecallJobRow, job_id)
            trigger = job.trigger if job is not None else ""
        if trigger not in PERSON_TRIGGERS:
            return None
        now = time.time()
        ids = siblings(store, recalled, now - hours * 3600.0, now)
        if not ids:
            return None
        if scanner is None:
            from mailmoat.scanner import Scanner

            scanner = Scanner(settings, store)  # a new one reads the near-copy memory and links just taught
        engine = RecallEngine(settings, store)
        try:
            report = await rescan(engine, scanner, "0", follow_up_actor(job_id), mail_ids=ids, trigger=TRIGGER)
        finally:
            await engine.close()
        log.warning("recall %s: %d messages of the same campaign judged again, %d now condemned, recall jobs %s",
                    job_id, report.scanned, len(report.newly_condemned), [r.job_id for r in report.recalls])
        return report
    except Exception:
        log.exception("recall %s: judging the rest of its campaign failed (mailmoat rescan can do it)", job_id)
        return None



async def undo_follow_up(engine: RecallEngine, job_id: str, actor: str, source: str = "",
                         scanner: Scans | None = None, defer: Defer | None = None) -> list[str]:
    """A person's recall restored whole was a mistake, and so was what its follow-up recalled
    because of it: those jobs are restored too, and their messages judged again without the
    mistaken recall; what that still condemns (a threat indicator listed meanwhile) is recalled
    again, trigger "auto:rescan". Returns the restored jobs. Never raises.

    The copies are back when this returns. Judging again takes longer (a second a few dozen
    messages): given `defer`, it is handed that coroutine to run in the background instead."""
    try:
        with engine.store.session() as s:
            job = s.get(RecallJobRow, job_id)
            if job is None or job.trigger not in PERSON_TRIGGERS:
                return []
            # A follow-up job still running, or awaiting approval, is left to its administrator.
            children = list(s.scalars(select(RecallJobRow.id).where(
                RecallJobRow.trigger == TRIGGER, RecallJobRow.created_by == follow_up_actor(job_id),
                RecallJobRow.state.in_(("done", "failed")))))
        if not children:
            return []
        put_back: set[str] = set()
        for child in children:  # each also forgotten as near copies (follow-ups start no follow-up to undo)
            put_back.update(await engine.put_back(child, actor, source=source))
    except Exception:
        log.exception("recall %s restored: undoing its follow-up failed (restore its auto:siblings jobs by hand)", job_id)
        return []
    judging = _judge_again(engine, job_id, len(children), sorted(put_back), scanner)
    if defer is None:
        await judging
    else:
        defer(judging)
    return children


async def _judge_again(engine: RecallEngine, job_id: str, jobs: int, ids: list[str], scanner: Scans | None) -> None:
    """The follow-up's messages, put back, judged again by a scanner that no longer sees the
    restored recall; what is still condemned is recalled again. Never raises."""
    from mailmoat.recall.auto import auto_recall
    from mailmoat.recall.selection import Selector

    try:
        if scanner is None:
            from mailmoat.scanner import Scanner

            scanner = Scanner(engine.settings, engine.store)  # one that no longer sees the recall
        who = f"restore:{job_id}"
        report = await rescan(engine, scanner, "0", who, mail_ids=ids, trigger=triggers.RESCAN, refresh=True)
        with engine.store.session() as s:
            still = list(s.scalars(select(MessageRow.id).where(MessageRow.id.in_(ids), MessageRow.action.in_(CONDEMNED))))
        for mail_id in still:  # condemned before and after: the re-scan alone recalls nothing
            await auto_recall(engine, [Selector(mail_id=mail_id, since="0")], trigger=triggers.RESCAN, actor=who,
                              reason=f"still condemned when judged again after recall {job_id} was restored")
        log.warning("recall %s restored: %d jobs of its follow-up restored, %d messages judged again, %d still condemned",
                    job_id, jobs, report.scanned, len(still))
    except Exception:
        log.exception("recall %s restored: judging its follow-up's messages again failed (`mailmoat rescan` them)", job_id)
