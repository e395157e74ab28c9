"""Learning from administrators' verdicts in the store: releases as ham, recalls as phishing, old untouched deliveries and the staff's own outgoing mail as ham.

The statistical model learns them on a schedule (`train_from_store`); the near-copy memory takes a
recall or a release at once (`remember_stored`, `remember_verdicts`): as rows of the store's
`near_copy_verdicts`, which every node's analyzer reads within 30 s.
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mailmoat.blobstore import read_blob
from mailmoat.classify import nearcopy
from mailmoat.config import Settings

log = logging.getLogger("mailmoat.classify")

# Mail delivered untouched is learnt as ham only when nothing at all spoke against it.
DELIVERED_HAM_MAX_SCORE = 2.0


def train_from_store(
    settings: Settings,
    delivered_before: float | None = None,
    max_delivered: int = 5000,
    stop: Callable[[], bool] | None = None,
    outbound_before: float | None = None,
) -> dict[str, int]:
    """Learn released messages as ham and recalled ones as phishing (each message once; reversals move it).

    Recall is for threats that reached mailboxes, so recalled mail joins the phishing kind. With
    `delivered_before` (epoch seconds), mail delivered as it was (action deliver, score under
    DELIVERED_HAM_MAX_SCORE, never condemned, released or recalled) and received before then is
    learnt as ham too, the newest `max_delivered` first: the site's own everyday mail, which no
    public corpus holds. With `outbound_before`, the same for the mail the site's own accounts
    sent out of the organisation (`untouched_mail`); neither learns the mail of an account that
    ever had a compromise incident. A message recalled later moves to phishing on
    the next run. When `stop` returns true the run ends early and saves what it has learnt (the
    gateway is shutting down).
    """
    from sqlalchemy import select

    from mailmoat.classify import Classifier
    from mailmoat.parse import parse
    from mailmoat.store.db import Store
    from mailmoat.store.models import MessageRow
    from mailmoat.store.recall_models import RecallCopyRow

    url = settings.db_url
    if url.startswith("sqlite:///"):
        db_file = Path(url.split(":///", 1)[1])
        if not db_file.exists():
            raise FileNotFoundError(f"no store at {db_file}")
    store = Store(url, create=False)
    counts = {"ham": 0, "phish": 0, "delivered": 0, "outbound": 0, "already": 0, "missing_raw": 0, "failed": 0}
    try:
        with store.session() as s:
            recalled = set(
                s.scalars(select(RecallCopyRow.message_id).where(RecallCopyRow.state == "recalled")).all()
            )
            released = set(s.scalars(select(MessageRow.id).where(MessageRow.status == "released")).all())
            delivered: set[str] = set()
            if delivered_before is not None and max_delivered > 0:
                delivered = untouched_mail(s, delivered_before, max_delivered) - recalled
            outbound: set[str] = set()
            if outbound_before is not None and max_delivered > 0:
                outbound = untouched_mail(s, outbound_before, max_delivered, direction="outbound") - recalled
            ids = sorted(recalled | released | delivered | outbound)
            rows = {r.id: r.raw_path for r in s.scalars(select(MessageRow).where(MessageRow.id.in_(ids))).all()} if ids else {}
    finally:
        store.close()
    clf = Classifier.open(Classifier.for_settings(settings).path)
    for mid in ids:
        if stop is not None and stop():
            break
        # A released message was judged good by a person; a later recall of it wins.
        label = "phish" if mid in recalled else "ham"
        if clf.learned_as(mid) == label:
            counts["already"] += 1
            continue
        raw_path = rows.get(mid, "")
        try:
            raw = read_blob(raw_path, store.engine)
        except OSError:
            raw = None
        if raw is None:
            counts["missing_raw"] += 1
            continue
        try:
            clf.learn(parse(raw, qr=settings.qr), label, key=mid, save=False)
        except Exception:  # one message the parser chokes on must not stop every later run
            log.exception("classifier: cannot learn message %s", mid)
            counts["failed"] += 1
            continue
        # Delivered and outgoing mail is never released (status); outgoing mail is counted as such
        # also when both are learnt.
        counts["outbound" if mid in outbound else "delivered" if mid in delivered else label] += 1
    if counts["ham"] or counts["phish"] or counts["delivered"] or counts["outbound"]:
        clf.save()
    counts["model_ham"] = clf.model.nham
    counts["model_spam"] = clf.model.nspam
    return counts


def untouched_mail(session: Any, before: float, limit: int, direction: str | None = None) -> set[str]:
    """The ids of the newest `limit` messages received before `before` (of one direction, when
    given) that went through as they were: action deliver, score under DELIVERED_HAM_MAX_SCORE,
    never quarantined or released, with a sender to answer. Mail of an account that ever had a compromise incident is left
    out, whatever the incident's state, and so is mail that claims to come from one.

    With direction "outbound": what the site's own accounts sent out of the organisation, the
    surest ham a site has and the most its own (its languages, its trade's words and today's). A
    stolen account's mail is why incidents count, and why the mail must be old enough (days) for
    containment and recall to have acted.
    """
    from sqlalchemy import select

    from mailmoat.store.accounts_models import IncidentRow
    from mailmoat.store.models import MessageRow

    suspects = {a.strip().lower() for a in session.scalars(select(IncidentRow.account)).all()}
    query = select(MessageRow.id, MessageRow.auth_user, MessageRow.mail_from, MessageRow.from_addr).where(
        MessageRow.action == "deliver",
        MessageRow.score < DELIVERED_HAM_MAX_SCORE,
        MessageRow.status == "processed",
        MessageRow.received_at < before,
        # What the gateway wrote itself (digests, delivery reports) and bounces: a digest quotes
        # spam subjects, a bounce often spam it returns.
        MessageRow.mail_from.not_in(("", "<>")),
    )
    if direction is not None:
        query = query.where(MessageRow.direction == direction)
    rows = session.execute(query.order_by(MessageRow.received_at.desc()).limit(limit)).all()
    # The account may be stored as the login, the envelope sender or the From address
    # (accounts.profiles.account_of): any of them named in an incident leaves the message out.
    return {mid for mid, *names in rows if not any((n or "").strip().lower() in suspects for n in names if n)}


def remember_verdicts(settings: Settings, store: Any, verdicts: Iterable[tuple[str, bytes, str]]) -> int:
    """Put administrators' verdicts (message id, raw message, label) into the near-copy memory now.

    A recall is then enough to hold the rest of its campaign from the next message on, on every
    node, and a release stops holding its look-alikes; the statistical model learns the same
    verdicts at its next scheduled run (`classifier.learn_every_hours`). Returns how many were
    stored; never raises, because it runs after the recall or release has already been done.
    """
    from sqlalchemy import delete

    from mailmoat.classify.tokens import message_tokens
    from mailmoat.parse import parse
    from mailmoat.store.nearcopy_models import NearCopyVerdictRow

    cfg = settings.classifier
    if not (cfg.enabled and cfg.near_copies):
        return 0
    rows: list[NearCopyVerdictRow] = []
    for mid, raw, label in verdicts:
        try:
            values = nearcopy.sketch(message_tokens(parse(raw, qr=settings.qr)))
        except Exception:  # one message the parser chokes on must not cost the job's others
            log.exception("near copies: cannot read message %s", mid)
            continue
        if values is not None:
            rows.append(NearCopyVerdictRow(key=mid, label=label, sketch=nearcopy.pack(values), at=time.time()))
    if not rows:
        return 0
    try:
        with store.session() as s:
            s.add_all(rows)
            s.flush()
            # The memory keeps at most MAX_ENTRIES messages; older verdicts can go.
            newest = max(r.id for r in rows)
            s.execute(delete(NearCopyVerdictRow).where(NearCopyVerdictRow.id <= newest - nearcopy.MAX_ENTRIES))
            s.commit()
    except Exception:  # the verdict itself stands; the scheduled learning catches up
        log.exception("near copies: cannot remember %d verdicts", len(rows))
        return 0
    return len(rows)


def stored_verdicts(store: Any, after: int = 0) -> tuple[int, list[nearcopy.Change]]:
    """The near-copy verdicts written after row `after`, in order, and the id of the last row read
    (`after` when there is none); a row whose sketch is damaged is skipped."""
    from sqlalchemy import select

    from mailmoat.store.nearcopy_models import NearCopyVerdictRow as Row

    with store.session() as s:
        rows = s.execute(select(Row.id, Row.key, Row.label, Row.sketch, Row.at).where(Row.id > after).order_by(Row.id)).all()
    changes: list[nearcopy.Change] = []
    for row_id, key, label, packed, at in rows:
        after = row_id
        with contextlib.suppress(ValueError):
            changes.append(nearcopy.Change(key, label, nearcopy.unpack(packed), at))
    return after, changes


# Per store: (the verdict table's last id and row count, the count replayed from it).
_counted: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], int]] = weakref.WeakKeyDictionary()


def remembered_in_store(store: Any) -> int:
    """Messages the store's verdicts hold near copies of: recalled, and not forgotten since by a
    release or a restore (the verdicts replayed in order, as every node's analyzer does).

    /metrics and the console ask often and verdicts change seldom, while the replay of a full
    table costs about a quarter of a second: it runs again only when the table has changed.
    """
    from sqlalchemy import func, select

    from mailmoat.store.nearcopy_models import NearCopyVerdictRow as Row

    with store.session() as s:
        stamp = tuple(s.execute(select(func.max(Row.id), func.count()).select_from(Row)).one())
    known = _counted.get(store)
    if known is not None and known[0] == stamp:
        return known[1]
    memory = nearcopy.NearCopies()
    nearcopy.apply_changes(memory, stored_verdicts(store)[1])
    _counted[store] = (stamp, len(memory))
    return len(memory)


def remember_stored(settings: Settings, store: Any, message_ids: Iterable[str], label: str) -> int:
    """`remember_verdicts` for messages of the store, read from their retained raw copies (those
    no longer retained are left out)."""
    from sqlalchemy import select

    from mailmoat.store.models import MessageRow

    ids = sorted(set(message_ids))
    if not ids or not (settings.classifier.enabled and settings.classifier.near_copies):
        return 0
    try:
        with store.session() as s:
            refs = {r.id: r.raw_path for r in s.scalars(select(MessageRow).where(MessageRow.id.in_(ids)))}
        engine = getattr(store, "engine", None)
        raws = [(mid, read_blob(refs.get(mid, ""), engine)) for mid in ids]
    except Exception:
        log.exception("near copies: cannot read %d messages from the store", len(ids))
        return 0
    return remember_verdicts(settings, store, ((mid, raw, label) for mid, raw in raws if raw is not None))
