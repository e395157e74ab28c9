"""Automatic recall: when mail already delivered is condemned later (by an administrator, a new threat
indicator, or a re-scan), plan a recall of its copies — run at once or left for approval, by policy."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from mailmoat.config import Settings
from mailmoat.policy.decide import STAFF_REPORT
from mailmoat.recall import triggers
from mailmoat.recall.engine import RecallEngine
from mailmoat.recall.selection import Selector
from mailmoat.urlcheck.links import host_of, shared_page

log = logging.getLogger(__name__)

# Threat-indicator kinds → the recorded facts they can condemn.
_INDICATOR_SELECTORS: dict[str, tuple[str, ...]] = {
    "domain": ("url_domain", "sender"),
    "url": ("url",),
    "sender": ("sender",),
    "sha256": ("sha256",),
    "qr": ("qr",),
}


@dataclass
class AutoOutcome:
    job_id: str = ""
    state: str = "none"  # none (nothing delivered), awaiting_approval, done, failed, off
    copies: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


def _since(settings: Settings) -> str:
    return str(time.time() - settings.recall.lookback_days * 86400)


async def auto_recall(
    engine: RecallEngine, selectors: list[Selector], *, trigger: str, reason: str, actor: str = "system"
) -> AutoOutcome:
    """Plan (and, when policy says automatic, run) a recall of what the selectors match within the look-back."""
    settings = engine.settings
    mode = settings.recall.auto
    if mode == "off":
        return AutoOutcome(state="off")
    bounded = [Selector(**{**s.to_dict(), "since": s.since or _since(settings)}) for s in selectors]
    preview = engine.preview(bounded)
    if preview.copies == 0:
        return AutoOutcome(state="none")
    job_id = engine.plan(bounded, actor, reason, trigger=trigger, require_approval=(mode == "approval"))
    if mode == "approval":
        log.warning("recall job %s (%s) awaits approval: %s", job_id, trigger, reason)
        return AutoOutcome(job_id=job_id, state="awaiting_approval", copies=preview.copies)
    st = await engine.dispatch(job_id, actor)
    log.warning("automatic recall %s (%s): %s %s", job_id, trigger, st["state"], st["counts"])
    return AutoOutcome(job_id=job_id, state=st["state"], copies=preview.copies, detail=st["counts"])


async def condemn_message(engine: RecallEngine, mail_id: str, actor: str, reason: str = "", *,
                          once: bool = False) -> AutoOutcome:
    """An administrator marks a recorded message as a threat: record it and recall its copies.
    `once`: nothing, when it is marked already or another marking wins the race (state "none")."""
    from mailmoat.store.models import MessageRow
    from mailmoat.store.quarantine import mark_condemned

    with engine.store.session() as s:
        row = s.get(MessageRow, mail_id)
        if row is None:
            raise ValueError(f"no recorded message {mail_id}")
        asked = mark_condemned(s, row, actor, reason, once=once)
        s.commit()
    if asked is None:
        return AutoOutcome(state="none", detail={"already": "condemned"})
    await tell_threat_declined(engine.settings, engine.store, mail_id, asked)
    # An explicit verdict by a person is not bounded by the look-back window.
    sel = Selector(mail_id=mail_id, since="0")
    return await auto_recall(engine, [sel], trigger=triggers.VERDICT, reason=reason or "marked as a threat", actor=actor)


async def tell_threat_declined(settings: Settings, store: Any, mail_id: str, asked: list[str]) -> None:
    """Tell the recipients whose release requests the mark declined (digest.tell_declines)."""
    from mailmoat.digest.decline_notice import tell_declined

    for recipient in asked:
        await tell_declined(settings, store, mail_id, recipient, "it was judged to be a threat")


def uncondemn_message(settings: Settings, store: Any, mail_id: str, actor: str, reason: str = "", source: str = "") -> list[str]:
    """Take back a person's mark of a message as a threat: what it linked stops condemning other
    mail (LINK_CONDEMNED_DESTINATION), and its near copies are no longer held (NEAR_COPY_CONDEMNED).
    Its copies stay recalled: returns the recall jobs of the mark that still hold them, to restore
    if that was a mistake too."""
    from sqlalchemy import select

    from mailmoat.classify.store_learning import remember_stored
    from mailmoat.recall.withheld import requeue
    from mailmoat.store.models import MessageRow
    from mailmoat.store.quarantine import CONDEMNED, unmark_condemned
    from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow

    with store.session() as s:
        row = s.get(MessageRow, mail_id)
        if row is None:
            raise ValueError(f"no recorded message {mail_id}")
        if row.status != CONDEMNED:
            raise ValueError(f"message {mail_id} is not marked as a threat (status {row.status})")
        unmark_condemned(s, row, actor, source=source, note=reason)
        s.commit()
        jobs = list(s.scalars(
            select(RecallJobRow.id).join(RecallCopyRow, RecallCopyRow.job_id == RecallJobRow.id)
            .where(RecallCopyRow.message_id == mail_id, RecallJobRow.trigger == triggers.VERDICT,
                   RecallCopyRow.state.in_(("recalled", "already_gone")))
            .distinct()
        ))
    remember_stored(settings, store, [mail_id], "ham")  # as a release does: its look-alikes are no longer held
    requeue(store, [mail_id])  # its queued copies withheld by the mark go out, unless a recall still holds them
    return jobs


async def on_indicators(engine: RecallEngine, indicators: list[tuple[str, str]], source: str = "") -> list[AutoOutcome]:
    """New threat indicators (kind, value): recall delivered mail that carries them."""
    out: list[AutoOutcome] = []
    for kind, value in indicators:
        fields_ = _INDICATOR_SELECTORS.get(kind)
        if not fields_ or not value:
            continue
        # A colleague's report of this very threat stays in the report mailbox for the security team.
        sels = [Selector(**{f: value}, not_symbol=STAFF_REPORT.name) for f in fields_]
        page = shared_page(host_of(value), value) if kind == "url" else ""
        if page:
            # As the scan matches it: another file of the listed bucket, another view of the form.
            sels.append(Selector(url_domain=page, not_symbol=STAFF_REPORT.name))
        outcome = await auto_recall(
            engine, sels, trigger=triggers.INDICATOR, reason=f"threat indicator {kind}:{value}" + (f" ({source})" if source else "")
        )
        outcome.detail.setdefault("indicator", f"{kind}:{value}")
        out.append(outcome)
    return out
