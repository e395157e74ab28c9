"""The analyzer contract: declare symbols, read the Message, return findings (never parse, deliver or write)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mailmoat.config import Settings
from mailmoat.model import Envelope, Finding, Message, Symbol

if TYPE_CHECKING:
    from mailmoat.store.db import Store


@dataclass
class AnalyzerEnv:
    """What an analyzer may use when it is built: settings and, in the gateway, a read handle on the store."""

    settings: Settings
    store: Store | None = None


@dataclass
class AnalysisContext:
    """What an analyzer sees for one message."""

    message: Message
    envelope: Envelope
    settings: Settings
    deadline: float = field(default_factory=lambda: time.monotonic() + 10.0)
    # Findings of analyzers that ran in earlier stages (see BaseAnalyzer.stage).
    prior: list[Finding] = field(default_factory=list)
    _tokens: tuple[Message, frozenset[str]] | None = field(default=None, init=False, repr=False)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def classifier_tokens(self) -> frozenset[str]:
        """The message's classifier tokens, made once for every analyzer that reads them."""
        # Kept with the message they came from: a context's message may be replaced.
        if self._tokens is None or self._tokens[0] is not self.message:
            from mailmoat.classify.tokens import message_tokens

            self._tokens = (self.message, frozenset(message_tokens(self.message)))
        return self._tokens[1]


class BaseAnalyzer:
    """Base class for analyzers; subclasses set `name` and `symbols` and implement `analyze`.

    An analyzer is built once per process with an AnalyzerEnv and then called for each
    message. CPU-heavy analyzers should check `ctx.time_left()` and stop early: the budget
    can only interrupt analyzers at an await point.
    """

    name: ClassVar[str] = ""
    symbols: ClassVar[tuple[Symbol, ...]] = ()
    # Analyzers in stage 1 see the findings of stage 0 in ctx.prior (e.g. rules and composites).
    stage: ClassVar[int] = 0
    # Analyzers that are off unless configured return False here.
    enabled_by_default: ClassVar[bool] = True

    def __init__(self, env: AnalyzerEnv) -> None:
        self.env = env
        self._symbols = {s.name: s for s in self.symbols}

    def enabled(self) -> bool:
        return self.enabled_by_default

    def finding(
        self,
        symbol: str,
        evidence: str = "",
        data: dict[str, Any] | None = None,
        score: float | None = None,
    ) -> Finding:
        """A Finding for one of this analyzer's declared symbols (its default score unless given)."""
        sym = self._symbols[symbol]
        return Finding(
            symbol=symbol,
            score=sym.score if score is None else score,
            evidence=evidence,
            source=self.name,
            group=sym.group,
            data=data or {},
        )

    async def analyze(self, ctx: AnalysisContext) -> list[Finding]:
        raise NotImplementedError
