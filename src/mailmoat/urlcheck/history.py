"""Read-only questions to the store's history: has this site seen a domain, a display name, a correspondent before?"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from mailmoat.store.db import DELIVERED
from mailmoat.store.models import DeliveryRow, IndicatorRow, MessageRow
from mailmoat.store.queries import recipient_is

log = logging.getLogger(__name__)

# Until the store has recorded this many messages, "never seen before" means nothing.
MIN_HISTORY = 200
SEEN_CACHE = 100_000  # domains and hosts remembered as seen, per process


class History:
    """Store queries used by analyzers; every error is logged and answered with 'unknown' (None)."""

    def __init__(self, store: Any, min_history: int = MIN_HISTORY) -> None:
        self.store = store
        self.min_history = min_history
        self._size: tuple[float, int] | None = None
        # Domains and hosts known to be in the store: once recorded a domain stays "seen", so
        # a message whose domains are all known needs no query (most mail repeats its domains).
        self._seen: dict[str, None] = {}

    def _session(self) -> Any:
        return self.store.session()

    def size(self) -> int | None:
        """Number of recorded messages (cached for a minute)."""
        now = time.monotonic()
        if self._size and now - self._size[0] < 60:
            return self._size[1]
        try:
            with self._session() as s:
                n = int(s.execute(select(func.count()).select_from(MessageRow)).scalar_one())
        except Exception as exc:
            log.warning("store history unavailable: %s", exc)
            return None
        self._size = (now, n)
        return n

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


def _delivered_out_to(addr: str, before: float) -> tuple[Any, ...]:
    """Conditions on a delivery joined to its message: a copy this site sent out to `addr` before
    `before`, and that left (a held copy earns no trust)."""
    return (
        MessageRow.direction == "outbound",
        MessageRow.received_at < before,
        recipient_is(addr),  # in whatever case the colleague typed it
        DeliveryRow.status == DELIVERED,
    )
