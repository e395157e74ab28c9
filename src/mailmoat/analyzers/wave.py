"""Waves: inbound mail linking a domain new to this site that many unrelated senders have linked since it appeared."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.model import Direction, Finding, Message, Symbol
from mailmoat.urlcheck import domains as dom
from mailmoat.urlcheck.destinations import link_destinations
from mailmoat.urlcheck.history import History
from mailmoat.urlcheck.links import sender_identity
from mailmoat.urlcheck.lookalike import DomainCatalog

MAX_SHOWN = 5  # senders named in the evidence
# Messages read per young domain: plenty to count a few senders, and a wave of thousands of copies
# then costs each new copy the same bounded read.
MAX_ROWS = 200
# A wave recognised by this process is taken as one for this long before the store is asked again,
# so that a copy released in the meantime (an administrator's word that it is no wave) is seen.
RECHECK_AFTER = 300.0

LINK_DOMAIN_WAVE = Symbol(
    "LINK_DOMAIN_WAVE", 3.0, "campaign",
    "Links a domain first seen here within the wave window, which mail from many unrelated senders has linked since",
)


class WaveAnalyzer(BaseAnalyzer):
    """A campaign sent through many stolen or throw-away accounts: one new destination, many senders.

    Each copy alone may look like any other message from a stranger; what gives it away is that
    within hours of its link domain first reaching this site, mail from several unrelated senders
    (domains, or separate accounts at free-mail providers) links it too. A newsletter links its
    own domain, a mailing list's posts (List-Id) all link its host, and a domain this site knew
    before the window (a shortener, a platform, a partner) is never young, so none of them
    counts. Needs the store.
    """

    name: ClassVar[str] = "wave"
    symbols: ClassVar[tuple[Symbol, ...]] = (LINK_DOMAIN_WAVE,)

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        s = env.settings
        self.catalog = DomainCatalog(list(s.server.domains), list(s.org.brands))
        self.history = History(env.store) if env.store is not None else None
        # Waves recognised by this process: destination -> (first seen, other messages, senders).
        # A wave stays one until its domain is older than the window, so a big wave's later copies
        # are judged without asking the store again about thousands of earlier ones.
        self._recognised: dict[tuple[str, str], tuple[float, int, list[str], float]] = {}

    def enabled(self) -> bool:
        return self.history is not None and self.env.settings.waves.enabled

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        if self.history is None or ctx.envelope.direction is not Direction.INBOUND or ctx.message.header("List-Id"):
            return []  # a mailing list's posts all link its host; the list is not a wave
        frm = ctx.message.from_
        sender = dom.registrable(frm.domain.strip().lower()) if frm.domain else ""
        candidates = self.destinations(ctx.message, sender)
        if not candidates:
            return []
        return await asyncio.to_thread(
            self._analyze, candidates, sender_identity(frm.addr, frm.domain), ctx.envelope.received_at, ctx.envelope.id
        )

    def destinations(self, msg: Message, sender: str) -> list[tuple[str, str]]:
        """Where the message sends the reader, as the store records it (`link_destinations`)."""
        return link_destinations(msg, sender, self.catalog)

    def _analyze(self, candidates: list[tuple[str, str]], sender: str, now: float, mail_id: str) -> list[Finding]:
        assert self.history is not None
        cfg = self.env.settings.waves
        window = max(cfg.window_hours, 1.0) * 3600.0
        since = now - window
        # "First seen within the window" means something only once the store reaches back past it.
        first = self.history.first_recorded()
        if first is None or first > since or not self.history.mature():
            return []
        for dest in candidates:
            known = self._recognised.get(dest)
            if known is not None and since <= known[0] <= now + window and time.monotonic() - known[3] < RECHECK_AFTER:
                first_seen, messages, names, _ = known
                if sender and sender != dest[1] and sender not in names:
                    names = [*names, sender]
                return [self._finding(dest, now, window, first_seen, messages, names, at_least=True)]
        young = self.history.young_destinations(candidates, since)
        for dest in candidates:
            if dest not in (young or ()):
                continue
            # Copies after this one exist only when it is judged again later (a re-scan), which
            # should then see the whole wave it belongs to.
            rows = self.history.destination_senders(dest, since, now + window, exclude=mail_id, limit=MAX_ROWS)
            if not rows or any(status == "released" for *_, status in rows) or self.history.restored_recall(r[0] for r in rows):
                # Released from quarantine, or a recall of it restored: an administrator has judged
                # a copy, and with it the wave.
                self._recognised.pop(dest, None)
                continue
            senders: dict[str, None] = {}
            for _, from_addr, from_domain, _, _ in rows:
                key = sender_identity(from_addr, from_domain)
                if key and key != dest[1]:
                    senders[key] = None
            if sender and sender != dest[1]:
                senders[sender] = None
            if len(senders) < max(cfg.min_senders, 2):
                continue
            names = list(senders)
            earliest = min(rows[0][3], now)
            if len(self._recognised) >= 10_000:
                for old in list(self._recognised)[:5_000]:
                    del self._recognised[old]
            self._recognised[dest] = (earliest, len(rows), names[:50], time.monotonic())
            return [self._finding(dest, now, window, earliest, len(rows), names, at_least=len(rows) >= MAX_ROWS - 1)]
        return []

    def _finding(
        self, dest: tuple[str, str], now: float, window: float, earliest: float, messages: int, names: list[str],
        *, at_least: bool,
    ) -> Finding:
        kind, domain = dest
        count = f"{messages} or more" if at_least else str(messages)
        shown = ", ".join(names[:MAX_SHOWN]) + (f" and {len(names) - MAX_SHOWN} more" if len(names) > MAX_SHOWN else "")
        return self.finding(
            "LINK_DOMAIN_WAVE",
            f"{'the page ' if kind == 'url_page' else ''}{domain} first reached this site {max(now - earliest, 0.0) / 3600.0:.1f} h before this message; "
            f"{count} other message(s) within {window / 3600.0:g} h, from {len(names)} unrelated senders "
            f"(domains, or accounts at free-mail providers) with this one, link it ({shown})",
            {"domain": domain, "kind": kind, "senders": names[:50], "messages": messages, "first_seen": earliest},
        )
