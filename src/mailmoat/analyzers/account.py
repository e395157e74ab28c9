"""Account behaviour: internal/outbound mail that does not fit its sender's profile, and mail of held accounts."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from mailmoat.accounts import profiles, signals
from mailmoat.accounts.containment import open_incident
from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.model import Direction, Finding, Symbol

HELD_SCORE = 100.0
WEAK = 0.5  # volume without anything unusual about the sender is an announcement, not an attack

SYMBOLS = (
    Symbol("ACCOUNT_HELD", HELD_SCORE, "account", "The sending account is contained after a compromise incident"),
    Symbol("ACCOUNT_NEW_IP", 2.0, "account", "The account submits from a client IP (network) it never used before"),
    Symbol(
        "ACCOUNT_NEW_DISPLAY_NAME", 3.0, "account",
        "The account sends under a department or executive display name it never used before",
    ),
    Symbol("ACCOUNT_BURST", 3.0, "account", "The account wrote to many distinct colleagues within minutes"),
    Symbol(
        "ACCOUNT_SAME_CONTENT_FANOUT", 3.0, "account",
        "The account sent the same body, URL or QR payload to many colleagues",
    ),
    Symbol("ACCOUNT_SPAM_RELAY", 4.0, "account", "The account writes to many external domains within an hour"),
    Symbol("ACCOUNT_RATE_LIMIT", 50.0, "account", "The account is over its outbound rate limit: held"),
    Symbol(
        "ACCOUNT_USUAL_LINKS", -2.0, "account",
        "Mail between colleagues whose every link leads where this account has linked before (a provider it uses every month)",
    ),
)


class AccountAnalyzer(BaseAnalyzer):
    name: ClassVar[str] = "account"
    symbols: ClassVar[tuple[Symbol, ...]] = SYMBOLS

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        self.store = env.store

    def enabled(self) -> bool:
        return self.store is not None and self.env.settings.accounts.enabled

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        if self.store is None or ctx.envelope.direction is Direction.INBOUND:
            return []
        facts = profiles.facts_of(ctx.envelope, ctx.message, ctx.settings)
        if facts is None:
            return []
        return await asyncio.to_thread(self._analyze, ctx, facts)

    def _analyze(self, ctx: AnalysisContext, facts: profiles.Facts) -> list[Finding]:
        assert self.store is not None
        with self.store.session() as s:  # read only: the pipeline's observe() writes profiles
            incident = open_incident(s, facts.account)
            held_by = incident.id if incident is not None and incident.held else ""
            sig = signals.compute(s, ctx.settings, facts)
            s.rollback()
        out: list[Finding] = []
        if held_by:
            out.append(self.finding("ACCOUNT_HELD", f"{facts.account} is held by incident {held_by}",
                                    {"incident": held_by, "account": facts.account}))
        if sig.new_ip:
            out.append(self.finding("ACCOUNT_NEW_IP", f"{facts.account} submits from {facts.client_ip}"
                                    + (f" via {facts.host}" if facts.host else "") + f" (history {sig.history} messages)",
                                    {"ip": facts.client_ip, "host": facts.host}))
        if sig.new_name:
            score = None if sig.name_kind else WEAK
            out.append(self.finding("ACCOUNT_NEW_DISPLAY_NAME",
                                    f"{facts.account} sends as {facts.display!r}" + (f" ({sig.name_kind})" if sig.name_kind else ""),
                                    {"display": facts.display, "kind": sig.name_kind}, score=score))
        strength = None if sig.anomalous else WEAK
        if sig.burst:
            out.append(self.finding("ACCOUNT_BURST", f"{sig.burst_recipients} distinct colleagues in "
                                    f"{ctx.settings.accounts.burst_window}s", {"recipients": sig.burst_recipients}, score=strength))
        if sig.fanout:
            out.append(self.finding("ACCOUNT_SAME_CONTENT_FANOUT", f"same {'/'.join(sig.fanout_on) or 'body'} to "
                                    f"{sig.fanout_recipients} colleagues", {"recipients": sig.fanout_recipients,
                                                                             "on": sig.fanout_on}, score=strength))
        if sig.spam_relay:
            out.append(self.finding("ACCOUNT_SPAM_RELAY", f"{sig.external_domains} external domains within an hour",
                                    {"domains": sig.external_domains}))
        if sig.usual_links and ctx.envelope.direction is Direction.INTERNAL and not sig.anomalous and not held_by:
            # HR's monthly notice linking to its benefits provider uses the words of the subsidy
            # wave; a stolen account's link goes to a domain the account never sent.
            out.append(self.finding("ACCOUNT_USUAL_LINKS", f"{facts.account} has linked to {', '.join(sig.usual_links[:3])} before",
                                    {"domains": sig.usual_links}))
        if sig.rate_limited:
            out.append(self.finding("ACCOUNT_RATE_LIMIT", f"{sig.outbound_recipients} outbound recipients in an hour "
                                    f"(limit {ctx.settings.accounts.outbound_rate_per_hour})",
                                    {"recipients": sig.outbound_recipients}))
        return out
