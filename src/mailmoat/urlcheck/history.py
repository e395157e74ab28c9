"""Read-only questions to the store's history: has this site seen a domain, a display name, a correspondent before?"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import func, select

from mailmoat.recall.triggers import VERDICT
from mailmoat.store.db import DELIVERED
from mailmoat.store.models import DeliveryRow, IndicatorRow, MessageRow
from mailmoat.store.queries import recipient_is

log = logging.getLogger(__name__)

# Until the store has recorded this many messages, "never seen before" means nothing.
MIN_HISTORY = 200
SEEN_CACHE = 100_000  # domains and hosts remembered as seen, per process
_CHUNK = 500  # values bound in one IN (), well below any database's limit
MARKED = "marked a threat"  # how a message marked a threat by a person condemns, as the audit log has it


class History:
    """Store queries used by analyzers; every error is logged and answered with 'unknown' (None)."""

    def __init__(self, store: Any, min_history: int = MIN_HISTORY) -> None:
        self.store = store
        self.min_history = min_history
        self._kept: dict[str, tuple[float, float]] = {}  # aggregate name -> (monotonic time, value)
        # Domains and hosts known to be in the store: once recorded a domain stays "seen", so
        # a message whose domains are all known needs no query (most mail repeats its domains).
        self._seen: dict[str, None] = {}
        # Link destinations known to have been recorded before some time: once old, always old.
        self._old_before: dict[tuple[str, str], float] = {}

    def _session(self) -> Any:
        return self.store.session()

    def _aggregate(self, name: str, query: Callable[[], Any], ttl: float) -> float | None:
        """One aggregate over the messages, kept `ttl` seconds; None when unknown or NULL (asked again next time).
        `query` builds the statement: only on a miss, since building one costs more than the cached answer."""
        now = time.monotonic()
        kept = self._kept.get(name)
        if kept is not None and now - kept[0] < ttl:
            return kept[1]
        try:
            with self._session() as s:
                value = s.execute(query()).scalar_one()
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        if value is None:
            return None
        if len(self._kept) >= SEEN_CACHE:  # first_linked keeps one answer per destination asked
            self._kept.clear()
        self._kept[name] = (now, float(value))
        return float(value)

    def size(self) -> int | None:
        """Number of recorded messages (cached for a minute)."""
        n = self._aggregate("size", lambda: select(func.count()).select_from(MessageRow), 60.0)
        return int(n) if n is not None else None

    def mature(self) -> bool:
        n = self.size()
        return n is not None and n >= self.min_history

    def unseen_domains(self, domains: dict[str, list[str]]) -> set[str] | None:
        """Registrable domains (keys) of which neither the domain nor any of its hosts (values) was ever recorded."""
        if not domains:
            return set()
        known = self._seen
        ask = {reg: hosts for reg, hosts in domains.items() if reg not in known and not known.keys() & hosts}
        if not ask:
            return set()
        values = {v for reg, hosts in ask.items() for v in [reg, *hosts]}
        try:
            with self._session() as s:
                rows = s.execute(
                    select(IndicatorRow.value)
                    .where(IndicatorRow.kind.in_(("url_domain", "sender_domain")), IndicatorRow.value.in_(values))
                    .distinct()
                ).scalars()
                seen = {str(v).lower() for v in rows}
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        if len(known) + len(seen) > SEEN_CACHE:
            for old in list(known)[: len(known) // 2]:  # the oldest half
                del known[old]
        known.update(dict.fromkeys(seen))
        return {reg for reg, hosts in ask.items() if reg not in seen and not seen.intersection(hosts)}

    def first_recorded(self, kind: str = "") -> float | None:
        """When the oldest recorded message arrived (cached for an hour), or None when nothing is recorded or unknown.
        With `kind`: the oldest message with an indicator of that kind (the store of a site that
        upgraded holds none of a new kind in its older mail)."""
        if not kind:
            return self._aggregate("first", lambda: select(func.min(MessageRow.received_at)), 3600.0)
        return self._aggregate(
            f"first {kind}",
            lambda: select(func.min(MessageRow.received_at))
            .join(IndicatorRow, IndicatorRow.message_id == MessageRow.id)
            .where(IndicatorRow.kind == kind),
            3600.0,
        )

    def forget_counts(self) -> None:
        """Ask the store again for its size and oldest record (they are kept a minute and an hour)."""
        self._kept.clear()

    def young_destinations(self, destinations: Iterable[tuple[str, str]], since: float) -> set[tuple[str, str]] | None:
        """The link destinations (kind "url_domain", "url_host" or "url_page", value) never recorded,
        as a link or a sender domain, in mail that arrived before `since`. A page is never young
        until the store has recorded pages since before `since` (they were first recorded by this
        version, and an older store's mail would make every form look new)."""
        ask = [d for d in dict.fromkeys(destinations) if self._old_before.get(d, float("inf")) > since]
        if any(kind == "url_page" for kind, _ in ask):
            first_page = self.first_recorded("url_page")
            if first_page is None or first_page >= since:
                ask = [d for d in ask if d[0] != "url_page"]
        young: set[tuple[str, str]] = set()
        try:
            with self._session() as s:
                for kind, value in ask:
                    # One indexed probe per destination: a popular one has old rows among its first.
                    hit = s.execute(
                        select(MessageRow.received_at)
                        .join(IndicatorRow, IndicatorRow.message_id == MessageRow.id)
                        .where(
                            IndicatorRow.kind.in_((kind, "sender_domain")),
                            IndicatorRow.value == value,
                            MessageRow.received_at < since,
                        )
                        .limit(1)
                    ).first()
                    if hit is None:
                        young.add((kind, value))
                    else:
                        self._old_before[(kind, value)] = since
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        if len(self._old_before) > SEEN_CACHE:
            for old in list(self._old_before)[: len(self._old_before) // 2]:
                del self._old_before[old]
        return young

    def destination_senders(
        self, destination: tuple[str, str], since: float, until: float, exclude: str = "", limit: int = 1000
    ) -> list[tuple[str, str, str, float, str]] | None:
        """(id, From address, From domain, arrival, status) of the inbound messages other than
        `exclude` (an envelope id) that linked the destination (kind, value) between `since` and
        `until`, oldest first. Mailing-list posts (List-Id) are left out: a list's footer links its
        host in every member's post."""
        kind, value = destination
        try:
            with self._session() as s:
                rows = s.execute(
                    select(MessageRow.id, MessageRow.from_addr, MessageRow.from_domain, MessageRow.received_at,
                           MessageRow.status, MessageRow.headers)
                    .join(IndicatorRow, IndicatorRow.message_id == MessageRow.id)
                    .where(
                        IndicatorRow.kind == kind,
                        IndicatorRow.value == value,
                        MessageRow.direction == "inbound",
                        MessageRow.received_at >= since,
                        MessageRow.received_at < until,
                    )
                    .order_by(MessageRow.received_at)
                    .limit(limit)
                ).all()
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        return [
            (str(r[0]), str(r[1] or "").lower(), str(r[2] or "").lower(), float(r[3]), str(r[4] or ""))
            for r in rows
            if r[0] != exclude and not _is_list_post(r[5])
        ]

    def condemned_links(
        self, since: float, triggers: Iterable[str], kinds: Iterable[str]
    ) -> list[tuple[str, str, str, float, str, str, str, str]] | None:
        """(indicator kind, value, message id, arrival, From address, From domain, subject, how) of
        the link indicators of `kinds` in inbound mail condemned since `since`: marked a threat
        (the audit log's "message.condemn"; how = "marked a threat"), or recalled by a job of one of
        `triggers` that has not been restored (how = "recalled by job <id> (<trigger>)"). A message
        released since is left out. Both are found through their own indexed tables, never by
        reading every message of the period."""
        from mailmoat.store.audit_models import AuditRow
        from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow

        try:
            with self._session() as s:
                how: dict[str, str] = {}
                # Messages condemned only by a person's mark (with the recall the mark started): the
                # mark taken back (`recall uncondemn`, or its recall restored) ends their word.
                marked_only: set[str] = set()
                for mid, job, trigger in s.execute(
                    select(RecallCopyRow.message_id, RecallJobRow.id, RecallJobRow.trigger)
                    .join(RecallJobRow, RecallJobRow.id == RecallCopyRow.job_id)
                    .where(
                        RecallJobRow.trigger.in_(list(triggers)),
                        RecallJobRow.state.notin_(("restoring", "restored")),
                        RecallJobRow.created_at >= since,
                        RecallCopyRow.state.in_(("recalled", "already_gone")),
                    )
                    .distinct()  # a message, not each of its thousands of copies
                ):
                    key = str(mid)
                    if trigger != VERDICT:
                        marked_only.discard(key)
                    elif key not in how:
                        marked_only.add(key)
                    elif key not in marked_only:
                        continue  # another job's word stands
                    how[key] = f"recalled by job {job} ({trigger})"
                for (mid,) in s.execute(
                    select(AuditRow.target).where(AuditRow.action == "message.condemn", AuditRow.at >= since)
                ):
                    if str(mid) not in how:
                        how[str(mid)] = MARKED
                        marked_only.add(str(mid))
                ids = list(how)
                rows = []
                for start in range(0, len(ids), _CHUNK):  # a big recall names more messages than one query may
                    rows += s.execute(
                        select(IndicatorRow.kind, IndicatorRow.value, MessageRow.id, MessageRow.received_at,
                               MessageRow.from_addr, MessageRow.from_domain, MessageRow.subject, MessageRow.status)
                        .join(IndicatorRow, IndicatorRow.message_id == MessageRow.id)
                        .where(
                            MessageRow.id.in_(ids[start:start + _CHUNK]),
                            MessageRow.direction == "inbound",
                            MessageRow.status != "released",
                            IndicatorRow.kind.in_(list(kinds)),
                        )
                    ).all()
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        return [
            (str(kind), str(value), str(mid), float(at), str(frm or "").lower(), str(fdom or "").lower(), str(subj or ""),
             how[str(mid)])
            for kind, value, mid, at, frm, fdom, subj, status in rows
            # A mark taken back is in the audit log still, but no longer in the message's status.
            if str(mid) not in marked_only or status == "condemned"
        ]

    def first_linked(self, destination: tuple[str, str]) -> float | None:
        """When the first recorded message that linked the destination (or was sent from it) arrived;
        None when none did or the store cannot say."""
        kind, value = destination
        return self._aggregate(
            f"first linked {kind} {value}",
            lambda: select(func.min(MessageRow.received_at))
            .join(IndicatorRow, IndicatorRow.message_id == MessageRow.id)
            .where(IndicatorRow.kind.in_((kind, "sender_domain")), IndicatorRow.value == value),
            float("inf"),  # the first record never changes (retention aside)
        )

    def released_linking(self, destinations: Iterable[tuple[str, str]], since: float) -> set[tuple[str, str]] | None:
        """Those of the destinations that a message which arrived since `since` and was released
        from quarantine linked (an administrator's word that mail leading there is fine)."""
        wanted = set(destinations)
        if not wanted:
            return set()
        try:
            with self._session() as s:
                rows = s.execute(
                    select(IndicatorRow.kind, IndicatorRow.value)
                    .join(MessageRow, IndicatorRow.message_id == MessageRow.id)
                    .where(
                        IndicatorRow.kind.in_({k for k, _ in wanted}), IndicatorRow.value.in_({v for _, v in wanted}),
                        MessageRow.status == "released", MessageRow.received_at >= since,
                    )
                ).all()
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        return {(str(k), str(v)) for k, v in rows} & wanted

    def restored_recall(self, message_ids: Iterable[str]) -> bool | None:
        """True when a recall job that took one of these messages was restored whole (an
        administrator's word that it was no threat); None when the store cannot say."""
        from mailmoat.store.recall_models import RecallCopyRow, RecallJobRow

        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return False
        try:
            with self._session() as s:
                hit = s.execute(
                    select(RecallCopyRow.id)
                    .join(RecallJobRow, RecallJobRow.id == RecallCopyRow.job_id)
                    .where(RecallCopyRow.message_id.in_(ids), RecallJobRow.state == "restored")
                    .limit(1)
                ).first()
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        return hit is not None

    def display_names(self, addr: str, before: float, limit: int = 5000) -> tuple[int, set[str]] | None:
        """(messages recorded from this From address before `before`, display names it used), or None when unknown.

        Only mail older than `before` counts, so a wave that started minutes ago cannot make its
        own display name look usual.
        """
        try:
            with self._session() as s:
                rows = s.execute(
                    select(MessageRow.from_display)
                    .where(MessageRow.from_addr.in_({addr, addr.lower()}), MessageRow.received_at < before)
                    .limit(limit)
                ).scalars()
                names = [str(r or "") for r in rows]
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        return len(names), {n.strip() for n in names}

    def our_message_to(self, addr: str, message_ids: Iterable[str], before: float) -> tuple[str, str, float] | None:
        """(Message-ID, sender, time) of a message among `message_ids` that this site sent out to
        `addr` before `before` and that was delivered, or None (also when the store cannot say)."""
        ids = {v for m in message_ids for v in (m, m.strip("<>"), f"<{m.strip('<>')}>")}
        if not ids or not addr:
            return None
        try:
            with self._session() as s:
                row = s.execute(
                    select(MessageRow.message_id, MessageRow.mail_from, MessageRow.received_at)
                    .join(DeliveryRow, DeliveryRow.message_id == MessageRow.id)
                    .where(MessageRow.message_id.in_(ids), *_delivered_out_to(addr, before))
                    .limit(1)
                ).first()
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        return (str(row[0]), str(row[1] or ""), float(row[2])) if row is not None else None

    def written_to(self, addr: str, before: float) -> tuple[int, float] | None:
        """(copies this site delivered out to `addr` before `before`, when the first was sent), or
        None when it never wrote to that address (or the store cannot say)."""
        if not addr:
            return None
        try:
            with self._session() as s:
                n, first = s.execute(
                    select(func.count(), func.min(MessageRow.received_at))
                    .select_from(DeliveryRow)
                    .join(MessageRow, DeliveryRow.message_id == MessageRow.id)
                    .where(*_delivered_out_to(addr, before))
                ).one()
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        return (int(n), float(first)) if n else None


def _is_list_post(headers: Any) -> bool:
    return isinstance(headers, list) and any(
        isinstance(h, list | tuple) and h and str(h[0]).lower() == "list-id" for h in headers
    )


def _delivered_out_to(addr: str, before: float) -> tuple[Any, ...]:
    """Conditions on a delivery joined to its message: a copy this site sent out to `addr` before
    `before`, and that left (a held copy earns no trust)."""
    return (
        MessageRow.direction == "outbound",
        MessageRow.received_at < before,
        recipient_is(addr),  # in whatever case the colleague typed it
        DeliveryRow.status == DELIVERED,
    )
