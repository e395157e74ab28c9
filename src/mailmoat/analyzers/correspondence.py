"""Correspondence: inbound mail that answers the organisation's own mail, or comes from someone it writes to."""

from __future__ import annotations

import asyncio
import re
import time
from typing import ClassVar

from mailmoat.analyzers.base import AnalysisContext, AnalyzerEnv, BaseAnalyzer
from mailmoat.model import Direction, Finding, Symbol
from mailmoat.urlcheck.history import History

GROUP = "correspondence"
# How many of the message ids in In-Reply-To and References are asked about: the newest ones,
# which name the messages this one answers (a long thread's oldest ids say less, and cost more).
MAX_IDS = 20
# An address this site wrote to counts as a correspondent only this long after the first copy
# left: a phisher who gets one reply out of a user should not be trusted minutes later.
KNOWN_AFTER = 24 * 3600.0

SYMBOLS = (
    Symbol(
        "REPLY_TO_OUR_MAIL", -2.0, GROUP,
        "A reply to a message this organisation sent to the sender (In-Reply-To/References name it)",
    ),
    Symbol(
        "KNOWN_CORRESPONDENT", -1.5, GROUP,
        "Authenticated mail (DMARC pass) from an address this organisation has written to for a day or more",
    ),
)

_MSGID = re.compile(r"<[^<>\s]{1,250}>")


def referenced_ids(in_reply_to: str, references: str) -> list[str]:
    """The message ids this message answers: In-Reply-To's first, then References' newest first."""
    ids = _MSGID.findall(in_reply_to) + _MSGID.findall(references)[::-1]
    return list(dict.fromkeys(ids))[:MAX_IDS]


class CorrespondenceAnalyzer(BaseAnalyzer):
    """Weak signs of legitimate mail from the store's record of what the organisation sent out.

    Stage 1, to see whether DMARC passed: a correspondent's address in an unauthenticated From
    is what a spoofer writes. A reply needs no authentication, because its In-Reply-To names a
    message only the people it was sent to have seen; a thread hijacked from a partner's
    mailbox has it too, which is why both signs are small.
    """

    name: ClassVar[str] = "correspondence"
    symbols: ClassVar[tuple[Symbol, ...]] = SYMBOLS
    stage: ClassVar[int] = 1

    def __init__(self, env: AnalyzerEnv) -> None:
        super().__init__(env)
        self.history = History(env.store) if env.store is not None else None

    def enabled(self) -> bool:
        return self.history is not None

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        frm = ctx.message.from_.addr.strip()
        if self.history is None or ctx.envelope.direction is not Direction.INBOUND or "@" not in frm:
            return []
        msg = ctx.message
        ids = referenced_ids(msg.header("In-Reply-To"), " ".join(msg.header_all("References")))
        authenticated = any(f.symbol == "DMARC_PASS" for f in ctx.prior)
        if not ids and not authenticated:
            return []  # nothing to ask the store: no thread hand-off for most new mail
        return await asyncio.to_thread(self._analyze, ctx, frm, ids, authenticated)

    def _analyze(self, ctx: AnalysisContext, frm: str, ids: list[str], authenticated: bool) -> list[Finding]:
        assert self.history is not None
        before = ctx.envelope.received_at
        ours = self.history.our_message_to(frm, ids, before) if ids else None
        if ours is not None:
            msgid, sender, when = ours
            return [
                self.finding(
                    "REPLY_TO_OUR_MAIL",
                    f"answers {msgid[:200]}, sent by {sender or 'this organisation'} to {frm} on {_day(when)}",
                    {"message_id": msgid, "sender": sender, "sent_at": when},
                )
            ]
        if not authenticated:
            return []
        written = self.history.written_to(frm, before)
        if written is None or before - written[1] < KNOWN_AFTER:
            return []
        count, first = written
        return [
            self.finding(
                "KNOWN_CORRESPONDENT",
                f"{frm} (DMARC pass) has had {count} message(s) from this organisation since {_day(first)}",
                {"address": frm, "copies": count, "first": first},
            )
        ]


def _day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))
