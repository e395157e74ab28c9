"""Condemned destinations: inbound mail linking a place that mail condemned at this site led to."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.model import Direction, Finding, Symbol
from mailmoat.recall import triggers
from mailmoat.urlcheck import domains as dom
from mailmoat.urlcheck.destinations import KINDS, link_destinations, recorded_destination
from mailmoat.urlcheck.history import History
from mailmoat.urlcheck.lookalike import DomainCatalog

# Whose verdict condemns a destination: a person's recall or mark, or a threat indicator's recall.
# The gateway's own later verdicts (auto:rescan, auto:wave) and an account's containment are left
# out: a sign fed by the engine's own verdicts would spread each of its mistakes to other mail.
TRIGGERS = triggers.PERSON
REFRESH = 30.0  # seconds between looks at the store; a recall counts for the next mail after that
MAX_DESTINATIONS = 5_000  # condemned destinations kept, the most recent first

LINK_CONDEMNED_DESTINATION = Symbol(
    "LINK_CONDEMNED_DESTINATION", 7.0, "campaign",
    "Links a destination new to this site that mail condemned here led to (recalled or marked a threat "
    "by an administrator, or recalled for a threat indicator)",
)


@dataclass(frozen=True)
class Condemned:
    """The condemned message that makes a destination condemned (the latest one)."""

    mail_id: str
    at: float
    from_addr: str
    subject: str
    how: str


class CondemnedLinkAnalyzer(BaseAnalyzer):
    """After an administrator recalls a phishing message, its next copy may come with other words
    (the near-copy memory misses it) from another sender (the sender checks miss it) but still
    sends the reader to the same new domain, the same hosting page or the same form.

    Only destinations that were new here when the condemned mail came are taken: that mail may also
    link the brand it imitates, a mail service's click tracker or a partner's site, which this
    site knew long before. Releasing a later message that links the destination, or restoring the
    recall, undoes it. Needs the store.
    """

    name: ClassVar[str] = "condemned_links"
    symbols: ClassVar[tuple[Symbol, ...]] = (LINK_CONDEMNED_DESTINATION,)

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        s = env.settings
        self.catalog = DomainCatalog(list(s.server.domains), list(s.org.brands))
        self.history = History(env.store) if env.store is not None else None
        # The latest two condemned messages per destination: when one of them is judged again
        # (a re-scan), the other still says where it leads.
        self.condemned: dict[tuple[str, str], list[Condemned]] = {}
        self._checked = float("-inf")

    def enabled(self) -> bool:
        return self.history is not None and self.env.settings.condemned_links.enabled

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        if self.history is None or ctx.envelope.direction is not Direction.INBOUND:
            return []
        if time.monotonic() - self._checked >= REFRESH:
            self._checked = time.monotonic()
            await asyncio.to_thread(self.refresh, ctx.envelope.received_at)
        if not self.condemned:
            return []
        frm = ctx.message.from_
        sender = dom.registrable(frm.domain.strip().lower()) if frm.domain else ""
        for dest in link_destinations(ctx.message, sender, self.catalog):
            hit = next((c for c in self.condemned.get(dest, ()) if c.mail_id != ctx.envelope.id), None)
            if hit is None:
                continue
            when = datetime.fromtimestamp(hit.at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            kind, value = dest
            return [self.finding(
                "LINK_CONDEMNED_DESTINATION",
                f"links {'the page ' if kind == 'url_page' else ''}{value}, where condemned mail led: "
                f"{hit.subject[:120]!r} from {hit.from_addr or '(no From)'}, arrived {when}, {hit.how}",
                {"kind": kind, "domain": value, "condemned": hit.mail_id, "how": hit.how},
            )]
        return []

    def refresh(self, now: float | None = None) -> None:
        """Read again which destinations condemned mail of the look-back led to (kept as they were
        when the store does not answer)."""
        assert self.history is not None
        cfg = self.env.settings.condemned_links
        now = time.time() if now is None else now
        young = max(cfg.young_days, 0.0) * 86400.0
        rows = self.history.condemned_links(now - max(cfg.lookback_days, 0.0) * 86400.0, TRIGGERS, KINDS)
        first = self.history.first_recorded()
        if rows is None or first is None:
            return
        found: dict[tuple[str, str], list[Condemned]] = {}
        for kind, value, mail_id, at, from_addr, from_domain, subject, how in sorted(rows, key=lambda r: -r[3]):
            if at - young < first:
                continue  # the store does not reach back far enough to tell a new destination from an old one
            sender = dom.registrable(from_domain) if from_domain else ""
            dest = recorded_destination(kind, value, sender, self.catalog)
            if dest is None:
                continue
            kept = found.get(dest)
            if kept is not None:
                if len(kept) < 2 and all(c.mail_id != mail_id for c in kept):
                    kept.append(Condemned(mail_id, at, from_addr, subject, how))
                continue
            if len(found) >= MAX_DESTINATIONS:
                continue
            seen = self.history.first_linked(dest)
            if seen is None or seen < at - young:
                continue  # known here long before the condemned mail came
            found[dest] = [Condemned(mail_id, at, from_addr, subject, how)]
        oldest = min((c[0].at for c in found.values()), default=now) - young
        released = self.history.released_linking(found, oldest)
        if released is None:
            return
        self.condemned = {d: c for d, c in found.items() if d not in released}
